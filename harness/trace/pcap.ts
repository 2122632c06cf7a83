/**
 * A pure reader for classic pcap files, as written by `tcpdump -w`: no I/O, bytes in, packets out.
 *
 * It decodes only what natproof reasons about — IPv4 with its TCP, UDP or ICMP header — from the
 * three link types natproof captures: Ethernet (a single interface), LINUX_SLL (old `-i any`) and
 * LINUX_SLL2 (`-i any -y LINUX_SLL2`, which also records the interface index). Anything else in
 * the file (ARP, IPv6, frames too short to hold the headers) is skipped, not reported.
 *
 * Reference: https://www.tcpdump.org/manpages/pcap-savefile.5.html and
 * https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
 */
import { NatproofError } from '../errors.js';

export interface TcpFlags {
  syn: boolean;
  ack: boolean;
  fin: boolean;
  rst: boolean;
  psh: boolean;
}

export interface TcpHeader {
  srcPort: number;
  dstPort: number;
  /** Raw 32-bit sequence numbers, not tcpdump's relative ones. */
  seq: number;
  ack: number;
  flags: TcpFlags;
  /** Flags as tcpdump prints them inside `Flags [...]`: 'S', 'S.', '.', 'P.', 'F.', 'R', 'R.', or 'none'. */
  flagText: string;
  /** Bytes of TCP payload the IP header announces, whether or not the capture kept them. */
  payloadLength: number;
}

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  /**
   * The datagram's payload as captured (cut short by the snaplen, never longer than the UDP
   * length says). NAT rewrites addresses and ports, never this: it is how a datagram is
   * recognised on both sides of the router.
   */
  payload: Uint8Array;
}

/** The start of the datagram an ICMP error is about, as quoted inside the error. */
export interface IcmpInner {
  src: string;
  dst: string;
  protocol: number;
  /** Present when the quoted datagram is TCP or UDP. */
  srcPort: number | undefined;
  dstPort: number | undefined;
}

export interface IcmpHeader {
  type: number;
  code: number;
  /** Only for error types (unreachable, time exceeded, ...) whose quote could be read. */
  inner: IcmpInner | undefined;
}

export interface PcapPacket {
  /** 0-based record number in the file, counting skipped records, so it lines up with `tcpdump -r -#` minus one. */
  index: number;
  /** Capture time in nanoseconds since the epoch. */
  timeNs: bigint;
  linkType: number;
  /** Interface index inside the capturing namespace (LINUX_SLL2 only). */
  ifindex: number | undefined;
  /** From the SLL/SLL2 packet type; undefined for Ethernet captures. */
  direction: 'in' | 'out' | undefined;
  src: string;
  dst: string;
  protocol: number;
  ipId: number;
  ttl: number;
  tcp: TcpHeader | undefined;
  udp: UdpHeader | undefined;
  icmp: IcmpHeader | undefined;
}

/** The file is not a pcap file natproof can read. A truncated final record is not this error. */
export class PcapFormatError extends NatproofError {
  override readonly name = 'PcapFormatError';
}

/** The link-layer header types natproof reads (pcap LINKTYPE_ values). */
export const LinkType = {
  ETHERNET: 1,
  LINUX_SLL: 113,
  LINUX_SLL2: 276,
} as const;

export const IpProtocol = { ICMP: 1, TCP: 6, UDP: 17 } as const;

export function formatEndpoint(ip: string, port: number): string {
  return `${ip}:${port}`;
}

const FILE_HEADER_LENGTH = 24;
const RECORD_HEADER_LENGTH = 16;
const MAGIC_MICROSECONDS = 0xa1b2c3d4;
const MAGIC_NANOSECONDS = 0xa1b23c4d;
const MAGIC_PCAPNG = 0x0a0d0d0a;
/** libpcap refuses records larger than this; a bigger caplen means a corrupt file, not a big packet. */
const MAX_CAPLEN = 262144;
const ETHERTYPE_IPV4 = 0x0800;

interface FileHeader {
  littleEndian: boolean;
  nsPerFraction: bigint;
  linkType: number;
}

export function parsePcap(data: Uint8Array): PcapPacket[] {
  const file = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const header = readFileHeader(file);
  return readRecords(data, FILE_HEADER_LENGTH, 0, header).packets;
}

/**
 * The complete records of `data` from `offset` on, numbered from `firstIndex`; `offset` ends at
 * the first record not wholly in `data` (tcpdump killed mid-write leaves a final record shorter
 * than it claims; it holds nothing usable, or the rest of it is still to come in a stream).
 */
function readRecords(
  data: Uint8Array,
  start: number,
  firstIndex: number,
  header: FileHeader,
): { packets: PcapPacket[]; offset: number; index: number } {
  const file = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const packets: PcapPacket[] = [];
  let offset = start;
  let index = firstIndex;
  for (; offset + RECORD_HEADER_LENGTH <= file.byteLength; index++) {
    const caplen = file.getUint32(offset + 8, header.littleEndian);
    if (caplen > MAX_CAPLEN) {
      throw new PcapFormatError(
        `pcap record ${index} at byte ${offset} claims ${caplen} captured bytes (limit ${MAX_CAPLEN}); the file is corrupt`,
      );
    }
    const frameStart = offset + RECORD_HEADER_LENGTH;
    if (frameStart + caplen > file.byteLength) break;
    const frame = new DataView(data.buffer, data.byteOffset + frameStart, caplen);
    const packet = decodeFrame(frame, header.linkType);
    if (packet) packets.push({ index, timeNs: recordTime(file, offset, header), linkType: header.linkType, ...packet });
    offset = frameStart + caplen;
  }
  return { packets, offset, index };
}

/**
 * The same reader for a pcap that is still being written (tcpdump -w - as it runs): bytes in, in
 * whatever chunks they arrive, each complete packet out once. Packets are numbered as parsePcap
 * numbers them in the finished file.
 */
export class PcapStream {
  private pending: Uint8Array = new Uint8Array(0);
  private header: FileHeader | undefined;
  private index = 0;

  push(chunk: Uint8Array): PcapPacket[] {
    const data = this.pending.length === 0 ? chunk : concat(this.pending, chunk);
    let offset = 0;
    if (!this.header) {
      if (data.byteLength < FILE_HEADER_LENGTH) {
        this.pending = data;
        return [];
      }
      this.header = readFileHeader(new DataView(data.buffer, data.byteOffset, data.byteLength));
      offset = FILE_HEADER_LENGTH;
    }
    const read = readRecords(data, offset, this.index, this.header);
    this.index = read.index;
    // A copy: the rest may be a view into a chunk the stream reuses.
    this.pending = data.slice(read.offset);
    return read.packets;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.byteLength + b.byteLength);
  joined.set(a, 0);
  joined.set(b, a.byteLength);
  return joined;
}

function readFileHeader(file: DataView): FileHeader {
  if (file.byteLength < FILE_HEADER_LENGTH) {
    throw new PcapFormatError(`not a pcap file: ${file.byteLength} bytes is shorter than the ${FILE_HEADER_LENGTH}-byte file header`);
  }
  // The magic is written in the capturing machine's byte order; reading it both ways tells us which.
  const magicLE = file.getUint32(0, true);
  const magicBE = file.getUint32(0, false);
  const littleEndian = magicLE === MAGIC_MICROSECONDS || magicLE === MAGIC_NANOSECONDS;
  const magic = littleEndian ? magicLE : magicBE;
  if (magic !== MAGIC_MICROSECONDS && magic !== MAGIC_NANOSECONDS) {
    const hint = magicBE === MAGIC_PCAPNG ? ' (this is pcapng; capture with tcpdump -w, or convert with editcap -F pcap)' : '';
    throw new PcapFormatError(`not a pcap file: magic 0x${magicBE.toString(16).padStart(8, '0')}${hint}`);
  }
  // The upper bits of the link-type field carry FCS information, not the type itself.
  const linkType = file.getUint32(20, littleEndian) & 0xffff;
  if (!Object.values<number>(LinkType).includes(linkType)) {
    throw new PcapFormatError(
      `unsupported pcap link type ${linkType}; natproof reads ${LinkType.ETHERNET} (Ethernet), ${LinkType.LINUX_SLL} (LINUX_SLL) and ${LinkType.LINUX_SLL2} (LINUX_SLL2)`,
    );
  }
  return { littleEndian, nsPerFraction: magic === MAGIC_NANOSECONDS ? 1n : 1000n, linkType };
}

function recordTime(file: DataView, offset: number, header: FileHeader): bigint {
  const seconds = BigInt(file.getUint32(offset, header.littleEndian));
  const fraction = BigInt(file.getUint32(offset + 4, header.littleEndian));
  return seconds * 1_000_000_000n + fraction * header.nsPerFraction;
}

type DecodedFrame = Omit<PcapPacket, 'index' | 'timeNs' | 'linkType'>;

function decodeFrame(frame: DataView, linkType: number): DecodedFrame | undefined {
  const link = decodeLinkHeader(frame, linkType);
  if (!link || link.etherType !== ETHERTYPE_IPV4) return undefined;
  const ip = decodeIpv4(frame, link.length);
  if (!ip) return undefined;
  return { ifindex: link.ifindex, direction: link.direction, ...ip };
}

interface LinkHeader {
  length: number;
  etherType: number;
  ifindex: number | undefined;
  direction: 'in' | 'out' | undefined;
}

function decodeLinkHeader(frame: DataView, linkType: number): LinkHeader | undefined {
  switch (linkType) {
    case LinkType.ETHERNET:
      if (frame.byteLength < 14) return undefined;
      return { length: 14, etherType: frame.getUint16(12), ifindex: undefined, direction: undefined };
    case LinkType.LINUX_SLL:
      if (frame.byteLength < 16) return undefined;
      return { length: 16, etherType: frame.getUint16(14), ifindex: undefined, direction: directionOf(frame.getUint16(0)) };
    case LinkType.LINUX_SLL2:
      if (frame.byteLength < 20) return undefined;
      return { length: 20, etherType: frame.getUint16(0), ifindex: frame.getUint32(4), direction: directionOf(frame.getUint8(10)) };
    default:
      return undefined;
  }
}

/** Linux packet types: 0 to this host, 1 broadcast, 2 multicast, 3 to another host, 4 sent by us. */
function directionOf(packetType: number): 'in' | 'out' | undefined {
  if (packetType === 4) return 'out';
  return packetType <= 3 ? 'in' : undefined;
}

type Ipv4Packet = Omit<DecodedFrame, 'ifindex' | 'direction'>;
type Transport = Pick<PcapPacket, 'tcp' | 'udp' | 'icmp'>;

const NO_TRANSPORT: Transport = { tcp: undefined, udp: undefined, icmp: undefined };

function decodeIpv4(frame: DataView, start: number): Ipv4Packet | undefined {
  const ip = ipv4Header(frame, start);
  if (!ip) return undefined;
  // Only the first fragment carries the transport header.
  const transport = ip.fragmentOffset === 0 ? decodeTransport(frame, ip, start + ip.headerLength) : NO_TRANSPORT;
  if (!transport) return undefined;
  return { src: ip.src, dst: ip.dst, protocol: ip.protocol, ipId: ip.id, ttl: ip.ttl, ...transport };
}

/**
 * Undefined when the transport header natproof needs was cut off by the snaplen, so that a TCP,
 * UDP or ICMP packet that is returned at all always has its header.
 */
function decodeTransport(frame: DataView, ip: Ipv4Header, start: number): Transport | undefined {
  switch (ip.protocol) {
    case IpProtocol.TCP: {
      const tcp = decodeTcp(frame, start, ip.totalLength - ip.headerLength);
      return tcp && { ...NO_TRANSPORT, tcp };
    }
    case IpProtocol.UDP: {
      const udp = decodeUdp(frame, start, ip.totalLength - ip.headerLength);
      return udp && { ...NO_TRANSPORT, udp };
    }
    case IpProtocol.ICMP: {
      const icmp = decodeIcmp(frame, start);
      return icmp && { ...NO_TRANSPORT, icmp };
    }
    default:
      return NO_TRANSPORT;
  }
}

interface Ipv4Header {
  headerLength: number;
  totalLength: number;
  fragmentOffset: number;
  protocol: number;
  id: number;
  ttl: number;
  src: string;
  dst: string;
}

/** The fixed IPv4 header at `start`, or undefined if it is not IPv4 or not all captured. */
function ipv4Header(frame: DataView, start: number): Ipv4Header | undefined {
  if (frame.byteLength < start + 20) return undefined;
  const versionAndLength = frame.getUint8(start);
  const headerLength = (versionAndLength & 0x0f) * 4;
  if (versionAndLength >> 4 !== 4 || headerLength < 20 || frame.byteLength < start + headerLength) return undefined;
  return {
    headerLength,
    totalLength: frame.getUint16(start + 2),
    fragmentOffset: frame.getUint16(start + 6) & 0x1fff,
    ttl: frame.getUint8(start + 8),
    protocol: frame.getUint8(start + 9),
    id: frame.getUint16(start + 4),
    src: ipv4Address(frame, start + 12),
    dst: ipv4Address(frame, start + 16),
  };
}

function ipv4Address(view: DataView, offset: number): string {
  return [0, 1, 2, 3].map((i) => view.getUint8(offset + i)).join('.');
}

/** tcpdump's flag letters in tcpdump's order; '.' is ACK. */
const TCP_FLAG_LETTERS: ReadonlyArray<readonly [bit: number, letter: string]> = [
  [0x01, 'F'],
  [0x02, 'S'],
  [0x04, 'R'],
  [0x08, 'P'],
  [0x10, '.'],
  [0x20, 'U'],
  [0x40, 'E'],
  [0x80, 'W'],
];

/**
 * @param segmentLength TCP header plus payload, from the IP total length: trusting it rather than
 * the captured length keeps Ethernet padding out of payloadLength and survives a short snaplen.
 */
function decodeTcp(frame: DataView, start: number, segmentLength: number): TcpHeader | undefined {
  if (frame.byteLength < start + 20) return undefined;
  const headerLength = (frame.getUint8(start + 12) >> 4) * 4;
  if (headerLength < 20) return undefined;
  const bits = frame.getUint8(start + 13);
  const has = (bit: number): boolean => (bits & bit) !== 0;
  return {
    srcPort: frame.getUint16(start),
    dstPort: frame.getUint16(start + 2),
    seq: frame.getUint32(start + 4),
    ack: frame.getUint32(start + 8),
    flags: { fin: has(0x01), syn: has(0x02), rst: has(0x04), psh: has(0x08), ack: has(0x10) },
    flagText:
      TCP_FLAG_LETTERS.filter(([bit]) => has(bit))
        .map(([, letter]) => letter)
        .join('') || 'none',
    payloadLength: Math.max(0, segmentLength - headerLength),
  };
}

/** @param datagramLength UDP header plus payload, from the IP total length (Ethernet padding is not payload). */
function decodeUdp(frame: DataView, start: number, datagramLength: number): UdpHeader | undefined {
  const ports = decodePorts(frame, start);
  if (!ports || frame.byteLength < start + 8) return undefined;
  const length = Math.min(frame.getUint16(start + 4), datagramLength);
  const end = Math.min(frame.byteLength, start + Math.max(8, length));
  const payload = new Uint8Array(frame.buffer, frame.byteOffset + start + 8, end - start - 8);
  return { ...ports, payload };
}

/** Source and destination ports, which TCP and UDP both keep in their first four bytes. */
function decodePorts(frame: DataView, start: number): Pick<UdpHeader, 'srcPort' | 'dstPort'> | undefined {
  if (frame.byteLength < start + 4) return undefined;
  return { srcPort: frame.getUint16(start), dstPort: frame.getUint16(start + 2) };
}

/** ICMP types whose body quotes the offending datagram: unreachable, source quench, redirect, time exceeded, parameter problem. */
const ICMP_ERROR_TYPES: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);

function decodeIcmp(frame: DataView, start: number): IcmpHeader | undefined {
  if (frame.byteLength < start + 8) return undefined;
  const type = frame.getUint8(start);
  return {
    type,
    code: frame.getUint8(start + 1),
    inner: ICMP_ERROR_TYPES.has(type) ? decodeIcmpQuote(frame, start + 8) : undefined,
  };
}

/** NAT must rewrite the quoted header too, which is why natproof wants to see it. */
function decodeIcmpQuote(frame: DataView, start: number): IcmpInner | undefined {
  const ip = ipv4Header(frame, start);
  if (!ip) return undefined;
  const carriesPorts = ip.fragmentOffset === 0 && (ip.protocol === IpProtocol.TCP || ip.protocol === IpProtocol.UDP);
  const ports = carriesPorts ? decodePorts(frame, start + ip.headerLength) : undefined;
  return { src: ip.src, dst: ip.dst, protocol: ip.protocol, srcPort: ports?.srcPort, dstPort: ports?.dstPort };
}
