/**
 * The command's code as bin/natproof.js loads it: tsc's dist/harness/cli.js and everything it
 * imports (natproof's modules, yaml, TypeBox, ipaddr.js) bundled into dist/cli. Unbundled, a
 * command opened ~500 files (TypeBox alone ~250), which was most of its start-up time. Code that
 * the entry loads with import() becomes a chunk of its own, read only by the commands that need
 * it. Run after tsc (npm run build): bundling tsc's output keeps tsc's semantics.
 */
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = join(root, 'dist', 'cli');
const entry = join(outdir, 'natproof.js');

const { outputFiles } = await build({
  absWorkingDir: root,
  entryPoints: { natproof: 'dist/harness/cli.js' },
  outdir,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.18',
  // Loaded only when the docker backend is used, through createRequire: heavy, and dockerode has
  // optional native parts, so it stays in node_modules even if a static import appears. The two
  // undici modules an agent in natproof's process probes with are bundled, a chunk of their own
  // loaded before the first probe: as ~60 CommonJS files they cost that process ~50 ms more.
  external: ['dockerode'],
  // yaml and ipaddr.js are CommonJS: their require() of node's modules needs a real require. The
  // import is renamed so as not to clash with natproof's own createRequire imports.
  banner: { js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);" },
  write: false,
  logLevel: 'warning',
});

// A natproof started meanwhile (a test, or `npm pack`'s prepare elsewhere) must find the old CLI
// or the new one, never a part: each file is written whole and renamed into place, the chunks
// before the entry that imports them.
mkdirSync(outdir, { recursive: true });
const ordered = [...outputFiles.filter((f) => f.path !== entry), ...outputFiles.filter((f) => f.path === entry)];
for (const file of ordered) {
  const partial = `${file.path}.${process.pid}.partial`;
  writeFileSync(partial, file.contents);
  renameSync(partial, file.path);
}
// Chunks are named by their content's hash: those of earlier builds are no longer imported.
const current = new Set(ordered.map((f) => basename(f.path)));
for (const name of readdirSync(outdir)) {
  if (name.endsWith('.js') && !current.has(name)) rmSync(join(outdir, name), { force: true });
}
