/**
 * The command's code as bin/natproof.js loads it: tsc's dist/harness/cli.js and everything it
 * imports (natproof's modules, yaml, TypeBox, ipaddr.js) bundled into dist/cli. Unbundled, a
 * command opened ~500 files (TypeBox alone ~250), which was most of its start-up time. Code that
 * the entry loads with import() becomes a chunk of its own, read only by the commands that need
 * it. Run after tsc (npm run build): bundling tsc's output keeps tsc's semantics.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/cli`;

// Chunks are named by content hash: without this, every build would leave the last one's behind.
rmSync(outdir, { recursive: true, force: true });
await build({
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
  // optional native parts, so they stay in node_modules even if a static import appears.
  external: ['dockerode', 'undici'],
  // yaml and ipaddr.js are CommonJS: their require() of node's modules needs a real require. The
  // import is renamed so as not to clash with natproof's own createRequire imports.
  banner: { js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);" },
  logLevel: 'warning',
});
