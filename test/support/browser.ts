import { CookieJar } from 'tough-cookie';
import { type Agent, fetch } from 'undici';

export interface PageResponse {
  status: number;
  url: string;
  location?: string;
  headers: Headers;
  body: string;
}

const ENTITIES: Record<string, string> = {
  '&amp;': '&',
  '&lt;': '<',
  '&gt;': '>',
  '&quot;': '"',
  '&#39;': "'",
  '&#34;': '"',
  '&#x27;': "'",
};

export function decodeHtml(text: string): string {
  return text.replace(/&(?:amp|lt|gt|quot|#39|#34|#x27);/g, (entity) => ENTITIES[entity] ?? entity);
}

export interface ParsedForm {
  action: string;
  method: string;
  fields: Record<string, string>;
  /** The `formaction` URLs of the form's buttons, which post the same fields elsewhere. */
  buttonActions: string[];
}

/** Reads the forms of a page the way a browser would submit them (hidden and text inputs). */
export function parseForms(html: string): ParsedForm[] {
  const forms: ParsedForm[] = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const attributes = match[1] ?? '';
    const action = decodeHtml(/\baction="([^"]*)"/.exec(attributes)?.[1] ?? '');
    const method = (/\bmethod="([^"]*)"/.exec(attributes)?.[1] ?? 'get').toLowerCase();
    const fields: Record<string, string> = {};
    for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*)>/g)) {
      const name = /\bname="([^"]*)"/.exec(input[1] ?? '')?.[1];
      if (name)
        fields[decodeHtml(name)] = decodeHtml(/\bvalue="([^"]*)"/.exec(input[1] ?? '')?.[1] ?? '');
    }
    const buttonActions = [
      ...(match[2] ?? '').matchAll(/<button\b[^>]*\bformaction="([^"]*)"/g),
    ].map((button) => decodeHtml(button[1] ?? ''));
    forms.push({ action, method, fields, buttonActions });
  }

  return forms;
}

/** Returns the visible text of an element with the given role, such as the login error. */
export function alertText(html: string): string | undefined {
  const match = /role="alert"[^>]*>([\s\S]*?)<\//.exec(html);

  return match?.[1] === undefined ? undefined : decodeHtml(match[1].trim());
}

/**
 * A minimal browser: a cookie jar with path and Secure handling, manual redirects so tests can
 * stop at the relying app's redirect URI, and form posts.
 */
export class TestBrowser {
  readonly jar = new CookieJar();
  /** Headers sent with every request, such as an Accept-Language or a spoofed X-Forwarded-For. */
  readonly headers: Record<string, string>;
  readonly #dispatcher: Agent;

  constructor(dispatcher: Agent, headers: Record<string, string> = {}) {
    this.#dispatcher = dispatcher;
    this.headers = { ...headers };
  }

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<PageResponse> {
    const headers: Record<string, string> = {
      accept: 'text/html',
      'user-agent': 'idp-test-browser',
      ...this.headers,
    };
    const cookie = await this.jar.getCookieString(url);
    if (cookie) headers['cookie'] = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(url, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      body,
      redirect: 'manual',
      dispatcher: this.#dispatcher,
    });
    for (const setCookie of response.headers.getSetCookie()) {
      await this.jar.setCookie(setCookie, url);
    }
    const location = response.headers.get('location') ?? undefined;

    return {
      status: response.status,
      url,
      location: location ? new URL(location, url).href : undefined,
      headers: response.headers as unknown as Headers,
      body: await response.text(),
    };
  }

  /**
   * Follows redirects from `url` until a page is reached or the next hop leaves for `stopAt`
   * (the relying app, which has no server in the tests). Returns the last response.
   */
  async follow(
    url: string,
    init: { form?: Record<string, string> } = {},
    stopAt?: string,
  ): Promise<PageResponse> {
    let response = await this.request(url, init);
    for (let hops = 0; hops < 10; hops++) {
      if (!response.location || response.status < 300 || response.status >= 400) return response;
      if (stopAt && response.location.startsWith(stopAt)) return response;
      response = await this.request(response.location);
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /**
   * Submits a form of a page with the given fields filled in: the first form, or the one whose
   * action (or one of whose buttons' formaction) ends with `action`, to that URL.
   */
  async submit(
    page: PageResponse,
    values: Record<string, string>,
    stopAt?: string,
    action?: string,
  ): Promise<PageResponse> {
    const forms = parseForms(page.body);
    const targets = (form: ParsedForm) => [form.action, ...form.buttonActions];
    const form = action
      ? forms.find((candidate) => targets(candidate).some((url) => url.endsWith(action)))
      : forms[0];
    if (!form) {
      throw new Error(`no form ${action ?? ''} on ${page.url}: ${page.body.slice(0, 300)}`);
    }
    const target = action ? targets(form).find((url) => url.endsWith(action)) : form.action;

    return this.follow(
      new URL(target ?? form.action, page.url).href,
      { form: { ...form.fields, ...values } },
      stopAt,
    );
  }
}
