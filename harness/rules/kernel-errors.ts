/**
 * A tool's complaint -> the user's line. Pure: reads only the stderr of a failed
 * `iptables-restore` or `nft -f -` run and the step's map from input lines to the user's lines.
 */
import { RuleError, formatPosition } from '../errors.js';
import type { RuleLineOrigin, RuleStep } from './rule-step.js';

/** Turns the stderr of a failed `iptables-restore` or `nft -f -` run of `step` into an error at the user's rule. */
export function ruleErrorFromKernel(step: RuleStep, stderr: string): RuleError {
  return step.tool === 'nft' ? nftError(step, stderr) : restoreError(step, stderr);
}

/**
 * iptables-restore reports the input line in one of these shapes (1.8.9, nf_tables):
 *   `iptables-restore v1.8.9 (nf_tables): unknown option "--dprot"` + `Error occurred at line: 3`
 *   `iptables-restore: line 3 failed: No chain/target/match by that name.`
 *   `iptables-restore v1.8.9 (nf_tables): ` + `line 3: RULE_APPEND failed (Invalid argument): rule in chain FORWARD`
 *   `iptables-restore: COMMIT expected at line 3`
 */
function restoreError(step: RuleStep, stderr: string): RuleError {
  const lineNumber = /Error occurred at line: (\d+)/.exec(stderr)?.[1] ?? /\bline:? (\d+)/.exec(stderr)?.[1];
  const message = restoreMessage(stderr);
  const origin = lineNumber === undefined ? undefined : (lineOrigin(step, Number(lineNumber)) ?? lineNamedIn(step, message));
  const what = origin ? 'this rule' : 'the rules';
  return new RuleError(`iptables-restore rejected ${what}: ${message}`, origin?.position, origin?.text);
}

/** `iptables-restore v1.8.9 (nf_tables): `, sometimes twice. */
const RESTORE_BANNER = /^(ip6?tables(-legacy|-nft)?-restore( v[\d.]+ \([^)]*\))?: )+/;

/** The tool's own words, without its version banner, help hint and line bookkeeping (the position says that). */
function restoreMessage(stderr: string): string {
  const message = stderr
    .split('\n')
    .map((l) =>
      l
        .replace(RESTORE_BANNER, '')
        .replace(/^line \d+( failed)?: /, '')
        .trim(),
    )
    .filter((l) => l !== '' && !l.startsWith('Error occurred at line') && !l.startsWith('Try `'))
    .join(' ');
  return message || 'no message (the process may have crashed)';
}

/**
 * Errors found at COMMIT (a jump to a chain that does not exist) point at a line natproof
 * added; the quoted name in the message finds the user's rule that mentions it.
 */
function lineNamedIn(step: RuleStep, message: string): RuleLineOrigin | undefined {
  const names = [...message.matchAll(/[`'‘"]([^`'‘’"\s]+)['’"]/g)].map((m) => m[1]);
  const inputLines = step.input.split('\n');
  return step.lines.find(
    (origin, i) => origin && names.some((name) => inputLines[i]?.split(/\s+/).some((w) => w.replace(/^"|"$/g, '') === name)),
  );
}

/** Origin of 1-based input line `n`; tools report end-of-input problems one past the last line. */
function lineOrigin(step: RuleStep, n: number): RuleLineOrigin | undefined {
  return step.lines[Math.min(n, step.lines.length) - 1];
}

/** nft reports `/dev/stdin:4:30-34: Error: syntax error, unexpected string`, then the line and carets, per error. */
function nftError(step: RuleStep, stderr: string): RuleError {
  const errors = [...stderr.matchAll(/^\S+?:(\d+):(\d+)(?:-\d+)?: Error: (.*)$/gm)].map((m) => ({
    ...nftPosition(step, Number(m[1]), Number(m[2])),
    message: m[3] ?? '',
  }));
  const [first, ...more] = errors;
  if (!first) {
    const message = stderr.trim() || 'no message (the process may have crashed)';
    return new RuleError(`nft rejected the rules: ${message}`, undefined, undefined);
  }
  const also = more.map((e) => `${e.position ? `${formatPosition(e.position)}: ` : ''}${e.message}`);
  const suffix = also.length > 0 ? ` (nft also reported: ${also.join('; ')})` : '';
  return new RuleError(`nft rejected this rule: ${first.message}${suffix}`, first.position, first.text);
}

/** The user's position of nft's line and column; nft counts columns from the start of the raw line. */
function nftPosition(step: RuleStep, line: number, column: number): Partial<RuleLineOrigin> {
  const origin = lineOrigin(step, line);
  if (!origin) return {};
  const raw = step.input.split('\n')[Math.min(line, step.lines.length) - 1] ?? '';
  const indent = raw.length - raw.trimStart().length;
  const offset = Math.max(column - 1 - indent, 0);
  return { position: { ...origin.position, column: origin.position.column + offset }, text: origin.text };
}
