/**
 * Walks the router's iptables chains (from `iptables-save -c`) the way natproof reads them for
 * one packet, so a diagnosis can point at the rule whose kernel counter it then checks, and
 * writes rules back as commands users can run. The walk is a reading of the rule text, not an
 * observation: callers name the rule only when `counted()` says the kernel took packets there.
 * Pure.
 *
 * Jumps (`-j CHAIN`) and gotos (`-g CHAIN`) into user chains are followed as netfilter does: a
 * RETURN, or the end of a user chain, goes back to the rule after the jump (after a goto, to the
 * chain that jumped to the one that went to it); in a built-in chain either means the policy.
 */
import type { ChainPolicy, IptablesRule } from '../result/kernel.js';
import { matchRule, parseRule, type HookPacket, type MatchVerdict, type ParsedRule } from './netfilter-match.js';

export interface RuleStep {
  rule: IptablesRule;
  parsed: ParsedRule;
  /** Whether the rule matches the packet, including the matches of the jumps that lead to it. */
  verdict: MatchVerdict;
  /** The jump (or goto) rules that lead from the walked chain to this rule's chain, outermost first. */
  via: IptablesRule[];
}

export interface ChainWalk {
  /**
   * Every rule reachable from the chain, in order, with whether it matched: a user chain's
   * rules follow the rule that jumps to it, whether or not the packet took that jump.
   */
  steps: RuleStep[];
  /** The rule whose target ended the walk, or null when the packet fell through to the policy. */
  decidedBy: RuleStep | null;
  /** The first rule whose match could not be evaluated, when it came before any decision. */
  undecidable: RuleStep | null;
  /** RETURN rules of user chains the packet took on its way, in order. */
  returnedBy: RuleStep[];
  policy: ChainPolicy | undefined;
}

/** Targets after which a packet leaves the chain (RETURN in a built-in chain means the policy). */
const TERMINAL = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'NETMAP']);
/** Targets that act and let the packet go on. */
const CONTINUING = new Set(['LOG', 'NFLOG', 'MARK', 'CONNMARK', 'TRACE', 'CT', 'NOTRACK', 'TOS', 'DSCP', 'TTL', 'CLASSIFY']);
/** iptables refuses deeper nesting; a guard against a malformed rule set. */
const MAX_DEPTH = 32;

export function chainRules(rules: readonly IptablesRule[], table: string, chain: string): IptablesRule[] {
  return rules.filter((r) => r.table === table && r.chain === chain);
}

/** Is `target` a user chain of the table? A chain natproof sees only through its rules. */
function isUserChain(rules: readonly IptablesRule[], table: string, target: string | null): target is string {
  return target !== null && !TERMINAL.has(target) && !CONTINUING.has(target) && rules.some((r) => r.table === table && r.chain === target);
}

export interface WalkOptions {
  /** Read the rule set as if this rule were not there: what would the packet meet instead? */
  skip?: IptablesRule;
}

export function walkChain(
  rules: readonly IptablesRule[],
  policies: readonly ChainPolicy[],
  table: string,
  chain: string,
  packet: HookPacket,
  options: WalkOptions = {},
): ChainWalk {
  const steps: RuleStep[] = [];
  const list = (name: string, via: IptablesRule[], entry: MatchVerdict): RuleStep[] => {
    const own: RuleStep[] = [];
    for (const rule of chainRules(rules, table, name)) {
      const parsed = parseRule(rule.text);
      const step = { rule, parsed, verdict: both(entry, matchRule(parsed, packet)), via };
      own.push(step);
      steps.push(step);
      if (isUserChain(rules, table, parsed.target) && via.length < MAX_DEPTH && !via.some((v) => v.chain === parsed.target)) {
        list(parsed.target, [...via, rule], step.verdict);
      }
    }
    return own;
  };
  list(chain, [], { result: 'match' });

  const returnedBy: RuleStep[] = [];
  type Exit = { kind: 'decided'; step: RuleStep } | { kind: 'undecidable'; step: RuleStep } | { kind: 'returned' };
  const walk = (name: string, via: IptablesRule[]): Exit => {
    const builtIn = via.length === 0;
    for (const step of steps.filter((s) => s.rule.chain === name && sameVia(s.via, via))) {
      if (step.rule === options.skip) continue;
      const own = matchRule(step.parsed, packet);
      const target = step.parsed.target;
      if (own.result === 'no-match' || target === null || CONTINUING.has(target)) continue;
      if (own.result === 'unknown') return { kind: 'undecidable', step };
      if (isUserChain(rules, table, target)) {
        if (via.some((v) => v.chain === target) || via.length >= MAX_DEPTH) return { kind: 'undecidable', step };
        const inner = walk(target, [...via, step.rule]);
        if (inner.kind !== 'returned') return inner;
        // After a goto the end of the inner chain returns from this one too.
        if (step.parsed.goto) return { kind: 'returned' };
        continue;
      }
      if (target === 'RETURN' && !builtIn) {
        returnedBy.push(step);
        return { kind: 'returned' };
      }
      if (!TERMINAL.has(target)) return { kind: 'undecidable', step };
      return { kind: 'decided', step };
    }
    return { kind: 'returned' };
  };
  const exit = walk(chain, []);
  const policy = policies.find((p) => p.table === table && p.chain === chain);
  return {
    steps,
    decidedBy: exit.kind === 'decided' ? exit.step : null,
    undecidable: exit.kind === 'undecidable' ? exit.step : null,
    returnedBy,
    policy,
  };
}

function sameVia(a: readonly IptablesRule[], b: readonly IptablesRule[]): boolean {
  return a.length === b.length && a.every((rule, i) => rule === b[i]);
}

/** A rule reached through a jump matches only when the jump does too. */
function both(entry: MatchVerdict, own: MatchVerdict): MatchVerdict {
  if (entry.result === 'no-match' && own.result === 'no-match') return { result: 'no-match', because: [...entry.because, ...own.because] };
  if (entry.result === 'no-match') return entry;
  if (own.result === 'no-match') return own;
  if (entry.result === 'unknown') return entry;
  return own;
}

/**
 * The match options of a rule reached through jumps, as one rule in the chain the first jump is
 * in: the jumps' own matches, then the rule's. How a fix is written where it takes effect.
 */
export function specThrough(step: Pick<RuleStep, 'rule' | 'via'>, from: number): string {
  const jumps = step.via.slice(from).map((v) => matchSpec(v));
  return [...jumps, ruleSpec(step.rule)].filter(Boolean).join(' ');
}

/** A rule's match options alone: `-A CHAIN` and the target (with its options) removed. */
export function matchSpec(rule: Pick<IptablesRule, 'text'>): string {
  return ruleSpec(rule)
    .replace(/(^| )(-j|--jump|-g|--goto) .*$/, '')
    .trim();
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
