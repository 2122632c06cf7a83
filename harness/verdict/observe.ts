/**
 * One probe's observation: what the packets, the server's log and the client say about it,
 * checked against its expectation. Pure: the run gathers the facts, this judges them.
 */
import { formatPlace, type HopResult, type ProbeResult, type ServerLogLine } from '../result/result.js';
import type { Probe, RuleSet, Topology } from '../scenario/topology.js';
import { analyzeFlow, type FlowObservation, type Sighting } from '../trace/flows.js';
import { analyzeUdpFlow } from '../trace/udp-flows.js';
import { checkExpectation } from './expect.js';
import { udpOutcome } from './udp-outcome.js';

/** What the client itself reported. */
export type ClientOutcome = Pick<ProbeResult, 'ok' | 'status' | 'error' | 'errorDetail' | 'durationMs'>;

export interface ProbeFacts {
  topology: Topology;
  ruleset: RuleSet;
  probe: Probe;
  clientPort: number;
  /** The path the probe requested, unique to it: how the server's log line is found. */
  path: string;
  client: ClientOutcome;
  seen: readonly Sighting[];
  serverLog: readonly ServerLogLine[];
  conntrackEvents: readonly string[];
}

export function observeProbe(f: ProbeFacts): { result: Omit<ProbeResult, 'diagnosis'>; flow: FlowObservation } {
  const { topology, ruleset, probe, clientPort } = f;
  const client = topology.hosts.find((h) => h.name === probe.from)!;
  const analyze = probe.kind === 'udp' ? analyzeUdpFlow : analyzeFlow;
  const flow = analyze(f.seen, { client: client.name, clientAddress: client.address, clientPort, target: probe.target });
  const reply = probe.kind === 'udp' ? udpOutcome(f.client, flow, client.name) : f.client;
  const logged = f.serverLog.find((r) => r.path === f.path);
  const expected = ruleset.expect[probe.name] ?? probe.expect;
  // A TCP probe sends no request, so no server saw one: the capture's SYN is not a request.
  const saw = probe.kind === 'tcp' ? NOT_SEEN : serverSaw(topology, logged, flow.deliveredTo, reply.ok);
  const observed = {
    kind: probe.kind,
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
    ...flow.request.map((h) => ({
      packet: 'request' as const,
      where: formatPlace(h.place),
      direction: h.direction,
      src: h.src,
      dst: h.dst,
      flags: h.flags,
    })),
    ...flow.reply.map((h) => ({
      packet: 'reply' as const,
      where: formatPlace(h.place),
      direction: h.direction,
      src: h.src,
      dst: h.dst,
      flags: h.flags,
    })),
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
    errorDetail: reply.errorDetail,
    serverLog: logged ?? null,
    durationMs: reply.durationMs,
    clientRejectedReply: flow.clientRejectedReply,
    hops,
    conntrack: f.conntrackEvents.filter((l) => l.includes(`src=${client.address} `) && l.includes(`sport=${clientPort} `)),
    expected,
    expectationsMet: failures.length === 0,
    failures,
  };
  return { result, flow };
}

const NOT_SEEN = { address: null, source: null } as const;

/**
 * The source address the server saw: natproof's server logs it. A host that runs its own image
 * has no log natproof can read, so its answer is the source of the SYN delivered to it on the
 * wire, counted only when the exchange completed, as a logged request would be.
 */
function serverSaw(
  topology: Topology,
  logged: ServerLogLine | undefined,
  delivered: FlowObservation['deliveredTo'],
  completed: boolean,
): { address: string | null; source: 'server-log' | 'capture' | null } {
  if (logged) return { address: logged.remoteAddress, source: 'server-log' };
  const server = delivered ? topology.hosts.find((h) => h.name === delivered.host) : undefined;
  if (delivered && server?.image !== undefined && completed) return { address: delivered.src, source: 'capture' };
  return NOT_SEEN;
}
