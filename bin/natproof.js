#!/usr/bin/env node
// The package's command. It runs the compiled CLI, bundled (scripts/bundle-cli.mjs) so that it starts
// fast; `npm ci` builds it (the prepare script).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/natproof.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('natproof: the compiled CLI is missing; run `npm ci` (or `npm run build`) in the natproof folder\n');
  process.exit(2);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
