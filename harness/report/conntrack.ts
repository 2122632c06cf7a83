/**
 * Reading `conntrack -E` event lines into their original and reply tuples, so a report can show
 * the router's own record of a connection. Pure. A line that does not parse stays as raw text.
 *
 *   [1795606404.173146]  [NEW] tcp 6 120 SYN_SENT src=A dst=B sport=1 dport=2 [UNREPLIED] src=C dst=D sport=3 dport=4
 */

export interface Tuple {
  src: string;
  dst: string;
  sport: string;
  dport: string;
}

export interface ConntrackEvent {
  /** NEW, UPDATE or DESTROY. */
  event: string;
  /** The TCP state (SYN_SENT, ESTABLISHED, ...), when the protocol has one. */
  state: string | null;
  original: Tuple;
  /** The tuple the router expects replies to carry: where NAT shows up. */
  reply: Tuple;
  /** UNREPLIED, ASSURED, ... */
  flags: string[];
  raw: string;
}

export function parseConntrackEvent(line: string): ConntrackEvent | null {
  const event = /\[(NEW|UPDATE|DESTROY)\]/.exec(line)?.[1];
  if (!event) return null;
  const tokens = line
    .slice(line.indexOf(`[${event}]`) + event.length + 2)
    .trim()
    .split(/\s+/);
  const firstKey = tokens.findIndex((t) => t.startsWith('src='));
  if (firstKey < 0) return null;
  const before = tokens[firstKey - 1];
  const tuples: Array<Record<string, string>> = [];
  const flags: string[] = [];
  for (const token of tokens.slice(firstKey)) {
    const flag = /^\[([A-Z_]+)\]$/.exec(token)?.[1];
    if (flag) {
      flags.push(flag);
      continue;
    }
    const eq = token.indexOf('=');
    if (eq < 0) continue;
    const key = token.slice(0, eq);
    if (key === 'src') tuples.push({});
    tuples[tuples.length - 1]![key] = token.slice(eq + 1);
  }
  const [original, reply] = tuples.map(toTuple);
  if (!original || !reply) return null;
  return { event, state: before && /^[A-Z_]+$/.test(before) ? before : null, original, reply, flags, raw: line };
}

function toTuple(fields: Record<string, string>): Tuple | null {
  const { src, dst, sport, dport } = fields;
  return src && dst && sport && dport ? { src, dst, sport, dport } : null;
}

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
