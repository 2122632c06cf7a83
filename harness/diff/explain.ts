/**
 * Which probes need which rule: the rule set is run whole, then once without each rule, on one
 * topology, and every probe's observations are compared (../diff/compare.ts). What a rule is
 * for comes from the probes that change when it is gone, never from its text. A rule no probe
 * needs is dead when the kernel counted packets on it (another rule does its work) and untested
 * when no probe's packet reached it.
 */
import type { RuleSet, Topology } from '../scenario/topology.js';
import type { RunResult } from '../result/result.js';
import { ruleUnits, type RuleUnit } from '../rules/units.js';
import { compareProbes, type ProbeDiff } from './compare.js';

export interface RuleExplanation {
  line: number;
  text: string;
  /** The probes whose observations change without this rule, and how. */
  changes: Array<Pick<ProbeDiff, 'name' | 'class' | 'differences'>>;
  /** needed: some probe changes without it; dead: counted but nobody needs it; untested: no probe reached it; unused: nobody needs it (no counter to tell which). */
  verdict: 'needed' | 'dead' | 'untested' | 'unused';
  /** The kernel's packet counter on the rule in the whole rule set's run, when natproof can find it. */
  packets: number | null;
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
      const packets =
        !place || !evidence
          ? null
          : place.position === 'policy'
            ? null
            : (evidence.rules.find((r) => r.table === place.table && r.chain === place.chain && r.position === place.position)?.packets ??
              null);
      const verdict = changes.length > 0 ? 'needed' : packets === null ? 'unused' : packets > 0 ? 'dead' : 'untested';
      return { line: unit.line, text: unit.text, changes, verdict, packets };
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
      lines.push(
        `    dead: the kernel counted ${rule.packets} packets on it, but no probe changes without it (another rule does its work)`,
      );
    } else if (rule.verdict === 'untested')
      lines.push('    untested: no probe needs it, and no probe packet reached it (kernel counter 0)');
    else lines.push('    no probe changes without it');
  }
  return `${lines.join('\n')}\n`;
}
