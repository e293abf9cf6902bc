import type { Command } from 'commander';
import { parseDuration } from '../config.ts';
import { AppError } from '../errors.ts';
import { AUDIT_EVENTS, type AuditFilter, type AuditRecord } from '../security/audit.ts';
import { osUser, printJson } from './io.ts';
import type { WithServices } from './main.ts';

const PAGE = 1000;

/** Returns who ran a command, for the audit log: `cli:` and the operating-system user. */
export function cliActor(): string {
  return `cli:${osUser()}`;
}

interface AuditOptions {
  since?: string;
  user?: string;
  event?: string;
  json?: boolean;
}

function filterFrom(options: AuditOptions): AuditFilter {
  const filter: AuditFilter = {};
  if (options.since !== undefined) {
    const seconds = parseDuration(options.since);
    if (seconds === undefined) {
      throw new AppError(
        'invalid_input',
        `--since must be a duration such as 90s, 15m, 24h or 7d, but it is '${options.since}'`,
      );
    }
    filter.since = new Date(Date.now() - seconds * 1000);
  }
  if (options.event !== undefined) {
    const names = Object.keys(AUDIT_EVENTS);
    const groups = new Set(names.map((name) => name.split('.')[0]));
    if (!names.includes(options.event) && !groups.has(options.event)) {
      throw new AppError(
        'invalid_input',
        `unknown event '${options.event}'; events are ${names.join(', ')} (or a group such as signin)`,
      );
    }
    filter.event = options.event;
  }
  if (options.user !== undefined) filter.user = options.user;

  return filter;
}

function jsonLine(record: AuditRecord) {
  return {
    id: record.id,
    time: record.occurredAt.toISOString(),
    event: record.event,
    outcome: record.outcome,
    accountId: record.accountId,
    username: record.username,
    clientId: record.clientId,
    ip: record.ip,
    userAgent: record.userAgent,
    requestId: record.requestId,
    detail: record.detail,
    hash: record.hash,
  };
}

function textLine(record: AuditRecord): string {
  const fields = [
    record.occurredAt.toISOString(),
    `#${record.id}`,
    record.event,
    record.outcome,
    ...(
      [
        ['user', record.username],
        ['client', record.clientId],
        ['ip', record.ip],
        ...Object.entries(record.detail).map(([key, value]) => [key, String(value)]),
      ] as const
    )
      .filter(([, value]) => value !== null && value !== '')
      .map(([key, value]) => `${key}=${value}`),
  ];

  return `${fields.join('  ')}\n`;
}

export function registerAuditCommands(program: Command, withServices: WithServices): void {
  const audit = program
    .command('audit')
    .description('print the security audit log, oldest first')
    .option('--since <duration>', 'only events of the last 90s, 15m, 24h, 7d, ...')
    .option('--user <username>', 'only events of this user (username or account id)')
    .option('--event <name>', 'only this event, or a group such as signin; see the README')
    .option('--json', 'one JSON object per line, for a log shipper')
    .action(async (options: AuditOptions) => {
      const filter = filterFrom(options);
      await withServices(async ({ audit: log }) => {
        let afterId = 0;
        for (;;) {
          const page = await log.list({ ...filter, afterId, limit: PAGE });
          for (const record of page) {
            if (options.json) printJson(jsonLine(record));
            else process.stdout.write(textLine(record));
          }
          if (page.length < PAGE) break;
          afterId = (page.at(-1) as AuditRecord).id;
        }
      });
    });

  audit
    .command('verify')
    .description("check the audit log's hash chain; names the first event that does not match")
    .action(async () => {
      await withServices(async ({ audit: log }) => {
        const result = await log.verify();
        if (!result.ok) {
          throw new AppError(
            'conflict',
            `audit log does not verify: event #${result.badId} ${result.problem}; the ${result.count} events before it are intact`,
          );
        }
        process.stdout.write(
          `audit log intact: ${result.count} events, last hash ${result.lastHash}\n`,
        );
      });
    });
}
