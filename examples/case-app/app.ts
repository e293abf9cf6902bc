import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as jose from 'jose';
import * as oidc from 'openid-client';
import { errorPage, homePage, type SignedInUser, signedOutPage, stylesheet } from './pages.ts';

export interface CaseAppOptions {
  /** idp's issuer URL, such as https://localhost:8443. */
  issuer: URL;
  clientId: string;
  clientSecret: string;
  /** The app's own public URL, such as http://localhost:3000; redirect URIs hang off it. */
  baseUrl: URL;
  /** Port to listen on, the one in baseUrl unless a proxy is in front; 127.0.0.1 only. */
  port: number;
  /** The fetch that reaches idp, for a certificate authority the process does not trust. */
  fetch?: typeof fetch;
  /** Sink for one log line per sign-in event; it never receives a token. */
  log?: (line: string) => void;
}

/** Server-side state of one browser, keyed by a random session cookie. */
interface Session {
  /** The sign-in in progress: the values that the callback must match. */
  pending?: { state: string; nonce: string; verifier: string };
  user?: SignedInUser & { sub: string; sid?: string; idToken: string };
  expires: number;
}

const SESSION_COOKIE = 'case_session';
const SESSION_SECONDS = 8 * 3600;
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface CaseApp {
  server: Server;
  url: URL;
  close(): Promise<void>;
}

function readCookie(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }

  return undefined;
}

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of request) {
    body += String(chunk);
    if (body.length > 64 * 1024) throw new Error('request body exceeds 64 KiB');
  }

  return new URLSearchParams(body);
}

/**
 * Starts the example case-management app: a caseload behind sign-in, delegated to idp with
 * openid-client (authorization code flow with PKCE), RP-initiated logout and back-channel logout.
 */
export async function startCaseApp(options: CaseAppOptions): Promise<CaseApp> {
  const log = options.log ?? ((line: string) => process.stdout.write(`case-app: ${line}\n`));
  const fetchImpl = options.fetch ?? fetch;
  const customFetch = ((url: string, init: RequestInit) =>
    fetchImpl(url, init)) as unknown as oidc.CustomFetch;

  // 1. Discovery: the endpoints and keys of idp, from /.well-known/openid-configuration.
  const config = await oidc.discovery(
    options.issuer,
    options.clientId,
    undefined,
    oidc.ClientSecretBasic(options.clientSecret),
    { [oidc.customFetch]: customFetch },
  );
  config[oidc.customFetch] = customFetch;
  const metadata = config.serverMetadata();
  const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri as string), {
    [jose.customFetch]: fetchImpl,
  });

  const redirectUri = new URL('/callback', options.baseUrl).href;
  const postLogoutUri = new URL('/signed-out', options.baseUrl).href;
  const secureCookie = options.baseUrl.protocol === 'https:';
  const sessions = new Map<string, Session>();

  function sessionOf(request: IncomingMessage, response: ServerResponse): Session {
    const id = readCookie(request, SESSION_COOKIE);
    const found = id === undefined ? undefined : sessions.get(id);
    if (found && found.expires > Date.now()) return found;
    if (id !== undefined) sessions.delete(id);
    const fresh: Session = { expires: Date.now() + SESSION_SECONDS * 1000 };
    const newId = randomBytes(32).toString('base64url');
    sessions.set(newId, fresh);
    response.setHeader(
      'set-cookie',
      `${SESSION_COOKIE}=${newId}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_SECONDS}${secureCookie ? '; Secure' : ''}`,
    );

    return fresh;
  }

  function send(response: ServerResponse, status: number, body: string, type = 'text/html') {
    response.writeHead(status, {
      'content-type': `${type}; charset=utf-8`,
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none'; style-src 'self'; form-action 'self' ${options.issuer.origin}; frame-ancestors 'none'; base-uri 'none'`,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
    response.end(body);
  }

  function redirect(response: ServerResponse, location: string) {
    response.writeHead(303, { location, 'cache-control': 'no-store' });
    response.end();
  }

  // 2. Sign in: send the browser to idp with PKCE, state and nonce kept in the session.
  async function login(request: IncomingMessage, response: ServerResponse, url: URL) {
    const session = sessionOf(request, response);
    const verifier = oidc.randomPKCECodeVerifier();
    session.pending = { verifier, state: oidc.randomState(), nonce: oidc.randomNonce() };
    const lang = url.searchParams.get('lang');
    const target = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: session.pending.state,
      nonce: session.pending.nonce,
      ...(lang === 'es' || lang === 'en' ? { ui_locales: lang } : {}),
    });
    redirect(response, target.href);
  }

  // 3. Callback: exchange the code for tokens; openid-client checks state, nonce and the ID token.
  async function callback(request: IncomingMessage, response: ServerResponse, url: URL) {
    const session = sessionOf(request, response);
    const pending = session.pending;
    session.pending = undefined;
    if (url.searchParams.get('error') === 'access_denied') {
      send(response, 403, errorPage('Sign-in cancelled', 'The sign-in was cancelled.'));

      return;
    }
    if (!pending) {
      send(response, 400, errorPage('Sign-in failed', 'No sign-in was in progress. Try again.'));

      return;
    }
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(
        config,
        new URL(url.pathname + url.search, redirectUri),
        {
          pkceCodeVerifier: pending.verifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        },
      );
    } catch (error) {
      log(`sign-in failed: ${(error as Error).message}`);
      send(
        response,
        400,
        errorPage('Sign-in failed', 'The sign-in could not be completed. Try again.'),
      );

      return;
    }
    const claims = tokens.claims() as oidc.IDToken;
    const amr = Array.isArray(claims['amr']) ? (claims['amr'] as string[]) : [];
    session.user = {
      sub: claims.sub,
      sid: typeof claims['sid'] === 'string' ? claims['sid'] : undefined,
      idToken: tokens.id_token as string,
      username: String(claims['preferred_username'] ?? claims.sub),
      name: String(claims['name'] ?? claims['preferred_username'] ?? claims.sub),
      amr,
      // RFC 8176: `otp` is a one-time code, `mfa` means more than one factor was used.
      secondFactor: amr.includes('mfa') || amr.includes('otp'),
    };
    log(`signed in: sub=${claims.sub} amr=${amr.join(',')}`);
    redirect(response, '/');
  }

  // 4. Sign out: end the app's session, then idp's (RP-initiated logout).
  function logout(request: IncomingMessage, response: ServerResponse) {
    const session = sessionOf(request, response);
    const user = session.user;
    session.user = undefined;
    if (!user) {
      redirect(response, '/');

      return;
    }
    const target = oidc.buildEndSessionUrl(config, {
      id_token_hint: user.idToken,
      post_logout_redirect_uri: postLogoutUri,
    });
    redirect(response, target.href);
  }

  // 5. Back-channel logout: idp posts a signed logout token when the user's idp session ends.
  async function backchannelLogout(request: IncomingMessage, response: ServerResponse) {
    const reject = (reason: string) => {
      log(`back-channel logout refused: ${reason}`);
      response.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(JSON.stringify({ error: 'invalid_request', error_description: reason }));
    };
    let form: URLSearchParams;
    try {
      form = await readForm(request);
    } catch (error) {
      return reject((error as Error).message);
    }
    const token = form.get('logout_token');
    if (!token) return reject('logout_token is missing');
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, jwks, {
        issuer: metadata.issuer,
        audience: options.clientId,
        typ: 'logout+jwt',
        maxTokenAge: '5 minutes',
      }));
    } catch (error) {
      return reject(`logout token is not valid: ${(error as Error).message}`);
    }
    const events = payload['events'] as Record<string, unknown> | undefined;
    if (!events || typeof events[BACKCHANNEL_EVENT] !== 'object') {
      return reject('logout token has no back-channel logout event');
    }
    if (payload['nonce'] !== undefined) return reject('logout token must not have a nonce');
    const sid = typeof payload['sid'] === 'string' ? payload['sid'] : undefined;
    if (!sid && !payload.sub) return reject('logout token names neither a session nor a user');

    let ended = 0;
    for (const session of sessions.values()) {
      const user = session.user;
      if (!user) continue;
      if (sid ? user.sid === sid : user.sub === payload.sub) {
        session.user = undefined;
        ended += 1;
      }
    }
    log(`back-channel logout: sub=${payload.sub ?? '-'} ended ${ended} session(s)`);
    response.writeHead(200, { 'cache-control': 'no-store' });
    response.end();
  }

  async function handle(request: IncomingMessage, response: ServerResponse) {
    const url = new URL(request.url ?? '/', options.baseUrl);
    const route = `${request.method} ${url.pathname}`;
    switch (route) {
      case 'GET /':
        send(response, 200, homePage(sessionOf(request, response).user));
        break;
      case 'GET /app.css':
        send(response, 200, stylesheet, 'text/css');
        break;
      case 'GET /login':
        await login(request, response, url);
        break;
      case 'GET /callback':
        await callback(request, response, url);
        break;
      case 'POST /logout':
        logout(request, response);
        break;
      case 'GET /signed-out':
        send(response, 200, signedOutPage());
        break;
      case 'POST /backchannel-logout':
        await backchannelLogout(request, response);
        break;
      default:
        send(response, 404, errorPage('Not found', 'This page does not exist.'));
    }
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      log(`request failed: ${(error as Error).message}`);
      if (!response.headersSent) {
        send(response, 500, errorPage('Something went wrong', 'Please try again in a moment.'));
      } else {
        response.end();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });

  return {
    server,
    url: options.baseUrl,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
