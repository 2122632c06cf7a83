/**
 * Where natproof's compiled agent is on this machine. The backends start it in each host (the
 * netns backend runs the file itself, the docker backend copies it into the host image), so
 * they need its path, not the protocol client (client.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HostError } from '../errors.js';
import { packageRoot } from '../package-root.js';

/** The compiled agent script, run with node inside each host. */
export function agentScriptPath(): string {
  // Always the compiled agent, also when natproof runs from source, so hosts never need a
  // TypeScript loader.
  const script = join(packageRoot(), 'dist', 'harness', 'agent', 'main.js');
  if (!existsSync(script)) throw new HostError(`the compiled agent ${script} is missing; run \`npm run build\``);
  return script;
}
