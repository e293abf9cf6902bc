import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CATALOGUES, LOCALES, pickLocale, translator } from '../src/views/i18n.ts';
import { en } from '../src/views/messages/en.ts';

const templatesDir = new URL('../src/views/templates/', import.meta.url);
const templates = readdirSync(templatesDir)
  .filter((name) => name.endsWith('.eta'))
  .map((name) => ({ name, text: readFileSync(new URL(name, templatesDir), 'utf8') }));

const placeholders = (text: string) =>
  [...text.matchAll(/\{([a-zA-Z]+)\}/g)].map((m) => m[1]).sort();

describe('page language', () => {
  it('ui_locales first, then Accept-Language by weight, then English', () => {
    assert.equal(pickLocale('es', 'en'), 'es');
    assert.equal(pickLocale('fr es-MX', 'en'), 'es');
    assert.equal(pickLocale('fr', 'es-ES,es;q=0.9'), 'es');
    assert.equal(pickLocale(undefined, 'fr;q=1, en;q=0.5, es;q=0.8'), 'es');
    assert.equal(pickLocale(undefined, 'es;q=0, en;q=0.1'), 'en');
    assert.equal(pickLocale(undefined, '*'), 'en');
    assert.equal(pickLocale('', ''), 'en');
    assert.equal(pickLocale(undefined, 'de-DE'), 'en');
  });

  it('values are filled in; HTML form escapes text and values', () => {
    const es = translator('es');
    assert.equal(es.t('common.continueTo', { client: 'Case <1>' }), 'para continuar en Case <1>');
    assert.equal(
      es.html('common.continueTo', { client: 'Case <1>' }),
      'para continuar en <strong>Case &lt;1&gt;</strong>',
    );
    assert.throws(() => es.t('common.continueTo'), /client/);
  });
});

describe('message catalogues', () => {
  it('every language has every text, with the same values to fill in', () => {
    for (const locale of LOCALES) {
      const catalogue = CATALOGUES[locale];
      assert.deepEqual(Object.keys(catalogue).sort(), Object.keys(en).sort(), locale);
      for (const [key, text] of Object.entries(catalogue)) {
        assert.notEqual(text.trim(), '', `${locale} ${key} is empty`);
        assert.deepEqual(
          placeholders(text),
          placeholders(en[key as keyof typeof en]),
          `${locale} ${key}`,
        );
      }
    }
  });

  it('templates hold no words of their own, only catalogue texts', () => {
    for (const { name, text } of templates) {
      const visible = text
        .replace(/<%[\s\S]*?%>/g, ' ')
        .replace(/<[^>]*>/g, ' ')
        .replace(/&[a-z]+;/g, ' ');
      assert.doesNotMatch(visible, /\p{L}/u, `${name} has text outside the catalogues`);
      const attributes = [...text.matchAll(/\b(?:alt|title|aria-label|placeholder)="([^"]*)"/g)];
      for (const [attribute, value] of attributes) {
        assert.doesNotMatch(
          (value ?? '').replace(/<%[\s\S]*?%>/g, ''),
          /\p{L}/u,
          `${name}: ${attribute}`,
        );
      }
    }
  });

  it('every key that a template uses exists', () => {
    for (const { name, text } of templates) {
      for (const match of text.matchAll(/it\.(?:t|html|plural|pluralHtml)\('([^']+)'/g)) {
        const key = match[1] as string;
        const exists = key in en || `${key}.other` in en;
        assert.ok(exists, `${name} uses '${key}', which no catalogue has`);
      }
    }
  });
});
