/**
 * Typed errors. Each maps to an exit code in the CLI: input and host problems are 2,
 * a failed expectation is not an error at all (it is a verdict, exit 1).
 */

/** Where in a user's file something is. Lines and columns are 1-based. */
export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

export function formatPosition(pos: SourcePosition): string {
  return `${pos.file}:${pos.line}:${pos.column}`;
}

/**
 * Errors quote what the user gave (rule text, scenario values, what a tool printed about them),
 * which may come from a pull request: control characters are shown as `\xNN`, so a quoted
 * escape sequence cannot retitle or repaint the terminal or the CI log that prints the error.
 */
export function printable(text: string): string {
  // Tab and newline are layout; every other C0 control, DEL and the C1 controls are not.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export class NatproofError extends Error {
  override readonly name: string = 'NatproofError';
  constructor(message: string, options?: ErrorOptions) {
    super(printable(message), options);
  }
}

/** A command line natproof cannot act on: an unknown option value, a missing argument. */
export class UsageError extends NatproofError {
  override readonly name = 'UsageError';
}

/** A scenario file that cannot be read, parsed or resolved. */
export class ScenarioError extends NatproofError {
  override readonly name = 'ScenarioError';
  constructor(
    message: string,
    readonly position: SourcePosition | undefined,
    /** Dotted key path of the offending field, e.g. `hosts.web.address`. */
    readonly field: string | undefined,
    options?: ErrorOptions,
  ) {
    super(position ? `${formatPosition(position)}: ${field ? `${field}: ` : ''}${message}` : message, options);
  }
}

/** A rule the parser or the kernel refused, with its place in the user's rule text. */
export class RuleError extends NatproofError {
  override readonly name = 'RuleError';
  constructor(
    message: string,
    readonly position: SourcePosition | undefined,
    readonly ruleText: string | undefined,
    options?: ErrorOptions,
  ) {
    super(`${position ? `${formatPosition(position)}: ` : ''}${message}${ruleText ? `\n  rule: ${ruleText}` : ''}`, options);
  }
}

/** The machine cannot run natproof: not root, a tool missing, a kernel feature absent. */
export class HostError extends NatproofError {
  override readonly name = 'HostError';
}

/** A spawned command failed. Carries everything needed to understand why. */
export class CommandError extends NatproofError {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stdout: string,
    readonly stderr: string,
    readonly timedOut: boolean,
    options?: ErrorOptions,
  ) {
    const how = timedOut ? 'timed out' : exitCode !== null ? `exited with ${exitCode}` : `was killed by ${signal}`;
    const detail = stderr.trim() || stdout.trim();
    super(`command ${how}: ${argv.join(' ')}${detail ? `\n${detail}` : ''}`, options);
  }
}
