/**
 * Decides a probe from the captures while they are written, before the client's own timeout,
 * when the packets already prove how it ends. Conservative: only an outcome that no later packet
 * can change is decided here; everything else (true silence above all) is left to the client.
 *
 * Decided today: a TCP probe whose answer reached the client from an address or port other than
 * the one it connected to (a reply that bypassed the router, not un-DNATed), and that the client
 * reset. The client's socket accepts a SYN-ACK only from its peer, and every retransmitted SYN
 * takes the same conntrack entry and the same path back, so the connection can never complete:
 * the client would report `timeout` at its probe timeout, and reports it now.
 *
 * The same for a UDP probe: its single query was answered from another address or port than the
 * one the client's connected socket sent to, and the client's kernel answered that with an ICMP
 * port unreachable. The probe sends one datagram and the server answers it once, so no answer
 * the socket accepts can follow.
 *
 * A RST or an ICMP error answering the SYN (or the query) needs no watch: the client's socket
 * fails on it at once, and the client's own error is the verdict's.
 */
import type { NodeInterface, NodeRef } from '../backend/backend.js';
import type { ProbeError } from '../result/result.js';
import type { Topology } from '../scenario/topology.js';
import { sightings, type Sighting } from './flows.js';
import type { PcapPacket } from './pcap.js';

/** How a probe ends, as its client would have reported it, and why that is certain already. */
export interface EvidenceDecision {
  error: ProbeError;
  detail: string;
}

/** A probe the watch follows: from a host (the router's own connections are not watched). */
export interface WatchedProbe {
  kind: 'tcp' | 'udp';
  client: string;
  clientAddress: string;
  clientPort: number;
  target: { address: string; port: number };
}

const SEQ_MOD = 2 ** 32;

/** What the client's own capture point showed of one probe so far. */
interface ProbeState {
  probe: WatchedProbe;
  /** The initial sequence number of the client's SYN, once seen leaving it. */
  isn: number | undefined;
  /** Answers to that SYN from elsewhere than the target, seen arriving at the client: `addr:port`. */
  strangers: Set<string>;
  decided: boolean;
}

export class EvidenceWatch {
  private readonly states: ProbeState[];
  /** The probes' indexes by client: a packet is read for its own client's probes only, not all of them. */
  private readonly byClient = new Map<string, number[]>();
  private closed = false;

  /**
   * @param probes by the run's probe index; undefined for a probe not watched.
   * @param decide called at most once per probe, while the watch is open.
   */
  constructor(
    probes: ReadonlyArray<WatchedProbe | undefined>,
    private readonly decide: (index: number, decision: EvidenceDecision) => void,
  ) {
    this.states = probes.map((probe) =>
      probe ? { probe, isn: undefined, strangers: new Set(), decided: false } : undefined,
    ) as ProbeState[];
    probes.forEach((probe, index) => {
      if (probe) this.byClient.set(probe.client, [...(this.byClient.get(probe.client) ?? []), index]);
    });
  }

  /** The run's probes from hosts, by index. */
  static probesOf(topology: Topology, ports: readonly number[]): Array<WatchedProbe | undefined> {
    return topology.probes.map((probe, i) => {
      const host = topology.hosts.find((h) => h.name === probe.from);
      if (!host) return undefined;
      const kind = probe.kind === 'udp' ? 'udp' : 'tcp';
      return { kind, client: host.name, clientAddress: host.address, clientPort: ports[i]!, target: probe.target };
    });
  }

  /** Packets of one capture point, in the order it wrote them. */
  feed(point: { node: NodeRef; interfaces: NodeInterface[] }, packets: PcapPacket[]): void {
    if (this.closed) return;
    // Only a segment shows a host's own packets: the router's capture cannot tell what a client saw.
    if (point.node.kind !== 'segment') return;
    for (const s of sightings([{ node: point.node, interfaces: point.interfaces, packets }])) {
      for (const index of this.byClient.get(s.node) ?? []) {
        const state = this.states[index];
        if (!state || state.decided) continue;
        if (state.probe.kind === 'tcp') this.seeTcp(state, index, s);
        else this.seeUdp(state, index, s);
      }
    }
  }

  /** No decision after this: the probes are over. */
  close(): void {
    this.closed = true;
  }

  private seeTcp(state: ProbeState, index: number, s: Sighting): void {
    const tcp = s.packet.tcp;
    if (!tcp) return;
    const { probe } = state;
    const client = `${probe.clientAddress}:${probe.clientPort}`;
    const target = `${probe.target.address}:${probe.target.port}`;
    if (s.hop.direction === 'out' && s.hop.src === client) {
      if (tcp.flags.syn && !tcp.flags.ack && s.hop.dst === target) state.isn ??= tcp.seq;
      // The client's kernel found no socket for the stranger's SYN-ACK: its reset has the
      // sequence number the SYN-ACK acknowledged, and goes back to the stranger.
      else if (tcp.flags.rst && state.isn !== undefined && tcp.seq === (state.isn + 1) % SEQ_MOD && state.strangers.has(s.hop.dst)) {
        state.decided = true;
        this.decide(index, {
          error: 'timeout',
          detail: `the answer came from ${s.hop.dst}, not ${target}, and the client reset it: no answer can complete the connection, so it would time out (decided from the capture, before the probe timeout)`,
        });
      }
      return;
    }
    const answersSyn = tcp.flags.syn && tcp.flags.ack && state.isn !== undefined && tcp.ack === (state.isn + 1) % SEQ_MOD;
    if (s.hop.direction === 'in' && s.hop.dst === client && answersSyn && s.hop.src !== target) state.strangers.add(s.hop.src);
  }

  private seeUdp(state: ProbeState, index: number, s: Sighting): void {
    const { probe } = state;
    const client = `${probe.clientAddress}:${probe.clientPort}`;
    const target = `${probe.target.address}:${probe.target.port}`;
    if (s.packet.udp && s.hop.direction === 'in' && s.hop.dst === client && s.hop.src !== target) {
      state.strangers.add(s.hop.src);
      return;
    }
    // The ICMP error reads as a hop from the client to the stranger (hop-label.ts).
    const icmp = s.packet.icmp;
    const portUnreachable = icmp?.type === 3 && icmp.code === 3 && icmp.inner?.protocol === UDP;
    if (portUnreachable && s.hop.direction === 'out' && s.hop.src === client && state.strangers.has(s.hop.dst)) {
      state.decided = true;
      this.decide(index, {
        error: 'timeout',
        detail: `the answer came from ${s.hop.dst}, not ${target}, and the client's kernel refused it (ICMP port unreachable): the one query has had its one answer, so it would time out (decided from the capture, before the probe timeout)`,
      });
    }
  }
}

const UDP = 17;
