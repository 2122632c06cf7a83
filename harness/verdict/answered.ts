/**
 * Which node accepted a probe's connection: a host, the router itself, or nobody. Pure.
 *
 * The server log of whichever agent logged the request says it first hand (an HTTP probe). Else
 * the capture: the SYN-ACK was first seen leaving a host's port on its segment (that host), or
 * leaving the router although the request never left the router (the router's own socket). A
 * connection that never touched a wire (the router connecting to itself) is the router's when
 * the kernel's conntrack entry answered it from one of the router's own addresses. A reset is no
 * acceptance: nobody answered.
 */
import type { AnsweredBySource, ServerLogLine } from '../result/result.js';
import type { ConntrackEvent } from '../trace/conntrack.js';
import type { FlowObservation } from '../trace/flows.js';
import { entryReplied } from './rewrites.js';

export interface Answerer {
  /** A host's name, the router's name, or null. */
  node: string | null;
  source: AnsweredBySource | null;
}

export interface AnswerFacts {
  routerName: string;
  logged: ServerLogLine | undefined;
  flow: Pick<FlowObservation, 'request' | 'reply'>;
  conntrack: readonly ConntrackEvent[];
  routerAddresses: readonly string[];
}

const NOBODY: Answerer = { node: null, source: null };

export function answeredBy(f: AnswerFacts): Answerer {
  if (f.logged) return { node: f.logged.host, source: 'server-log' };
  const accepted = f.flow.reply.filter((h) => h.flags.includes('S') && !h.flags.includes('R'));
  const first = accepted.find((h) => h.direction === 'out');
  if (first?.place.kind === 'host') return { node: first.place.host, source: 'capture' };
  const requestLeft = f.flow.request.some((h) => h.place.kind === 'router' && h.direction === 'out');
  if (first?.place.kind === 'router' && !requestLeft) return { node: f.routerName, source: 'capture' };
  const onWire = f.flow.request.length > 0 || f.flow.reply.length > 0;
  const entry = f.conntrack[0];
  if (!onWire && entry && entryReplied(f.conntrack) && f.routerAddresses.includes(entry.reply.src)) {
    return { node: f.routerName, source: 'conntrack' };
  }
  return NOBODY;
}
