/**
 * What a rule change did, probe by probe: the same probes observed under two rule sets (or a
 * new run against a kept baseline), compared on what was observed, never on the rule text. Pure:
 * two lists of probe results in, the classification out.
 */
import type { ProbeResult } from '../result/result.js';

/**
 * fixed: did not meet its expectation, now does. regressed: met it, now does not. changed:
 * observably different, expectations unaffected. same: nothing observable changed.
 */
export type DiffClass = 'fixed' | 'regressed' | 'changed' | 'same';

/** The facts of a probe that a rule change can move, in the order they are reported. */
export interface Observed {
  ok: boolean;
  error: ProbeResult['error'];
  status: number | null;
  serverSaw: string | null;
  replyFrom: string | null;
  rewrites: string[];
  bypassedRouter: boolean;
  cause: string | null;
}

export interface ProbeDiff {
  name: string;
  client: string;
  clientAddress: string;
  target: string;
  changed: boolean;
  class: DiffClass;
  /** The observed facts that differ, by name. */
  differences: Array<keyof Observed>;
  before: ProbeResult;
  after: ProbeResult;
}

export interface DiffResult {
  scenario: string;
  before: string;
  after: string;
  probes: ProbeDiff[];
  /** Probes present on one side only (a baseline from an older scenario). */
  unmatched: { before: string[]; after: string[] };
  counts: Record<DiffClass, number>;
}

export function observed(p: ProbeResult): Observed {
  return {
    ok: p.ok,
    error: p.error,
    status: p.status,
    serverSaw: p.serverSaw,
    replyFrom: p.replyFrom,
    rewrites: p.rewrites,
    bypassedRouter: p.bypassedRouter,
    cause: p.diagnosis?.severity === 'failure' ? p.diagnosis.cause : null,
  };
}

export function classify(before: ProbeResult, after: ProbeResult): { class: DiffClass; differences: Array<keyof Observed> } {
  const a = observed(before);
  const b = observed(after);
  const differences = (Object.keys(a) as Array<keyof Observed>).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  if (!before.expectationsMet && after.expectationsMet) return { class: 'fixed', differences };
  if (before.expectationsMet && !after.expectationsMet) return { class: 'regressed', differences };
  return { class: differences.length > 0 ? 'changed' : 'same', differences };
}

/** How probes are paired: by name across two rule sets, by rule set and name against a baseline. */
export type PairBy = 'name' | 'ruleset-and-name';

/** Pair the probes of two sides and classify each pair. */
export function compareProbes(
  scenario: string,
  sides: { before: { name: string; probes: ProbeResult[] }; after: { name: string; probes: ProbeResult[] } },
  pairBy: PairBy = 'name',
): DiffResult {
  const key = (p: ProbeResult): string => (pairBy === 'name' ? p.name : `${p.ruleset}/${p.name}`);
  const afterByName = new Map(sides.after.probes.map((p) => [key(p), p]));
  const probes: ProbeDiff[] = [];
  for (const before of sides.before.probes) {
    const after = afterByName.get(key(before));
    if (!after) continue;
    const { class: kind, differences } = classify(before, after);
    probes.push({
      name: key(before),
      client: after.client,
      clientAddress: after.clientAddress,
      target: after.target,
      changed: kind !== 'same',
      class: kind,
      differences,
      before,
      after,
    });
  }
  const beforeNames = new Set(sides.before.probes.map(key));
  const counts: Record<DiffClass, number> = { fixed: 0, regressed: 0, changed: 0, same: 0 };
  for (const p of probes) counts[p.class]++;
  return {
    scenario,
    before: sides.before.name,
    after: sides.after.name,
    probes,
    unmatched: {
      before: sides.before.probes.filter((p) => !afterByName.has(key(p))).map(key),
      after: sides.after.probes.filter((p) => !beforeNames.has(key(p))).map(key),
    },
    counts,
  };
}

/** 1 when anything regressed (or, with failOnChange, changed at all); 0 otherwise. */
export function diffExitCode(diff: DiffResult, failOnChange: boolean): 0 | 1 {
  if (diff.counts.regressed > 0) return 1;
  if (failOnChange && (diff.counts.changed > 0 || diff.counts.fixed > 0)) return 1;
  return 0;
}
