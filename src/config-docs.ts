import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configSchema, SECRET_VARIABLES } from './config.ts';

/** Path of the page that `npm run docs:config` writes; a test fails when the file differs. */
export const CONFIG_DOCS_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

interface SchemaDef {
  type: string;
  defaultValue?: unknown;
  innerType?: { def: SchemaDef };
  entries?: Record<string, string>;
}

/** Reads the default and the accepted values of one variable from its zod schema. */
function describeVariable(schema: { def: unknown }): { fallback?: string; values?: string[] } {
  let def = schema.def as SchemaDef;
  let fallback: string | undefined;
  while (def.innerType) {
    if ((def.type === 'default' || def.type === 'prefault') && fallback === undefined) {
      fallback = String(def.defaultValue);
    }
    def = def.innerType.def;
  }

  return { fallback, values: def.type === 'enum' ? Object.keys(def.entries ?? {}) : undefined };
}

/** Renders docs/configuration.md from the configuration schema's descriptions and defaults. */
export function renderConfigDocs(): string {
  const rows: string[] = [];
  const sections: string[] = [];
  for (const [name, schema] of Object.entries(configSchema.shape)) {
    const { fallback, values } = describeVariable(schema);
    const shownDefault = fallback === undefined ? 'unset' : `\`${fallback}\``;
    rows.push(`| [\`${name}\`](#${name.toLowerCase()}) | ${shownDefault} |`);
    const lines = [`### ${name}`, '', schema.description ?? '', ''];
    lines.push(`- Default: ${shownDefault}.`);
    if (values) lines.push(`- One of: ${values.map((value) => `\`${value}\``).join(', ')}.`);
    if (!name.endsWith('_FILE')) {
      lines.push(`- Or from a file: \`${name}_FILE\` names a file that holds the value.`);
    }
    if (SECRET_VARIABLES.has(name)) {
      lines.push('- Secret: its value never appears in error messages or logs.');
    }
    sections.push(lines.join('\n'));
  }

  return `# Configuration

<!-- Generated from the schema in src/config.ts by \`npm run docs:config\`. Do not edit. -->

idp reads its configuration from environment variables. Every variable \`X\` can instead be read
from a file named by \`X_FILE\` (for Docker and Kubernetes secrets); setting both is an error. At
start-up idp checks them all and lists every problem at once, one line each, naming the variable.

With no \`DATABASE_URL\`, idp runs in embedded mode: an embedded Postgres (PGlite) in
\`IDP_DATA_DIR\`, generated cookie and encryption keys, and a self-signed certificate. Setting
\`DATABASE_URL\` leaves embedded mode: then an http issuer, a missing \`IDP_COOKIE_KEYS\` or
\`IDP_ENCRYPTION_KEY\`, or a missing certificate without \`IDP_TRUST_PROXY\` stops start-up.

| variable | default |
| --- | --- |
${rows.join('\n')}

${sections.join('\n\n')}
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(CONFIG_DOCS_PATH, renderConfigDocs());
  process.stdout.write(`wrote ${CONFIG_DOCS_PATH}\n`);
}
