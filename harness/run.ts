/**
 * One run: load -> build -> for each rule set (reset, apply, capture, probe, analyse) ->
 * teardown. The topology is built once and serves every rule set.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { AgentGroup } from './agent/group.js';
import { LapClock } from './clock.js';
import type { AgentClient } from './agent/client.js';
import type { ProbeReply } from './agent/protocol.js';
import { nodeLabel, type Backend, type Lab } from './backend/backend.js';
import { NatproofError } from './errors.js';
import { makeDirectory } from './output-paths.js';
import { makeScratchDirectory } from './scratch-dir.js';
import { collectEvidence, readCounterBaseline, type CounterBaseline } from './evidence/collect.js';
import { formatTranscripts, Reader, type EvidenceTranscript } from './evidence/reader.js';
import { observeRouterOriginated } from './evidence/router-originated.js';
import type { EvidenceScope, KernelEvidence } from './result/kernel.js';
import type { ProbeResult, RulesetResult, RulesetTimings, RunResult, RunTimings, ServerLogLine } from './result/result.js';
import { RunDir } from './run-dir.js';
import { watchedAgents, type ProbeProgress } from './progress.js';
import { teardownStep, withoutTeardownErrors } from './teardown.js';
import { applyForwarderRules, applyRules, checkRulesInRouter, resetRouter } from './rules/apply.js';
import { checkRules } from './scenario/load.js';
import type { RuleSet, RuleSource, Topology } from './scenario/topology.js';
import { startCapture, type CaptureResult } from './trace/capture.js';
import { EvidenceWatch } from './trace/evidence-watch.js';
import { sightings, type CaptureTrace } from './trace/flows.js';
import { parsePcap } from './trace/pcap.js';
import { addressBook } from './verdict/addresses.js';
import { diagnoseProbe } from './verdict/diagnose.js';
import { withDiagnosis } from './verdict/expect.js';
import { observeProbe } from './verdict/observe.js';
import { routerOriginatedCandidates, ruleWarnings, type RouterOriginatedCandidate } from './verdict/warnings.js';

export interface RunOptions {
  backend: Backend;
  /** Rule sets to run, by name; all of the scenario's when empty. */
  rulesets?: string[];
  /** Candidate rules that replace the scenario's own (`--rules FILE`). */
  rules?: { source: RuleSource; name: string };
  /** Keep artifacts (pcaps, server log, conntrack events, result.json) here. */
  outDir?: string;
  runId?: string;
  log?: (line: string) => void;
  /** Told which probes are still waiting while a rule set's probes are out. */
  progress?: ProbeProgress;
  signal?: AbortSignal;
}

export class RunAbortedError extends NatproofError {
  override readonly name = 'RunAbortedError';
}

/** Source ports natproof assigns to probes: below Linux's ephemeral range, unique within a run. */
export const FIRST_PROBE_PORT = 20_000;

export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

/** Which rule sets run, and with which rules and expectations. */
export function selectRulesets(topology: Topology, options: Pick<RunOptions, 'rulesets' | 'rules'>): RuleSet[] {
  const wanted = options.rulesets ?? [];
  for (const name of wanted) {
    if (!topology.rulesets.some((r) => r.name === name)) {
      throw new NatproofError(
        `${topology.file}: no rule set named "${name}"; the scenario has: ${topology.rulesets.map((r) => r.name).join(', ')}`,
      );
    }
  }
  const chosen = wanted.length > 0 ? topology.rulesets.filter((r) => wanted.includes(r.name)) : topology.rulesets;
  const { rules } = options;
  if (!rules) return chosen;
  // Candidate rules from a file are held to the probes' own expectations, or to the named
  // rule sets' expectations when the user picks some.
  if (wanted.length === 0)
    return [{ name: rules.name, description: `rules from ${rules.source.origin.file}`, rules: rules.source, expect: {} }];
  return chosen.map((r) => ({ ...r, rules: rules.source }));
}

export async function runScenario(topology: Topology, options: RunOptions): Promise<RunResult> {
  const log = options.log ?? (() => {});
  try {
    return await runUnguarded(topology, options, log);
  } catch (thrown) {
    const err = withoutTeardownErrors(thrown, log);
    // On Ctrl-C the terminal signals tcpdump and the agents too, so the first error seen is
    // often theirs; what the user did is what they should hear about.
    if (options.signal?.aborted && !(err instanceof RunAbortedError)) {
      throw new RunAbortedError('run interrupted; everything it created has been removed', { cause: err });
    }
    throw err;
  }
}

/** The run's directory: the user's `--out`, or a temporary one removed at the end. */
export async function runDirectory(options: Pick<RunOptions, 'outDir'>, runId: string): Promise<RunDir & AsyncDisposable> {
  const kept = options.outDir !== undefined;
  const path = kept ? resolve(options.outDir!) : await makeScratchDirectory(runId);
  if (kept) await makeDirectory(path, '--out');
  return Object.assign(new RunDir(path), {
    async [Symbol.asyncDispose](): Promise<void> {
      if (!kept) await rm(path, { recursive: true, force: true });
    },
  });
}

/** Teardown runs in reverse: agents, then the lab, then the temporary directory. */
async function runUnguarded(topology: Topology, options: RunOptions, log: (line: string) => void): Promise<RunResult> {
  const started = Date.now();
  const clock = new LapClock();
  const rulesets = selectRulesets(topology, options);
  // Rules from --rules, or a topology built in code, are checked here, before anything is built
  // (a loaded scenario's were compiled when it was loaded, and are not compiled again).
  checkRules({ rulesets, forwarders: topology.forwarders });
  const runId = options.runId ?? newRunId();
  const checkAborted = (): void => {
    if (options.signal?.aborted) throw new RunAbortedError('run interrupted; everything it created has been removed');
  };
  await using dir = await runDirectory(options, runId);
  const keepArtifacts = options.outDir !== undefined;
  clock.lap();
  let result: RunResult;
  let timings: Omit<RunTimings, 'teardownMs' | 'totalMs'>;
  {
    const lab = await buildLab(topology, options, runId, log);
    await using _lab = teardownStep(runId, lab);
    // An interrupt kills the lab's processes, so no wait (a probe's timeout, a capture's drain)
    // outlasts it; the error that ends becomes RunAbortedError in runScenario.
    await using _interrupt = onAbort(options.signal, () => lab.interrupt());
    const buildMs = clock.lap();
    checkAborted();
    // Every rule set sends every probe once: a shared agent knows how many sockets to hold.
    const agents = new AgentGroup(lab, { probeRounds: rulesets.length });
    await using _agents = teardownStep(runId, agents);
    await using _interruptAgents = onAbort(options.signal, () => agents.interrupt());
    // Nothing before the first probes needs the agents: they start while the router's rules are
    // applied (its iptables' flavour is checked by the first reset) and the captures start.
    // Awaited before the probes; a failure before then must not go unhandled meanwhile.
    const agentsReady = agents.start(topology);
    agentsReady.catch(() => undefined);
    await applyForwarderRules(lab, topology.forwarders);
    // One rule set is applied at once anyway; with more, a later one's mistake must not wait.
    if (rulesets.length > 1)
      await checkRulesInRouter(
        lab,
        topology.router,
        rulesets.map((r) => r.rules),
      );
    let agentsMs = clock.lap();
    const context: RulesetContext = {
      topology,
      lab,
      agents,
      agentsReady,
      runId,
      dir,
      keepArtifacts,
      log,
      clock,
      progress: options.progress,
    };
    const probeResults: ProbeResult[] = [];
    const rulesetResults: RulesetResult[] = [];
    const rulesetTimings: RulesetTimings[] = [];
    for (const ruleset of rulesets) {
      checkAborted();
      const outcome = await runRuleset(context, ruleset, FIRST_PROBE_PORT + probeResults.length, checkAborted);
      probeResults.push(...outcome.probes);
      rulesetResults.push(outcome.summary);
      rulesetTimings.push(outcome.timings);
      agentsMs += outcome.agentsWaitMs;
    }
    timings = { buildMs, agentsMs, rulesets: rulesetTimings };
    result = assembleResult(topology, options.backend.name, runId, started, {
      rulesets: rulesetResults,
      probes: probeResults,
      artifacts: keepArtifacts ? dir.path : null,
    });
    clock.lap();
  }
  // The block's end stopped the agents and removed the lab.
  result.timings = { totalMs: 0, ...timings, teardownMs: clock.lap() };
  result.timings.totalMs = clock.elapsed();
  if (keepArtifacts) await dir.writeResult(result);
  return result;
}

/** Preflight, then the topology built and tagged with `runId`. */
export async function buildLab(
  topology: Topology,
  options: Pick<RunOptions, 'backend' | 'signal'>,
  runId: string,
  log: (line: string) => void,
): Promise<Lab> {
  await options.backend.preflight();
  if (options.signal?.aborted) throw new RunAbortedError('run interrupted; everything it created has been removed');
  log(`building ${topology.name} on ${options.backend.name} (run ${runId})`);
  return options.backend.build(topology, { runId, log, ...(options.signal ? { signal: options.signal } : {}) });
}

/** The result of a run or of a kept lab's probe round, from its rule sets' outcomes. */
export function assembleResult(
  topology: Topology,
  backend: RunResult['backend'],
  runId: string,
  started: number,
  outcome: Pick<RunResult, 'rulesets' | 'probes' | 'artifacts'>,
): RunResult {
  return {
    scenario: topology.name,
    file: topology.file,
    backend,
    runId,
    passed: outcome.rulesets.every((r) => r.passed),
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    rulesets: outcome.rulesets,
    probes: outcome.probes,
    artifacts: outcome.artifacts,
    addresses: addressBook(topology),
  };
}

/** Calls `react` once if `signal` aborts while the returned handle is held. */
export function onAbort(signal: AbortSignal | undefined, react: () => void): AsyncDisposable {
  signal?.addEventListener('abort', react, { once: true });
  return { [Symbol.asyncDispose]: async () => signal?.removeEventListener('abort', react) };
}

/**
 * What a probe round needs of the agents: the agent of the host a probe is sent from, and what
 * the servers logged. A run's AgentGroup is one; a kept lab's agents, started by an earlier
 * command, are another.
 */
export interface ProbeAgents {
  of(host: string): Pick<AgentClient, 'probe'>;
  drainRequests(): Promise<ServerLogLine[]>;
}

export interface RulesetContext {
  topology: Topology;
  lab: Lab;
  agents: ProbeAgents;
  /** Settles once every agent is ready, when the agents may still be starting; awaited before the probes. */
  agentsReady?: Promise<void>;
  runId: string;
  dir: RunDir;
  keepArtifacts: boolean;
  log: (line: string) => void;
  /** The run's stopwatch: each phase of a rule set is a lap of it. */
  clock: LapClock;
  progress?: ProbeProgress | undefined;
}

export interface RulesetOutcome {
  probes: ProbeResult[];
  summary: RulesetResult;
  timings: RulesetTimings;
  /** How long the probes waited for the agents once the captures were up (counted as the agents' time). */
  agentsWaitMs: number;
}

/**
 * One rule set on the built topology: reset and apply, then a probe round. The counters'
 * baseline is read meanwhile: the rules touch none of them, and nothing crosses the lab yet.
 */
async function runRuleset(context: RulesetContext, ruleset: RuleSet, firstPort: number, checkAborted: () => void): Promise<RulesetOutcome> {
  const [, baseline] = await Promise.all([
    applyRuleset(context.lab, context.topology, ruleset, context.log),
    readCounterBaseline(context.lab, context.topology),
  ]);
  return probeRound(context, ruleset, firstPort, checkAborted, baseline);
}

/** The router reset (rules, conntrack table, FORWARD policy), then the rule set's rules loaded. */
export async function applyRuleset(lab: Lab, topology: Topology, ruleset: RuleSet, log: (line: string) => void): Promise<void> {
  log(`rule set ${ruleset.name}: applying rules`);
  await resetRouter(lab, topology.router);
  await applyRules(lab, ruleset.rules);
}

/**
 * The probes sent under capture with the router's rules as they are, then judged from the
 * kernel's evidence; the probes' source ports start at `firstPort`. The counters' baseline is
 * read here unless the caller read it already.
 */
export async function probeRound(
  { topology, lab, agents, agentsReady, runId, dir, keepArtifacts, log, clock, progress }: RulesetContext,
  ruleset: RuleSet,
  firstPort: number,
  checkAborted: () => void,
  counterBaseline?: CounterBaseline,
): Promise<RulesetOutcome> {
  // Kernel counters live as long as the namespaces: the evidence keeps what grew during the probes.
  const baseline = counterBaseline ?? (await readCounterBaseline(lab, topology));
  const applyMs = clock.lap();
  checkAborted();
  // Source ports unique within the run, so no probe meets another's TIME_WAIT or packets.
  const ports = topology.probes.map((_, i) => firstPort + i);
  const paths = topology.probes.map((probe, i) =>
    probe.kind === 'udp' ? queryName(runId, ports[i]!, probe.name) : probePath(runId, ruleset.name, probe.name),
  );
  const watched = progress
    ? watchedAgents(
        agents,
        progress,
        ruleset.name,
        topology.probes.map((p) => p.name),
        ports,
      )
    : agents;
  const { replies, captured, captureMs, agentsWaitMs, probesMs } = await probeUnderCapture(
    { topology, lab, agents: watched, agentsReady, dir, log, clock },
    ruleset,
    ports,
    paths,
  ).finally(() => progress?.ended());
  checkAborted();
  const serverLog = await agents.drainRequests();
  const traces = await readTraces(captured);
  let evidenceMs = clock.lap();
  const seen = sightings(traces);
  const observed = topology.probes.map((probe, i) =>
    observeProbe({
      topology,
      ruleset,
      probe,
      clientPort: ports[i]!,
      path: paths[i]!,
      client: { ...replies[i]!, errorDetail: replies[i]!.detail },
      seen,
      serverLog,
      conntrackEvents: captured.conntrackEvents,
    }),
  );
  // Before the next rule set's reset wipes the counters and the conntrack table. A probe that
  // failed or missed an expectation gets the kernel's whole account; otherwise the rules (for
  // warnings) suffice.
  const scope: EvidenceScope = observed.some(({ result }) => !result.ok || !result.expectationsMet) ? 'all' : 'rules';
  let analysisMs = clock.lap();
  const read = await readKernel(lab, topology, ruleset, baseline, scope);
  evidenceMs += clock.lap();
  checkAborted();
  const { candidates, transcripts } = read;
  const router = read.kernel.router;
  const missing = captured.nftTraceMissing ? [...router.missing, captured.nftTraceMissing] : router.missing;
  const kernel = { ...read.kernel, router: { ...router, nftTrace: captured.nftTrace, nftChains: captured.nftChains, missing } };
  const probes = observed.map(({ result, flow }, i) =>
    withDiagnosis({ ...result, decidedBy: replies[i]!.decidedBy }, diagnoseProbe({ topology, result, flow, evidence: kernel })),
  );
  if (keepArtifacts) {
    await writeFile(dir.serverLog(ruleset.name), `${JSON.stringify(serverLog, null, 2)}\n`);
    await writeFile(dir.conntrackEvents(ruleset.name), captured.conntrackEvents.map((l) => `${l}\n`).join(''));
    await writeFile(dir.nftTrace(ruleset.name), captured.nftTrace.map((l) => `${l}\n`).join(''));
    await writeFile(dir.kernelTranscript(ruleset.name), formatTranscripts(transcripts));
  }
  const warnings = ruleWarnings(candidates, kernel);
  analysisMs += clock.lap();
  return {
    probes,
    agentsWaitMs,
    timings: { name: ruleset.name, applyMs, captureMs, probesMs, evidenceMs, analysisMs },
    summary: {
      name: ruleset.name,
      description: ruleset.description ?? null,
      rules: { format: ruleset.rules.format, file: ruleset.rules.origin.file, line: ruleset.rules.origin.line, text: ruleset.rules.text },
      passed: probes.every((r) => r.expectationsMet),
      captureDrops: captured.points.reduce((n, p) => n + p.droppedByKernel, 0),
      captures: captured.points.map((p) => ({ node: nodeLabel(p.node), file: p.file, interfaces: p.interfaces })),
      evidence: kernel,
      warnings,
    },
  };
}

/**
 * Every probe of the rule set at once, with every recorder running around them. A probe whose
 * captured packets already show how it ends is stopped then (EvidenceWatch), not at its timeout.
 */
async function probeUnderCapture(
  {
    topology,
    lab,
    agents,
    agentsReady,
    dir,
    log,
    clock,
  }: Pick<RulesetContext, 'topology' | 'lab' | 'agents' | 'agentsReady' | 'dir' | 'log' | 'clock'>,
  ruleset: RuleSet,
  ports: number[],
  paths: string[],
): Promise<{ replies: ProbeReply[]; captured: CaptureResult; captureMs: number; agentsWaitMs: number; probesMs: number }> {
  const stops = topology.probes.map(() => new AbortController());
  const watch = new EvidenceWatch(EvidenceWatch.probesOf(topology, ports), (i, decision) => {
    log(`rule set ${ruleset.name}: ${topology.probes[i]!.name} decided by evidence: ${decision.error}`);
    stops[i]!.abort(decision);
  });
  await using capture = await startCapture(
    lab,
    topology,
    { pcap: (node) => dir.pcap(ruleset.name, node), nftMonitor: dir.nftMonitor(ruleset.name) },
    (point, packets) => watch.feed(point, packets),
  );
  const captureMs = clock.lap();
  await agentsReady;
  const agentsWaitMs = clock.lap();
  log(`rule set ${ruleset.name}: ${topology.probes.length} probes`);
  const replies = await Promise.all(
    topology.probes.map((probe, i) =>
      agents.of(probe.from).probe(
        {
          kind: probe.kind,
          address: probe.target.address,
          port: probe.target.port,
          path: paths[i]!,
          localPort: ports[i]!,
          timeoutMs: probe.timeoutMs,
        },
        stops[i]!.signal,
      ),
    ),
  );
  watch.close();
  const probesMs = clock.lap();
  return { replies, captured: await capture.stop(), captureMs, agentsWaitMs, probesMs };
}

/**
 * The kernel's account of the rule set, and the router's own connection for each hairpin SNAT
 * rule that may take it (the candidates, named once here, are what the warnings judge).
 */
async function readKernel(
  lab: Lab,
  topology: Topology,
  ruleset: RuleSet,
  baseline: CounterBaseline,
  scope: EvidenceScope,
): Promise<{ kernel: KernelEvidence; candidates: RouterOriginatedCandidate[]; transcripts: EvidenceTranscript[] }> {
  const read = await collectEvidence(lab, topology, ruleset, baseline, scope);
  const candidates = routerOriginatedCandidates(topology, read.kernel.router);
  // After everything else is read, so the router's own connection shows in no other evidence.
  const trial = new Reader(lab);
  const routerOriginated = await observeRouterOriginated(trial, candidates, read.kernel.router);
  const kernel = routerOriginated ? { ...read.kernel, router: { ...read.kernel.router, routerOriginated } } : read.kernel;
  return { kernel, candidates, transcripts: [...read.transcripts, ...trial.transcripts] };
}

/** A path unique to the probe, so the server's log line can be matched to it. */
function probePath(runId: string, ruleset: string, probe: string): string {
  return `/natproof/${runId}/${ruleset}/${probe}`;
}

/**
 * A udp probe's DNS name, unique to it as probePath is: its source port is unique within the run
 * (a rule set's name, from a file name, need not be a DNS label).
 */
function queryName(runId: string, port: number, probe: string): string {
  return `${probe}.p${port}.r${runId}.natproof.test`;
}

async function readTraces(captured: CaptureResult): Promise<CaptureTrace[]> {
  return Promise.all(
    captured.points.map(async (p) => ({ node: p.node, interfaces: p.interfaces, packets: parsePcap(await readFile(p.file)) })),
  );
}
