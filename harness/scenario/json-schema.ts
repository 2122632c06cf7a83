/**
 * The scenario schema as a JSON Schema file for editors (scenarios point at it with a
 * `# yaml-language-server: $schema=...` line). It is generated from schema.ts, never edited:
 *
 *   npx tsc -p tsconfig.build.json && node dist/harness/scenario/json-schema.js [out-file]
 *
 * writes schema/scenario.schema.json (relative to the current directory) by default.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Scenario } from './schema.js';

export const SCENARIO_SCHEMA_ID = 'https://natproof.dev/schema/scenario.schema.json';

/** The scenario schema as plain JSON Schema draft-07 data. */
export function scenarioJsonSchema(): object {
  // The JSON round trip drops TypeBox's symbol-keyed bookkeeping, leaving pure JSON Schema.
  const schema: object = JSON.parse(JSON.stringify(Scenario));
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: SCENARIO_SCHEMA_ID,
    ...schema,
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const out = resolve(argv[0] ?? 'schema/scenario.schema.json');
  await writeFile(out, `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
  console.log(`wrote ${out}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
