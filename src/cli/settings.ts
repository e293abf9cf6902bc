import type { Command } from 'commander';
import { createLogger } from '../logger.ts';
import { parseSwitch, settingName, SETTINGS } from '../settings.ts';
import { cliActor } from './audit.ts';
import { osUser, printJson, printTable } from './io.ts';
import type { WithServices } from './main.ts';

export function registerSettingsCommands(program: Command, withServices: WithServices): void {
  const settings = program
    .command('settings')
    .description('server-wide settings, stored in the database and read by every node');

  settings
    .command('set')
    .description(
      `change a setting; it applies to the next sign-in on every node, with no restart (${Object.keys(SETTINGS).join(', ')})`,
    )
    .argument('<name>', 'setting name, such as require-2fa')
    .argument('<value>', 'on or off')
    .action(async (nameText: string, valueText: string) => {
      const name = settingName(nameText);
      const value = parseSwitch(name, valueText);
      const who = osUser();
      await withServices(async ({ settings: store, audit }) => {
        await store.set(name, value, who);
        await audit.record({
          event: 'setting.changed',
          detail: { actor: cliActor(), setting: name, value: value ? 'on' : 'off' },
        });
        createLogger('info', process.stderr).info(
          { setting: name, value, changedBy: who },
          'setting changed',
        );
        process.stdout.write(`${name} is now ${value ? 'on' : 'off'}\n`);
      });
    });

  settings
    .command('get')
    .description('print the value of one setting: on or off')
    .argument('<name>', 'setting name, such as require-2fa')
    .action(async (nameText: string) => {
      const name = settingName(nameText);
      await withServices(async ({ settings: store }) => {
        process.stdout.write(`${(await store.get(name)) ? 'on' : 'off'}\n`);
      });
    });

  settings
    .command('list')
    .description('list every setting with its value and last change')
    .option('--json', 'one JSON object per line')
    .action(async (options: { json?: boolean }) => {
      await withServices(async ({ settings: store }) => {
        const list = await store.list();
        if (options.json) {
          for (const setting of list) {
            printJson({ ...setting, updatedAt: setting.updatedAt?.toISOString() ?? null });
          }

          return;
        }
        printTable(
          ['NAME', 'VALUE', 'CHANGED', 'BY', 'MEANING'],
          list.map((setting) => [
            setting.name,
            setting.value ? 'on' : 'off',
            setting.updatedAt?.toISOString() ?? '-',
            setting.updatedBy ?? '-',
            setting.description,
          ]),
        );
      });
    });
}
