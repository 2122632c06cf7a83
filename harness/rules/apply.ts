/**
 * Puts a rule set into the router, and only the router: the lab runs the tools inside the
 * router's namespace or container, with the rules on stdin, never through a shell. A
 * forwarder's own rules go the same way into the forwarder, once, when the lab is built.
 */
import type { Lab, NodeRef } from '../backend/backend.js';
import { HostError } from '../errors.js';
import type { ExecOptions, ExecResult } from '../exec.js';
import type { Forwarder, Router, RuleSource } from '../scenario/topology.js';
import { compileRules } from './compile.js';
import { ruleErrorFromKernel } from './kernel-errors.js';
import { counterCommands } from './nft-counters.js';
import type { RuleStep } from './rule-step.js';

const ROUTER: NodeRef = { kind: 'router' };
const TIMEOUT_MS = 15_000;

/**
 * Return the router to a clean slate: no rules from an earlier rule set, no conntrack entries
 * that would carry an earlier rule set's NAT decisions into this one, and the scenario's
 * FORWARD policy.
 *
 * `nft flush ruleset` empties the nf_tables rules, which is where iptables-nft puts them; rules
 * of iptables-legacy would survive it and leak from one rule set into the next, so natproof
 * requires the nf_tables flavour (see `requireNftablesIptables`).
 */
export async function resetRouter(lab: Pick<Lab, 'exec'>, router: Router): Promise<void> {
  // The conntrack table and the rules are apart in the kernel, and nothing crosses the quiet lab
  // meanwhile: emptied at once. The policy goes in the table the flush removed, so after it.
  // The flush resets iptables' rules only with the nf_tables flavour, asked meanwhile too.
  await Promise.all([
    requireNftablesIptables(lab),
    lab.exec(ROUTER, ['conntrack', '-F'], { timeoutMs: TIMEOUT_MS, networkOnly: true }),
    (async () => {
      await lab.exec(ROUTER, ['nft', 'flush', 'ruleset'], { timeoutMs: TIMEOUT_MS, networkOnly: true });
      await lab.exec(ROUTER, ['iptables', '-P', 'FORWARD', router.forwardPolicy], { timeoutMs: TIMEOUT_MS, networkOnly: true });
    })(),
  ]);
}

/**
 * The tool command that loads a step from stdin, or with `check` only asks the tool whether it
 * would (`nft -c`, `iptables-restore --test`). --noflush: the reset already emptied the tables,
 * and the scenario's FORWARD policy stays unless the rules themselves set one.
 */
export function toolArgv(step: Pick<RuleStep, 'tool'>, { check }: { check: boolean }): string[] {
  if (step.tool === 'nft') return ['nft', ...(check ? ['-c'] : []), '-f', '-'];
  return ['iptables-restore', ...(check ? ['--test'] : []), '--noflush'];
}

/** Runs a tool where the rules go: the router's namespace or container, or a throwaway namespace. */
export type ToolExec = (argv: readonly string[], options: ExecOptions) => Promise<ExecResult>;

/** Feed one step to its tool (or its check mode); a refusal throws a RuleError naming the user's line. */
export async function runStep(exec: ToolExec, step: RuleStep, { check }: { check: boolean }): Promise<void> {
  const result = await exec(toolArgv(step, { check }), { input: step.input, timeoutMs: TIMEOUT_MS, allowFailure: true });
  if (result.exitCode !== 0) throw ruleErrorFromKernel(step, result.stderr || result.stdout);
}

/** Apply the candidate rules; a rule the kernel rejects throws a RuleError naming its line. */
export async function applyRules(lab: Pick<Lab, 'exec'>, source: RuleSource, node: NodeRef = ROUTER): Promise<void> {
  const exec: ToolExec = (argv, options) => lab.exec(node, argv, { ...options, networkOnly: true });
  for (const step of compileRules(source)) await runStep(exec, step, { check: false });
  if (source.format === 'nft') await countEveryRule(lab, node);
}

/**
 * Give the nft rule set's uncounted rules a counter (nft-counters.ts). Best effort: where nft
 * cannot write a rule back, the rules stay as they were and the kernel's trace is the evidence.
 */
async function countEveryRule(lab: Pick<Lab, 'exec'>, node: NodeRef): Promise<void> {
  const listed = await lab.exec(node, ['nft', '-j', 'list', 'ruleset'], { timeoutMs: TIMEOUT_MS, allowFailure: true, networkOnly: true });
  const commands = listed.exitCode === 0 ? counterCommands(listed.stdout) : [];
  // As an argument, not on stdin: nft reads JSON from a file it opens, and /dev/stdin cannot be
  // opened when stdin is a socket, as a spawned process's is. Batches keep each argument well
  // under the kernel's 128 KiB limit on one.
  for (let i = 0; i < commands.length; i += COUNTER_BATCH) {
    const batch = JSON.stringify({ nftables: commands.slice(i, i + COUNTER_BATCH) });
    await lab.exec(node, ['nft', '-j', batch], { timeoutMs: TIMEOUT_MS, allowFailure: true, networkOnly: true });
  }
}

/** Rules per `nft -j` call: a rule's JSON is well under 1 KiB. */
const COUNTER_BATCH = 50;

/**
 * Every rule set through the tools' own check mode (`iptables-restore --test`, `nft -c`) on the
 * reset router, before the first one runs: a rule the tools refuse in the last rule set is
 * reported at once, not after the earlier rule sets' probes. Nothing is committed.
 */
export async function checkRulesInRouter(lab: Pick<Lab, 'exec'>, router: Router, sources: readonly RuleSource[]): Promise<void> {
  await resetRouter(lab, router);
  const exec: ToolExec = (argv, options) => lab.exec(ROUTER, argv, { ...options, networkOnly: true });
  // The rule sets at once (a check commits nothing); the first one in order that fails is reported.
  const checked = await Promise.allSettled(
    sources.map(async (source) => {
      for (const step of compileRules(source)) await runStep(exec, step, { check: true });
    }),
  );
  const failed = checked.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Each lab's router is asked once: its iptables stays what it is. */
const flavourChecked = new WeakMap<Pick<Lab, 'exec'>, Promise<void>>();

/** Refuse an iptables whose rules `nft flush ruleset` would not reset (the legacy flavour). */
function requireNftablesIptables(lab: Pick<Lab, 'exec'>): Promise<void> {
  let checked = flavourChecked.get(lab);
  if (!checked) {
    checked = checkIptablesFlavour(lab);
    flavourChecked.set(lab, checked);
    checked.catch(() => flavourChecked.delete(lab));
  }
  return checked;
}

async function checkIptablesFlavour(lab: Pick<Lab, 'exec'>): Promise<void> {
  const version = await lab.exec(ROUTER, ['iptables-restore', '--version'], { timeoutMs: TIMEOUT_MS, networkOnly: true });
  if (!version.stdout.includes('nf_tables')) {
    throw new HostError(
      `natproof needs iptables with the nf_tables backend, found: ${version.stdout.trim()}; ` +
        'select it with `update-alternatives --set iptables /usr/sbin/iptables-nft`',
    );
  }
}

/**
 * Each forwarder's own rules, inside that forwarder only, once for the whole run: they are part
 * of the path, not what is judged, so no rule set resets them.
 */
export async function applyForwarderRules(lab: Pick<Lab, 'exec'>, forwarders: readonly Forwarder[]): Promise<void> {
  for (const forwarder of forwarders) {
    if (forwarder.rules) await applyRules(lab, forwarder.rules, { kind: 'forwarder', name: forwarder.name });
  }
}
