import { en, type MessageKey } from './messages/en.ts';
import { es } from './messages/es.ts';

export type { MessageKey };

/** Languages of the pages, the first being the fallback. */
export const LOCALES = ['en', 'es'] as const;
export type Locale = (typeof LOCALES)[number];

export const CATALOGUES: Record<Locale, Record<MessageKey, string>> = { en, es };

/** Keys of texts that come in plural forms, named without their `.one` or `.other` ending. */
export type PluralKey = MessageKey extends infer Key
  ? Key extends `${infer Base}.other`
    ? Base
    : never
  : never;

export type MessageValues = Record<string, string | number>;

function supported(tag: string): Locale | undefined {
  const language = tag.trim().toLowerCase().split('-')[0];

  return LOCALES.find((locale) => locale === language);
}

/** Reads an Accept-Language header into language tags, most preferred first. */
function acceptedLanguages(header: string): string[] {
  return header
    .split(',')
    .map((part, index) => {
      const [tag = '', ...parameters] = part.split(';').map((piece) => piece.trim());
      const q = parameters.find((parameter) => parameter.startsWith('q='));
      const weight = q === undefined ? 1 : Number(q.slice(2));

      return { tag, weight: Number.isFinite(weight) ? weight : 0, index };
    })
    .filter((entry) => entry.tag !== '' && entry.tag !== '*' && entry.weight > 0)
    .sort((a, b) => b.weight - a.weight || a.index - b.index)
    .map((entry) => entry.tag);
}

/**
 * Chooses the page language: the first supported tag of the OpenID `ui_locales` parameter (the
 * app's choice), else of the browser's Accept-Language, else English.
 */
export function pickLocale(uiLocales?: string, acceptLanguage?: string): Locale {
  for (const tag of (uiLocales ?? '').split(' ')) {
    const locale = supported(tag);
    if (locale) return locale;
  }
  for (const tag of acceptedLanguages(acceptLanguage ?? '')) {
    const locale = supported(tag);
    if (locale) return locale;
  }

  return 'en';
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

function fill(
  text: string,
  values: MessageValues,
  format: (value: string) => string,
  escape: (text: string) => string,
): string {
  return text
    .split(/(\{[a-zA-Z]+\})/)
    .map((part) => {
      const name = /^\{([a-zA-Z]+)\}$/.exec(part)?.[1];
      if (name === undefined) return escape(part);
      const value = values[name];
      if (value === undefined) throw new Error(`message value '${name}' is missing`);

      return format(String(value));
    })
    .join('');
}

/** The texts of one language, as the templates and the code use them. */
export interface Translator {
  locale: Locale;
  /** A text with its values filled in, as plain text (the template escapes it). */
  t(key: MessageKey, values?: MessageValues): string;
  /** The same as HTML: the text escaped, each value escaped and wrapped in `<strong>`. */
  html(key: MessageKey, values?: MessageValues, tag?: 'strong' | 'code'): string;
  /** The plural form of a text that fits `count`, as plain text. */
  plural(key: PluralKey, count: number, values?: MessageValues): string;
  /** The plural form as HTML, each value escaped and wrapped in `<strong>`. */
  pluralHtml(key: PluralKey, count: number, values?: MessageValues): string;
}

export function translator(locale: Locale): Translator {
  const catalogue = CATALOGUES[locale];
  const rules = new Intl.PluralRules(locale);
  const pluralKey = (key: PluralKey, count: number): MessageKey => {
    const form = `${key}.${rules.select(count)}`;

    return (form in catalogue ? form : `${key}.other`) as MessageKey;
  };
  const strong = (tag: string) => (value: string) => `<${tag}>${escapeHtml(value)}</${tag}>`;
  const plain = (text: string) => text;

  return {
    locale,
    t: (key, values = {}) => fill(catalogue[key], values, plain, plain),
    html: (key, values = {}, tag = 'strong') =>
      fill(catalogue[key], values, strong(tag), escapeHtml),
    plural: (key, count, values = {}) =>
      fill(catalogue[pluralKey(key, count)], { count, ...values }, plain, plain),
    pluralHtml: (key, count, values = {}) =>
      fill(catalogue[pluralKey(key, count)], { count, ...values }, strong('strong'), escapeHtml),
  };
}
