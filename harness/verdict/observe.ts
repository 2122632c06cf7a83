/**
 * One probe's observation: what the packets, the server's log and the client say about it,
 * checked against its expectation. Pure: the run gathers the facts, this judges them.
 */
import { formatPlace, type HopResult, type ProbeResult, type ServerLogLine } from '../result/result.js';
import { routerAddresses, type Probe, type RuleSet, type Topology } from '../scenario/topology.js';
import { parseConntrackEvent, type ConntrackEvent } from '../trace/conntrack.js';
import { analyzeFlow, type FlowObservation, type ProbeFlowKey, type Sighting } from '../trace/flows.js';
import { analyzeUdpFlow } from '../trace/udp-flows.js';
import { answeredBy } from './answered.js';
import { checkExpectation } from './expect.js';
import { deriveRewrites, entryReplied } from './rewrites.js';
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
  const { router } = topology;
  const ownAddresses = routerAddresses(router).map((a) => a.address);
  const { origin, clientAddress, flow, conntrackLines, entry } = locate(f);
  // A UDP socket is not told of every ICMP error that reached its host: the capture completes it.
  const reply = probe.kind === 'udp' ? udpOutcome(f.client, flow, probe.from) : f.client;
  const logged = f.serverLog.find((r) => r.path === f.path);
  const expected = ruleset.expect[probe.name] ?? probe.expect;
  // A TCP probe sends no request, so no server saw one: the capture's SYN is not a request.
  const saw = probe.kind === 'tcp' ? NOT_SEEN : serverSaw(topology, logged, flow.deliveredTo, reply.ok);
  const derived = deriveRewrites({ origin, flow, conntrack: entry, routerAddresses: ownAddresses });
  const answerer = answeredBy({ routerName: router.name, logged, flow, conntrack: entry, routerAddresses: ownAddresses });
  const observed = {
    kind: probe.kind,
    ok: reply.ok,
    status: reply.status,
    error: reply.error,
    serverSaw: saw.address,
    replyFrom: origin === 'router' ? routerReplyFrom(flow, entry) : flow.replyFrom,
    rewrites: derived.rewrites,
    bypassedRouter: flow.bypassedRouter,
    answeredBy: answerer.node,
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
    client: probe.from,
    clientAddress,
    clientPort,
    target: `${probe.target.address}:${probe.target.port}`,
    ...observed,
    rewriteSources: derived.sources,
    requestTransmitted: derived.requestTransmitted,
    answeredBySource: answerer.source,
    serverSawSource: saw.source,
    errorDetail: reply.errorDetail,
    serverLog: logged ?? null,
    durationMs: reply.durationMs,
    clientRejectedReply: flow.clientRejectedReply,
    hops,
    conntrack: conntrackLines,
    expected,
    expectationsMet: failures.length === 0,
    failures,
  };
  return { result, flow };
}

/** The router's source address when no conntrack entry recorded it. */
const UNKNOWN_ADDRESS = '0.0.0.0';

interface Located {
  origin: 'host' | 'router';
  clientAddress: string;
  flow: FlowObservation;
  /** The probe's conntrack event lines, as the result keeps them. */
  conntrackLines: string[];
  /** The same events parsed: the connection's NAT record. */
  entry: ConntrackEvent[];
}

/**
 * The probe's packets and conntrack events. A host's SYN is found by its own address and port. The
 * router's own SYN is seen only leaving it, already rewritten: its conntrack entry (found by the
 * source port natproof chose and the target) names the source the router chose, and its reply
 * tuple the addresses the SYN left with.
 */
function locate(f: ProbeFacts): Located {
  const { topology, probe, clientPort } = f;
  if (probe.from !== topology.router.name) {
    const client = topology.hosts.find((h) => h.name === probe.from)!;
    const flow = follow(f, { client: client.name, clientAddress: client.address, clientPort, target: probe.target });
    const { src, sport } = enteredRouterFrom(flow) ?? { src: client.address, sport: String(clientPort) };
    const lines = f.conntrackEvents.filter((l) => l.includes(`src=${src} `) && l.includes(`sport=${sport} `));
    const entry = parsed(lines).filter((e) => e.original.src === src && e.original.sport === sport);
    return { origin: 'host', clientAddress: client.address, flow, conntrackLines: lines, entry };
  }
  const mine = (e: ConntrackEvent): boolean =>
    e.original.sport === String(clientPort) && e.original.dst === probe.target.address && e.original.dport === String(probe.target.port);
  const lines = f.conntrackEvents.filter((l) => {
    const e = parseConntrackEvent(l);
    return e !== null && mine(e);
  });
  const entry = parsed(lines);
  const first = entry[0];
  if (first) {
    const key = {
      client: topology.router.name,
      clientAddress: first.reply.dst,
      clientPort: Number(first.reply.dport),
      target: { address: first.reply.src, port: Number(first.reply.sport) },
    };
    return { origin: 'router', clientAddress: first.original.src, flow: follow(f, key), conntrackLines: lines, entry };
  }
  // No entry: with no rule that needs conntrack the kernel tracks nothing in the router, and then
  // nothing rewrote the SYN either: it left with the source the router chose and natproof's port.
  const clientAddress = routerSourceOnWire(f) ?? UNKNOWN_ADDRESS;
  const key = { client: topology.router.name, clientAddress, clientPort, target: probe.target };
  return { origin: 'router', clientAddress, flow: follow(f, key), conntrackLines: lines, entry };
}

/** The source address of the router's own request leaving it, found by natproof's port and the target. */
function routerSourceOnWire({ seen, clientPort, probe }: ProbeFacts): string | undefined {
  const dst = `${probe.target.address}:${probe.target.port}`;
  const hop = seen.find(
    ({ hop: h }) => h.place.kind === 'router' && h.direction === 'out' && h.dst === dst && h.src.endsWith(`:${clientPort}`),
  )?.hop;
  return hop?.src.slice(0, hop.src.lastIndexOf(':'));
}

/**
 * The source the request had when it entered the router, from the capture: the client's own,
 * or, behind a forwarder's NAT, the forwarder's. The router's conntrack entry is keyed by it.
 */
function enteredRouterFrom(flow: FlowObservation): { src: string; sport: string } | undefined {
  const hop = flow.request.find((h) => h.place.kind === 'router' && h.direction === 'in');
  const at = hop?.src.lastIndexOf(':') ?? -1;
  if (!hop || at < 0) return undefined;
  return { src: hop.src.slice(0, at), sport: hop.src.slice(at + 1) };
}

/** TCP is followed by its sequence numbers, UDP by the datagram's payload. */
function follow(f: ProbeFacts, key: ProbeFlowKey): FlowObservation {
  const transit = f.topology.forwarders.map((forwarder) => forwarder.name);
  return (f.probe.kind === 'udp' ? analyzeUdpFlow : analyzeFlow)(f.seen, { ...key, transit });
}

function parsed(lines: readonly string[]): ConntrackEvent[] {
  return lines.flatMap((l) => parseConntrackEvent(l) ?? []);
}

/**
 * What the router's own socket saw the answer come from: the kernel un-NATs an answer that
 * matches the entry, so once the answer reached the router it is the entry's original destination.
 */
function routerReplyFrom(flow: FlowObservation, entry: readonly ConntrackEvent[]): string | null {
  const first = entry[0];
  const reached = flow.reply.some((h) => h.place.kind === 'router' && h.direction === 'in') || entryReplied(entry);
  return first && reached ? first.original.dst : flow.replyFrom;
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
