/**
 * Reading `conntrack -E` event lines into their original and reply tuples: the kernel's own
 * record of what NAT does to a connection. Pure. A line that does not parse gives null.
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
