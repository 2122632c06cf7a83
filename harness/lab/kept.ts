/**
 * Kept labs, as containerlab and Mininet users expect: `natproof up` builds a lab, starts its
 * agents detached, applies one rule set and leaves it up; `probe` runs the probes on it again;
 * `exec` runs a command in one of its nodes; `down` removes it the way a run's teardown does.
 * Between commands a lab is its namespaces, its detached agents and its record (./record.ts).
 */
import { readFile } from 'node:fs/promises';
import type { Backend, Lab, NodeRef } from '../backend/backend.js';
import { agentArgv, NetnsBackend, type NetnsLab } from '../backend/netns/netns.js';
import { listRuns } from '../backend/netns/runs.js';
import { UsageError } from '../errors.js';
import type { RunResult } from '../result/result.js';
import { applyForwarderRules, requireNftablesIptables } from '../rules/apply.js';
import { applyRuleset, buildLab, FIRST_PROBE_PORT, newRunId, RunAbortedError, selectRulesets, type RunOptions } from '../run.js';
import { checkRules } from '../scenario/load.js';
import type { RuleSet, Topology } from '../scenario/topology.js';
import { DetachedAgents } from './agents.js';
import type { DetachedAgent } from './detached.js';
import {
  labDirectories,
  lockLab,
  makeLabDirectory,
  readLabRecord,
  removeLabDirectory,
  textHash,
  writeLabRecord,
  type LabRecord,
} from './record.js';
import { nextProbePort, probeLab, type RoundOptions } from './round.js';

export interface UpOptions extends Pick<RunOptions, 'rules' | 'log' | 'signal'> {
  backend: Backend;
  /** The rule set the lab gets; may be left out when the scenario has one (or with `rules`). */
  ruleset?: string | undefined;
}

/** The one rule set a lab gets: the named one, the scenario's only one, or `rules`. */
export function labRuleset(topology: Topology, options: Pick<UpOptions, 'ruleset' | 'rules'>): RuleSet {
  const chosen = selectRulesets(topology, {
    rulesets: options.ruleset ? [options.ruleset] : [],
    ...(options.rules ? { rules: options.rules } : {}),
  });
  const [only] = chosen;
  if (!only || chosen.length > 1) {
    throw new UsageError(
      `${topology.file}: a lab gets one rule set, and the scenario has ${topology.rulesets.length} (${topology.rulesets.map((r) => r.name).join(', ')}): name one with --ruleset`,
    );
  }
  return only;
}

/**
 * Build the lab and leave it up: returns its record. Anything that fails on the way is removed
 * as a run's teardown removes it.
 */
export async function upKeptLab(topology: Topology, options: UpOptions): Promise<LabRecord> {
  const { backend } = options;
  if (!(backend instanceof NetnsBackend)) {
    throw new UsageError(
      `natproof up keeps labs on the netns backend only, for now; a ${backend.name} lab can be used from code (up() in the natproof package) for as long as the process runs`,
    );
  }
  const log = options.log ?? (() => {});
  const ruleset = labRuleset(topology, options);
  checkRules({ rulesets: [ruleset], forwarders: topology.forwarders });
  const labTopology: Topology = { ...topology, rulesets: [ruleset] };
  const fileHash = await readFile(topology.file, 'utf8').then(textHash, () => null);
  const runId = newRunId();
  const lab = (await buildLab(labTopology, options, runId, log)) as NetnsLab;
  const agents: DetachedAgent[] = [];
  const interrupt = (): void => lab.interrupt();
  options.signal?.addEventListener('abort', interrupt, { once: true });
  try {
    const dir = await makeLabDirectory(runId);
    log(`starting agents`);
    await Promise.all([
      requireNftablesIptables(lab),
      DetachedAgents.start(labTopology, (node) => lab.argvIn(node, agentArgv()), dir, agents),
    ]);
    await applyForwarderRules(lab, topology.forwarders);
    await applyRuleset(lab, labTopology, ruleset, log);
    const rulesHash = await routerRulesHash(lab);
    if (options.signal?.aborted) throw new RunAbortedError('interrupted; the lab has been removed');
    const record: LabRecord = {
      runId,
      backend: backend.name,
      scenario: topology.name,
      file: topology.file,
      fileHash,
      ruleset: ruleset.name,
      createdAt: new Date().toISOString(),
      topology: labTopology,
      agents,
      nextPort: FIRST_PROBE_PORT,
      rulesHash,
    };
    await writeLabRecord(record);
    await lab.keep(agents[0]?.pid ?? 0);
    return record;
  } catch (err) {
    for (const agent of agents) killQuietly(agent.pid);
    await lab.destroy();
    await removeLabDirectory(runId);
    if (options.signal?.aborted && !(err instanceof RunAbortedError))
      throw new RunAbortedError('interrupted; the lab has been removed', { cause: err });
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', interrupt);
  }
}

/** The router's rules without counters (`nft -s`: every iptables-nft rule is there too), hashed. */
async function routerRulesHash(lab: Pick<Lab, 'exec'>): Promise<string> {
  const listing = await lab.exec({ kind: 'router' }, ['nft', '-s', 'list', 'ruleset'], { timeoutMs: 15_000 });
  return textHash(listing.stdout);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** The lab of record `record`, as this process sees it: commands run in it, destroy() removes it. */
function attachLab(record: LabRecord): NetnsLab {
  return new NetnsBackend().attach(record.topology, record.runId);
}

/** The probes of the lab's scenario sent again, with the router's rules as they are now. */
export async function probeKeptLab(runId: string, options: RoundOptions = {}): Promise<RunResult> {
  const record = await readLabRecord(runId);
  await new NetnsBackend().preflight();
  await using _lock = await lockLab(runId);
  const log = options.log ?? (() => {});
  const now = await readFile(record.file, 'utf8').then(textHash, () => null);
  if (record.fileHash !== null && now !== record.fileHash)
    log(`${record.file} changed since lab ${runId} was built; probing the lab as it was built (down and up again for the new one)`);
  // Moved on before the round, so a round that dies half-way leaves its ports to no one.
  const { nextPort: firstPort, topology } = record;
  await writeLabRecord({ ...record, nextPort: nextProbePort(firstPort, topology.probes.length) });
  await using agents = DetachedAgents.attach(record.agents, runId);
  const lab = attachLab(record);
  if ((await routerRulesHash(lab)) !== record.rulesHash)
    log(`the router's rules changed since lab ${runId} was built: judging them as they are now, not rule set ${record.ruleset} as given`);
  return await probeLab({ topology, lab, agents, firstPort }, options);
}

/** Remove the lab: every process in it, its namespaces, its records. */
export async function downKeptLab(runId: string): Promise<LabRecord> {
  const record = await readLabRecord(runId);
  await new NetnsBackend().preflight();
  await attachLab(record).destroy();
  await removeLabDirectory(runId);
  return record;
}

/**
 * Remove the lab directories whose run has no record any more: an `up` killed before its lab
 * was kept, whose namespaces `clean` removed as a dead run's. A lab's run record is written
 * before its directory, so a lab being built is never taken for one.
 */
export async function cleanStaleLabs(): Promise<string[]> {
  const runs = new Set((await listRuns()).map((r) => r.runId));
  const stale = (await labDirectories()).filter((runId) => !runs.has(runId));
  for (const runId of stale) await removeLabDirectory(runId);
  return stale.map((runId) => `lab:${runId}`);
}

/** Where `natproof exec` runs a command: a host, the router, a forwarder or a segment, by name. */
export function labNode(record: Pick<LabRecord, 'runId' | 'topology'>, name: string): NodeRef {
  const { topology } = record;
  if (name === 'router' || name === topology.router.name) return { kind: 'router' };
  if (topology.hosts.some((h) => h.name === name)) return { kind: 'host', name };
  if (topology.forwarders.some((f) => f.name === name)) return { kind: 'forwarder', name };
  const segment = /^segment:(.+)$/.exec(name)?.[1];
  if (segment !== undefined && topology.networks.some((n) => n.name === segment)) return { kind: 'segment', network: segment };
  throw new UsageError(`lab ${record.runId} has no node "${name}"; its nodes: ${labNodeNames(record).join(', ')}`);
}

export function labNodeNames({ topology }: Pick<LabRecord, 'topology'>): string[] {
  return [
    topology.router.name,
    ...topology.hosts.map((h) => h.name),
    ...topology.forwarders.map((f) => f.name),
    ...topology.networks.map((n) => `segment:${n.name}`),
  ];
}

/** `argv` as the command line that runs it in `node` of the lab. */
export function argvInLab(record: LabRecord, node: NodeRef, argv: readonly string[]): string[] {
  return attachLab(record).argvIn(node, argv);
}
