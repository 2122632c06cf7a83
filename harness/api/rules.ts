/**
 * Candidate rules for `runScenario`'s `rules` option, from a file or a string, in any format
 * the CLI's `--rules` takes (the format detected the same way). They are compiled at once, so a
 * mistake fails where the rules are made, at the rule's line.
 */
import { UsageError } from '../errors.js';
import { compileRules } from '../rules/compile.js';
import { detectRuleFormat } from '../rules/format.js';
import { readRulesFile } from '../rules/read-file.js';
import type { RuleFormat, RuleSource } from '../scenario/topology.js';

/** Rules to run instead of a scenario's own, under a rule set name. */
export interface CandidateRules {
  name: string;
  source: RuleSource;
}

export interface RulesTextOptions {
  /** Detected from the text when absent, as for `--rules FILE`. */
  format?: RuleFormat;
  /** The rule set name results carry; `rules` when absent. */
  name?: string;
}

const FORMATS: readonly RuleFormat[] = ['iptables', 'iptables-save', 'nft'];
/** Names become directory names in a run's artifacts, as a scenario's rule set names do. */
const NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Reads a rules file; the rule set is named after the file (`hairpin.sh` -> `hairpin`). */
export async function loadRules(file: string): Promise<CandidateRules> {
  const { source, name } = await readRulesFile(file);
  return build(source.text, source.format, file, name);
}

/** Rules from a string; errors name `rulesFromText(<name>)` and the line within the string. */
export function rulesFromText(text: string, options: RulesTextOptions = {}): CandidateRules {
  const name = options.name ?? 'rules';
  if (!NAME.test(name))
    throw new UsageError(`rulesFromText: name "${name}" must be 1-32 lowercase letters, digits and '-', starting with a letter`);
  if (options.format !== undefined && !FORMATS.includes(options.format)) {
    throw new UsageError(`rulesFromText: format "${options.format}" is none of ${FORMATS.join(', ')}`);
  }
  const file = `rulesFromText(${name})`;
  return build(text, options.format ?? detectRuleFormat(text, file), file, name);
}

function build(text: string, format: RuleFormat, file: string, name: string): CandidateRules {
  const source: RuleSource = { format, text, origin: { file, line: 1, column: 1 } };
  compileRules(source);
  return { name, source };
}
