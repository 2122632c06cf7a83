/** Rules from a file, as every command and the API read them: text, detected format, name. */
import { basename } from 'node:path';
import { RuleError } from '../errors.js';
import { readInputText } from '../input-text.js';
import type { RuleSource } from '../scenario/topology.js';
import { detectRuleFormat } from './format.js';

/** The file's rules, placed at its line 1, and the file's name without its extension. */
export async function readRulesFile(file: string): Promise<{ source: RuleSource; name: string }> {
  const text = await readInputText(file, (problem, cause) => {
    throw new RuleError(`cannot read rules file ${file}: ${problem}`, undefined, undefined, { cause });
  });
  return { source: rulesAt(file, text), name: fileStem(file) };
}

/** Rule text as read from `file` (or `REV:file`), its format detected. */
export function rulesAt(file: string, text: string): RuleSource {
  return { format: detectRuleFormat(text, file), text, origin: { file, line: 1, column: 1 } };
}

/** `rules/hairpin.sh` -> `hairpin`. */
export function fileStem(file: string): string {
  return basename(file).replace(/\.[^.]*$/, '');
}
