/**
 * Walks the router's iptables chains (from `iptables-save -c`) the way natproof reads them for
 * one packet, so a diagnosis can point at the rule whose kernel counter it then checks, and
 * writes rules back as commands users can run. The walk is a reading of the rule text, not an
 * observation: callers name the rule only when `counted()` says the kernel took packets there.
 * Pure. Jumps to user chains are not followed: such a walk ends `unknown`.
 */
import type { ChainPolicy, IptablesRule } from '../result/kernel.js';
import { matchRule, parseRule, type HookPacket, type MatchVerdict, type ParsedRule } from './netfilter-match.js';

export interface RuleStep {
  rule: IptablesRule;
  parsed: ParsedRule;
  verdict: MatchVerdict;
}

export interface ChainWalk {
  /** Every rule of the chain, in order, with whether it matched. */
  steps: RuleStep[];
  /** The rule whose target ended the walk, or null when the packet fell through to the policy. */
  decidedBy: RuleStep | null;
  /** The first rule whose match could not be evaluated, when it came before any decision. */
  undecidable: RuleStep | null;
  policy: ChainPolicy | undefined;
}

/** Targets after which a packet leaves the chain (RETURN in a built-in chain means the policy). */
const TERMINAL = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'NETMAP']);
/** Targets that act and let the packet go on. */
const CONTINUING = new Set(['LOG', 'NFLOG', 'MARK', 'CONNMARK', 'TRACE', 'CT', 'NOTRACK', 'TOS', 'DSCP', 'TTL', 'CLASSIFY']);

export function chainRules(rules: readonly IptablesRule[], table: string, chain: string): IptablesRule[] {
  return rules.filter((r) => r.table === table && r.chain === chain);
}

export function walkChain(
  rules: readonly IptablesRule[],
  policies: readonly ChainPolicy[],
  table: string,
  chain: string,
  packet: HookPacket,
): ChainWalk {
  const steps = chainRules(rules, table, chain).map((rule) => {
    const parsed = parseRule(rule.text);
    return { rule, parsed, verdict: matchRule(parsed, packet) };
  });
  const policy = policies.find((p) => p.table === table && p.chain === chain);
  for (const step of steps) {
    const target = step.parsed.target;
    if (step.verdict.result === 'no-match' || target === null || CONTINUING.has(target)) continue;
    if (step.verdict.result === 'unknown' || !TERMINAL.has(target)) return { steps, decidedBy: null, undecidable: step, policy };
    return { steps, decidedBy: step, undecidable: null, policy };
  }
  return { steps, decidedBy: null, undecidable: null, policy };
}

/**
 * `nat PREROUTING rule 2 (kernel counter: 5 packets): -A PREROUTING -d ...`: a rule as the kernel
 * counted it during the rule set's probes (counters are reset for each rule set).
 */
export function describeRule(rule: IptablesRule): string {
  return `${rule.table} ${rule.chain} rule ${rule.position} (kernel counter: ${plural(rule.packets, 'packet')}): ${rule.text}`;
}

export function describePolicy(policy: ChainPolicy): string {
  return `${policy.table} ${policy.chain} policy ${policy.policy} (kernel counter: ${plural(policy.packets, 'packet')} fell through to it)`;
}

/**
 * A rule with the kernel's counter, then natproof's own reading of the rule text, labelled as
 * such: the reading explains, the counter is what the kernel observed.
 */
export function describeReading(rule: IptablesRule, reading: string): string {
  return `${describeRule(rule)}; natproof's reading of the rule text: ${reading}`;
}

/** Did the kernel count packets on the rule (or policy) during the probes? */
export function counted(entry: { packets: number } | null | undefined): boolean {
  return (entry?.packets ?? 0) > 0;
}

/** The rule's options after `-A CHAIN`, as written to `iptables -A/-I/-R`. */
export function ruleSpec(rule: Pick<IptablesRule, 'text'>): string {
  return rule.text.replace(/^-A \S+ /, '');
}

/** `iptables -t nat -I PREROUTING 1 <spec>`; the filter table needs no `-t`. */
export function command(table: string, action: '-A' | '-I' | '-R', chain: string, spec: string, position?: number): string {
  return ['iptables', table === 'filter' ? '' : `-t ${table}`, action, chain, position === undefined ? '' : String(position), spec]
    .filter(Boolean)
    .join(' ');
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
