/**
 * The kernel's own account of which rule decided each packet: nftables tracing. While the probes
 * run, a table of natproof's marks every packet entering the router (prerouting) or leaving its
 * own stack (output) with `meta nftrace set 1`, and `nft monitor` prints, for each marked packet,
 * every base chain it entered, every rule that matched it and the verdict, in every nf_tables
 * table: the user's nft rules and iptables-nft's alike (the router has no other iptables).
 *
 * The table only marks packets: a filter chain with no verdict of its own, ahead of every other
 * hook (raw is -300), so no verdict changes. It exists only while the probes run, so the rule set
 * natproof reads afterwards is the user's alone.
 */
import { createInterface } from 'node:readline';
import type { Lab, NodeRef } from '../backend/backend.js';

const ROUTER: NodeRef = { kind: 'router' };
/** natproof's own table; the user's rules never see it (it is added after them and removed before the evidence is read). */
export const TRACE_TABLE = 'natproof_trace';
/** A table created and deleted only to mark a point in the monitor's stream. */
const MARKER_TABLE = 'natproof_trace_marker';
const EXEC_TIMEOUT_MS = 5_000;

const TRACE_RULES = `table inet ${TRACE_TABLE} {
  chain prerouting {
    type filter hook prerouting priority -350; policy accept;
    meta l4proto { tcp, udp, icmp } meta nftrace set 1
  }
  chain output {
    type filter hook output priority -350; policy accept;
    meta l4proto { tcp, udp, icmp } meta nftrace set 1
  }
}
`;

export interface RunningTrace {
  /** Why there is no trace (the kernel or nft cannot trace here), or null. */
  missing: string | null;
  /** Remove the marking table, wait (with `drain`) until every trace event up to now is read, stop. Once. */
  stop(drain: boolean): Promise<string[]>;
}

/**
 * Mark packets and start reading the trace. `nft monitor` prints nothing when it is ready, and
 * its stream carries ruleset changes in the order the kernel made them, after any trace event
 * sent before: a marker table's creation, once seen, proves the stream is live (at the start)
 * and that every earlier event has been read (at the end).
 */
export async function startNftTrace(lab: Lab, timeoutMs: number): Promise<RunningTrace> {
  // -a: every rule line carries its handle, so a diagnosis can name the rule as `nft -a list ruleset` shows it.
  const proc = lab.spawn(ROUTER, ['nft', '-a', 'monitor']);
  const lines: string[] = [];
  let markers = 0;
  let notify: (() => void) | undefined;
  createInterface({ input: proc.child.stdout! }).on('line', (line) => {
    if (line.startsWith('trace id ')) lines.push(line);
    else if (line.includes(`table inet ${MARKER_TABLE}`) && line.startsWith('add ')) {
      markers++;
      notify?.();
    }
  });
  // The trace only adds to the evidence: a command that fails or times out (a loaded machine)
  // never fails the run, it leaves the trace out or incomplete, said so.
  const tryExec = async (argv: string[], input?: string): Promise<boolean> => {
    try {
      const r = await lab.exec(ROUTER, argv, { allowFailure: true, timeoutMs: EXEC_TIMEOUT_MS, ...(input ? { input } : {}) });
      return r.exitCode === 0;
    } catch {
      return false;
    }
  };
  const marked = async (deadline: number): Promise<boolean> => {
    const before = markers;
    while (markers === before && proc.running && Date.now() < deadline) {
      await tryExec(['nft', 'add', 'table', 'inet', MARKER_TABLE]);
      await tryExec(['nft', 'delete', 'table', 'inet', MARKER_TABLE]);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        notify = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      notify = undefined;
    }
    return markers > before;
  };
  const removeTable = (): Promise<boolean> => tryExec(['nft', 'delete', 'table', 'inet', TRACE_TABLE]);
  // The trace adds to the evidence; a kernel or nft that cannot trace leaves it out, said so.
  let missing: string | null = null;
  if (!(await marked(Date.now() + timeoutMs)))
    missing = `nft monitor did not start in the router: ${proc.stderr.trim() || 'no events seen'}`;
  else if (!(await tryExec(['nft', '-f', '-'], TRACE_RULES)))
    missing = 'the router could not load the table that marks packets for tracing';
  if (missing !== null) {
    await proc.stop('SIGKILL');
    await removeTable();
    const reason = missing;
    return { missing: reason, stop: async () => [] };
  }
  let stopped: Promise<string[]> | undefined;
  const stop = async (drain: boolean): Promise<string[]> => {
    await removeTable();
    if (drain && !(await marked(Date.now() + timeoutMs))) incomplete = true;
    await proc.stop('SIGINT');
    return lines;
  };
  let incomplete = false;
  return {
    get missing() {
      return incomplete ? 'the nft trace may be incomplete: nft monitor did not catch up before it was stopped' : null;
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
  /** The rule's handle in its table (from `nft -a monitor`), or null. */
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

const LINE = /^trace id (\S+) (\S+) (\S+) (\S+) (packet|rule|policy|verdict):? ?(.*)$/;

/** Group `nft monitor` trace lines by packet (trace id), in order. */
export function parseNftTrace(lines: readonly string[]): TracedPacket[] {
  const packets = new Map<string, TracedPacket>();
  for (const line of lines) {
    const m = LINE.exec(line.trimEnd());
    if (!m) continue;
    const [, id = '', family = '', table = '', chain = '', kind = '', rest = ''] = m;
    const packet = packets.get(id) ?? { id, steps: [] };
    packets.set(id, packet);
    const ruleVerdict = kind === 'rule' ? /^(.*?)(?: # handle (\d+))? \(verdict ([^)]*)\)$/.exec(rest) : null;
    packet.steps.push({
      family,
      table,
      chain,
      kind: kind as TraceStep['kind'],
      text: ruleVerdict?.[1] ?? rest.trim(),
      verdict: kind === 'packet' ? null : kind === 'rule' ? (ruleVerdict?.[3] ?? null) : rest.trim(),
      handle: ruleVerdict?.[2] === undefined ? null : Number(ruleVerdict[2]),
    });
  }
  return [...packets.values()];
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
  const what = step.kind === 'policy' ? `policy ${step.text}` : `rule ${step.text}${handle} (verdict ${step.verdict})`;
  return `nft trace (the kernel): ${step.family} ${step.table} ${path}: ${what}`;
}
