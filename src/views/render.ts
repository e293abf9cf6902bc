import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';

const templatesDir = fileURLToPath(new URL('./templates/', import.meta.url));

/** Server-side HTML templates. Eta escapes every `<%= %>` output; `<%~ %>` is for trusted HTML. */
const eta = new Eta({ views: templatesDir, autoEscape: true, cache: true, autoTrim: false });

export const PRODUCT_NAME = 'idp';

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

/** Renders a page inside the common layout. */
export function renderPage(
  page: PageName,
  data: { title: string } & Record<string, unknown>,
): string {
  return eta.render(page, { productName: PRODUCT_NAME, ...data });
}

export const stylesheet = readFileSync(new URL('./static/idp.css', import.meta.url), 'utf8');
