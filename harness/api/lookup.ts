/** Finding one probe's result in a run, by probe name and, when it ran under several, rule set. */
import { NatproofError } from '../errors.js';
import type { AddressBook, ProbeResult, RunResult } from '../result/result.js';

/** A probe's result with the run's address book, so matcher messages can name hosts. */
export type RunProbe = ProbeResult & { readonly addresses: AddressBook };

export function probeResult(result: RunResult, name: string, options: { ruleset?: string } = {}): RunProbe {
  const named = result.probes.filter((p) => p.name === name);
  if (named.length === 0) {
    const names = [...new Set(result.probes.map((p) => p.name))];
    throw new NatproofError(`no probe named "${name}" in run ${result.runId} of ${result.scenario}; probes: ${names.join(', ') || 'none'}`);
  }
  const rulesets = named.map((p) => p.ruleset);
  const { ruleset } = options;
  if (ruleset === undefined && named.length > 1) {
    throw new NatproofError(`probe "${name}" ran under rule sets ${rulesets.join(', ')}: say which, e.g. { ruleset: '${rulesets[0]}' }`);
  }
  const found = ruleset === undefined ? named[0] : named.find((p) => p.ruleset === ruleset);
  if (!found) throw new NatproofError(`probe "${name}" did not run under rule set "${ruleset}"; it ran under: ${rulesets.join(', ')}`);
  return { ...found, addresses: result.addresses };
}
