import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CONFIG_DOCS_PATH, renderConfigDocs } from '../src/config-docs.ts';
import { configSchema } from '../src/config.ts';

describe('docs/configuration.md', () => {
  it('matches the configuration schema', () => {
    const written = readFileSync(CONFIG_DOCS_PATH, 'utf8');
    assert.ok(
      written === renderConfigDocs(),
      'docs/configuration.md is stale: run `npm run docs:config` and commit the result',
    );
  });

  it('every variable has a description and a section', () => {
    const page = renderConfigDocs();
    for (const [name, schema] of Object.entries(configSchema.shape)) {
      assert.ok((schema.description ?? '').length > 10, `${name} has no description`);
      assert.ok(page.includes(`### ${name}\n\n${schema.description}`), name);
    }
  });
});
