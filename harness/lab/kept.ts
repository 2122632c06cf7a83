/**
 * Kept labs, as containerlab and Mininet users expect: `natproof up` builds a lab, starts its
 * agents detached, applies one rule set and leaves it up; `probe` runs the probes on it again;
 * `exec` runs a command in one of its nodes; `down` removes it the way a run's teardown does.
 * Between commands a lab is what its backend built (namespaces or containers), its detached
 * agents and its record (./record.ts); every step goes through the Backend/Lab interface.
 */
import { readFile } from 'node:fs/promises';
import type { Backend, DetachedAgent, Lab, NodeRef } from '../backend/backend.js';
import { backendNamed } from '../backend/select.js';
import { UsageError } from '../errors.js';
import type { RunResult } from '../result/result.js';
import { applyForwarderRules } from '../rules/apply.js';
import { applyRuleset, buildLab, FIRST_PROBE_PORT, newRunId, RunAbortedError, selectRulesets, type RunOptions } from '../run.js';
import { checkRules } from '../scenario/load.js';
import type { RuleSet, Topology } from '../scenario/topology.js';
import { DetachedAgents } from './agents.js';
import {
  disownLabDirectory,
  labDirectories,
  labDirectoryStale,
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
  const log = options.log ?? (() => {});
  const ruleset = labRuleset(topology, options);
  checkRules({ rulesets: [ruleset], forwarders: topology.forwarders });
  const labTopology: Topology = { ...topology, rulesets: [ruleset] };
  const fileHash = await readFile(topology.file, 'utf8').then(textHash, () => null);
  const runId = newRunId();
  const lab = await buildLab(labTopology, options, runId, log);
  const agents: DetachedAgent[] = [];
  const interrupt = (): void => lab.interrupt();
  options.signal?.addEventListener('abort', interrupt, { once: true });
  try {
    const dir = await makeLabDirectory(runId);
    log(`starting agents`);
    await DetachedAgents.start(labTopology, lab, dir, agents);
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
    // Disowned before the backend keeps it: a kill in between leaves a record `down` removes,
    // never a kept lab without one.
    await disownLabDirectory(runId);
    await lab.keep();
    return record;
  } catch (err) {
    // The lab stops the agents it started detached, since it was not kept.
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
  const listing = await lab.exec({ kind: 'router' }, ['nft', '-s', 'list', 'ruleset'], { timeoutMs: 15_000, networkOnly: true });
  return textHash(listing.stdout);
}

/** The lab of record `record`, through its backend, checked usable here first. */
async function attachLab(record: LabRecord): Promise<Lab> {
  const backend = backendNamed(record.backend);
  await backend.preflight();
  return backend.attach(record.topology, record.runId);
}

/** The probes of the lab's scenario sent again, with the router's rules as they are now. */
export async function probeKeptLab(runId: string, options: RoundOptions = {}): Promise<RunResult> {
  const record = await readLabRecord(runId);
  const lab = await attachLab(record);
  await using _lock = await lockLab(runId);
  const log = options.log ?? (() => {});
  const now = await readFile(record.file, 'utf8').then(textHash, () => null);
  if (record.fileHash !== null && now !== record.fileHash)
    log(`${record.file} changed since lab ${runId} was built; probing the lab as it was built (down and up again for the new one)`);
  // Moved on before the round, so a round that dies half-way leaves its ports to no one.
  const { nextPort: firstPort, topology } = record;
  await writeLabRecord({ ...record, nextPort: nextProbePort(firstPort, topology.probes.length) });
  await using agents = await DetachedAgents.attach(lab, record.agents);
  if ((await routerRulesHash(lab)) !== record.rulesHash)
    log(`the router's rules changed since lab ${runId} was built: judging them as they are now, not rule set ${record.ruleset} as given`);
  return await probeLab({ topology, lab, agents, firstPort }, options);
}

/** Remove the lab: every process in it, what its backend built, its records. */
export async function downKeptLab(runId: string): Promise<LabRecord> {
  const record = await readLabRecord(runId);
  await (await attachLab(record)).destroy();
  await removeLabDirectory(runId);
  return record;
}

/**
 * Remove the lab directories an `up` left when it died before its lab was kept (its lab the
 * backend's clean removes as a dead run's). A directory being made is never taken for one.
 */
export async function cleanStaleLabs(): Promise<string[]> {
  const stale: string[] = [];
  for (const runId of await labDirectories()) {
    if (!(await labDirectoryStale(runId))) continue;
    await removeLabDirectory(runId);
    stale.push(`lab:${runId}`);
  }
  return stale;
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

/** The lab of record `record`, for a command run in one of its nodes. */
export function keptLab(record: LabRecord): Lab {
  return backendNamed(record.backend).attach(record.topology, record.runId);
}
