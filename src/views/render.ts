import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Context } from 'koa';
import { type MessageKey, pickLocale, type Translator, translator } from './i18n.ts';

const templatesDir = fileURLToPath(new URL('./templates/', import.meta.url));

/** Server-side HTML templates. Eta escapes every `<%= %>` output; `<%~ %>` is for trusted HTML. */
const eta = new Eta({ views: templatesDir, autoEscape: true, cache: true, autoTrim: false });

/** The operator's name and logo, shown on every page. */
export interface Branding {
  productName: string;
  /** URL path of the logo served by idp, when the operator configured one. */
  logoPath?: string;
}

export const DEFAULT_BRANDING: Branding = { productName: 'idp' };

export type PageName =
  | 'login'
  | 'code'
  | 'enrol'
  | 'recovery-codes'
  | 'consent'
  | 'account'
  | 'error'
  | 'logout'
  | 'logged-out';

/**
 * Returns the texts in this request's language: the `ui_locales` that the app sent with the
 * sign-in or logout request, else the browser's Accept-Language.
 */
export function pageTranslator(ctx: Context): Translator {
  const state = ctx.state as { uiLocales?: unknown; translator?: Translator };
  if (state.translator) return state.translator;
  const oidcParams = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
  const uiLocales = state.uiLocales ?? oidcParams?.['ui_locales'];
  const chosen = translator(
    pickLocale(typeof uiLocales === 'string' ? uiLocales : undefined, ctx.get('accept-language')),
  );
  state.translator = chosen;

  return chosen;
}

/**
 * Renders a page inside the common layout, in the language of the request, and sets the
 * Content-Language header. `title` is the key of the page's heading.
 */
export function renderPage(
  ctx: Context,
  page: PageName,
  data: { title: MessageKey; error?: string } & Record<string, unknown>,
): string {
  const i18n = pageTranslator(ctx);
  const branding = (ctx.state as { branding?: Branding }).branding ?? DEFAULT_BRANDING;
  ctx.set('content-language', i18n.locale);

  return eta.render(page, {
    ...data,
    title: i18n.t(data.title),
    productName: branding.productName,
    logoPath: branding.logoPath,
    lang: i18n.locale,
    t: i18n.t,
    html: i18n.html,
    plural: i18n.plural,
    pluralHtml: i18n.pluralHtml,
  });
}

export const stylesheet = readFileSync(new URL('./static/idp.css', import.meta.url), 'utf8');

/** The account page's idle warning; a file of its own, as the CSP allows no inline script. */
export const idleScript = readFileSync(new URL('./static/idle.js', import.meta.url), 'utf8');
