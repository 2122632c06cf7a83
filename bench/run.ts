/** `npm run bench`'s entry point (bench.ts does nothing on import). */
import { main } from './bench.js';

process.exitCode = await main(process.argv.slice(2));
