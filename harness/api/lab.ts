/**
 * A lab from code, built once and probed many times: `await using lab = await up(scenario)`,
 * `await lab.probe()` for a RunResult, and the lab torn down when the block ends, when the
 * caller's signal aborts, or when the process exits with it still up. It lives as long as the
 * process, on either backend; `natproof up` is the kept lab that outlives one.
 */
import { AgentGroup } from '../agent/group.js';
import type { Backend } from '../backend/backend.js';
import { NetnsBackend } from '../backend/netns/netns.js';
import { NatproofError } from '../errors.js';
import type { ExecResult } from '../exec.js';
import { labNode, labRuleset } from '../lab/kept.js';
import { nextProbePort, probeLab } from '../lab/round.js';
import type { RunResult } from '../result/result.js';
import { applyForwarderRules } from '../rules/apply.js';
import { applyRuleset, buildLab, FIRST_PROBE_PORT, newRunId } from '../run.js';
import { checkRules, loadScenario } from '../scenario/load.js';
import type { Topology } from '../scenario/topology.js';
import { teardownStep, withoutTeardownErrors } from '../teardown.js';
import type { CandidateRules } from './rules.js';

export interface LabOptions {
  /** Where the lab is built: `new NetnsBackend()` when absent. */
  backend?: Backend;
  /** The rule set the lab gets; may be left out when the scenario has one, or with `rules`. */
  ruleset?: string;
  /** Candidate rules applied instead (loadRules, rulesFromText), held to the named rule set's or the probes' expectations. */
  rules?: CandidateRules;
  /** Progress lines for people watching. */
  log?: (line: string) => void;
  /** Aborting it tears the lab down: a test that times out leaves nothing behind. */
  signal?: AbortSignal;
}

export interface ProbeOptions {
  /** Keep the round's pcaps and result.json here. */
  outDir?: string;
  signal?: AbortSignal;
}

export interface NatLab extends AsyncDisposable {
  readonly runId: string;
  /** The topology as built, with the one rule set applied. */
  readonly topology: Topology;
  /** The scenario's probes under fresh captures, judged against the router's rules as they are now. */
  probe(options?: ProbeOptions): Promise<RunResult>;
  /**
   * A command in a node (a host, the router by name or as `router`, a forwarder, or
   * `segment:NETWORK`); its exit code is in the result, not thrown. Bounded by `timeoutMs`.
   */
  exec(node: string, argv: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  /** Tear the lab down; what `await using` calls. Safe to call more than once. */
  down(): Promise<void>;
}

/**
 * Build `scenario` (a topology from defineScenario or loadScenario, or a scenario file's path),
 * start its servers and agents, apply one rule set, and return the lab.
 */
export async function up(scenario: Topology | string, options: LabOptions = {}): Promise<NatLab> {
  const topology = typeof scenario === 'string' ? await loadScenario(scenario) : scenario;
  const backend = options.backend ?? new NetnsBackend();
  const log = options.log ?? (() => {});
  const ruleset = labRuleset(topology, { ruleset: options.ruleset, ...(options.rules ? { rules: options.rules } : {}) });
  checkRules({ rulesets: [ruleset], forwarders: topology.forwarders });
  const labTopology: Topology = { ...topology, rulesets: [ruleset] };
  const runId = newRunId();
  const lab = await buildLab(labTopology, { backend, ...(options.signal ? { signal: options.signal } : {}) }, runId, log);
  const agents = new AgentGroup(lab);
  const teardown = async (): Promise<void> => {
    // Agents, then the lab: a run's teardown order.
    await using _lab = teardownStep(runId, lab);
    await using _agents = teardownStep(runId, agents);
  };
  let downing: Promise<void> | undefined;
  const down = (): Promise<void> => {
    downing ??= teardown().catch((err: unknown) => {
      throw withoutTeardownErrors(err, log);
    });
    return downing;
  };
  const abandon = (): void => {
    lab.interrupt();
    void down().catch(() => undefined);
  };
  options.signal?.addEventListener('abort', abandon, { once: true });
  try {
    await agents.start(labTopology);
    await applyForwarderRules(lab, topology.forwarders);
    await applyRuleset(lab, labTopology, ruleset, log);
  } catch (err) {
    options.signal?.removeEventListener('abort', abandon);
    await down().catch(() => undefined);
    throw err;
  }
  const release = async (): Promise<void> => {
    options.signal?.removeEventListener('abort', abandon);
    await down();
  };
  let nextPort = FIRST_PROBE_PORT;
  // One round at a time: two at once would share the agents' request logs.
  let previous: Promise<unknown> = Promise.resolve();
  return {
    runId,
    topology: labTopology,
    probe(probeOptions: ProbeOptions = {}): Promise<RunResult> {
      if (downing) return Promise.reject(new NatproofError(`lab ${runId} is down`));
      const firstPort = nextPort;
      nextPort = nextProbePort(firstPort, labTopology.probes.length);
      const round = previous.then(() => probeLab({ topology: labTopology, lab, agents, firstPort }, { log, ...probeOptions }));
      previous = round.catch(() => undefined);
      return round;
    },
    exec(node, argv, execOptions = {}) {
      const ref = labNode({ runId, topology: labTopology }, node);
      return lab.exec(ref, argv, { timeoutMs: 30_000, ...execOptions, allowFailure: true });
    },
    down: release,
    [Symbol.asyncDispose]: release,
  };
}
