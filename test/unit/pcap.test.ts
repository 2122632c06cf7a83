/**
 * parsePcap: synthesized files (pcap-writer.ts) pin down each field and link type; two real
 * captures prove the reader agrees with tcpdump on what the kernel actually wrote.
 *
 * How test/fixtures/tcp-handshake-{sll2,eth}.pcap were made (as root, tcpdump 4.99.x / libpcap 1.10):
 *
 *   ip netns add nppcap-a; ip netns add nppcap-b
 *   ip link add nppcap-va netns nppcap-a type veth peer name nppcap-vb netns nppcap-b
 *   ip -n nppcap-a addr add 10.99.0.1/24 dev nppcap-va; ip -n nppcap-b addr add 10.99.0.2/24 dev nppcap-vb
 *   ip -n nppcap-a link set lo up; ip -n nppcap-b link set lo up
 *   ip -n nppcap-a link set nppcap-va up; ip -n nppcap-b link set nppcap-vb up
 *   ip netns exec nppcap-a tcpdump -i any -y LINUX_SLL2 -s 2048 --immediate-mode -U -w tcp-handshake-sll2.pcap &
 *   ip netns exec nppcap-a tcpdump -i nppcap-va -s 2048 --immediate-mode -U -w tcp-handshake-eth.pcap &
 *   # ...wait until both print 'listening on' on stderr, then in nppcap-a a server that answers once:
 *   ip netns exec nppcap-a node -e 'const s = require("net").createServer((c) => c.once("data", () => c.end("pong\n")));
 *     s.listen(8080, "10.99.0.1", () => setTimeout(() => s.close(), 3000))' &
 *   # and from nppcap-b: one exchange, then a connect to a closed port, then UDP to a closed port:
 *   ip netns exec nppcap-b node -e 'const net = require("net"), dgram = require("dgram");
 *     const c = net.connect(8080, "10.99.0.1", () => c.write("ping\n"));
 *     c.on("close", () => net.connect(8081, "10.99.0.1").on("error", () => {
 *       const u = dgram.createSocket("udp4"); u.send("hi", 9999, "10.99.0.1", () => setTimeout(() => u.close(), 200)); }));'
 *   kill -INT <both tcpdumps>; ip netns del nppcap-a; ip netns del nppcap-b
 *
 * Both files hold 18 records: ARP request and reply, 10 TCP segments on 8080, SYN and reset on 8081,
 * the UDP datagram and its ICMP port unreachable, then two IPv6 multicast/ND frames.
 * Expected values below were read off `tcpdump -nn -tt -e -v -r` of the same files.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatEndpoint, IpProtocol, LinkType, parsePcap, PcapFormatError, type PcapPacket } from '../../harness/trace/pcap.js';
import { concat, icmp, ipv4, linkFrame, pcapFile, tcpPacket, udp } from './pcap-writer.js';

const T0 = 1_700_000_000_123_456_789n;
const CLIENT = { src: '192.0.2.10', dst: '198.51.100.7' };
const SYN = { srcPort: 40000, dstPort: 443, seq: 1000, flags: 'S' };

/** One-record file of `linkType` holding `l3`. */
function single(linkType: number, l3: Uint8Array, link: Parameters<typeof linkFrame>[2] = {}): Uint8Array {
  return pcapFile({ linkType }, [{ timeNs: T0, frame: linkFrame(linkType, l3, link) }]);
}

function only(file: Uint8Array): PcapPacket {
  const packets = parsePcap(file);
  expect(packets).toHaveLength(1);
  return packets[0]!;
}

describe('parsePcap on synthesized files', () => {
  describe.each([
    ['Ethernet', LinkType.ETHERNET],
    ['LINUX_SLL', LinkType.LINUX_SLL],
    ['LINUX_SLL2', LinkType.LINUX_SLL2],
  ])('%s', (_name, linkType) => {
    it('reads the IPv4 and TCP header fields back exactly as written', () => {
      const packet = only(single(linkType, tcpPacket({ ...CLIENT, id: 4321, ttl: 63 }, { ...SYN, seq: 0xfffffff0, ack: 7 })));
      expect(packet).toMatchObject({
        index: 0,
        linkType,
        src: '192.0.2.10',
        dst: '198.51.100.7',
        protocol: IpProtocol.TCP,
        ipId: 4321,
        ttl: 63,
        tcp: { srcPort: 40000, dstPort: 443, seq: 0xfffffff0, ack: 7, flagText: 'S', payloadLength: 0 },
        udp: undefined,
        icmp: undefined,
      });
    });

    it('skips ARP and IPv6 frames but still counts them in index', () => {
      const arp = linkFrame(linkType, new Uint8Array(28), { etherType: 0x0806 });
      const ipv6 = linkFrame(linkType, new Uint8Array(40), { etherType: 0x86dd });
      const file = pcapFile(
        { linkType },
        [arp, ipv6, linkFrame(linkType, tcpPacket(CLIENT, SYN))].map((frame) => ({ timeNs: T0, frame })),
      );
      expect(parsePcap(file).map((p) => p.index)).toEqual([2]);
    });
  });

  it.each([
    [4, 'out'],
    [0, 'in'],
    [1, 'in'],
    [2, 'in'],
    [3, 'in'],
    [5, undefined],
  ] as const)('LINUX_SLL2 packet type %i means direction %s, with the interface index kept', (packetType, direction) => {
    const packet = only(single(LinkType.LINUX_SLL2, tcpPacket(CLIENT, SYN), { packetType, ifindex: 7 }));
    expect(packet).toMatchObject({ direction, ifindex: 7 });
  });

  it('LINUX_SLL gives a direction but no interface index', () => {
    const packet = only(single(LinkType.LINUX_SLL, tcpPacket(CLIENT, SYN), { packetType: 4 }));
    expect(packet).toMatchObject({ direction: 'out', ifindex: undefined });
  });

  it('Ethernet gives neither direction nor interface index', () => {
    expect(only(single(LinkType.ETHERNET, tcpPacket(CLIENT, SYN)))).toMatchObject({ direction: undefined, ifindex: undefined });
  });

  it.each([
    ['usec', 'little', T0 - 789n],
    ['usec', 'big', T0 - 789n],
    ['nsec', 'little', T0],
    ['nsec', 'big', T0],
  ] as const)('reads %s timestamps from a %s-endian file', (precision, byteOrder, expected) => {
    const frame = linkFrame(LinkType.LINUX_SLL2, tcpPacket(CLIENT, SYN), { ifindex: 3 });
    const packet = only(pcapFile({ linkType: LinkType.LINUX_SLL2, precision, byteOrder }, [{ timeNs: T0, frame }]));
    expect(packet.timeNs).toBe(expected);
    expect(packet.ifindex).toBe(3);
  });

  it.each(['S', 'S.', '.', 'P.', 'F.', 'FP.', 'R', 'R.', 'SEW', '.U', 'none'])(
    'prints TCP flags %s as tcpdump 4.99 does, in its letter order',
    (text) => {
      const packet = only(single(LinkType.ETHERNET, tcpPacket(CLIENT, { ...SYN, flags: text === 'none' ? '' : text })));
      expect(packet.tcp?.flagText).toBe(text);
    },
  );

  it('sets the boolean flags from the same bits', () => {
    const packet = only(single(LinkType.ETHERNET, tcpPacket(CLIENT, { ...SYN, flags: 'FP.' })));
    expect(packet.tcp?.flags).toEqual({ fin: true, psh: true, ack: true, syn: false, rst: false });
  });

  it('counts payload from the IP total length, so Ethernet padding is not payload', () => {
    const frame = concat(linkFrame(LinkType.ETHERNET, tcpPacket(CLIENT, { ...SYN, flags: 'R.' })), new Uint8Array(6));
    const packet = only(pcapFile({ linkType: LinkType.ETHERNET }, [{ timeNs: T0, frame }]));
    expect(packet.tcp?.payloadLength).toBe(0);
  });

  it('reports the full payload length even when the snaplen cut the payload off', () => {
    const frame = linkFrame(LinkType.ETHERNET, tcpPacket(CLIENT, { ...SYN, flags: 'P.', payloadLength: 1400 }));
    const packet = only(pcapFile({ linkType: LinkType.ETHERNET }, [{ timeNs: T0, frame, caplen: 14 + 20 + 20 }]));
    expect(packet.tcp?.payloadLength).toBe(1400);
  });

  it('finds the transport header after IP and TCP options', () => {
    const packet = only(
      single(LinkType.ETHERNET, tcpPacket({ ...CLIENT, optionsLength: 8 }, { ...SYN, optionsLength: 20, payloadLength: 3 })),
    );
    expect(packet.tcp).toMatchObject({ srcPort: 40000, dstPort: 443, payloadLength: 3 });
  });

  it('reads UDP ports', () => {
    const packet = only(single(LinkType.LINUX_SLL2, ipv4({ ...CLIENT, protocol: IpProtocol.UDP }, udp(5353, 53, 30))));
    expect(packet).toMatchObject({ protocol: IpProtocol.UDP, udp: { srcPort: 5353, dstPort: 53 }, tcp: undefined });
  });

  it("reads a UDP datagram's payload, byte for byte", () => {
    const payload = new Uint8Array([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 7, 8, 9]);
    const packet = only(single(LinkType.LINUX_SLL2, ipv4({ ...CLIENT, protocol: IpProtocol.UDP }, udp(20001, 53, payload))));
    expect(packet.udp?.payload).toEqual(payload);
  });

  it("keeps Ethernet padding out of a short datagram's payload", () => {
    // A 2-byte datagram makes a 46-byte minimum Ethernet payload: the rest is padding, not data.
    const l3 = ipv4({ ...CLIENT, protocol: IpProtocol.UDP }, udp(20001, 53, new Uint8Array([1, 2])));
    const packet = only(single(LinkType.ETHERNET, concat(l3, new Uint8Array(46 - l3.length))));
    expect(packet.udp?.payload).toEqual(new Uint8Array([1, 2]));
  });

  it('keeps what the snaplen left of a payload, and drops a datagram whose UDP header was cut', () => {
    const l3 = ipv4({ ...CLIENT, protocol: IpProtocol.UDP }, udp(20001, 53, new Uint8Array([1, 2, 3, 4, 5, 6])));
    const cut = (caplen: number): PcapPacket[] =>
      parsePcap(pcapFile({ linkType: LinkType.LINUX_SLL2 }, [{ timeNs: T0, frame: linkFrame(LinkType.LINUX_SLL2, l3), caplen }]));
    expect(cut(20 + 20 + 8 + 2)[0]?.udp?.payload).toEqual(new Uint8Array([1, 2]));
    expect(cut(20 + 20 + 6)).toEqual([]);
  });

  it('reads the datagram an ICMP port unreachable quotes, ports included', () => {
    const quoted = ipv4({ src: '198.51.100.7', dst: '192.0.2.10', protocol: IpProtocol.UDP }, udp(5353, 9999));
    const packet = only(single(LinkType.LINUX_SLL2, ipv4({ ...CLIENT, protocol: IpProtocol.ICMP }, icmp(3, 3, quoted))));
    expect(packet.icmp).toEqual({
      type: 3,
      code: 3,
      inner: { src: '198.51.100.7', dst: '192.0.2.10', protocol: IpProtocol.UDP, srcPort: 5353, dstPort: 9999 },
    });
  });

  it('reads a TCP quote in time exceeded from its first 8 bytes, which is all ICMP promises', () => {
    const quoted = tcpPacket({ src: '10.0.0.2', dst: '203.0.113.9', optionsLength: 4 }, { srcPort: 51000, dstPort: 80, flags: 'S' });
    const packet = only(
      single(LinkType.LINUX_SLL2, ipv4({ ...CLIENT, protocol: IpProtocol.ICMP }, icmp(11, 0, quoted.subarray(0, 24 + 8)))),
    );
    expect(packet.icmp?.inner).toEqual({ src: '10.0.0.2', dst: '203.0.113.9', protocol: IpProtocol.TCP, srcPort: 51000, dstPort: 80 });
  });

  it('gives echo requests no quote, and an error with a cut-off quote none either', () => {
    const echo = only(single(LinkType.ETHERNET, ipv4({ ...CLIENT, protocol: IpProtocol.ICMP }, icmp(8, 0, new Uint8Array(56)))));
    expect(echo.icmp).toEqual({ type: 8, code: 0, inner: undefined });
    const cut = only(single(LinkType.ETHERNET, ipv4({ ...CLIENT, protocol: IpProtocol.ICMP }, icmp(3, 1, new Uint8Array([0x45, 0, 0])))));
    expect(cut.icmp).toEqual({ type: 3, code: 1, inner: undefined });
  });

  it('gives a non-first fragment no transport header, since it carries none', () => {
    const packet = only(single(LinkType.ETHERNET, ipv4({ ...CLIENT, protocol: IpProtocol.TCP, fragmentOffset: 185 }, new Uint8Array(100))));
    expect(packet).toMatchObject({ protocol: IpProtocol.TCP, tcp: undefined });
  });

  it.each([
    ['inside the link header', 10],
    ['inside the IP header', 14 + 12],
    ['inside the TCP header', 14 + 20 + 10],
  ])('skips a packet whose capture ends %s', (_where, caplen) => {
    const frame = linkFrame(LinkType.ETHERNET, tcpPacket(CLIENT, SYN));
    const file = pcapFile({ linkType: LinkType.ETHERNET }, [
      { timeNs: T0, frame, caplen },
      { timeNs: T0, frame },
    ]);
    expect(parsePcap(file).map((p) => p.index)).toEqual([1]);
  });

  it('ignores a final record cut short, as when tcpdump is killed mid-write', () => {
    const frame = linkFrame(LinkType.LINUX_SLL2, tcpPacket(CLIENT, SYN));
    const file = pcapFile({ linkType: LinkType.LINUX_SLL2 }, [
      { timeNs: T0, frame },
      { timeNs: T0, frame },
    ]);
    expect(parsePcap(file.subarray(0, file.length - 5))).toHaveLength(1);
    expect(parsePcap(file.subarray(0, file.length - frame.length - 10))).toHaveLength(1);
  });

  it('reads a file that sits at an offset inside a larger buffer, as pooled Buffers do', () => {
    const file = single(LinkType.ETHERNET, tcpPacket(CLIENT, SYN));
    const padded = concat(new Uint8Array(13), file);
    expect(only(padded.subarray(13)).src).toBe('192.0.2.10');
  });

  it('reads a file with a header and no packets as no packets', () => {
    expect(parsePcap(pcapFile({ linkType: LinkType.LINUX_SLL2 }, []))).toEqual([]);
  });

  describe('rejects what is not a pcap file it can read, with PcapFormatError', () => {
    const valid = single(LinkType.ETHERNET, tcpPacket(CLIENT, SYN));

    it.each([
      ['an empty file', new Uint8Array(), /shorter than the 24-byte file header/],
      ['a truncated file header', valid.subarray(0, 20), /shorter than the 24-byte file header/],
      ['a bad magic', concat(new TextEncoder().encode('GET /'), valid.subarray(5)), /not a pcap file: magic 0x47455420/],
      ['pcapng', concat(new Uint8Array([0x0a, 0x0d, 0x0d, 0x0a]), valid.subarray(4)), /this is pcapng/],
      ['an unsupported link type', pcapFile({ linkType: 105 }, []), /unsupported pcap link type 105; natproof reads 1 .* 113 .* 276/],
    ])('%s', (_what, data, message) => {
      expect(() => parsePcap(data)).toThrow(PcapFormatError);
      expect(() => parsePcap(data)).toThrow(message);
    });

    it('a record claiming more bytes than libpcap would ever write', () => {
      const corrupt = valid.slice();
      new DataView(corrupt.buffer).setUint32(24 + 8, 0xffffffff, true);
      expect(() => parsePcap(corrupt)).toThrow(/record 0 at byte 24 claims 4294967295 captured bytes/);
    });
  });

  it('formats an endpoint as ip:port', () => {
    expect(formatEndpoint('10.0.0.1', 8080)).toBe('10.0.0.1:8080');
  });
});

describe('parsePcap on real captures of one TCP exchange over a veth', () => {
  const fixture = (name: string): PcapPacket[] => parsePcap(readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));
  const sll2 = fixture('tcp-handshake-sll2.pcap');
  const eth = fixture('tcp-handshake-eth.pcap');
  const onPort = (packets: PcapPacket[], port: number): PcapPacket[] =>
    packets.filter((p) => p.tcp?.srcPort === port || p.tcp?.dstPort === port);

  it('keeps the 14 IPv4 records and skips the ARP and IPv6 ones around them', () => {
    expect(sll2.map((p) => p.index)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(eth.map((p) => p.index)).toEqual(sll2.map((p) => p.index));
  });

  it('sees the flags of the exchange on port 8080 as tcpdump printed them', () => {
    expect(onPort(sll2, 8080).map((p) => p.tcp?.flagText)).toEqual(['S', 'S.', '.', 'P.', '.', 'P.', '.', 'F.', 'F.', '.']);
  });

  it('has the SYN-ACK acknowledge the SYN sequence number plus one, and the client ACK the reverse', () => {
    const [syn, synAck, ack] = onPort(sll2, 8080).map((p) => p.tcp!);
    expect(syn).toMatchObject({ srcPort: 32960, dstPort: 8080, seq: 4242500641 });
    expect(synAck).toMatchObject({ srcPort: 8080, dstPort: 32960, seq: 330805975, ack: syn!.seq + 1 });
    expect(ack).toMatchObject({ seq: syn!.seq + 1, ack: synAck!.seq + 1 });
  });

  it('counts the 5-byte ping and pong as payload', () => {
    const pushes = onPort(sll2, 8080).filter((p) => p.tcp?.flags.psh);
    expect(pushes.map((p) => [formatEndpoint(p.src, p.tcp!.srcPort), p.tcp!.payloadLength])).toEqual([
      ['10.99.0.2:32960', 5],
      ['10.99.0.1:8080', 5],
    ]);
  });

  it('answers the SYN to the closed port with a reset that acknowledges it', () => {
    const [syn, reset] = onPort(sll2, 8081);
    expect(reset?.tcp).toMatchObject({ flagText: 'R.', seq: 0, ack: syn!.tcp!.seq + 1 });
  });

  it('in the -i any capture, marks what the peer sent in and what the namespace sent out, all on ifindex 2', () => {
    for (const p of sll2)
      expect({ ifindex: p.ifindex, direction: p.direction }).toEqual({ ifindex: 2, direction: p.src === '10.99.0.2' ? 'in' : 'out' });
  });

  it('in the Ethernet capture, has no interface index or direction', () => {
    for (const p of eth)
      expect({ linkType: p.linkType, ifindex: p.ifindex, direction: p.direction }).toEqual({
        linkType: 1,
        ifindex: undefined,
        direction: undefined,
      });
  });

  it('sees the same IPv4 packets in both captures', () => {
    const summary = (p: PcapPacket): unknown => [p.src, p.dst, p.ipId, p.ttl, p.tcp, p.udp, p.icmp];
    expect(eth.map(summary)).toEqual(sll2.map(summary));
  });

  it("reads the UDP datagram's payload as node sent it", () => {
    const datagram = sll2.find((p) => p.udp);
    expect(Buffer.from(datagram!.udp!.payload).toString()).toBe('hi');
  });

  it('reads the quoted UDP datagram from the ICMP port unreachable', () => {
    const unreachable = sll2.find((p) => p.icmp);
    expect(unreachable).toMatchObject({
      src: '10.99.0.1',
      dst: '10.99.0.2',
      direction: 'out',
      icmp: { type: 3, code: 3, inner: { src: '10.99.0.2', dst: '10.99.0.1', protocol: IpProtocol.UDP, srcPort: 51855, dstPort: 9999 } },
    });
  });

  it('timestamps packets to the microsecond tcpdump -tt shows', () => {
    expect(sll2[0]!.timeNs).toBe(1795604642_298233_000n);
    expect(eth[0]!.timeNs).toBe(1795604642_298234_000n);
    expect(sll2.every((p, i) => i === 0 || p.timeNs >= sll2[i - 1]!.timeNs)).toBe(true);
  });
});
