/**
 * Test-only: builds pcap files byte by byte, so parsePcap can be checked against packets whose
 * every field we chose. Checksums are left zero: the reader does not verify them (real captures
 * carry unfinished offload checksums anyway).
 */
import { IpProtocol, LinkType } from '../../harness/trace/pcap.js';

export interface PcapFileOptions {
  linkType: number;
  precision?: 'usec' | 'nsec';
  byteOrder?: 'little' | 'big';
}

export interface PcapRecord {
  timeNs: bigint;
  frame: Uint8Array;
  /** Keep only this many bytes of the frame, as a short snaplen would. */
  caplen?: number;
}

export function pcapFile(options: PcapFileOptions, records: readonly PcapRecord[]): Uint8Array {
  const littleEndian = (options.byteOrder ?? 'little') === 'little';
  const nsec = options.precision === 'nsec';
  const header = bytes(24, (v) => {
    v.setUint32(0, nsec ? 0xa1b23c4d : 0xa1b2c3d4, littleEndian);
    v.setUint16(4, 2, littleEndian);
    v.setUint16(6, 4, littleEndian);
    v.setUint32(16, 2048, littleEndian);
    v.setUint32(20, options.linkType, littleEndian);
  });
  return concat(header, ...records.map((r) => pcapRecord(r, littleEndian, nsec)));
}

function pcapRecord(record: PcapRecord, littleEndian: boolean, nsec: boolean): Uint8Array {
  const caplen = Math.min(record.caplen ?? record.frame.length, record.frame.length);
  const header = bytes(16, (v) => {
    v.setUint32(0, Number(record.timeNs / 1_000_000_000n), littleEndian);
    const fraction = record.timeNs % 1_000_000_000n;
    v.setUint32(4, Number(nsec ? fraction : fraction / 1000n), littleEndian);
    v.setUint32(8, caplen, littleEndian);
    v.setUint32(12, record.frame.length, littleEndian);
  });
  return concat(header, record.frame.subarray(0, caplen));
}

export interface LinkOptions {
  etherType?: number;
  ifindex?: number;
  /** Linux packet type: 0 host, 1 broadcast, 2 multicast, 3 otherhost, 4 outgoing. */
  packetType?: number;
}

/** Wraps a network-layer packet in the link header of `linkType`. */
export function linkFrame(linkType: number, l3: Uint8Array, options: LinkOptions = {}): Uint8Array {
  const etherType = options.etherType ?? 0x0800;
  const packetType = options.packetType ?? 0;
  switch (linkType) {
    case LinkType.ETHERNET:
      return concat(
        bytes(14, (v) => {
          v.setUint8(5, 0x02);
          v.setUint8(11, 0x01);
          v.setUint16(12, etherType);
        }),
        l3,
      );
    case LinkType.LINUX_SLL:
      return concat(
        bytes(16, (v) => {
          v.setUint16(0, packetType);
          v.setUint16(2, 1); // ARPHRD_ETHER
          v.setUint16(4, 6);
          v.setUint16(14, etherType);
        }),
        l3,
      );
    case LinkType.LINUX_SLL2:
      return concat(
        bytes(20, (v) => {
          v.setUint16(0, etherType);
          v.setUint32(4, options.ifindex ?? 1);
          v.setUint16(8, 1); // ARPHRD_ETHER
          v.setUint8(10, packetType);
          v.setUint8(11, 6);
        }),
        l3,
      );
    default:
      throw new Error(`pcap-writer: no link header for link type ${linkType}`);
  }
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  protocol: number;
  id?: number;
  ttl?: number;
  /** In 8-byte units, as on the wire. */
  fragmentOffset?: number;
  /** Bytes of IP options (a multiple of 4), filled with NOPs. */
  optionsLength?: number;
}

export function ipv4(spec: Ipv4Spec, payload: Uint8Array): Uint8Array {
  const headerLength = 20 + (spec.optionsLength ?? 0);
  const header = bytes(headerLength, (v) => {
    v.setUint8(0, 0x40 | (headerLength / 4));
    v.setUint16(2, headerLength + payload.length);
    v.setUint16(4, spec.id ?? 0);
    v.setUint16(6, spec.fragmentOffset ?? 0);
    v.setUint8(8, spec.ttl ?? 64);
    v.setUint8(9, spec.protocol);
    setAddress(v, 12, spec.src);
    setAddress(v, 16, spec.dst);
    for (let i = 20; i < headerLength; i++) v.setUint8(i, 1); // NOP option
  });
  return concat(header, payload);
}

export interface TcpSpec {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  /** tcpdump letters, e.g. 'S', 'S.', 'FP.'. */
  flags: string;
  payloadLength?: number;
  /** Bytes of TCP options (a multiple of 4), filled with NOPs. */
  optionsLength?: number;
}

const TCP_FLAG_BITS: Readonly<Record<string, number>> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, '.': 0x10, U: 0x20, E: 0x40, W: 0x80 };

export function tcp(spec: TcpSpec): Uint8Array {
  const headerLength = 20 + (spec.optionsLength ?? 0);
  const header = bytes(headerLength, (v) => {
    v.setUint16(0, spec.srcPort);
    v.setUint16(2, spec.dstPort);
    v.setUint32(4, spec.seq ?? 0);
    v.setUint32(8, spec.ack ?? 0);
    v.setUint8(12, (headerLength / 4) << 4);
    v.setUint8(
      13,
      [...spec.flags].reduce((bits, letter) => bits | flagBit(letter), 0),
    );
    v.setUint16(14, 64240);
    for (let i = 20; i < headerLength; i++) v.setUint8(i, 1); // NOP option
  });
  return concat(header, new Uint8Array(spec.payloadLength ?? 0));
}

function flagBit(letter: string): number {
  const bit = TCP_FLAG_BITS[letter];
  if (bit === undefined) throw new Error(`pcap-writer: unknown TCP flag letter '${letter}'`);
  return bit;
}

/** A UDP datagram carrying `payload` (or that many zero bytes). */
export function udp(srcPort: number, dstPort: number, payload: number | Uint8Array = 0): Uint8Array {
  const body = typeof payload === 'number' ? new Uint8Array(payload) : payload;
  const header = bytes(8, (v) => {
    v.setUint16(0, srcPort);
    v.setUint16(2, dstPort);
    v.setUint16(4, 8 + body.length);
  });
  return concat(header, body);
}

/** `body` follows the 4 bytes after type, code and checksum: for errors, the quoted datagram. */
export function icmp(type: number, code: number, body: Uint8Array = new Uint8Array()): Uint8Array {
  const header = bytes(8, (v) => {
    v.setUint8(0, type);
    v.setUint8(1, code);
  });
  return concat(header, body);
}

/** A whole IPv4 TCP packet in one call, for the common case. */
export function tcpPacket(ip: Omit<Ipv4Spec, 'protocol'>, segment: TcpSpec): Uint8Array {
  return ipv4({ ...ip, protocol: IpProtocol.TCP }, tcp(segment));
}

function setAddress(view: DataView, offset: number, address: string): void {
  for (const [i, octet] of address.split('.').entries()) view.setUint8(offset + i, Number(octet));
}

function bytes(length: number, fill: (view: DataView) => void): Uint8Array {
  const out = new Uint8Array(length);
  fill(new DataView(out.buffer));
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
