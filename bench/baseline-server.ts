// Child process of the benchmark: the bare oidc-provider that idp is measured against. Same
// library version, its built-in in-memory adapter, the same certificate and signing algorithms,
// and only the configuration the scenarios need. Its interaction step signs the benchmark user in
// at once, with no form and no password.
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);

  return value;
};

async function signingKey(alg: 'RS256' | 'ES256') {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);

  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' };
}

const port = Number(env('BENCH_PORT'));
const client = JSON.parse(env('BENCH_CLIENT')) as {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
};
const sessionMax = 8 * 3600;
const keys = [await signingKey('RS256'), await signingKey('ES256')];

const configuration: Configuration = {
  clients: [
    {
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: [client.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: keys as NonNullable<Configuration['jwks']>['keys'] },
  cookies: { keys: [env('BENCH_COOKIE_KEY')] },
  findAccount: (_ctx, sub) =>
    Promise.resolve({
      accountId: sub,
      claims: () => ({ sub, preferred_username: sub, name: 'Bench User', email: 'b@example.org' }),
    }),
  claims: {
    openid: ['sub', 'amr', 'acr'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
  },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  responseTypes: ['code'],
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  rotateRefreshToken: true,
  issueRefreshToken: (_ctx, c) => Promise.resolve(c.grantTypeAllowed('refresh_token')),
  ttl: {
    AuthorizationCode: 60,
    AccessToken: 3600,
    IdToken: 3600,
    Interaction: 30 * 60,
    Session: sessionMax,
    Grant: sessionMax,
    RefreshToken: sessionMax,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
};

const provider = new Provider(`https://localhost:${port}`, configuration);
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !ctx.path.startsWith('/interaction/')) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const accountId = String(details.params['login_hint'] ?? 'bench-user');
  const grant = new provider.Grant({ accountId, clientId: String(details.params['client_id']) });
  grant.addOIDCScope(String(details.params['scope']));
  const grantId = await grant.save();
  await provider.interactionFinished(
    ctx.req,
    ctx.res,
    { login: { accountId, amr: ['pwd'] }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
  ctx.respond = false;
});

const server = createServer(
  { cert: readFileSync(env('BENCH_TLS_CERT_FILE')), key: readFileSync(env('BENCH_TLS_KEY_FILE')) },
  provider.callback(),
);
server.listen(port, '127.0.0.1', () => {
  process.send?.({ ready: true, port: (server.address() as AddressInfo).port });
});
process.on('message', (message) => {
  if (message !== 'stop') return;
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
process.on('disconnect', () => process.exit(0));
