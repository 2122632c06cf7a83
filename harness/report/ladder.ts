/**
 * The seed document's ladder (Original, DNAT, SNAT, Reply, un-SNAT, un-DNAT), built from the
 * packets a run captured, never from the rules. Pure: a probe's hops in, steps out.
 *
 * The router is seen from outside only: the packet that entered it and the one that left it.
 * netfilter rewrites the destination (DNAT) in PREROUTING before it rewrites the source (SNAT)
 * in POSTROUTING, so the DNAT line is the entering packet with the leaving packet's destination,
 * and the SNAT line is the leaving packet. Replies mirror it: un-SNAT restores the destination,
 * then un-DNAT the source.
 */
import { nameOf } from '../verdict/addresses.js';
import type { AddressBook, HopResult, ProbeResult } from '../result/result.js';
import { addressOf, atRouter, hostOf, isReset, split } from './hops.js';
import { isIcmpHop } from '../trace/hop-label.js';
import { changedEndpoints, REWRITE_NAMES } from '../trace/rewrites.js';
import { parseConntrackEvent, type ConntrackEvent, type Tuple } from '../trace/conntrack.js';
import { ROUTER_NAME } from '../scenario/schema.js';

export type StepLabel =
  | 'Original'
  | 'DNAT'
  | 'REDIRECT'
  | 'SNAT'
  | 'Forwarded'
  | 'Reply'
  | 'un-SNAT'
  | 'un-DNAT'
  | 'un-REDIRECT'
  | 'Returned';

export interface LadderStep {
  label: StepLabel;
  src: string;
  dst: string;
  /** The endpoint this step rewrote, so renderers can highlight it. */
  rewrote: 'src' | 'dst' | null;
  /** What went wrong with the packet at this step, in words. */
  notes: string[];
}

/**
 * The conntrack events and what was derived from them are optional: a probe read back from an
 * older result has none, and its ladder is the captures' alone.
 */
export type LadderProbe = Pick<ProbeResult, 'hops' | 'client' | 'target' | 'bypassedRouter' | 'clientRejectedReply'> &
  Partial<Pick<ProbeResult, 'conntrack' | 'rewrites' | 'requestTransmitted' | 'answeredBy'>>;

export function ladder(probe: LadderProbe): LadderStep[] {
  if (probe.client === ROUTER_NAME) return routerLadder(probe);
  const { request, reply } = split(probe.hops);
  const sent = request.find((h) => hostOf(h) === probe.client && h.direction === 'out') ?? request[0];
  if (!sent) return [];
  const steps: LadderStep[] = [step('Original', sent)];

  const routerIn = request.find((h) => atRouter(h, 'in'));
  const routerOut = request.find((h) => atRouter(h, 'out'));
  steps.push(...crossing(routerIn, routerOut, { ...REWRITE_NAMES.request, neither: 'Forwarded' }));
  // The router kept the request: what it did to it is in its conntrack entry, not on a wire.
  const entry = routerIn && !routerOut ? natRecord(probe) : undefined;
  if (entry) steps.push(...kernelRequestSteps(entry, probe));
  const redirected = entry !== undefined && (probe.rewrites ?? []).includes('REDIRECT');
  const delivered = request.find((h) => h.direction === 'in' && hostOf(h) !== undefined && hostOf(h) !== probe.client);

  const answer = reply.find((h) => h.direction === 'out' && hostOf(h) !== undefined) ?? reply[0];
  if (!answer) {
    if (entry && probe.requestTransmitted === false && (probe.rewrites ?? []).includes('DNAT')) {
      last(steps).notes.push('never transmitted: no packet left the router');
    } else last(steps).notes.push(requestEnd(routerIn, routerOut, delivered));
    return steps;
  }
  if (!delivered && !routerOut && routerIn) last(steps).notes.push('the router answered it itself');

  if (redirected && entry) {
    // The router's own socket answered from the address it was redirected to; the answer left
    // with the address the client asked for.
    steps.push({ label: 'Reply', src: endpointOf(entry.reply, 'src'), dst: endpointOf(entry.reply, 'dst'), rewrote: null, notes: [] });
    const left = reply.find((h) => atRouter(h, 'out'));
    if (left) steps.push(step('un-REDIRECT', left, 'src'));
    return finish(steps, probe, reply);
  }
  const replyStep = step('Reply', answer);
  if (isIcmpHop(answer)) replyStep.notes.push(icmpNote(answer.flags));
  else if (isReset(answer)) replyStep.notes.push('reset: nothing accepted the connection');
  if (probe.bypassedRouter) replyStep.notes.push('bypassed the router');
  steps.push(replyStep);

  const replyIn = reply.find((h) => atRouter(h, 'in'));
  const replyOut = reply.find((h) => atRouter(h, 'out'));
  steps.push(...crossing(replyIn, replyOut, { ...REWRITE_NAMES.reply, neither: 'Returned' }));
  return finish(steps, probe, reply);
}

/** Where the answer ended up, noted on the last step. */
function finish(steps: LadderStep[], probe: LadderProbe, reply: readonly HopResult[]): LadderStep[] {
  const replyIn = reply.find((h) => atRouter(h, 'in'));
  const replyOut = reply.find((h) => atRouter(h, 'out'));
  const received = reply.find((h) => hostOf(h) === probe.client && h.direction === 'in');
  const end = last(steps);
  if (!received) end.notes.push(replyIn && !replyOut ? 'stopped in the router' : 'never reached the client');
  else if (probe.clientRejectedReply) end.notes.push('client rejected it');
  else if (addressOf(received.src) !== addressOf(probe.target))
    end.notes.push(`not from ${addressOf(probe.target)}, where the client sent its request`);
  return steps;
}

/**
 * A connection the router originated: captures see it only leaving the router, already
 * rewritten, so its own side (nat OUTPUT, POSTROUTING) comes from its conntrack entry.
 */
function routerLadder(probe: LadderProbe): LadderStep[] {
  const { request, reply } = split(probe.hops);
  const entry = natRecord(probe);
  const left = request.find((h) => atRouter(h, 'out'));
  const original = entry ? { src: endpointOf(entry.original, 'src'), dst: endpointOf(entry.original, 'dst') } : left;
  if (!original) return [];
  const steps: LadderStep[] = [
    { label: 'Original', src: original.src, dst: original.dst, rewrote: null, notes: ['originated by the router'] },
  ];
  if (entry) steps.push(...kernelRequestSteps(entry, probe));
  if (!left) {
    last(steps).notes.push(probe.answeredBy === ROUTER_NAME ? 'delivered to the router itself' : 'never left the router');
    return steps;
  }
  const answer = reply.find((h) => h.direction === 'out' && hostOf(h) !== undefined) ?? reply[0];
  if (!answer) {
    const delivered = request.some((h) => h.direction === 'in' && hostOf(h) !== undefined);
    last(steps).notes.push(delivered ? 'never answered' : 'no host received it');
    return steps;
  }
  const replyStep = step('Reply', answer);
  if (isReset(answer)) replyStep.notes.push('reset: nothing accepted the connection');
  steps.push(replyStep);
  const arrived = reply.find((h) => atRouter(h, 'in'));
  if (!arrived) {
    replyStep.notes.push('never reached the router');
    return steps;
  }
  if (entry) {
    // The kernel undoes its rewrites on the way in: the answer the router's socket gets.
    const rewrites = probe.rewrites ?? [];
    const restored = { src: endpointOf(entry.original, 'dst'), dst: endpointOf(entry.original, 'src') };
    if (rewrites.includes('un-SNAT')) steps.push({ label: 'un-SNAT', src: arrived.src, dst: restored.dst, rewrote: 'dst', notes: [] });
    for (const kind of ['un-DNAT', 'un-REDIRECT'] as const) {
      if (rewrites.includes(kind)) steps.push({ label: kind, src: restored.src, dst: restored.dst, rewrote: 'src', notes: [] });
    }
  }
  return steps;
}

/** The connection's NAT record: the first conntrack event of the probe that parses. */
function natRecord(probe: LadderProbe): ConntrackEvent | undefined {
  return (probe.conntrack ?? []).map(parseConntrackEvent).find((e): e is ConntrackEvent => e !== null);
}

/** The request's rewrites as the kernel recorded them, in the rewrites the result reports. */
function kernelRequestSteps(entry: ConntrackEvent, probe: LadderProbe): LadderStep[] {
  const rewrites = probe.rewrites ?? [];
  const original = { src: endpointOf(entry.original, 'src'), dst: endpointOf(entry.original, 'dst') };
  // The reply tuple mirrors the request as it left NAT: its source is the new destination.
  const sent = { src: endpointOf(entry.reply, 'dst'), dst: endpointOf(entry.reply, 'src') };
  const steps: LadderStep[] = [];
  for (const kind of ['DNAT', 'REDIRECT'] as const) {
    if (rewrites.includes(kind)) steps.push({ label: kind, src: original.src, dst: sent.dst, rewrote: 'dst', notes: [] });
  }
  if (rewrites.includes('SNAT')) steps.push({ label: 'SNAT', src: sent.src, dst: sent.dst, rewrote: 'src', notes: [] });
  return steps;
}

function endpointOf(t: Tuple, end: 'src' | 'dst'): string {
  return end === 'src' ? `${t.src}:${t.sport}` : `${t.dst}:${t.dport}`;
}

/** One line of the ladder as text: `DNAT:     from 172.16.0.2:20006 (dmz-client) to ...`. */
export function ladderLine(s: LadderStep, book: AddressBook): string {
  return ladderSpans(s, book)
    .map((span) => span.text)
    .join('');
}

export interface Span {
  text: string;
  role: 'label' | 'endpoint' | 'rewritten' | 'name' | 'note' | 'plain';
}

/** The line in pieces with their roles, so each renderer can style it its own way. */
export function ladderSpans(s: LadderStep, book: AddressBook): Span[] {
  const spans: Span[] = [
    { text: `${s.label}:`.padEnd(9), role: 'label' },
    { text: ' from ', role: 'plain' },
  ];
  spans.push(...endpoint(s.src, s.rewrote === 'src', book), { text: ' to ', role: 'plain' }, ...endpoint(s.dst, s.rewrote === 'dst', book));
  if (s.notes.length > 0) spans.push({ text: ` [${s.notes.join('; ')}]`, role: 'note' });
  return spans;
}

function endpoint(value: string, rewritten: boolean, book: AddressBook): Span[] {
  const name = nameOf(book, addressOf(value));
  const spans: Span[] = [{ text: value, role: rewritten ? 'rewritten' : 'endpoint' }];
  if (name) spans.push({ text: ` (${name})`, role: 'name' });
  return spans;
}

function step(label: StepLabel, hop: HopResult, rewrote: LadderStep['rewrote'] = null): LadderStep {
  return { label, src: hop.src, dst: hop.dst, rewrote, notes: [] };
}

/** The router's rewrites between the packet that entered it and the one that left it. */
function crossing(
  inbound: HopResult | undefined,
  outbound: HopResult | undefined,
  names: { destination: StepLabel; source: StepLabel; neither: StepLabel },
): LadderStep[] {
  if (!inbound || !outbound) return [];
  const changed = changedEndpoints(inbound, outbound);
  const steps: LadderStep[] = [];
  if (changed.destination) steps.push({ label: names.destination, src: inbound.src, dst: outbound.dst, rewrote: 'dst', notes: [] });
  if (changed.source) steps.push(step(names.source, outbound, 'src'));
  return steps.length > 0 ? steps : [step(names.neither, outbound)];
}

/** An ICMP error in words: `icmp port-unreachable: nothing listens on that port`. */
function icmpNote(flags: string): string {
  return flags === 'icmp port-unreachable' ? `${flags}: nothing listens on that port` : flags;
}

/** Where a request that got no answer was last seen. */
function requestEnd(routerIn: HopResult | undefined, routerOut: HopResult | undefined, delivered: HopResult | undefined): string {
  if (delivered) return 'never answered';
  if (routerOut) return 'no host received it';
  if (routerIn) return 'stopped in the router';
  return 'never reached the router';
}

function last(steps: LadderStep[]): LadderStep {
  return steps[steps.length - 1]!;
}
