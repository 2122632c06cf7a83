/**
 * Which probes need which rule: the rule set is run whole, then once without each rule, on one
 * topology, and every probe's observations are compared (../diff/compare.ts). What a rule is
 * for comes from the probes that change when it is gone, never from its text. Beside that, the
 * probes whose packets the rule took in the whole run, from the router's nft trace
 * (./rule-trace.ts): a rule that takes a probe's packets that do not need it does work for
 * nothing, as the seed's hairpin SNAT without `--ctstate DNAT` does on the router's own traffic.
 * A rule no probe needs is dead when it took packets (another rule does its work) and untested
 * when no probe's packet reached it.
 */
import type { RuleSet, Topology } from '../scenario/topology.js';
import type { RunResult } from '../result/result.js';
import { ruleUnits, type RuleUnit } from '../rules/units.js';
import { compareProbes, type ProbeDiff } from './compare.js';
import { nftKey, probesByRule } from './rule-trace.js';

export interface RuleExplanation {
  line: number;
  text: string;
  /** The probes whose observations change without this rule, and how. */
  changes: Array<Pick<ProbeDiff, 'name' | 'class' | 'differences'>>;
  /** needed: some probe changes without it; dead: it took packets but nobody needs it; untested: no probe reached it; unused: nobody needs it (no counter or trace to tell which). */
  verdict: 'needed' | 'dead' | 'untested' | 'unused';
  /** The kernel's packet counter on the rule in the whole rule set's run, when natproof can find it. */
  packets: number | null;
  /**
   * The probes whose packets the rule matched in the whole rule set's run (for a policy: decided),
   * from the router's nft trace; null when there is no trace, or the rule cannot be placed in it.
   */
  took: string[] | null;
  /**
   * The probes it took that work the same without it: work the rule does for nothing. `fromRouter`
   * marks the router's own connections, `clientAddress` their source. A source NAT rule that
   * takes them is the seed's efficiency note (`snatLimit`: how to limit it to DNATed connections).
   */
  alsoTook: Array<{ name: string; fromRouter: boolean; clientAddress: string }>;
  snatLimit: string | null;
}

export interface Explanation {
  scenario: string;
  ruleset: string;
  rules: RuleExplanation[];
}

const WHOLE = 'whole';

/** The rule sets to run: the whole one first, then one without each rule. */
export function explainRulesets(ruleset: RuleSet): { units: RuleUnit[]; rulesets: RuleSet[] } {
  const units = ruleUnits(ruleset.rules);
  return {
    units,
    rulesets: [
      { ...ruleset, name: WHOLE, expect: {} },
      ...units.map((u, i) => ({
        ...ruleset,
        name: `without-${i + 1}`,
        description: `without line ${u.line}: ${u.text}`,
        rules: u.without,
        expect: {},
      })),
    ],
  };
}

export function explainResult(topology: Topology, ruleset: string, units: RuleUnit[], result: RunResult): Explanation {
  const whole = result.probes.filter((p) => p.ruleset === WHOLE);
  const evidence = result.rulesets.find((r) => r.name === WHOLE)?.evidence.router;
  const traced = evidence?.nftTrace?.length && evidence.nftChains?.length ? evidence : null;
  const taken = traced ? probesByRule(traced.nftTrace ?? [], traced.nftChains ?? [], whole) : null;
  return {
    scenario: topology.name,
    ruleset,
    rules: units.map((unit, i) => {
      const without = result.probes.filter((p) => p.ruleset === `without-${i + 1}`);
      const diff = compareProbes(topology.name, {
        before: { name: WHOLE, probes: whole },
        after: { name: `without-${i + 1}`, probes: without },
      });
      const changes = diff.probes.filter((p) => p.changed).map((p) => ({ name: p.name, class: p.class, differences: p.differences }));
      const place = unit.place;
      // iptables-save's counters are iptables rules' (an nft rule's place has a family).
      const packets =
        !place || !evidence || place.family !== undefined || place.position === 'policy'
          ? null
          : (evidence.rules.find((r) => r.table === place.table && r.chain === place.chain && r.position === place.position)?.packets ??
            null);
      const took = taken && place ? (taken.get(nftKey(place)) ?? []) : null;
      const needers = new Set(changes.map((c) => c.name));
      const alsoTook = (took ?? []).flatMap((name) => {
        const p = whole.find((w) => w.name === name);
        return p && !needers.has(name) ? [{ name, fromRouter: p.client === topology.router.name, clientAddress: p.clientAddress }] : [];
      });
      const reached = packets === null && took === null ? null : (packets ?? 0) > 0 || (took ?? []).length > 0;
      const verdict = changes.length > 0 ? 'needed' : reached === null ? 'unused' : reached ? 'dead' : 'untested';
      const snatLimit = /\b(SNAT|MASQUERADE|snat|masquerade)\b/.test(unit.text)
        ? place?.family !== undefined
          ? 'ct status dnat'
          : '-m conntrack --ctstate DNAT'
        : null;
      return { line: unit.line, text: unit.text, changes, verdict, packets, took, alsoTook, snatLimit };
    }),
  };
}

const WHAT: Record<ProbeDiff['class'], string> = {
  regressed: 'fails without it',
  fixed: 'works without it (this rule breaks it)',
  changed: 'changes without it',
  same: 'same',
};

export function renderExplanation(e: Explanation): string {
  const lines = [`${e.scenario}, rule set ${e.ruleset}: what each rule is for, from the probes that change without it`];
  for (const rule of e.rules) {
    lines.push('', `line ${rule.line}: ${rule.text}`);
    if (rule.verdict === 'needed') {
      for (const c of rule.changes)
        lines.push(`    ${c.name} ${WHAT[c.class]}${c.class === 'changed' ? ` (${c.differences.join(', ')})` : ''}`);
    } else if (rule.verdict === 'dead') {
      const seen = rule.packets ? `the kernel counted ${rule.packets} packets on it` : "it took probes' packets (nft trace)";
      lines.push(`    dead: ${seen}, but no probe changes without it (another rule does its work)`);
    } else if (rule.verdict === 'untested') {
      const seen = rule.packets === 0 ? 'kernel counter 0' : 'nft trace';
      lines.push(`    untested: no probe needs it, and no probe packet reached it (${seen})`);
    } else lines.push('    no probe changes without it');
    if (rule.took !== null && rule.took.length > 0) lines.push(`    took the packets of (nft trace): ${rule.took.join(', ')}`);
    if (rule.verdict === 'needed') lines.push(...rule.alsoTook.map((p) => alsoTookLine(p, rule.snatLimit)));
  }
  return `${lines.join('\n')}\n`;
}

/** A probe the rule took that works the same without it, said plainly. */
function alsoTookLine(p: RuleExplanation['alsoTook'][number], snatLimit: string | null): string {
  if (!p.fromRouter) return `    also took ${p.name}, which works the same without it`;
  const line = `    also took ${p.name}, traffic the router itself sends (already from ${p.clientAddress}), which works the same without it`;
  return snatLimit
    ? `${line}: it SNATs the router's own packets for nothing (the seed's efficiency note; ${snatLimit} limits it to DNATed connections)`
    : `${line}: needless work on the router's own packets`;
}
