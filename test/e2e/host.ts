/** What the end-to-end tests need from the machine, and why a test skips when it is absent. */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { missingHostTools } from '../../harness/backend/netns/netns.js';

/** On PATH and executable (not every tool has a --version that exits 0: `ip` does not). */
export function hasTool(tool: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

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
