/**
 * How a captured packet reads in a hop: its endpoints and what it was (TCP flags, `udp`, or the
 * ICMP error's name). Pure.
 */
import { formatEndpoint, type IcmpHeader, type PcapPacket } from './pcap.js';

export interface HopLabel {
  src: string;
  dst: string;
  flags: string;
}

/**
 * TCP and UDP packets by their own endpoints. An ICMP error about a TCP or UDP datagram reads as
 * the answer it stands for: from its sender, with the quoted datagram's ports turned around
 * (`10.0.0.5:53 → 192.0.2.7:20001 [icmp port-unreachable]`), so the router's rewrites of it
 * compare like those of any reply. Anything else is no hop.
 */
export function hopLabel(p: PcapPacket): HopLabel | undefined {
  if (p.tcp) return { src: formatEndpoint(p.src, p.tcp.srcPort), dst: formatEndpoint(p.dst, p.tcp.dstPort), flags: p.tcp.flagText };
  if (p.udp) return { src: formatEndpoint(p.src, p.udp.srcPort), dst: formatEndpoint(p.dst, p.udp.dstPort), flags: 'udp' };
  const inner = p.icmp?.inner;
  if (p.icmp && inner?.srcPort !== undefined && inner.dstPort !== undefined) {
    return { src: formatEndpoint(p.src, inner.dstPort), dst: formatEndpoint(p.dst, inner.srcPort), flags: icmpText(p.icmp) };
  }
  return undefined;
}

const UNREACHABLE_CODES: Readonly<Record<number, string>> = {
  0: 'net-unreachable',
  1: 'host-unreachable',
  2: 'protocol-unreachable',
  3: 'port-unreachable',
  4: 'fragmentation-needed',
  9: 'net-prohibited',
  10: 'host-prohibited',
  13: 'admin-prohibited',
};

/** `icmp port-unreachable`, in iptables' REJECT words where it has them. */
export function icmpText(icmp: Pick<IcmpHeader, 'type' | 'code'>): string {
  if (icmp.type === 3) return `icmp ${UNREACHABLE_CODES[icmp.code] ?? `unreachable code ${icmp.code}`}`;
  if (icmp.type === 11) return 'icmp time-exceeded';
  return `icmp type ${icmp.type} code ${icmp.code}`;
}

/** The hop is an ICMP error (its flags are icmpText's). */
export function isIcmpHop(hop: { flags: string }): boolean {
  return hop.flags.startsWith('icmp ');
}
