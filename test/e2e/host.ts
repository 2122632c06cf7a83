/** What the end-to-end tests need from the machine, and why a test skips when it is absent. */
import { execFileSync } from 'node:child_process';
import { missingHostTools } from '../../harness/backend/netns/netns.js';

export { onPath as hasTool } from '../../harness/exec.js';

function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces (run the tests as root)';
  // The same list natproof's preflight checks: every program the netns backend runs.
  const missing = missingHostTools();
  if (missing.length > 0) return `needs ${missing.map((t) => t.tool).join(', ')} (run ci/install-host-tools.sh)`;
  return undefined;
}

/** Why the netns backend cannot run here, or undefined when it can. */
export const netnsUnavailable = netnsSkipReason();

/** The network namespaces that exist now. */
export function namespaces(): string[] {
  const text = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8', timeout: 5_000 }).trim();
  return text ? (JSON.parse(text) as Array<{ name: string }>).map((n) => n.name) : [];
}

/** Namespaces a run left behind, found by its run id. */
export function leftBehind(runId: string): string[] {
  return namespaces().filter((n) => n.startsWith(`np-${runId}-`));
}
