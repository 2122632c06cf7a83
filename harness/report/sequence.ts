/**
 * A probe's packets as a sequence diagram: one lane per client, router interface and server,
 * one arrow per packet on a wire and per pass through the router, rewrites highlighted.
 * `sequence()` builds the model from the captured hops; `sequenceSvg()` draws it as inline SVG
 * (presentation attributes only, no ids, so any number of diagrams can share one page).
 */
import { nameOf } from '../verdict/addresses.js';
import { placeOf, type AddressBook, type HopResult, type ProbeResult } from '../result/result.js';
import { escapeXml } from './escape.js';
import { addressOf, split } from './hops.js';
import { isIcmpHop } from '../trace/hop-label.js';
import { changedEndpoints, REWRITE_NAMES } from '../trace/rewrites.js';

export interface Lane {
  /** A host name, or `router:<interface>`. */
  key: string;
  title: string;
  subtitle: string;
  router: boolean;
}

/** A packet on a wire between two lanes, as captured. */
export interface WireArrow {
  kind: 'wire';
  packet: 'request' | 'reply';
  from: number;
  /** Undefined for a lost packet whose destination nobody in the scenario owns. */
  to: number | undefined;
  /** Nobody was seen receiving it. */
  lost: boolean;
  flags: string;
  src: string;
  dst: string;
  /** Which endpoints differ from the packet before it passed the router. */
  rewritten: { src: boolean; dst: boolean };
  problem: string | null;
}

/** The packet's pass through the router, from the interface it entered to the one it left. */
export interface RouterArrow {
  kind: 'router';
  from: number;
  to: number;
  /** e.g. `DNAT: dst → 172.16.0.1:80`; empty when the router changed nothing. */
  rewrites: string[];
}

/** Something that happened at one lane without a packet to draw: where a packet stopped. */
export interface Mark {
  kind: 'mark';
  lane: number;
  text: string;
}

export type Row = WireArrow | RouterArrow | Mark;

export interface Diagram {
  lanes: Lane[];
  rows: Row[];
}

export type SequenceProbe = Pick<ProbeResult, 'kind' | 'hops' | 'client' | 'bypassedRouter' | 'clientRejectedReply'>;

export function sequence(probe: SequenceProbe, book: AddressBook): Diagram {
  const lanes = new LaneSet(book);
  // A connection the router originated starts and ends at its interfaces: no client lane.
  const fromRouter = probe.client === book.router.name;
  if (!fromRouter) lanes.host(probe.client);
  // Router interfaces sit between the clients and the servers, in the order packets met them.
  for (const hop of probe.hops) if (placeOf(hop.where).kind === 'router') lanes.at(hop);
  for (const hop of probe.hops) lanes.at(hop);

  const { request, reply } = split(probe.hops);
  const rows = [...packetRows('request', request, lanes), ...packetRows('reply', reply, lanes, fromRouter)];
  if (fromRouter) return { lanes: lanes.list, rows };
  const clientLane = lanes.host(probe.client);
  if (probe.bypassedRouter) {
    for (const row of rows) {
      if (row.kind === 'wire' && row.packet === 'reply' && row.to === clientLane) row.problem = 'bypassed the router';
    }
  }
  if (probe.clientRejectedReply) {
    const how = probe.kind === 'udp' ? 'ICMP port unreachable' : 'RST';
    rows.push({ kind: 'mark', lane: clientLane, text: `client rejected the reply (sent ${how})` });
  }
  return { lanes: lanes.list, rows };
}

/** Lanes in order of first use, created on demand. */
class LaneSet {
  readonly list: Lane[] = [];
  constructor(private readonly book: AddressBook) {}

  at(hop: HopResult): number {
    const place = placeOf(hop.where);
    return place.kind === 'router' ? this.routerLane(place.iface) : this.host(place.host);
  }

  host(name: string): number {
    const address = this.book.hosts.find((h) => h.name === name)?.address ?? '';
    return this.add({ key: name, title: name, subtitle: address, router: false });
  }

  /** The lane of whoever owns an address, if anyone in the scenario does. */
  owner(address: string): number | undefined {
    const iface = this.book.router.interfaces.find((i) => i.address === address);
    if (iface) return this.routerLane(iface.name);
    const host = this.book.hosts.find((h) => h.address === address);
    return host ? this.host(host.name) : undefined;
  }

  private routerLane(iface: string): number {
    const address = this.book.router.interfaces.find((i) => i.name === iface)?.address ?? '';
    return this.add({ key: `router:${iface}`, title: iface, subtitle: address, router: true });
  }

  private add(lane: Lane): number {
    const found = this.list.findIndex((l) => l.key === lane.key);
    if (found >= 0) return found;
    this.list.push(lane);
    return this.list.length - 1;
  }
}

/** One packet's sightings, in capture order, as rows of the diagram. */
function packetRows(packet: 'request' | 'reply', hops: HopResult[], lanes: LaneSet, toRouter = false): Row[] {
  const rows: Row[] = [];
  let enteredRouter: HopResult | undefined;
  hops.forEach((hop, i) => {
    const previous = hops[i - 1];
    const next = hops[i + 1];
    const atRouter = placeOf(hop.where).kind === 'router';
    if (hop.direction === 'out') {
      const arrived = next?.direction === 'in';
      rows.push({
        kind: 'wire',
        packet,
        from: lanes.at(hop),
        // Not seen arriving anywhere: point at whoever owns the destination, if anyone does.
        to: arrived ? lanes.at(next) : lanes.owner(addressOf(hop.dst)),
        lost: !arrived,
        flags: hop.flags,
        src: hop.src,
        dst: hop.dst,
        rewritten: {
          src: enteredRouter !== undefined && enteredRouter.src !== hop.src,
          dst: enteredRouter !== undefined && enteredRouter.dst !== hop.dst,
        },
        problem: arrived ? null : 'not seen arriving',
      });
      return;
    }
    if (previous?.direction !== 'out') {
      // An arrival with no departure captured before it.
      const from = lanes.owner(addressOf(hop.src)) ?? lanes.at(hop);
      rows.push({
        kind: 'wire',
        packet,
        from,
        to: lanes.at(hop),
        lost: false,
        flags: hop.flags,
        src: hop.src,
        dst: hop.dst,
        rewritten: { src: false, dst: false },
        problem: 'sender not captured',
      });
    }
    if (!atRouter) return;
    enteredRouter = hop;
    if (next?.direction === 'out' && placeOf(next.where).kind === 'router') {
      rows.push({ kind: 'router', from: lanes.at(hop), to: lanes.at(next), rewrites: rewriteTexts(packet, hop, next) });
    } else if (!next) {
      // The answer to the router's own connection ends at its socket.
      rows.push({ kind: 'mark', lane: lanes.at(hop), text: toRouter ? "delivered to the router's own socket" : 'stopped in the router' });
    }
  });
  return rows;
}

function rewriteTexts(packet: 'request' | 'reply', inbound: HopResult, outbound: HopResult): string[] {
  const names = REWRITE_NAMES[packet];
  const changed = changedEndpoints(inbound, outbound);
  const texts: string[] = [];
  // The old value is on the arrow into the router, the new one on the arrow out of it.
  if (changed.destination) texts.push(`${names.destination}: dst → ${outbound.dst}`);
  if (changed.source) texts.push(`${names.source}: src → ${outbound.src}`);
  return texts;
}

/** tcpdump's flag letters in words: `S.` → `SYN-ACK`; a UDP or ICMP hop's own words in capitals: `UDP`, `ICMP port-unreachable`. */
export function flagNames(flags: string): string {
  if (flags === 'udp') return 'UDP';
  if (isIcmpHop({ flags })) return `ICMP${flags.slice('icmp'.length)}`;
  const names: Record<string, string> = { S: 'SYN', F: 'FIN', R: 'RST', P: 'PSH', U: 'URG', '.': 'ACK' };
  return [...flags].map((f) => names[f] ?? f).join('-');
}

const LANE_GAP = 210;
const HEADER = 64;
const LINE = 15;
const COLORS = { request: '#1f4e79', reply: '#2e7d32', router: '#6a3d9a', rewrite: '#b34700', problem: '#c62828', muted: '#666' };

/** The diagram as an `<svg>` element. Everything from the run is escaped. */
export function sequenceSvg(diagram: Diagram, title: string): string {
  const x = (lane: number): number => LANE_GAP / 2 + lane * LANE_GAP;
  const width = Math.max(1, diagram.lanes.length) * LANE_GAP;
  const body: string[] = [];
  let y = HEADER + 12;
  for (const row of diagram.rows) {
    const lines = row.kind === 'router' ? Math.max(1, row.rewrites.length) : 1;
    y += LINE * lines + 22;
    body.push(drawRow(row, y, x, lines, diagram.lanes.length - 1));
  }
  const height = y + 26;
  const lifelines = diagram.lanes.map(
    (_, i) => `<line x1="${x(i)}" y1="${HEADER}" x2="${x(i)}" y2="${height - 8}" stroke="#bbb" stroke-dasharray="4 4"/>`,
  );
  return [
    `<svg class="sequence" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(title)}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="11">`,
    `<title>${escapeXml(title)}</title>`,
    routerBox(diagram.lanes, x, height),
    ...diagram.lanes.map((lane, i) => laneHeader(lane, x(i))),
    ...lifelines,
    ...body,
    '</svg>',
  ].join('\n');
}

function routerBox(lanes: Lane[], x: (lane: number) => number, height: number): string {
  const indexes = lanes.flatMap((l, i) => (l.router ? [i] : []));
  if (indexes.length === 0) return '';
  const left = x(Math.min(...indexes)) - LANE_GAP / 2 + 10;
  const right = x(Math.max(...indexes)) + LANE_GAP / 2 - 10;
  return [
    `<rect x="${left}" y="4" width="${right - left}" height="${height - 8}" rx="8" fill="#f4f0fa" stroke="#d8cce8"/>`,
    `<text x="${left + 8}" y="18" fill="${COLORS.router}" font-weight="bold">router</text>`,
  ].join('\n');
}

function laneHeader(lane: Lane, cx: number): string {
  const w = LANE_GAP - 40;
  return [
    `<rect x="${cx - w / 2}" y="24" width="${w}" height="38" rx="5" fill="#fff" stroke="${lane.router ? COLORS.router : '#555'}"/>`,
    `<text x="${cx}" y="40" text-anchor="middle" font-weight="bold">${escapeXml(lane.title)}</text>`,
    `<text x="${cx}" y="55" text-anchor="middle" fill="${COLORS.muted}">${escapeXml(lane.subtitle)}</text>`,
  ].join('\n');
}

function drawRow(row: Row, y: number, x: (lane: number) => number, lines: number, lastLane: number): string {
  switch (row.kind) {
    case 'wire':
      return wireArrow(row, y, x, lastLane);
    case 'router':
      return routerArrow(row, y, x, lines);
    case 'mark': {
      // Written away from the nearer edge, so it stays inside the picture.
      const right = row.lane < lastLane / 2;
      return `<text x="${x(row.lane) + (right ? -4 : 4)}" y="${y}" text-anchor="${right ? 'start' : 'end'}" fill="${COLORS.problem}" font-weight="bold">✗ ${escapeXml(row.text)}</text>`;
    }
  }
}

function wireArrow(row: WireArrow, y: number, x: (lane: number) => number, lastLane: number): string {
  const color = row.problem ? COLORS.problem : COLORS[row.packet];
  const x1 = x(row.from);
  // A lost packet to an address nobody owns gets a short stub, pointing into the picture.
  const x2 = row.to !== undefined ? x(row.to) : row.from === lastLane ? x1 - 90 : x1 + 90;
  const dir = x2 >= x1 ? 1 : -1;
  const label = [
    `<tspan font-weight="bold">${escapeXml(flagNames(row.flags))}</tspan> `,
    endpoint(row.src, row.rewritten.src),
    ' → ',
    endpoint(row.dst, row.rewritten.dst),
    row.problem ? ` <tspan fill="${COLORS.problem}" font-weight="bold">[${escapeXml(row.problem)}]</tspan>` : '',
  ].join('');
  return [
    `<g class="packet ${row.packet}${row.problem ? ' problem' : ''}">`,
    `<line x1="${x1}" y1="${y}" x2="${x2 - dir * 8}" y2="${y}" stroke="${color}" stroke-width="2"${row.lost ? ' stroke-dasharray="6 3"' : ''}/>`,
    arrowHead(x2, y, dir, color),
    `<text x="${(x1 + x2) / 2}" y="${y - 6}" text-anchor="middle" fill="${color}">${label}</text>`,
    '</g>',
  ].join('\n');
}

function endpoint(value: string, rewritten: boolean): string {
  return rewritten
    ? `<tspan fill="${COLORS.rewrite}" font-weight="bold" text-decoration="underline">${escapeXml(value)}</tspan>`
    : escapeXml(value);
}

function routerArrow(row: RouterArrow, y: number, x: (lane: number) => number, lines: number): string {
  const texts = row.rewrites.length > 0 ? row.rewrites : ['forwarded unchanged'];
  const color = row.rewrites.length > 0 ? COLORS.rewrite : COLORS.muted;
  const top = y - LINE * (lines - 1);
  if (row.from === row.to) {
    // In and out of the same interface (the hairpin): a loop beside the lane, the rewrites to its right.
    const cx = x(row.from);
    const loop = `<path d="M ${cx} ${top - 10} h 34 V ${y + 4} h -26" fill="none" stroke="${COLORS.router}" stroke-width="1.5"/>`;
    const label = texts.map(
      (t, i) => `<text x="${cx + 42}" y="${top - 6 + i * LINE}" fill="${color}" font-weight="bold">${escapeXml(t)}</text>`,
    );
    return [`<g class="rewrite">`, loop, arrowHead(cx, y + 4, -1, COLORS.router), ...label, '</g>'].join('\n');
  }
  const x1 = x(row.from);
  const x2 = x(row.to);
  const dir = x2 >= x1 ? 1 : -1;
  const label = texts.map(
    (t, i) =>
      `<text x="${(x1 + x2) / 2}" y="${top - 6 + i * LINE - LINE * 0.2}" text-anchor="middle" fill="${color}" font-weight="bold">${escapeXml(t)}</text>`,
  );
  return [
    `<g class="rewrite">`,
    `<line x1="${x1}" y1="${y}" x2="${x2 - dir * 8}" y2="${y}" stroke="${COLORS.router}" stroke-width="1.5" stroke-dasharray="3 3"/>`,
    arrowHead(x2, y, dir, COLORS.router),
    ...label,
    '</g>',
  ].join('\n');
}

function arrowHead(tipX: number, y: number, dir: number, color: string): string {
  return `<polygon points="${tipX},${y} ${tipX - dir * 9},${y - 4.5} ${tipX - dir * 9},${y + 4.5}" fill="${color}"/>`;
}

/** The client's name and address, for a diagram's title. */
export function diagramTitle(probe: Pick<ProbeResult, 'name' | 'ruleset' | 'client' | 'target'>, book: AddressBook): string {
  const target = nameOf(book, addressOf(probe.target));
  return `${probe.name} (${probe.ruleset}): ${probe.client} to ${probe.target}${target ? ` (${target})` : ''}`;
}
