/**
 * Deciding probes while the captures are written: PcapStream reads a pcap in any chunks as
 * parsePcap reads the file, and EvidenceWatch decides exactly the probes whose answer bypassed
 * the router and was reset by the client, on the recorded seed run (test/fixtures/dmz-run) and
 * on synthesized packets that come close to that pattern without completing it.
 */
import { describe, expect, it } from 'vitest';
import type { NodeInterface, NodeRef } from '../../harness/backend/backend.js';
import { EvidenceWatch, type EvidenceDecision, type WatchedProbe } from '../../harness/trace/evidence-watch.js';
import { LinkType, parsePcap, PcapStream } from '../../harness/trace/pcap.js';
import { flowKey, nodeRef, RecordedRun } from '../recorded-run.js';
import { concat, icmp, ipv4, linkFrame, pcapFile, tcpPacket, udp, type TcpSpec } from './pcap-writer.js';

const run = RecordedRun.load('test/fixtures/dmz-run');

function chunks(data: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

describe('PcapStream', () => {
  it.each([1, 7, 100, 4096])('reads a recorded capture in %i-byte chunks exactly as parsePcap reads the file', (size) => {
    const file = run.file('dnat-only-segment-dmz.pcap');
    const stream = new PcapStream();
    const streamed = chunks(file, size).flatMap((c) => stream.push(c));
    expect(streamed.length).toBeGreaterThan(0);
    expect(streamed).toEqual(parsePcap(file));
  });
});

/** Every capture of a recorded rule set fed in small chunks, interleaved by point; the decisions made. */
function watchRecorded(ruleset: string): Array<{ probe: string; decision: EvidenceDecision }> {
  const probes = run.probes(ruleset);
  const decided: Array<{ probe: string; decision: EvidenceDecision }> = [];
  const watch = new EvidenceWatch(
    probes.map((p) => ({ kind: 'tcp' as const, ...flowKey(p) })),
    (i, decision) => decided.push({ probe: probes[i]!.name, decision }),
  );
  const feeds = run.captures(ruleset).map((c) => ({
    point: { node: nodeRef(c.node), interfaces: c.interfaces },
    stream: new PcapStream(),
    parts: chunks(run.file(c.file), 50),
  }));
  for (let i = 0; feeds.some((f) => i < f.parts.length); i++) {
    for (const f of feeds) if (i < f.parts.length) watch.feed(f.point, f.stream.push(f.parts[i]!));
  }
  return decided;
}

describe('EvidenceWatch on the recorded seed run', () => {
  it('decides the two DMZ probes of the DNAT-only rule set as the timeout they were, each once', () => {
    const decided = watchRecorded('dnat-only');
    expect(decided.map((d) => d.probe)).toEqual(['dmz-to-public', 'dmz-to-router-dmz']);
    expect(decided.map((d) => d.decision.error)).toEqual(['timeout', 'timeout']);
    expect(decided[0]!.decision.detail).toContain('172.16.0.1:80, not 100.0.0.254:80, and the client reset it');
  });

  it('decides nothing when every probe completes (the hairpin rule set)', () => {
    expect(watchRecorded('hairpin')).toEqual([]);
  });
});

/** The DMZ of a small topology: the client on port p2 (ifindex 20), the server on p3 (ifindex 30). */
const DMZ: { node: NodeRef; interfaces: NodeInterface[] } = {
  node: { kind: 'segment', network: 'dmz' },
  interfaces: [
    { ifindex: 10, name: 'p1', attached: 'router' },
    { ifindex: 20, name: 'p2', attached: 'client' },
    { ifindex: 30, name: 'p3', attached: 'server' },
  ],
};
const PROBE: WatchedProbe = {
  kind: 'tcp',
  client: 'client',
  clientAddress: '172.16.0.2',
  clientPort: 20001,
  target: { address: '100.0.0.254', port: 80 },
};
const ISN = 1000;

/** A packet at the client's switch port: `from` the client is one its port received (SLL2 in). */
function atClient(direction: 'from-client' | 'to-client', src: string, dst: string, segment: TcpSpec): Uint8Array {
  return linkFrame(LinkType.LINUX_SLL2, tcpPacket({ src, dst }, segment), {
    ifindex: 20,
    packetType: direction === 'from-client' ? 0 : 4,
  });
}

const SYN = atClient('from-client', '172.16.0.2', '100.0.0.254', { srcPort: 20001, dstPort: 80, seq: ISN, flags: 'S' });
const STRANGER_SYN_ACK = atClient('to-client', '172.16.0.1', '172.16.0.2', {
  srcPort: 80,
  dstPort: 20001,
  seq: 5000,
  ack: ISN + 1,
  flags: 'S.',
});
const RESET = atClient('from-client', '172.16.0.2', '172.16.0.1', { srcPort: 20001, dstPort: 80, seq: ISN + 1, flags: 'R' });

function decisions(frames: Uint8Array[], point = DMZ): number[] {
  const decided: number[] = [];
  const watch = new EvidenceWatch([undefined, PROBE], (i) => decided.push(i));
  const file = pcapFile(
    { linkType: LinkType.LINUX_SLL2 },
    frames.map((frame, i) => ({ timeNs: BigInt(i + 1) * 1_000_000n, frame })),
  );
  watch.feed(point, parsePcap(file));
  return decided;
}

describe('EvidenceWatch decides only what no later packet can change', () => {
  it('decides the probe (by its index) once the client resets the stranger answer to its SYN', () => {
    expect(decisions([SYN, STRANGER_SYN_ACK, RESET])).toEqual([1]);
    // Retransmissions after the decision decide nothing again.
    expect(decisions([SYN, STRANGER_SYN_ACK, RESET, SYN, STRANGER_SYN_ACK, RESET])).toEqual([1]);
  });

  it('waits while the client has not reset the stranger answer', () => {
    expect(decisions([SYN, STRANGER_SYN_ACK])).toEqual([]);
  });

  it('waits on a reset that does not answer that SYN-ACK: another sequence number, or another peer', () => {
    const wrongSeq = atClient('from-client', '172.16.0.2', '172.16.0.1', { srcPort: 20001, dstPort: 80, seq: ISN + 7, flags: 'R' });
    const otherPeer = atClient('from-client', '172.16.0.2', '172.16.0.9', { srcPort: 20001, dstPort: 80, seq: ISN + 1, flags: 'R' });
    expect(decisions([SYN, STRANGER_SYN_ACK, wrongSeq, otherPeer])).toEqual([]);
  });

  it('waits when the answer came from the target itself: the client decides that connection', () => {
    const own = atClient('to-client', '100.0.0.254', '172.16.0.2', { srcPort: 80, dstPort: 20001, seq: 5000, ack: ISN + 1, flags: 'S.' });
    const reset = atClient('from-client', '172.16.0.2', '100.0.0.254', { srcPort: 20001, dstPort: 80, seq: ISN + 1, flags: 'R' });
    expect(decisions([SYN, own, reset])).toEqual([]);
  });

  it('waits on a stranger packet that does not acknowledge the SYN, or before the SYN was seen', () => {
    const unrelated = atClient('to-client', '172.16.0.1', '172.16.0.2', {
      srcPort: 80,
      dstPort: 20001,
      seq: 5000,
      ack: ISN + 99,
      flags: 'S.',
    });
    expect(decisions([SYN, unrelated, RESET])).toEqual([]);
    expect(decisions([STRANGER_SYN_ACK, RESET])).toEqual([]);
  });

  it("reads only segments: the router's capture cannot tell what the client saw", () => {
    expect(decisions([SYN, STRANGER_SYN_ACK, RESET], { ...DMZ, node: { kind: 'router' } })).toEqual([]);
  });

  it('decides nothing once closed', () => {
    const decided: number[] = [];
    const watch = new EvidenceWatch([PROBE], (i) => decided.push(i));
    watch.close();
    watch.feed(
      DMZ,
      parsePcap(
        pcapFile(
          { linkType: LinkType.LINUX_SLL2 },
          [SYN, STRANGER_SYN_ACK, RESET].map((frame, i) => ({ timeNs: BigInt(i + 1), frame })),
        ),
      ),
    );
    expect(decided).toEqual([]);
  });
});

describe('EvidenceWatch on a UDP query', () => {
  const QUERY_PROBE: WatchedProbe = { ...PROBE, kind: 'udp', target: { address: '100.0.0.254', port: 53 } };
  const at = (direction: 'from-client' | 'to-client', l3: Uint8Array): Uint8Array =>
    linkFrame(LinkType.LINUX_SLL2, l3, { ifindex: 20, packetType: direction === 'from-client' ? 0 : 4 });
  const QUERY = at('from-client', ipv4({ src: '172.16.0.2', dst: '100.0.0.254', protocol: 17 }, udp(20001, 53, 30)));
  const strangerAnswer = ipv4({ src: '172.16.0.1', dst: '172.16.0.2', protocol: 17 }, udp(53, 20001, 46));
  const STRANGER = at('to-client', strangerAnswer);
  /** The client's kernel refusing the stranger's answer: port unreachable, quoting it. */
  const REFUSAL = at(
    'from-client',
    ipv4({ src: '172.16.0.2', dst: '172.16.0.1', protocol: 1 }, icmp(3, 3, concat(strangerAnswer.subarray(0, 28)))),
  );
  const decided = (frames: Uint8Array[], probe = QUERY_PROBE): number[] => {
    const out: number[] = [];
    const watch = new EvidenceWatch([probe], (i) => out.push(i));
    watch.feed(
      DMZ,
      parsePcap(
        pcapFile(
          { linkType: LinkType.LINUX_SLL2 },
          frames.map((frame, i) => ({ timeNs: BigInt(i + 1), frame })),
        ),
      ),
    );
    return out;
  };

  it('decides it once the client refuses an answer from a stranger', () => {
    expect(decided([QUERY, STRANGER, REFUSAL])).toEqual([0]);
  });

  it('waits while the client has not refused it, or when it refused an answer nobody saw arrive', () => {
    expect(decided([QUERY, STRANGER])).toEqual([]);
    expect(decided([QUERY, REFUSAL])).toEqual([]);
  });

  it('reads UDP only for a UDP probe', () => {
    expect(decided([QUERY, STRANGER, REFUSAL], { ...QUERY_PROBE, kind: 'tcp' })).toEqual([]);
  });
});
