/**
 * Follows one udp probe's query and its answer across every capture, as flows.ts does for a
 * TCP handshake. Pure: sightings in, the same FlowObservation out.
 *
 * UDP has no sequence numbers to follow. The query is found at the client by its endpoints (the
 * client's address and natproof's chosen source port, to the target), then everywhere else by
 * its payload: NAT rewrites addresses and ports but never the datagram's bytes, and each probe's
 * DNS query is unique (its own name and id). The answer is a datagram that answers that query
 * (same id, QR set, the question echoed: how a resolver matches it), and an ICMP error answers
 * it when the datagram it quotes is the query as seen at some capture point (NAT rewrites the
 * quoted header along with the ICMP packet's own). Neither needs conntrack or the rules.
 */
import { answers } from '../agent/dns.js';
import { emptyObservation, firstPerPlace, observation, type FlowObservation, type ProbeFlowKey, type Sighting } from './flows.js';
import { IpProtocol, type IcmpInner, type PcapPacket } from './pcap.js';

const ICMP_UNREACHABLE = 3;
const PORT_UNREACHABLE = 3;

export function analyzeUdpFlow(all: readonly Sighting[], key: ProbeFlowKey): FlowObservation {
  const clientEndpoint = `${key.clientAddress}:${key.clientPort}`;
  const target = `${key.target.address}:${key.target.port}`;
  const sent = all.find((s) => s.packet.udp && s.hop.src === clientEndpoint && s.hop.dst === target);
  const query = sent?.packet.udp?.payload;
  if (!sent || !query) return emptyObservation();
  // An empty payload identifies nothing: then only the datagram itself is the query.
  const request = firstPerPlace(all.filter((s) => s === sent || (query.length > 0 && sameBytes(s.packet.udp?.payload, query))));

  const asked = new Set(request.map((s) => `${s.hop.src}>${s.hop.dst}`));
  const isAnswer = (p: PcapPacket): boolean => (p.udp ? answers(query, p.udp.payload) : quotes(p.icmp?.inner, asked));
  const first = all.find((s) => isAnswer(s.packet));
  // The first answer decides what the answer is (a datagram, or an ICMP error of one type and code).
  const sameKind = (p: PcapPacket): boolean =>
    first?.packet.udp ? p.udp !== undefined : p.icmp?.type === first?.packet.icmp?.type && p.icmp?.code === first?.packet.icmp?.code;
  const reply = first ? firstPerPlace(all.filter((s) => isAnswer(s.packet) && sameKind(s.packet))) : [];

  // Only a datagram is refused by the client's socket; an ICMP error is the refusal itself.
  return observation(
    request,
    reply,
    key,
    (atClient) => atClient.packet.udp !== undefined && all.some((s) => rejects(s, atClient, key.client)),
  );
}

/**
 * The client answered the answer with an ICMP port unreachable: its connected socket takes
 * datagrams only from where it sent the query, so an answer from anywhere else finds no socket.
 */
function rejects(s: Sighting, answer: Sighting, client: string): boolean {
  const icmp = s.packet.icmp;
  return (
    s.node === client &&
    s.hop.direction === 'out' &&
    icmp?.type === ICMP_UNREACHABLE &&
    icmp.code === PORT_UNREACHABLE &&
    s.hop.timeNs >= answer.hop.timeNs &&
    quotes(icmp.inner, new Set([`${answer.hop.src}>${answer.hop.dst}`]))
  );
}

/** The ICMP error quotes a UDP datagram with one of these `src>dst` endpoint pairs. */
function quotes(inner: IcmpInner | undefined, endpoints: ReadonlySet<string>): boolean {
  if (inner?.protocol !== IpProtocol.UDP || inner.srcPort === undefined || inner.dstPort === undefined) return false;
  return endpoints.has(`${inner.src}:${inner.srcPort}>${inner.dst}:${inner.dstPort}`);
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((byte, i) => byte === b[i]);
}
