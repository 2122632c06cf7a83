/**
 * Candidate rules -> what the router is fed, and the tools' complaints -> the user's line.
 *
 * Pure: no I/O. A rule source becomes one input for `iptables-restore --noflush` or `nft -f -`,
 * together with a map from every line of that input back to the line the user wrote, so an
 * error the tool reports for "line 3" can name the user's file, line and rule.
 *
 * This module only chooses the path per format; the work is in words.ts (shell-word splitting),
 * iptables-command.ts (one command line), restore-input.ts (the iptables-restore input),
 * pass-through-checks.ts (what iptables-save and nft text must not be),
 * format.ts (telling the format) and kernel-errors.ts (the tools' complaints).
 */
import type { RuleSource } from '../scenario/topology.js';
import { parseCommand } from './iptables-command.js';
import { restoreStep } from './restore-input.js';
import { checkNftText, checkSaveText } from './pass-through-checks.js';
import type { RuleLineOrigin, RuleStep } from './rule-step.js';
import { SourceText } from './source-text.js';
import { ShellScanner } from './words.js';

export type { RuleLineOrigin, RuleStep } from './rule-step.js';
export { detectRuleFormat } from './format.js';
export { ruleErrorFromKernel } from './kernel-errors.js';

/**
 * Loading a scenario compiles its rules for the errors, and applying them needs the steps:
 * each source is compiled once. Sources are never changed after they are made.
 */
const compiled = new WeakMap<RuleSource, readonly RuleStep[]>();

export function compileRules(src: RuleSource): readonly RuleStep[] {
  let steps = compiled.get(src);
  if (!steps) {
    steps = compileUncached(src);
    compiled.set(src, steps);
  }
  return steps;
}

function compileUncached(src: RuleSource): RuleStep[] {
  switch (src.format) {
    case 'iptables':
      return compileCommandLines(src);
    case 'iptables-save': {
      const step = passThrough('iptables-restore', src);
      checkSaveText(step.lines);
      return [step];
    }
    case 'nft': {
      const step = passThrough('nft', src);
      checkNftText(step.lines);
      return [step];
    }
  }
}

/** iptables-save text and nft rulesets go to the tool unchanged; line i is the user's line i. */
function passThrough(tool: RuleStep['tool'], src: RuleSource): RuleStep & { lines: RuleLineOrigin[] } {
  const source = new SourceText(src);
  const rawLines = source.text.split('\n');
  // A final newline does not start another line anyone wrote.
  if (rawLines.at(-1) === '') rawLines.pop();
  let offset = 0;
  const lines = rawLines.map((raw) => {
    const indent = raw.length - raw.trimStart().length;
    const origin = { position: source.position(offset + indent), text: raw.trim() };
    offset += raw.length + 1;
    return origin;
  });
  return { tool, input: source.text, lines };
}

/** iptables command lines: split like sh would, parsed, then rebuilt as one iptables-restore input. */
function compileCommandLines(src: RuleSource): RuleStep[] {
  const source = new SourceText(src);
  const commands = new ShellScanner(source).scan().map((words) => parseCommand(source, words));
  return commands.length === 0 ? [] : [restoreStep(source, commands)];
}
