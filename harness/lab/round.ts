/**
 * One probe round on a lab that is already built, with its rule set already applied: the
 * probes under capture, judged as a run judges them, as a RunResult of one rule set. A kept
 * lab's `natproof probe` and a library lab's `probe()` both are one.
 */
import type { Lab } from '../backend/backend.js';
import { LapClock } from '../clock.js';
import type { RunResult } from '../result/result.js';
import { assembleResult, FIRST_PROBE_PORT, onAbort, probeRound, RunAbortedError, runDirectory, type ProbeAgents } from '../run.js';
import type { Topology } from '../scenario/topology.js';
import { withoutTeardownErrors } from '../teardown.js';
import type { ProbeProgress } from '../progress.js';

/** Below Linux's ephemeral ports (32768), where the agents' own sockets would take them. */
const LAST_PROBE_PORT = 32_000;

export interface RoundOptions {
  /** Keep the round's artifacts (pcaps, result.json) here; a temporary directory otherwise. */
  outDir?: string;
  log?: (line: string) => void;
  progress?: ProbeProgress;
  signal?: AbortSignal;
}

export interface RoundParts {
  /** The lab's topology, with the one rule set it was given. */
  topology: Topology;
  lab: Lab;
  agents: ProbeAgents;
  /** The round's first probe source port (see nextProbePort). */
  firstPort: number;
}

/**
 * The first source port of the round after one that started at `firstPort`: rounds do not
 * share ports, so no probe meets an earlier round's connection (a TIME_WAIT, a conntrack entry).
 */
export function nextProbePort(firstPort: number, probes: number): number {
  const next = firstPort + probes;
  return next + probes > LAST_PROBE_PORT ? FIRST_PROBE_PORT : next;
}

export async function probeLab(parts: RoundParts, options: RoundOptions = {}): Promise<RunResult> {
  const log = options.log ?? (() => {});
  try {
    return await probeUnguarded(parts, options, log);
  } catch (thrown) {
    const err = withoutTeardownErrors(thrown, log);
    if (options.signal?.aborted && !(err instanceof RunAbortedError))
      throw new RunAbortedError('probe round interrupted; the lab is still up', { cause: err });
    throw err;
  }
}

async function probeUnguarded(
  { topology, lab, agents, firstPort }: RoundParts,
  options: RoundOptions,
  log: (line: string) => void,
): Promise<RunResult> {
  const ruleset = topology.rulesets[0];
  if (!ruleset) throw new TypeError('probeLab: the lab has no rule set');
  const started = Date.now();
  const clock = new LapClock();
  const checkAborted = (): void => {
    if (options.signal?.aborted) throw new RunAbortedError('probe round interrupted; the lab is still up');
  };
  await using dir = await runDirectory(options, lab.runId);
  const keepArtifacts = options.outDir !== undefined;
  // Kills the round's captures (and a library lab's agents), so no wait outlasts the interrupt.
  await using _interrupt = onAbort(options.signal, () => lab.interrupt());
  clock.lap();
  const context = { topology, lab, agents, runId: lab.runId, dir, keepArtifacts, log, clock, progress: options.progress };
  const outcome = await probeRound(context, ruleset, firstPort, checkAborted);
  const result = assembleResult(topology, lab.backend, lab.runId, started, {
    rulesets: [outcome.summary],
    probes: outcome.probes,
    artifacts: keepArtifacts ? dir.path : null,
  });
  // Nothing is built, started or torn down in a round: those phases take no time.
  result.timings = { totalMs: clock.elapsed(), buildMs: 0, agentsMs: 0, rulesets: [outcome.timings], teardownMs: 0 };
  if (keepArtifacts) await dir.writeResult(result);
  return result;
}
