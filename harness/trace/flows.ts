/**
 * Finds one probe's packets across every capture and derives what the router did to them.
 * Pure: captures in, observations out.
 *
 * A TCP connection keeps its sequence numbers through NAT, so the client's SYN is followed
 * across interfaces by its initial sequence number, and the answer (SYN-ACK or RST) by the
 * acknowledgement of it. Rewrites come from comparing the packet that entered the router with
 * the one that left it: never from the rule text. A udp probe's datagram is followed by
 * udp-flows.ts, into the same FlowObservation.
 */
import type { NodeInterface, NodeRef } from '../backend/backend.js';
import { formatPlace, type HopPlace } from '../result/result.js';
import type { RewriteKind } from '../scenario/topology.js';
import { hopLabel } from './hop-label.js';
import type { PcapPacket } from './pcap.js';
import { rewritesOf } from './rewrites.js';

export interface CaptureTrace {
  node: NodeRef;
  interfaces: NodeInterface[];
  packets: PcapPacket[];
}

/** One sighting of a packet at a capture point. */
export interface Hop {
  /** An interface of the router, or a host's port on a segment. */
  place: HopPlace;
  /** Relative to `place`: into the router or host, or out of it. */
  direction: 'in' | 'out';
  src: string;
  dst: string;
  flags: string;
  timeNs: bigint;
}

export interface ProbeFlowKey {
  client: string;
  clientAddress: string;
  clientPort: number;
  target: { address: string; port: number };
  /** Forwarders on the path: they pass the packets on, so what they receive was not delivered. */
  transit?: readonly string[];
}

export interface FlowObservation {
  /** The client's SYN (or datagram) was seen leaving it. */
  clientSent: boolean;
  request: Hop[];
  reply: Hop[];
  rewrites: RewriteKind[];
  /** Source address of the first answer that reached the client. */
  replyFrom: string | null;
  /** The router handled the request, but the answer reached the client without passing it. */
  bypassedRouter: boolean;
  /** Where the request was delivered, as the receiving host saw it on the wire. */
  deliveredTo: { host: string; src: string; dst: string } | null;
  /** The client answered a reply with a reset, or for UDP an ICMP port unreachable (it did not recognise the sender). */
  clientRejectedReply: boolean;
}

export interface Sighting {
  packet: PcapPacket;
  hop: Hop;
  /** 'router', or the host or forwarder attached to a segment port. */
  node: string;
}

const SEQ_MOD = 2 ** 32;

/** Label every TCP and UDP packet (and ICMP error about one) of every capture with where it was seen, in host terms. */
export function sightings(traces: CaptureTrace[]): Sighting[] {
  const all: Sighting[] = [];
  for (const trace of traces) {
    const byIndex = new Map(trace.interfaces.map((i) => [i.ifindex, i]));
    for (const packet of trace.packets) {
      const iface = packet.ifindex === undefined ? undefined : byIndex.get(packet.ifindex);
      const label = hopLabel(packet);
      if (!label || !iface || !packet.direction) continue;
      const placed = place(trace.node, iface, packet.direction);
      if (!placed) continue;
      all.push({
        packet,
        node: placed.node,
        hop: {
          place: placed.place,
          direction: placed.direction,
          ...label,
          timeNs: packet.timeNs,
        },
      });
    }
  }
  return all.sort((a, b) => (a.hop.timeNs < b.hop.timeNs ? -1 : a.hop.timeNs > b.hop.timeNs ? 1 : 0));
}

function place(
  node: NodeRef,
  iface: NodeInterface,
  direction: 'in' | 'out',
): { node: string; place: HopPlace; direction: 'in' | 'out' } | undefined {
  if (node.kind === 'router') {
    if (iface.name === 'lo') return undefined;
    return { node: 'router', place: { kind: 'router', iface: iface.name }, direction };
  }
  if (node.kind === 'segment') {
    // The router's own port duplicates the router capture; the bridge device sees no forwarded
    // frames. A forwarder's port is kept: its hops show the traffic crossing it.
    if (iface.attached === 'router' || iface.attached === 'bridge' || iface.name === 'lo') return undefined;
    // A frame the switch port received was sent by the host: flip to the host's point of view.
    return {
      node: iface.attached,
      place: { kind: 'host', network: node.network, host: iface.attached },
      direction: direction === 'in' ? 'out' : 'in',
    };
  }
  return undefined;
}

export function analyzeFlow(all: readonly Sighting[], key: ProbeFlowKey): FlowObservation {
  const index = tcpIndex(all);
  const clientEndpoint = `${key.clientAddress}:${key.clientPort}`;
  const target = `${key.target.address}:${key.target.port}`;
  const firstSyn = index.synsFrom.get(clientEndpoint)?.find((s) => s.hop.dst === target);
  if (!firstSyn?.packet.tcp) return emptyObservation();
  const isn = firstSyn.packet.tcp.seq;
  const request = firstPerPlace(index.synsBySeq.get(isn) ?? []);

  const answers = index.answersByAck.get((isn + 1) % SEQ_MOD) ?? [];
  const firstAnswer = answers[0]?.packet.tcp;
  const reply = firstAnswer
    ? firstPerPlace(answers.filter((s) => s.packet.tcp?.seq === firstAnswer.seq && s.packet.tcp.flags.rst === firstAnswer.flags.rst))
    : [];

  return observation(request, reply, key, (atClient) =>
    (index.resetsBy.get(key.client) ?? []).some(
      (s) =>
        s.hop.direction === 'out' &&
        s.packet.tcp?.srcPort === key.clientPort &&
        s.packet.src === key.clientAddress &&
        s.hop.timeNs >= atClient.hop.timeNs,
    ),
  );
}

/** The sightings a TCP flow is found by, each list in capture order. */
interface TcpIndex {
  /** SYNs by the source they were seen with. */
  synsFrom: Map<string, Sighting[]>;
  /** SYNs by sequence number, which NAT does not change. */
  synsBySeq: Map<number, Sighting[]>;
  /** SYN-ACKs and resets by the sequence number they acknowledge. */
  answersByAck: Map<number, Sighting[]>;
  /** Resets by the node they were seen at. */
  resetsBy: Map<string, Sighting[]>;
}

/**
 * Every probe of a rule set is followed through the same sightings: indexed once, a probe costs
 * its own packets, not all of them (hundreds of clients made that quadratic). Sightings are
 * never changed once made, so the index of an array stays right.
 */
const tcpIndexes = new WeakMap<readonly Sighting[], TcpIndex>();

function tcpIndex(all: readonly Sighting[]): TcpIndex {
  const known = tcpIndexes.get(all);
  if (known) return known;
  const index: TcpIndex = { synsFrom: new Map(), synsBySeq: new Map(), answersByAck: new Map(), resetsBy: new Map() };
  const add = <K>(map: Map<K, Sighting[]>, key: K, s: Sighting): void => {
    const list = map.get(key);
    if (list) list.push(s);
    else map.set(key, [s]);
  };
  for (const s of all) {
    const tcp = s.packet.tcp;
    if (!tcp) continue;
    if (isSyn(s.packet)) {
      add(index.synsFrom, s.hop.src, s);
      add(index.synsBySeq, tcp.seq, s);
    }
    if (isAnswer(s.packet)) add(index.answersByAck, tcp.ack, s);
    if (tcp.flags.rst) add(index.resetsBy, s.node, s);
  }
  tcpIndexes.set(all, index);
  return index;
}

/**
 * What a probe's request and reply sightings (first per place, in capture order) show, for
 * TCP and UDP alike; `rejectedByClient` says whether the client refused the reply it received.
 */
export function observation(
  request: readonly Sighting[],
  reply: readonly Sighting[],
  key: ProbeFlowKey,
  rejectedByClient: (atClient: Sighting) => boolean,
): FlowObservation {
  // What entered the router is its first sighting there, what left it the last: inside a router
  // with a bridge a packet is also seen on the bridge device (br0) between the port it came in
  // by and the port it leaves by, and bridge netfilter may rewrite it after br0 saw it.
  const routerRequestIn = request.find((s) => s.node === 'router' && s.hop.direction === 'in');
  const routerRequestOut = [...request].reverse().find((s) => s.node === 'router' && s.hop.direction === 'out');
  const routerReplyIn = reply.find((s) => s.node === 'router' && s.hop.direction === 'in');
  const routerReplyOut = [...reply].reverse().find((s) => s.node === 'router' && s.hop.direction === 'out');
  const atClient = reply.find((s) => s.node === key.client && s.hop.direction === 'in');
  const delivered = [...request].reverse().find((s) => isEndpoint(s, key) && s.node !== key.client && s.hop.direction === 'in');

  return {
    clientSent: request.some((s) => s.node === key.client && s.hop.direction === 'out'),
    request: request.map((s) => s.hop),
    reply: reply.map((s) => s.hop),
    rewrites: [
      ...rewritesOf('request', routerRequestIn?.hop, routerRequestOut?.hop),
      ...rewritesOf('reply', routerReplyIn?.hop, routerReplyOut?.hop),
    ],
    replyFrom: atClient?.packet.src ?? null,
    bypassedRouter: routerRequestIn !== undefined && atClient !== undefined && routerReplyOut === undefined,
    deliveredTo: delivered ? { host: delivered.node, src: delivered.packet.src, dst: delivered.packet.dst } : null,
    clientRejectedReply: atClient !== undefined && rejectedByClient(atClient),
  };
}

/** A sighting at a node that can receive a probe: neither the router nor a forwarder on the path. */
export function isEndpoint(s: Sighting, key: Pick<ProbeFlowKey, 'transit'>): boolean {
  return s.node !== 'router' && !(key.transit ?? []).includes(s.node);
}

function isSyn(p: PcapPacket): boolean {
  return p.tcp?.flags.syn === true && !p.tcp.flags.ack;
}

/** What answers a SYN: a SYN-ACK, or a reset that acknowledges it. */
function isAnswer(p: PcapPacket): boolean {
  return p.tcp?.flags.ack === true && (p.tcp.flags.syn || p.tcp.flags.rst);
}

/** Retransmissions repeat a packet; keep the first sighting at each place and direction. */
export function firstPerPlace(list: Sighting[]): Sighting[] {
  const seen = new Set<string>();
  return list.filter((s) => {
    const key = `${formatPlace(s.hop.place)}|${s.hop.direction}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function emptyObservation(): FlowObservation {
  return {
    clientSent: false,
    request: [],
    reply: [],
    rewrites: [],
    replyFrom: null,
    bypassedRouter: false,
    deliveredTo: null,
    clientRejectedReply: false,
  };
}
