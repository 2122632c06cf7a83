/**
 * The kernel's own account of which rule decided each packet: nftables tracing. While the probes
 * run, a table of natproof's marks every packet entering the router (prerouting) or leaving its
 * own stack (output) with `meta nftrace set 1`, and `nft monitor` prints, for each marked packet,
 * every base chain it entered, every rule that matched it and the verdict, in every nf_tables
 * table: the user's nft rules and iptables-nft's alike (the router has no other iptables).
 *
 * The table only marks packets: a filter chain ahead of every other hook (raw is -300) whose one
 * rule accepts, which ends only this chain (every later base chain still sees the packet), so no
 * verdict changes; accepting in the rule spares the monitor a policy line for every packet. It
 * exists only while the probes run, so the rule set natproof reads afterwards is the user's alone.
 */
import { rm } from 'node:fs/promises';
import type { Lab, NodeRef } from '../backend/backend.js';
import type { NftChainRules } from '../result/kernel.js';
import { AppendedLines } from './appended-lines.js';

const ROUTER: NodeRef = { kind: 'router' };
/** natproof's own table; the user's rules never see it (it is added after them and removed before the evidence is read). */
export const TRACE_TABLE = 'natproof_trace';
/** A table created and deleted only to mark a point in the monitor's stream. */
const MARKER_TABLE = 'natproof_trace_marker';
const EXEC_TIMEOUT_MS = 5_000;
const MARKER_TRANSACTION = `add table inet ${MARKER_TABLE}\ndelete table inet ${MARKER_TABLE}\n`;
/** Removes the marking table, also when it is gone already (adding an existing table changes nothing). */
const REMOVE_TRACE = `add table inet ${TRACE_TABLE}\ndelete table inet ${TRACE_TABLE}\n`;
/** How long one marker attempt waits for its marker before the next attempt. */
const MARKER_WAIT_MS = 50;
/** Between two reads of the monitor's output while a marker is awaited. */
const MARKER_POLL_MS = 5;

const TRACE_RULES = `table inet ${TRACE_TABLE} {
  chain prerouting {
    type filter hook prerouting priority -350; policy accept;
    meta l4proto { tcp, udp, icmp } meta nftrace set 1 accept
  }
  chain output {
    type filter hook output priority -350; policy accept;
    meta l4proto { tcp, udp, icmp } meta nftrace set 1 accept
  }
}
`;

export interface RunningTrace {
  /** Why there is no trace, or part of it (the kernel or nft cannot trace here), or null. */
  missing: string | null;
  /**
   * Remove the marking table, wait (with `drain`) until every trace event up to now is read, stop.
   * With `drain`, also read the router's chains (the handles the trace names, in order). Once.
   */
  stop(drain: boolean): Promise<TraceRecord>;
}

export interface TraceRecord {
  /** `nft monitor` trace lines, in order. */
  lines: string[];
  /** The router's chains and their rules' handles, natproof's marking table left out. */
  chains: NftChainRules[];
}

/**
 * Mark packets and start the trace; `file` (on this machine) takes the monitor's raw output while
 * it runs, and is removed when it stops. `nft monitor` prints nothing when it is ready, and its
 * stream carries ruleset changes in the order the kernel made them, after any trace event sent
 * before: a marker table's creation, once seen, proves the stream is live (at the start) and that
 * every earlier event has been printed (at the end).
 */
export async function startNftTrace(lab: Lab, timeoutMs: number, file: string): Promise<RunningTrace> {
  // -a: each rule line names the rule's handle, which ties it to the user's rule (see nftChains).
  // The output goes to a file: nft flushes every word it prints (about 29 writes a trace line),
  // and through a pipe natproof woke for each while nft waited whenever natproof was busy, so a
  // trace of 100 clients drained for many seconds after the probes. The file is read only when
  // a marker is awaited.
  // At a higher priority than the agents and the machine's other work: its CPU is small (about
  // 0.1 ms a line), but at 100 clients on a loaded machine it had 1% of a core and printed the
  // last trace lines many seconds after the probes (with it, it had caught up when they ended).
  // Where it may not raise its priority (a container without CAP_SYS_NICE) nice says so and
  // runs nft as it is.
  const proc = lab.spawn(ROUTER, ['nice', '-n', '-10', 'nft', '-a', 'monitor'], { stdoutFile: file, networkOnly: true });
  const output = new AppendedLines(file);
  const lines: string[] = [];
  let markers = 0;
  const readOutput = async (): Promise<void> => {
    // An unreadable file shows as a marker never seen, which the trace reports as missing.
    for (const line of await output.read().catch(() => [])) {
      if (line.startsWith('trace id ')) lines.push(line);
      else if (line.startsWith('add ') && line.includes(`table inet ${MARKER_TABLE}`)) markers++;
    }
  };
  // The trace only adds to the evidence: a command that fails or times out (a loaded machine)
  // never fails the run, it leaves the trace out or incomplete, said so.
  const tryRead = async (argv: string[], input?: string): Promise<string | null> => {
    try {
      const r = await lab.exec(ROUTER, argv, {
        allowFailure: true,
        timeoutMs: EXEC_TIMEOUT_MS,
        networkOnly: true,
        ...(input ? { input } : {}),
      });
      return r.exitCode === 0 ? r.stdout : null;
    } catch {
      return null;
    }
  };
  const transaction = async (text: string): Promise<boolean> => (await tryRead(['nft', '-f', '-'], text)) !== null;
  /**
   * Whether a marker shows in the output by `deadline`: the first attempt is `first` (a
   * transaction already under way that adds a marker), later ones are `again`.
   */
  const marked = async (deadline: number, first: Promise<boolean>, again: string): Promise<boolean> => {
    const before = markers;
    let attempt: Promise<boolean> | undefined = first;
    while (markers === before && proc.running && Date.now() < deadline) {
      await (attempt ?? transaction(again));
      attempt = undefined;
      for (let waited = 0; waited < MARKER_WAIT_MS; waited += MARKER_POLL_MS) {
        await readOutput();
        if (markers > before) break;
        await new Promise((resolve) => setTimeout(resolve, MARKER_POLL_MS));
      }
    }
    return markers > before;
  };
  const finish = async (): Promise<void> => {
    await output.close();
    await rm(file, { force: true });
  };
  // The marking table and the first marker go in one transaction; should the monitor not be
  // live yet, later markers come alone. No probe is sent before the table is loaded and the
  // monitor live, so packets it marks before that are none of the probes'.
  const loading = transaction(TRACE_RULES + MARKER_TRANSACTION);
  const live = await marked(Date.now() + timeoutMs, loading, MARKER_TRANSACTION);
  const loaded = await loading;
  // The trace adds to the evidence; a kernel or nft that cannot trace leaves it out, said so.
  let missing: string | null = null;
  if (!live) missing = `nft monitor did not start in the router: ${proc.stderr.trim() || 'no events seen'}`;
  else if (!loaded) missing = 'the router could not load the table that marks packets for tracing';
  if (missing !== null) {
    await proc.stop('SIGKILL');
    await transaction(REMOVE_TRACE);
    await finish();
    const reason = missing;
    return { missing: reason, stop: async () => ({ lines: [], chains: [] }) };
  }
  let stopped: Promise<TraceRecord> | undefined;
  const gaps: string[] = [];
  const stop = async (drain: boolean): Promise<TraceRecord> => {
    try {
      if (!drain) {
        await transaction(REMOVE_TRACE);
        await proc.stop('SIGINT');
        return { lines, chains: [] };
      }
      // One transaction removes the marking table and marks the stream after its last packet.
      const removing = transaction(REMOVE_TRACE + MARKER_TRANSACTION);
      // Listed meanwhile, on a loaded machine each command takes long: the marking table may
      // still be in the listing, and is left out of it, so the chains are the user's alone.
      const [caughtUp, listed] = await Promise.all([
        marked(Date.now() + timeoutMs, removing, REMOVE_TRACE + MARKER_TRANSACTION),
        tryRead(['nft', '-j', 'list', 'ruleset']),
      ]);
      if (!caughtUp) gaps.push('the nft trace may be incomplete: nft monitor did not catch up before it was stopped');
      const chains = listed === null ? null : withoutTraceTable(parseNftChains(listed));
      if (chains === null) gaps.push("the router's nf_tables chains could not be listed: the trace's rule lines are not tied to rules");
      await proc.stop('SIGINT');
      return { lines, chains: chains ?? [] };
    } finally {
      await finish();
    }
  };
  return {
    get missing() {
      return gaps.length > 0 ? gaps.join('; ') : null;
    },
    stop: (drain) => (stopped ??= stop(drain)),
  };
}

// --- Reading the trace -------------------------------------------------------------------------

/** One line of a packet's trace: entering a base chain, a rule that matched, or a policy. */
export interface TraceStep {
  family: string;
  table: string;
  chain: string;
  kind: 'packet' | 'rule' | 'policy' | 'verdict';
  /** The packet's fields (packet), the rule's text (rule), or the policy or verdict word. */
  text: string;
  /** `accept`, `drop`, `jump CHAIN`, `continue`, ... ; null for a packet line. */
  verdict: string | null;
  /** The rule's handle in its table (rule lines of `nft -a monitor`); null for other lines. */
  handle: number | null;
}

export interface TracedPacket {
  id: string;
  steps: TraceStep[];
}

/** The packet fields natproof uses, from a trace's `packet:` line. */
export interface TraceHeader {
  iif: string | null;
  oif: string | null;
  saddr: string | null;
  daddr: string | null;
  protocol: string | null;
  sport: number | null;
  dport: number | null;
}

// A rule nft could not look up (not in its cache) is printed `unknown rule handle N`.
const LINE = /^trace id (\S+) (\S+) (\S+) (\S+) (packet|rule|unknown rule|policy|verdict):? ?(.*)$/;

/**
 * Group `nft monitor` trace lines by packet, in order. A trace id is the kernel's hash of the
 * packet's buffer, which a later packet can reuse: a packet entering natproof's marking table
 * (the first hook every traced packet passes) starts a new one, whatever its id.
 */
export function parseNftTrace(lines: readonly string[]): TracedPacket[] {
  const current = new Map<string, TracedPacket>();
  const packets: TracedPacket[] = [];
  for (const line of lines) {
    const m = LINE.exec(line.trimEnd());
    if (!m) continue;
    const [, id = '', family = '', table = '', chain = '', kind = '', rest = ''] = m;
    let packet = current.get(id);
    if (!packet || (kind === 'packet' && table === TRACE_TABLE)) {
      packet = { id, steps: [] };
      current.set(id, packet);
      packets.push(packet);
    }
    const isRule = kind === 'rule' || kind === 'unknown rule';
    const ruleVerdict = isRule ? /^(.*) \(verdict ([^)]*)\)$/.exec(rest) : null;
    // `nft -a` ends a rule's text with `# handle N`.
    const handled = kind === 'rule' && ruleVerdict?.[1] ? /^(.*?)\s*# handle (\d+)$/.exec(ruleVerdict[1]) : null;
    const unknown = kind === 'unknown rule' && ruleVerdict?.[1] ? /^handle (\d+)$/.exec(ruleVerdict[1]) : null;
    const handle = handled?.[2] ?? unknown?.[1];
    packet.steps.push({
      family,
      table,
      chain,
      kind: isRule ? 'rule' : (kind as TraceStep['kind']),
      text: unknown ? `unknown rule ${unknown[0]}` : (handled?.[1] ?? ruleVerdict?.[1] ?? rest.trim()),
      verdict: kind === 'packet' ? null : isRule ? (ruleVerdict?.[2] ?? null) : rest.trim(),
      handle: handle === undefined ? null : Number(handle),
    });
  }
  return packets;
}

/**
 * `nft -j list ruleset` as the chains the trace's handles are looked up in: each chain's rules'
 * handles in the order the chain lists (and the kernel runs) them. Null when it is not such a listing.
 */
export function parseNftChains(json: string): NftChainRules[] | null {
  let items: unknown;
  try {
    items = (JSON.parse(json) as { nftables?: unknown }).nftables;
  } catch {
    return null;
  }
  if (!Array.isArray(items)) return null;
  const chains = new Map<string, NftChainRules>();
  const key = (o: { family: string; table: string; name: string }): string => `${o.family} ${o.table} ${o.name}`;
  for (const item of items as Array<Record<string, unknown>>) {
    const chain = item.chain as { family?: unknown; table?: unknown; name?: unknown } | undefined;
    if (chain && typeof chain.family === 'string' && typeof chain.table === 'string' && typeof chain.name === 'string') {
      const c = { family: chain.family, table: chain.table, name: chain.name };
      chains.set(key(c), { family: c.family, table: c.table, chain: c.name, handles: [] });
    }
    const rule = item.rule as { family?: unknown; table?: unknown; chain?: unknown; handle?: unknown } | undefined;
    if (rule && typeof rule.family === 'string' && typeof rule.table === 'string' && typeof rule.chain === 'string') {
      // A rule is listed after its chain; a listing that says otherwise is read as it comes.
      const k = key({ family: rule.family, table: rule.table, name: rule.chain });
      const listed = chains.get(k) ?? { family: rule.family, table: rule.table, chain: rule.chain, handles: [] };
      chains.set(k, listed);
      if (typeof rule.handle === 'number') listed.handles.push(rule.handle);
    }
  }
  return [...chains.values()];
}

function withoutTraceTable(chains: NftChainRules[] | null): NftChainRules[] | null {
  return chains?.filter((c) => !(c.family === 'inet' && c.table === TRACE_TABLE)) ?? null;
}

export function traceHeader(step: TraceStep): TraceHeader {
  const field = (re: RegExp): string | null => re.exec(step.text)?.[1] ?? null;
  const port = (re: RegExp): number | null => {
    const v = field(re);
    return v === null ? null : Number(v);
  };
  return {
    iif: field(/\biif "([^"]+)"/),
    oif: field(/\boif "([^"]+)"/),
    saddr: field(/\bip saddr (\S+)/),
    daddr: field(/\bip daddr (\S+)/),
    protocol: field(/\bip protocol (\S+)/) ?? field(/\b(tcp|udp) sport\b/),
    sport: port(/\b(?:tcp|udp) sport (\d+)/),
    dport: port(/\b(?:tcp|udp) dport (\d+)/),
  };
}

/** The first header of a packet: how it entered the router, before any NAT. */
export function firstHeader(packet: TracedPacket): TraceHeader | null {
  const first = packet.steps.find((s) => s.kind === 'packet');
  return first ? traceHeader(first) : null;
}

/** A step's place: `inet fw4 forward_wan`, or `ip filter FORWARD` for iptables-nft. */
export function stepPlace(step: TraceStep): string {
  return `${step.family} ${step.table} ${step.chain}`;
}

/** The rule or policy that dropped the packet (a reject drops too), if one did. */
export function dropStep(packet: TracedPacket): TraceStep | null {
  return packet.steps.find((s) => (s.kind === 'rule' || s.kind === 'policy') && s.verdict === 'drop') ?? null;
}

/** The base chain a step was reached from: the last `packet:` line before it. */
export function baseChainOf(packet: TracedPacket, step: TraceStep): TraceStep | null {
  const at = packet.steps.indexOf(step);
  return (
    packet.steps
      .slice(0, at + 1)
      .reverse()
      .find((s) => s.kind === 'packet') ?? null
  );
}

/**
 * The chains the packet went through to reach a step, from the base chain: `input -> input_wan
 * -> reject_from_wan -> handle_reject`, as the trace's jump and goto verdicts show.
 */
export function chainPath(packet: TracedPacket, step: TraceStep): string[] {
  const base = baseChainOf(packet, step);
  if (!base) return [step.chain];
  const from = packet.steps.indexOf(base);
  const to = packet.steps.indexOf(step);
  // The trace prints only rules that matched: a chain the packet returned from shows as a later
  // rule of a chain below it on the stack.
  let stack = [base.chain];
  for (const s of packet.steps.slice(from + 1, to + 1)) {
    if (s.table !== step.table || s.family !== step.family || s.kind !== 'rule') continue;
    const at = stack.lastIndexOf(s.chain);
    if (at >= 0) stack = stack.slice(0, at + 1);
    const jump = /^(jump|goto) (\S+)$/.exec(s.verdict ?? '');
    if (jump?.[2]) stack = jump[1] === 'goto' ? [...stack.slice(0, -1), jump[2]] : [...stack, jump[2]];
  }
  const at = stack.lastIndexOf(step.chain);
  return at >= 0 ? stack.slice(0, at + 1) : [...stack, step.chain];
}

/** How a trace line is quoted in a diagnosis, with the chains that led to it. */
export function describeTraceStep(step: TraceStep, packet?: TracedPacket): string {
  const path = packet ? chainPath(packet, step).join(' -> ') : step.chain;
  const handle = step.handle === null ? '' : ` # handle ${step.handle}`;
  // A counter's values at the moment of the trace say nothing; the rule is quoted as written.
  const text = step.text.replace(/\s*\bcounter packets \d+ bytes \d+/, '');
  const what = step.kind === 'policy' ? `policy ${text}` : `rule ${text}${handle} (verdict ${step.verdict})`;
  return `nft trace (the kernel): ${step.family} ${step.table} ${path}: ${what}`;
}
