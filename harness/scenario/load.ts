/**
 * Loads a scenario file into a checked Topology, in two phases:
 *
 *  1. parse.ts: strict YAML (syntax errors and duplicate keys refused, positions kept), then the
 *     TypeBox schema of schema.ts, giving the raw scenario;
 *  2. resolve.ts: with the whole file in view, every name reference and address is checked
 *     (addresses with ipaddr.js, IPv4 only for now) and turned into the plain-data Topology;
 *  3. every rule set's rules are compiled (rules/compile.ts), so rule text that is wrong
 *     without a kernel is refused before anything is built.
 *
 * Every failure is a ScenarioError carrying the file, line, column and dotted key path of the
 * offending node (found through source.ts), or a RuleError at the rule's own line, with a
 * message that says what would be accepted.
 */
import { ScenarioError } from '../errors.js';
import { readInputText } from '../input-text.js';
import { compileRules } from '../rules/compile.js';
import { parse } from './parse.js';
import { resolve } from './resolve.js';
import type { Topology } from './topology.js';

/** Reads and loads a scenario file. */
export async function loadScenario(file: string): Promise<Topology> {
  const text = await readInputText(file, (problem, cause) => {
    throw new ScenarioError(`cannot read scenario file ${file}: ${problem}`, undefined, undefined, { cause });
  });
  return parseScenario(text, file);
}

/** Loads a scenario from its text; `file` says where problems are and becomes Topology.file. */
export function parseScenario(text: string, file: string): Topology {
  const { raw, source } = parse(text, file);
  const topology = resolve(raw, source);
  checkRules(topology);
  return topology;
}

/** Compiles every rule text of the scenario, for its errors (applying reuses what this compiled). */
export function checkRules(topology: Pick<Topology, 'rulesets' | 'forwarders'>): void {
  for (const ruleset of topology.rulesets) compileRules(ruleset.rules);
  for (const forwarder of topology.forwarders) if (forwarder.rules) compileRules(forwarder.rules);
}
