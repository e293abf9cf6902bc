import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseDuration } from '../src/config.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');
const COOKIE_KEY = 'k'.repeat(40);

/** A complete configuration outside embedded mode. */
const production = {
  IDP_ISSUER: 'https://id.example.org',
  DATABASE_URL: 'postgres://idp@db:5432/idp',
  REDIS_URL: 'redis://cache:6379/0',
  IDP_COOKIE_KEYS: COOKIE_KEY,
  IDP_ENCRYPTION_KEY: KEY,
  IDP_TLS_CERT_FILE: '/certs/cert.pem',
  IDP_TLS_KEY_FILE: '/certs/key.pem',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `unexpected ${String(error)}`);

    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  it('embedded defaults', () => {
    const config = loadConfig({});
    assert.equal(config.issuer.href, 'https://localhost:8443/');
    assert.equal(config.port, 8443);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.embedded, true);
    assert.equal(config.trustProxy, false);
    assert.equal(config.tls, undefined);
    assert.equal(config.totpIssuer, 'localhost:8443');
    assert.equal(config.sessionIdleSeconds, 900);
    assert.equal(config.sessionMaxSeconds, 8 * 3600);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.dataDir, path.resolve('data'));
  });

  it('complete production configuration', () => {
    const config = loadConfig({ ...production, IDP_SESSION_IDLE: '30m', IDP_SESSION_MAX: '12h' });
    assert.equal(config.embedded, false);
    assert.equal(config.totpIssuer, 'id.example.org');
    assert.deepEqual(config.cookieKeys, [COOKIE_KEY]);
    assert.equal(config.encryptionKeys?.[0]?.length, 32);
    assert.deepEqual(config.tls, { certFile: '/certs/cert.pem', keyFile: '/certs/key.pem' });
    assert.equal(config.sessionIdleSeconds, 1800);
    assert.equal(config.sessionMaxSeconds, 43200);
  });

  it('branding: product name, logo file, and the TOTP label that follows the name', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-logo-'));
    const logo = path.join(dir, 'logo.svg');
    writeFileSync(logo, '<svg xmlns="http://www.w3.org/2000/svg"/>');
    const config = loadConfig({ IDP_PRODUCT_NAME: ' Riverside Health ', IDP_LOGO_FILE: logo });
    assert.deepEqual(config.branding, { productName: 'Riverside Health', logoFile: logo });
    assert.equal(config.totpIssuer, 'Riverside Health');
    assert.equal(
      loadConfig({ IDP_PRODUCT_NAME: 'Riverside', IDP_TOTP_ISSUER: 'RH' }).totpIssuer,
      'RH',
    );
    assert.deepEqual(loadConfig({}).branding, { productName: 'idp', logoFile: undefined });

    const problems = problemsOf({
      IDP_LOGO_FILE: path.join(dir, 'missing.png'),
      IDP_PRODUCT_NAME: 'x'.repeat(61),
    });
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems.join('\n'), /IDP_LOGO_FILE must name a readable image file.*ENOENT/);
    assert.match(problems.join('\n'), /IDP_PRODUCT_NAME must be at most 60 characters/);
    assert.match(
      problemsOf({ IDP_LOGO_FILE: path.join(dir, 'logo.gif') })[0] ?? '',
      /must name an \.svg, \.png, \.jpg or \.webp file/,
    );
  });

  it('reports every problem at once, one line each', () => {
    const problems = problemsOf({
      IDP_PORT: 'eighty',
      IDP_ISSUER: 'not a url',
      IDP_SESSION_IDLE: 'soon',
      LOG_LEVEL: 'loud',
      IDP_ENCRYPTION_KEY: 'c2hvcnQ=',
      REDIS_URL: 'http://cache',
    });
    assert.equal(problems.length, 6, problems.join('\n'));
    const byName = (name: string) => problems.find((line) => line.startsWith(`${name} `)) ?? '';
    assert.match(byName('IDP_PORT'), /port number/);
    assert.match(byName('IDP_ISSUER'), /https URL/);
    assert.match(
      byName('IDP_SESSION_IDLE'),
      /duration such as 90s, 15m, 8h or 7d, but it is 'soon'/,
    );
    assert.match(byName('LOG_LEVEL'), /must be one of/);
    assert.match(byName('IDP_ENCRYPTION_KEY'), /32-byte key in base64/);
    assert.match(byName('REDIS_URL'), /redis:\/\//);
    for (const line of problems) assert.ok(!line.includes('\n'));
  });

  it('outside embedded mode requires secrets, https and a certificate', () => {
    const problems = problemsOf({
      DATABASE_URL: 'postgres://idp@db/idp',
      IDP_ISSUER: 'http://id.example.org',
    });
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.ok(
      problems.some((line) => /^IDP_ISSUER must be an https URL outside embedded/.test(line)),
    );
    assert.ok(problems.some((line) => line.startsWith('IDP_COOKIE_KEYS is required')));
    assert.ok(problems.some((line) => line.startsWith('IDP_ENCRYPTION_KEY is required')));
    assert.ok(
      problems.some((line) => /IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE are required/.test(line)),
    );
  });

  it('a TLS proxy replaces the certificate', () => {
    const { IDP_TLS_CERT_FILE: _cert, IDP_TLS_KEY_FILE: _key, ...rest } = production;
    const config = loadConfig({ ...rest, IDP_TRUST_PROXY: 'true' });
    assert.equal(config.trustProxy, true);
    assert.equal(config.tls, undefined);
  });

  it('IDP_TRUST_PROXY takes addresses and CIDR ranges', () => {
    const config = loadConfig({ IDP_TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,fd00::/8' });
    assert.deepEqual(config.trustProxy, ['10.0.0.1', '192.168.0.0/16', 'fd00::/8']);
    const problems = problemsOf({ IDP_TRUST_PROXY: '10.0.0.0/33' });
    assert.match(problems[0] ?? '', /^IDP_TRUST_PROXY .*'10.0.0.0\/33' is not one/);
    assert.equal(problemsOf({ IDP_TRUST_PROXY: 'yes' }).length, 1);
  });

  it('certificate and key must be set together', () => {
    const problems = problemsOf({ IDP_TLS_CERT_FILE: '/certs/cert.pem' });
    assert.deepEqual(problems, ['IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE must be set together']);
  });

  it('idle lifetime must not exceed the absolute one', () => {
    const problems = problemsOf({ IDP_SESSION_IDLE: '9h', IDP_SESSION_MAX: '8h' });
    assert.deepEqual(problems, ['IDP_SESSION_IDLE must not be longer than IDP_SESSION_MAX']);
  });

  it('issuer with path, query or credentials rejected', () => {
    for (const issuer of [
      'https://id.example.org/idp',
      'https://id.example.org/?a=b',
      'https://id.example.org/#x',
    ]) {
      assert.deepEqual(problemsOf({ ...production, IDP_ISSUER: issuer }), [
        `IDP_ISSUER must be the scheme, host and port only, such as https://id.example.org, but it is '${issuer}'`,
      ]);
    }
    const problems = problemsOf({ ...production, IDP_ISSUER: 'https://user:pw@id.example.org' });
    assert.deepEqual(problems, ['IDP_ISSUER must not contain a user name or password']);
    assert.equal(
      loadConfig({ ...production, IDP_ISSUER: 'https://id.example.org/' }).issuer.href,
      'https://id.example.org/',
    );
  });

  it('durations past 24 days rejected', () => {
    assert.deepEqual(problemsOf({ IDP_SHUTDOWN_TIMEOUT: '30d' }), [
      "IDP_SHUTDOWN_TIMEOUT must be at most 24d, but it is '30d'",
    ]);
    assert.equal(loadConfig({ IDP_SHUTDOWN_TIMEOUT: '24d' }).shutdownTimeoutSeconds, 24 * 86400);
  });

  it('lockout settings: defaults, values and problems', () => {
    assert.deepEqual(loadConfig({}).lockout, {
      threshold: 10,
      durationSeconds: 900,
      addressLimit: 50,
    });
    const set = loadConfig({
      IDP_LOCKOUT_THRESHOLD: '6',
      IDP_LOCKOUT_DURATION: '1h',
      IDP_ADDRESS_FAILURE_LIMIT: '500',
    });
    assert.deepEqual(set.lockout, { threshold: 6, durationSeconds: 3600, addressLimit: 500 });
    const problems = problemsOf({
      IDP_LOCKOUT_THRESHOLD: '1',
      IDP_LOCKOUT_DURATION: 'a while',
      IDP_ADDRESS_FAILURE_LIMIT: 'many',
    });
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems[0] ?? '', /^IDP_LOCKOUT_THRESHOLD must be a whole number of at least 2/);
    assert.match(problems[1] ?? '', /^IDP_LOCKOUT_DURATION must be a duration/);
    assert.match(problems[2] ?? '', /^IDP_ADDRESS_FAILURE_LIMIT must be a whole number/);
  });

  it('X_FILE variables read the value from a file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-config-'));
    const keyFile = path.join(dir, 'encryption-key');
    const cookieFile = path.join(dir, 'cookie-keys');
    writeFileSync(keyFile, `${KEY}\n`);
    writeFileSync(cookieFile, COOKIE_KEY);
    const { IDP_ENCRYPTION_KEY: _key, IDP_COOKIE_KEYS: _cookies, ...rest } = production;
    const config = loadConfig({
      ...rest,
      IDP_ENCRYPTION_KEY_FILE: keyFile,
      IDP_COOKIE_KEYS_FILE: cookieFile,
    });
    assert.deepEqual(config.encryptionKeys?.[0], Buffer.from(KEY, 'base64'));
    assert.deepEqual(config.cookieKeys, [COOKIE_KEY]);
  });

  it('X_FILE problems: unreadable file, both forms set', () => {
    const problems = problemsOf({
      IDP_COOKIE_KEYS_FILE: '/nonexistent/cookie-keys',
      IDP_ENCRYPTION_KEY: KEY,
      IDP_ENCRYPTION_KEY_FILE: '/nonexistent/key',
    });
    assert.deepEqual(problems, [
      "IDP_COOKIE_KEYS_FILE names '/nonexistent/cookie-keys', which cannot be read (ENOENT)",
      'IDP_ENCRYPTION_KEY and IDP_ENCRYPTION_KEY_FILE are both set; set only one of them',
    ]);
  });

  it('parseDuration units', () => {
    assert.equal(parseDuration('90s'), 90);
    assert.equal(parseDuration('15m'), 900);
    assert.equal(parseDuration('8h'), 28800);
    assert.equal(parseDuration('7d'), 604800);
    assert.equal(parseDuration('8'), undefined);
    assert.equal(parseDuration('-1h'), undefined);
    assert.equal(parseDuration('1.5h'), undefined);
  });
});
