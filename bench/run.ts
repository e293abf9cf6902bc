// `npm run bench`: measures idp against the bare oidc-provider and writes docs/benchmarks.md.
// Figures only: it never fails on a time. See docs/benchmarks.md for the options.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { UserPool } from './flows.ts';
import { memoryScenario } from './memory.ts';
import { parseOptions } from './options.ts';
import { type BenchResults, currentLoad, renderReport, replaceReport } from './report.ts';
import { startServers } from './servers.ts';
import { contentionScenario, signInScenario } from './signin.ts';
import { discoveryScenario, introspectionScenario, tokenScenario } from './throughput.ts';
import { enrolTotp } from './totp.ts';

const log = (line: string) => console.log(line);

async function main(): Promise<void> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    console.error((error as Error).message);
    process.exitCode = 2;

    return;
  }
  const startedAt = new Date();
  const loadAverage = currentLoad();
  log(`idp benchmark: ${options.scenarios.join(', ')} (load average ${loadAverage.toFixed(2)})`);
  const servers = await startServers({ accounts: options.accounts });
  const stop = () => {
    void servers.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const accounts = await servers.database.query<{ username: string }>(
      'SELECT username FROM accounts ORDER BY username',
    );
    const names = accounts.map((row) => row.username);
    const users = new UserPool(names);
    await enrolTotp(servers.database, servers.encryptor);
    log(`${names.length} accounts, each with a TOTP authenticator`);
    const results: BenchResults = {
      command: [
        'npm run bench',
        ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : []),
      ].join(' '),
      startedAt,
      seconds: 0,
      loadAverage,
      comparisons: [],
      idpErrors: 0,
    };
    log(`idp ${servers.idp.issuer}, baseline ${servers.baseline.issuer}`);
    if (options.scenarios.includes('discovery')) {
      log('1. discovery and JWKS');
      results.comparisons.push(...(await discoveryScenario(servers, options, log)));
    }
    if (options.scenarios.includes('token')) {
      log('2. token endpoint');
      results.comparisons.push(...(await tokenScenario(servers, options, users, log)));
    }
    if (options.scenarios.includes('introspection')) {
      log('3. introspection and userinfo');
      results.comparisons.push(...(await introspectionScenario(servers, options, users, log)));
    }
    if (options.scenarios.includes('signin')) {
      log('4. interactive sign-in');
      results.signIn = await signInScenario(servers, options, users.next, log);
    }
    if (options.scenarios.includes('contention')) {
      log('5. token endpoint during sign-ins');
      results.contention = await contentionScenario(servers, options, users, log);
    }
    if (options.scenarios.includes('memory')) {
      log('6. memory');
      results.memory = await memoryScenario(servers, options, users.next, log);
    }
    results.seconds = (Date.now() - startedAt.getTime()) / 1000;
    results.idpErrors = readFileSync(servers.idpLog, 'utf8')
      .split('\n')
      .filter((line) => /"level":(50|60)/.test(line)).length;

    const report = renderReport(results);
    log(`\n${report}`);
    if (options.out) {
      const previous = existsSync(options.out)
        ? readFileSync(options.out, 'utf8')
        : '# Benchmarks\n';
      writeFileSync(options.out, replaceReport(previous, report));
      log(`\nwritten to ${options.out}`);
    }
  } finally {
    await servers.close();
    if (!process.env['BENCH_KEEP'])
      rmSync(servers.certificates.dir, { recursive: true, force: true });
  }
}

await main();
