import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { AxeBuilder } from '@axe-core/playwright';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import type { ClientInput } from '../../src/oidc/clients.ts';
import type { Locale } from '../../src/views/i18n.ts';
import { startTestCaseApp, type TestCaseApp } from './case-app.ts';
import { openIdpFixture, type TestUserInput } from './fixture.ts';
import type { TestIdp, TestIdpOptions } from './idp.ts';

/** Debian's Chromium, installed by .ci/run; Playwright never downloads a browser of its own. */
export const CHROMIUM = '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Returns the base64 SHA-256 of a certificate's public key, the form Chromium's SPKI list takes. */
function spkiHash(certFile: string): string {
  const certificate = new X509Certificate(readFileSync(certFile));
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });

  return createHash('sha256').update(spki).digest('base64');
}

export interface PageOptions {
  /** Sets navigator.language and the Accept-Language header, such as `es-ES`. */
  locale?: string;
  javaScriptEnabled?: boolean;
  viewport?: { width: number; height: number };
}

export interface TestChromium {
  browser: Browser;
  /** A page in a new browser context: its own cookies, language and JavaScript setting. */
  newPage(options?: PageOptions): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Starts Debian's Chromium headless. Playwright gives it a new, empty --user-data-dir and removes
 * it on close. It trusts exactly the test server certificate in `certFile` (by its public key)
 * besides the system's authorities. Throws, so the calling test fails, when Chromium is missing.
 */
export async function launchChromium(certFile: string): Promise<TestChromium> {
  assert.ok(
    existsSync(CHROMIUM),
    `Chromium is missing at ${CHROMIUM}: install it with 'apt-get install chromium' (.ci/run does)`,
  );
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, `--ignore-certificate-errors-spki-list=${spkiHash(certFile)}`],
    timeout: 30_000,
  });
  const contexts: BrowserContext[] = [];

  return {
    browser,
    async newPage(options = {}) {
      const context = await browser.newContext({
        locale: options.locale ?? 'en-GB',
        javaScriptEnabled: options.javaScriptEnabled ?? true,
        viewport: options.viewport ?? { width: 1024, height: 768 },
      });
      context.setDefaultTimeout(10_000);
      contexts.push(context);

      return context.newPage();
    },
    async close() {
      for (const context of contexts) await context.close();
      await browser.close();
    },
  };
}

export interface ChromiumFixtureOptions {
  /** Options of the idp itself, such as IDP_PRODUCT_NAME in its env. */
  idp?: TestIdpOptions;
  /** Accounts to create by name. */
  users?: Record<string, TestUserInput>;
  /** Overrides of the example app's client registration, such as require2fa. */
  app?: Partial<ClientInput>;
  /** Whether to start a second example app, 'Partner Clinic', whose client requires consent. */
  consentApp?: boolean;
}

export interface ChromiumFixture {
  idp: TestIdp;
  /** The example app, on localhost. */
  app: TestCaseApp;
  /** The second example app, on 127.0.0.1, which is started only with the consentApp option. */
  consentApp?: TestCaseApp;
  chromium: TestChromium;
  /** Opens a page with its own cookies, whose browser requests the given language (default en). */
  openPage(locale?: Locale, viewport?: PageOptions['viewport']): Promise<Page>;
  /** Closes Chromium, the example apps and the idp, in that order. */
  close(): Promise<void>;
}

/**
 * Starts a test idp with its users, the example app registered there (and the consent app with
 * the consentApp option), and Chromium trusting the idp's certificate. What was started is closed
 * again when a later step fails.
 */
export async function openChromiumFixture(
  options: ChromiumFixtureOptions = {},
): Promise<ChromiumFixture> {
  const idpFixture = await openIdpFixture({ idp: options.idp, users: options.users });
  const { idp } = idpFixture;
  let app: TestCaseApp | undefined;
  let consentApp: TestCaseApp | undefined;
  let testChromium: TestChromium | undefined;
  const close = async () => {
    await testChromium?.close();
    await app?.close();
    await consentApp?.close();
    await idpFixture.close();
  };
  try {
    app = await startTestCaseApp(idp, options.app);
    if (options.consentApp) {
      // Cookies ignore ports, so the second app needs a host name other than the first's.
      consentApp = await startTestCaseApp(
        idp,
        { consent: true, name: 'Partner Clinic' },
        '127.0.0.1',
      );
    }
    testChromium = await launchChromium(idp.certificates.certFile);
  } catch (error) {
    await close();
    throw error;
  }

  return {
    idp,
    app,
    consentApp,
    chromium: testChromium,
    openPage(locale = 'en', viewport) {
      return testChromium.newPage({ locale: locale === 'es' ? 'es-ES' : 'en-GB', viewport });
    },
    close,
  };
}

/** WCAG 2.0, 2.1 and 2.2 levels A and AA, as axe-core tags them. */
const WCAG_AA = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

/** Runs axe-core on the page and fails with each violation and its elements listed. */
export async function assertAccessible(page: Page, label: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(WCAG_AA).analyze();
  const problems = results.violations.map(
    (violation) =>
      `${violation.id} (${violation.impact}): ${violation.help}\n${violation.nodes
        .map((node) => `    ${node.target.join(' ')}: ${node.failureSummary ?? ''}`)
        .join('\n')}`,
  );
  assert.deepEqual(problems, [], `axe found problems on ${label} (${page.url()})`);
}

/** Fails when the page scrolls sideways, as content must reflow at 320 CSS pixels. */
export async function assertNoSidewaysScroll(page: Page, label: string): Promise<void> {
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
  assert.ok(
    scrollWidth <= clientWidth,
    `${label} scrolls sideways: ${scrollWidth} > ${clientWidth}`,
  );
}
