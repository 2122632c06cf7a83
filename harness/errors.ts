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

export class NatproofError extends Error {
  override readonly name: string = 'NatproofError';
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
