/**
 * Does an iptables rule, as `iptables-save` prints it, match a given packet? natproof's reading
 * of the rule text, used only to explain what the counters and captures already show (which
 * rule took a packet, which option kept a rule from taking it, what to change), never to decide
 * a verdict or a cause: verdict/diagnose.ts names a rule only when the kernel's counter on it
 * (or on the policy) grew during the probes, and labels every line that rests on this reading.
 *
 * The answer has three values: a rule using a match this module does not model is `unknown`; a
 * chain walk stops there (chains.ts, `undecidable`), and a diagnosis then names no rule and says
 * what the packets and counters show.
 */
import { inPrefix, lookupRoute } from '../ipv4.js';
import type { Route } from '../result/kernel.js';

/** A TCP packet at a netfilter hook, as far as rules can see it. */
export interface HookPacket {
  /** Interface it came in by; absent where the hook has none (OUTPUT, POSTROUTING). */
  in?: string;
  /** Interface it leaves by; absent before routing (PREROUTING). */
  out?: string;
  /** The transport protocol; tcp when absent. */
  protocol?: 'tcp' | 'udp';
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** conntrack states as --ctstate names them: NEW, ESTABLISHED, DNAT, SNAT... */
  ctstate: readonly string[];
  /** The router's own addresses (addrtype LOCAL). */
  local: readonly string[];
  /** The router's routes (rpfilter). */
  routes: readonly Route[];
}

export type MatchVerdict = { result: 'match' } | { result: 'no-match'; because: string[] } | { result: 'unknown'; because: string };

export interface ParsedRule {
  /** Match options before `-j`, each with its negation. */
  options: Array<{ negated: boolean; option: string; value: string }>;
  /** `-j` (or `-g`) target, or null for a rule that only counts. */
  target: string | null;
  /** `-g`: a user chain entered by goto, whose end returns past this rule's chain. */
  goto: boolean;
  /** The target's own options, e.g. `--to-destination` -> `172.16.0.1:8080`. */
  targetOptions: Record<string, string>;
}

/** Words as iptables-save quotes them: `"..."` holds spaces, `\"` a quote. */
function words(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? ''));
  return out;
}

/** Options that take no value. */
const FLAGS = new Set(['--syn', '--invert', '--loose', '--validmark', '--accept-local']);

export function parseRule(text: string): ParsedRule {
  const w = words(text);
  const options: ParsedRule['options'] = [];
  const targetOptions: Record<string, string> = {};
  let target: string | null = null;
  let goto = false;
  let negated = false;
  for (let i = 0; i < w.length; i++) {
    const word = w[i] ?? '';
    if (word === '!') {
      negated = true;
      continue;
    }
    if (word === '-A') {
      i++;
      continue;
    }
    if (word === '-j' || word === '--jump' || word === '-g' || word === '--goto') {
      goto = word === '-g' || word === '--goto';
      target = w[++i] ?? null;
      for (let k = i + 1; k < w.length; k++) {
        const key = w[k] ?? '';
        const value = w[k + 1];
        if (value === undefined || value.startsWith('--')) targetOptions[key] = '';
        else {
          targetOptions[key] = value;
          k++;
        }
      }
      break;
    }
    const value = FLAGS.has(word) ? '' : (w[++i] ?? '');
    options.push({ negated, option: word, value });
    negated = false;
  }
  return { options, target, goto, targetOptions };
}

/** `eth+` is iptables' prefix wildcard. */
function interfaceMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** `80`, `1024:65535`, `:1023`, or multiport's `80,443,8000:8080`. */
function portMatches(spec: string, port: number): boolean {
  return spec.split(',').some((part) => {
    const [low, high] = part.includes(':') ? part.split(':') : [part, part];
    return port >= (low ? Number(low) : 0) && port <= (high ? Number(high) : 65535);
  });
}

/** What `-p` may say for each protocol: its name, its number, or all. */
const PROTOCOL_NAMES: Record<'tcp' | 'udp', readonly string[]> = { tcp: ['tcp', '6', 'all'], udp: ['udp', '17', 'all'] };

type Check = { holds: boolean; says: string } | { unknown: string };

/** One option against the packet: whether it holds, and in words what the packet has instead. */
function check(option: string, value: string, p: HookPacket): Check {
  switch (option) {
    case '-s':
    case '--source':
      return { holds: inPrefix(p.src, value), says: `the source is ${p.src}` };
    case '-d':
    case '--destination':
      return { holds: inPrefix(p.dst, value), says: `the destination is ${p.dst}` };
    case '-i':
    case '--in-interface':
      return p.in === undefined
        ? { unknown: 'no input interface at this hook' }
        : { holds: interfaceMatches(value, p.in), says: `it came in on ${p.in}` };
    case '-o':
    case '--out-interface':
      return p.out === undefined
        ? { unknown: 'no output interface at this hook' }
        : { holds: interfaceMatches(value, p.out), says: `it leaves by ${p.out}` };
    case '-p':
    case '--protocol':
      return { holds: PROTOCOL_NAMES[p.protocol ?? 'tcp'].includes(value), says: `it is ${p.protocol ?? 'tcp'}` };
    case '-m':
    case '--match':
    case '--comment':
      // Loading a match module is not a condition; its options are.
      return { holds: true, says: '' };
    case '--dport':
    case '--destination-port':
    case '--dports':
    case '--destination-ports':
      return { holds: portMatches(value, p.dport), says: `the destination port is ${p.dport}` };
    case '--sport':
    case '--source-port':
    case '--sports':
    case '--source-ports':
      return { holds: portMatches(value, p.sport), says: `the source port is ${p.sport}` };
    case '--ports':
      return { holds: portMatches(value, p.dport) || portMatches(value, p.sport), says: `the ports are ${p.sport} and ${p.dport}` };
    case '--ctstate':
    case '--state':
      return { holds: value.split(',').some((s) => p.ctstate.includes(s)), says: `the connection is ${p.ctstate.join(',')}` };
    case '--syn':
      // Only the client's SYN is ever matched against rules here.
      return { holds: true, says: 'it is a SYN' };
    case '--dst-type':
    case '--src-type': {
      const address = option === '--dst-type' ? p.dst : p.src;
      if (value !== 'LOCAL') return { unknown: `${option} ${value}` };
      return { holds: p.local.includes(address), says: `${address} is ${p.local.includes(address) ? '' : 'not '}a router address` };
    }
    default:
      return { unknown: `${option}${value ? ` ${value}` : ''} is not modelled` };
  }
}

/** The netfilter rpfilter match: does the route back to the source leave by the arrival interface? */
function rpfilterPasses(rule: ParsedRule, p: HookPacket): Check {
  if (p.in === undefined) return { unknown: 'rpfilter needs an input interface' };
  const back = lookupRoute(p.routes, p.src);
  const loose = rule.options.some((o) => o.option === '--loose');
  const passes = back !== undefined && (loose || back.dev === p.in);
  const route = back ? `the route back to ${p.src} leaves by ${back.dev}` : `there is no route back to ${p.src}`;
  return { holds: passes, says: `${route}, and it came in on ${p.in}` };
}

export function matchRule(rule: ParsedRule, p: HookPacket): MatchVerdict {
  const because: string[] = [];
  let unknown: string | undefined;
  const usesRpfilter = rule.options.some((o) => o.option === '-m' && o.value === 'rpfilter');
  for (const { negated, option, value } of rule.options) {
    if (usesRpfilter && ['--loose', '--validmark', '--accept-local'].includes(option)) continue;
    const result = option === '--invert' && usesRpfilter ? invert(rpfilterPasses(rule, p)) : check(option, value, p);
    if ('unknown' in result) {
      unknown ??= result.unknown;
      continue;
    }
    if (result.holds === negated) because.push(`${negated ? '! ' : ''}${option}${value ? ` ${value}` : ''}: ${result.says}`);
  }
  if (usesRpfilter && !rule.options.some((o) => o.option === '--invert')) {
    const passes = rpfilterPasses(rule, p);
    if ('unknown' in passes) unknown ??= passes.unknown;
    else if (!passes.holds) because.push(`-m rpfilter: ${passes.says}`);
  }
  if (because.length > 0) return { result: 'no-match', because };
  if (unknown !== undefined) return { result: 'unknown', because: unknown };
  return { result: 'match' };
}

function invert(c: Check): Check {
  return 'unknown' in c ? c : { holds: !c.holds, says: c.says };
}

/** A DNAT rule's `--to-destination`, split: `172.16.0.1:8080` -> address and port. */
/** Where a DNAT sends a request: its port is the request's own when the rule names none. */
export interface DnatDestination {
  address: string;
  port: number | null;
}

/** `192.168.1.10:8080`, or the address alone, as the rule tools take it. */
export function formatDestination({ address, port }: DnatDestination): string {
  return port === null ? address : `${address}:${port}`;
}

export function dnatDestination(rule: ParsedRule): DnatDestination | null {
  if (rule.target !== 'DNAT') return null;
  const to = rule.targetOptions['--to-destination'] ?? rule.targetOptions['--to'];
  const match = to ? /^([\d.]+)(?:-[\d.]+)?(?::(\d+))?/.exec(to) : null;
  return match?.[1] ? { address: match[1], port: match[2] ? Number(match[2]) : null } : null;
}
