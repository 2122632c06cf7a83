/**
 * One run: load -> build -> for each rule set (reset, apply, capture, probe, analyse) ->
 * teardown. The topology is built once and serves every rule set.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AgentClient } from './agent/client.js';
import type { RequestEvent } from './agent/protocol.js';
import { nodeLabel, type Backend, type Lab } from './backend/backend.js';
import { NatproofError } from './errors.js';
import { applyRules, requireNftablesIptables, resetRouter } from './rules/apply.js';
import type { Probe, RuleSet, RuleSource, Topology } from './scenario/topology.js';
import { startCapture, type CaptureResult } from './trace/capture.js';
import { collectEvidence, formatTranscripts, readCounterBaseline } from './trace/evidence.js';
import { analyzeFlow, sightings, type CaptureTrace, type FlowObservation } from './trace/flows.js';
import { parsePcap } from './trace/pcap.js';
import { addressBook } from './verdict/addresses.js';
import { diagnoseProbe } from './verdict/diagnose.js';
import { checkExpectation } from './verdict/expect.js';
import type { HopResult, ProbeResult, RulesetResult, RunResult } from './verdict/result.js';
import { ruleWarnings } from './verdict/warnings.js';

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
  signal?: AbortSignal;
}

export class RunAbortedError extends NatproofError {
  override readonly name = 'RunAbortedError';
}

const AGENT_START_TIMEOUT_MS = 10_000;
/** Source ports natproof assigns to probes: below Linux's ephemeral range, unique within a run. */
const FIRST_PROBE_PORT = 20_000;

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
  if (wanted.length === 0) return [{ name: rules.name, description: `rules from ${rules.source.origin.file}`, rules: rules.source, expect: {} }];
  return chosen.map((r) => ({ ...r, rules: rules.source }));
}

export async function runScenario(topology: Topology, options: RunOptions): Promise<RunResult> {
  try {
    return await runUnguarded(topology, options);
  } catch (err) {
    // On Ctrl-C the terminal signals tcpdump and the agents too, so the first error seen is
    // often theirs; what the user did is what they should hear about.
    if (options.signal?.aborted && !(err instanceof RunAbortedError)) {
      throw new RunAbortedError('run interrupted; everything it created has been removed', { cause: err });
    }
    throw err;
  }
}

async function runUnguarded(topology: Topology, options: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const log = options.log ?? (() => {});
  const rulesets = selectRulesets(topology, options);
  const runId = options.runId ?? newRunId();
  const workDir = options.outDir ? resolve(options.outDir) : await mkdtemp(join(tmpdir(), `natproof-${runId}-`));
  try {
    await mkdir(workDir, { recursive: true });
    const checkAborted = (): void => {
      if (options.signal?.aborted) throw new RunAbortedError('run interrupted; everything it created has been removed');
    };
    await options.backend.preflight();
    checkAborted();
    log(`building ${topology.name} on ${options.backend.name} (run ${runId})`);
    const lab = await options.backend.build(topology, { runId, log, ...(options.signal ? { signal: options.signal } : {}) });
    const agents = new Map<string, AgentClient>();
    let failure: unknown;
    try {
      checkAborted();
      await Promise.all([requireNftablesIptables(lab), startAgents(lab, topology, agents)]);
      const context: RulesetContext = { topology, lab, agents, runId, workDir, keepArtifacts: Boolean(options.outDir), log, checkAborted };
      const probeResults: ProbeResult[] = [];
      const rulesetResults: RulesetResult[] = [];
      for (const ruleset of rulesets) {
        checkAborted();
        const outcome = await runRuleset(context, ruleset, FIRST_PROBE_PORT + probeResults.length);
        probeResults.push(...outcome.probes);
        rulesetResults.push(outcome.summary);
      }
      const result: RunResult = {
        scenario: topology.name,
        file: topology.file,
        backend: options.backend.name,
        runId,
        passed: rulesetResults.every((r) => r.passed),
        startedAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        rulesets: rulesetResults,
        probes: probeResults,
        artifacts: options.outDir ? workDir : null,
        addresses: addressBook(topology),
      };
      if (options.outDir) await writeFile(join(workDir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
      return result;
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      await tearDown(lab, agents, failure, log);
    }
  } finally {
    if (!options.outDir) await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * Agents, then the lab. Every step runs even when one fails. A teardown failure is an error of
 * its own when the run went well; when the run already failed, that failure is what the user
 * must hear about, and the teardown's is logged beside it.
 */
async function tearDown(lab: Lab, agents: Map<string, AgentClient>, failure: unknown, log: (line: string) => void): Promise<void> {
  const outcomes = await Promise.allSettled([...agents.values()].map((a) => a.close()));
  outcomes.push(...(await Promise.allSettled([lab.destroy()])));
  const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
  if (errors.length === 0) return;
  const message = `teardown of run ${lab.runId} failed: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`;
  if (failure === undefined) throw new AggregateError(errors, message);
  log(message);
}

interface RulesetContext {
  topology: Topology;
  lab: Lab;
  agents: Map<string, AgentClient>;
  runId: string;
  workDir: string;
  keepArtifacts: boolean;
  log: (line: string) => void;
  checkAborted: () => void;
}

/** One rule set on the built topology: reset, apply, capture, probe, analyse. */
async function runRuleset(
  { topology, lab, agents, runId, workDir, keepArtifacts, log, checkAborted }: RulesetContext,
  ruleset: RuleSet,
  firstPort: number,
): Promise<{ probes: ProbeResult[]; summary: RulesetResult }> {
  log(`rule set ${ruleset.name}: applying rules`);
  await resetRouter(lab, topology.router);
  await applyRules(lab, ruleset.rules);
  // Kernel counters live as long as the namespaces: the evidence keeps what grew during the probes.
  const baseline = await readCounterBaseline(lab, topology);
  checkAborted();
  const capture = await startCapture(lab, topology, workDir, ruleset.name);
  // Source ports unique within the run, so no probe meets another's TIME_WAIT or packets.
  const ports = topology.probes.map((_, i) => firstPort + i);
  let evidence: CaptureResult;
  let replies;
  try {
    log(`rule set ${ruleset.name}: ${topology.probes.length} probes`);
    replies = await Promise.all(
      topology.probes.map((probe, i) =>
        agentFor(agents, probe.from).probe({
          address: probe.target.address,
          port: probe.target.port,
          path: probePath(runId, ruleset.name, probe.name),
          localPort: ports[i]!,
          timeoutMs: probe.timeoutMs,
        }),
      ),
    );
  } finally {
    evidence = await capture.stop();
  }
  const logs = await Promise.all([...agents.values()].map(async (a) => (await a.drainRequests()).map((r) => ({ host: a.host, ...r }))));
  const serverLog = logs.flat();
  const seen = sightings(await readTraces(evidence));
  const observed = topology.probes.map((probe, i) =>
    observeProbe(topology, ruleset, probe, ports[i]!, replies[i]!, seen, serverLog, evidence.conntrackEvents, runId),
  );
  // Before the next rule set's reset wipes the counters and the conntrack table. A probe that
  // failed or missed an expectation gets the kernel's whole account; otherwise the rules (for
  // warnings) suffice.
  const scope = observed.some(({ result }) => !result.ok || !result.expectationsMet) ? 'all' : 'rules';
  const kernel = await collectEvidence(lab, topology, ruleset, baseline, scope);
  const probes = observed.map(({ result, flow }) => ({
    ...result,
    diagnosis: diagnoseProbe({ topology, result, flow, evidence: kernel.evidence }),
  }));
  if (keepArtifacts) {
    await writeFile(join(workDir, `${ruleset.name}-server-log.json`), `${JSON.stringify(serverLog, null, 2)}\n`);
    await writeFile(join(workDir, `${ruleset.name}-conntrack-events.txt`), evidence.conntrackEvents.map((l) => `${l}\n`).join(''));
    await writeFile(join(workDir, `${ruleset.name}-kernel.txt`), formatTranscripts(kernel.transcripts));
  }
  return {
    probes,
    summary: {
      name: ruleset.name,
      description: ruleset.description ?? null,
      passed: probes.every((r) => r.expectationsMet),
      captureDrops: evidence.points.reduce((n, p) => n + p.droppedByKernel, 0),
      pcaps: evidence.points.map((p) => p.file),
      captures: evidence.points.map((p) => ({ node: nodeLabel(p.node), file: p.file, interfaces: p.interfaces })),
      evidence: kernel.evidence,
      warnings: ruleWarnings(topology, kernel.evidence),
    },
  };
}

async function startAgents(lab: Lab, topology: Topology, agents: Map<string, AgentClient>): Promise<void> {
  await Promise.all(
    // A host that runs its own image serves with its own server: it has no agent.
    topology.hosts.filter((host) => host.image === undefined).map(async (host) => {
      const agent = new AgentClient(host.name, lab.startAgent(host.name));
      agents.set(host.name, agent);
      await agent.waitReady(AGENT_START_TIMEOUT_MS);
      for (const service of host.services) await agent.serve(service.port);
      if (topology.probes.some((p) => p.from === host.name)) await agent.prepare();
    }),
  );
}

function agentFor(agents: Map<string, AgentClient>, host: string): AgentClient {
  const agent = agents.get(host);
  if (!agent) throw new Error(`no agent for host ${host}`);
  return agent;
}

/** A path unique to the probe, so the server's log line can be matched to it. */
function probePath(runId: string, ruleset: string, probe: string): string {
  return `/natproof/${runId}/${ruleset}/${probe}`;
}

async function readTraces(evidence: CaptureResult): Promise<CaptureTrace[]> {
  return Promise.all(
    evidence.points.map(async (p) => ({ node: p.node, interfaces: p.interfaces, packets: parsePcap(await readFile(p.file)) })),
  );
}

/** What the packets, the server log and the client say about one probe, checked against its expectation. */
function observeProbe(
  topology: Topology,
  ruleset: RuleSet,
  probe: Probe,
  clientPort: number,
  reply: Awaited<ReturnType<AgentClient['probe']>>,
  seen: ReturnType<typeof sightings>,
  serverLog: Array<RequestEvent & { host: string }>,
  conntrackEvents: string[],
  runId: string,
): { result: Omit<ProbeResult, 'diagnosis'>; flow: FlowObservation } {
  const client = topology.hosts.find((h) => h.name === probe.from)!;
  const flow = analyzeFlow(seen, { client: client.name, clientAddress: client.address, clientPort, target: probe.target });
  const logged = serverLog.find((r) => r.path === probePath(runId, ruleset.name, probe.name));
  const expected = ruleset.expect[probe.name] ?? probe.expect;
  const saw = serverSaw(topology, logged, flow.deliveredTo, reply.ok);
  const observed = {
    ok: reply.ok,
    status: reply.status,
    error: reply.error,
    serverSaw: saw.address,
    replyFrom: flow.replyFrom,
    rewrites: flow.rewrites,
    bypassedRouter: flow.bypassedRouter,
  };
  const failures = checkExpectation(expected, observed);
  const hops: HopResult[] = [
    ...flow.request.map((h) => ({ packet: 'request' as const, where: h.where, direction: h.direction, src: h.src, dst: h.dst, flags: h.flags })),
    ...flow.reply.map((h) => ({ packet: 'reply' as const, where: h.where, direction: h.direction, src: h.src, dst: h.dst, flags: h.flags })),
  ];
  const result = {
    name: probe.name,
    ruleset: ruleset.name,
    client: client.name,
    clientAddress: client.address,
    clientPort,
    target: `${probe.target.address}:${probe.target.port}`,
    ...observed,
    serverSawSource: saw.source,
    errorDetail: reply.detail,
    serverLog: logged ?? null,
    durationMs: reply.durationMs,
    clientRejectedReply: flow.clientRejectedReply,
    hops,
    conntrack: conntrackEvents.filter((l) => l.includes(`src=${client.address} `) && l.includes(`sport=${clientPort} `)),
    expected,
    expectationsMet: failures.length === 0,
    failures,
  };
  return { result, flow };
}

/**
 * The source address the server saw: natproof's server logs it. A host that runs its own image
 * has no log natproof can read, so its answer is the source of the SYN delivered to it on the
 * wire, counted only when the exchange completed, as a logged request would be.
 */
function serverSaw(
  topology: Topology,
  logged: RequestEvent | undefined,
  delivered: FlowObservation['deliveredTo'],
  completed: boolean,
): { address: string | null; source: 'server-log' | 'capture' | null } {
  if (logged) return { address: logged.remoteAddress, source: 'server-log' };
  const server = delivered ? topology.hosts.find((h) => h.name === delivered.host) : undefined;
  if (delivered && server?.image !== undefined && completed) return { address: delivered.src, source: 'capture' };
  return { address: null, source: null };
}
