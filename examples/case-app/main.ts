/**
 * Runs the example app from environment variables:
 *   CASE_APP_ISSUER         idp's issuer URL (default https://localhost:8443)
 *   CASE_APP_CLIENT_ID      the client id registered in idp (default case-app)
 *   CASE_APP_CLIENT_SECRET  its secret (or CASE_APP_CLIENT_SECRET_FILE, a file holding it)
 *   CASE_APP_URL            the app's own URL (default http://localhost:3000)
 * To trust idp's self-signed certificate, start Node with NODE_EXTRA_CA_CERTS=data/tls/cert.pem.
 */
import { readFileSync } from 'node:fs';
import { startCaseApp } from './app.ts';

function secret(): string {
  const file = process.env['CASE_APP_CLIENT_SECRET_FILE'];
  const value = file ? readFileSync(file, 'utf8').trim() : process.env['CASE_APP_CLIENT_SECRET'];
  if (!value) {
    process.stderr.write(
      'case-app: the client secret is missing: set CASE_APP_CLIENT_SECRET or CASE_APP_CLIENT_SECRET_FILE\n',
    );
    process.exit(1);
  }

  return value;
}

const baseUrl = new URL(process.env['CASE_APP_URL'] ?? 'http://localhost:3000');
const app = await startCaseApp({
  issuer: new URL(process.env['CASE_APP_ISSUER'] ?? 'https://localhost:8443'),
  clientId: process.env['CASE_APP_CLIENT_ID'] ?? 'case-app',
  clientSecret: secret(),
  baseUrl,
  port: Number(baseUrl.port || 80),
});
process.stdout.write(`case-app: listening on ${app.url.href}\n`);

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
