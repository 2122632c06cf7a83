/**
 * The router's own record of a connection (its `conntrack -E` events, ../trace/conntrack.ts), as
 * a report shows it. Pure. A line that does not parse stays as raw text.
 */
import { parseConntrackEvent, type ConntrackEvent, type Tuple } from '../trace/conntrack.js';

export { parseConntrackEvent, type ConntrackEvent, type Tuple };

/**
 * What the entry says the router does to this connection: a reply tuple that does not simply
 * mirror the original one means NAT. A reply source other than the original destination is
 * the DNAT target; a reply destination other than the original source is the SNAT address.
 */
export function natInEntry(e: ConntrackEvent): string[] {
  const nat: string[] = [];
  if (e.reply.src !== e.original.dst || e.reply.sport !== e.original.dport) nat.push(`DNAT to ${e.reply.src}:${e.reply.sport}`);
  if (e.reply.dst !== e.original.src || e.reply.dport !== e.original.sport) nat.push(`SNAT to ${e.reply.dst}:${e.reply.dport}`);
  return nat;
}

function formatTuple(t: Tuple): string {
  return `${t.src}:${t.sport} → ${t.dst}:${t.dport}`;
}

export interface EntrySummary {
  original: string;
  /** What the router expects replies to look like. */
  reply: string;
  nat: string[];
  /** The states the entry went through: `NEW SYN_SENT [UNREPLIED] → SYN_RECV → ...`. */
  states: string[];
}

/**
 * A connection's events read as one entry: its tuples as of the last event, and its history.
 * An entry that stays `SYN_SENT [UNREPLIED]` never saw the reply come back through the router.
 */
export function summarizeEntry(lines: readonly string[]): EntrySummary | null {
  const events = lines.flatMap((line) => parseConntrackEvent(line) ?? []);
  const last = events[events.length - 1];
  if (!last) return null;
  return {
    original: formatTuple(last.original),
    reply: formatTuple(last.reply),
    nat: natInEntry(last),
    states: events.map(
      (e) =>
        [e.event === 'UPDATE' ? '' : e.event, e.state ?? '', e.flags.includes('UNREPLIED') ? '[UNREPLIED]' : '']
          .filter(Boolean)
          .join(' ') ||
        // A protocol without states (UDP) updates its entry when the reply passes, or once assured.
        (e.flags.includes('ASSURED') ? '[ASSURED]' : 'replied'),
    ),
  };
}
