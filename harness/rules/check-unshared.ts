/**
 * The rules through the tools themselves for `natproof validate`, before any lab exists: each
 * tool runs in a network namespace of its own that lives only as long as it does (`unshare --net`, with a user namespace, so no root is needed where the
 * kernel allows it), so the host's rules are neither read nor touched and nothing is left. The
 * kernel is what refuses a rule, as when a run applies it; the error names the rule's line.
 */
import { execCommand } from '../exec.js';
import type { RuleSource } from '../scenario/topology.js';
import { runStep, type ToolExec } from './apply.js';
import { compileRules } from './compile.js';

const TIMEOUT_MS = 15_000;
const UNSHARE = ['unshare', '--user', '--map-root-user', '--net', '--'];

/**
 * Why the kernel check cannot run here (no unshare, user namespaces off, the tools missing),
 * or undefined when it can.
 */
export async function unsharedCheckUnavailable(): Promise<string | undefined> {
  const tried = await execCommand([...UNSHARE, 'nft', '--version'], { timeoutMs: TIMEOUT_MS, allowFailure: true }).catch((err: Error) => ({
    exitCode: -1,
    stderr: err.message,
    stdout: '',
  }));
  return tried.exitCode === 0 ? undefined : (tried.stderr || tried.stdout).trim() || `unshare exited ${tried.exitCode}`;
}

/**
 * Every source applied for real in a namespace that is gone when the tool exits: the tools'
 * check modes miss what only loading finds (`iptables-restore --test` accepts a jump to a chain
 * that does not exist). A source of several steps, each in a namespace of its own, would not
 * see its earlier steps' chains there: those go through the check mode. Throws the first
 * RuleError, with its line.
 */
export async function checkRulesUnshared(sources: readonly RuleSource[]): Promise<void> {
  const exec: ToolExec = (argv, options) => execCommand([...UNSHARE, ...argv], options);
  for (const source of sources) {
    const steps = compileRules(source);
    const check = steps.length > 1;
    for (const step of steps) await runStep(exec, step, { check });
  }
}
