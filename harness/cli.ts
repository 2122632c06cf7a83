/**
 * The command line: `main(argv)` returns the exit code and does nothing on import.
 * 0: every expectation holds; 1: some do not; 2: bad input or a host that cannot run natproof.
 * The commands (cli-commands.ts) are imported when one runs: `--version` and `--help` load
 * none of the modules they use.
 */
import { NatproofError } from './errors.js';
import { natproofVersion } from './package-root.js';
import { commandHelp, isCommand, usage } from './cli-help.js';
import { EXIT_PASSED, EXIT_USAGE, EXIT_INTERRUPTED, type CliIO } from './cli-io.js';

export { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PASSED, EXIT_USAGE, type CliIO } from './cli-io.js';

/** The process's own streams and terminal, read when main runs, not on import. */
export function processIO(): CliIO {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    color: colorWanted(process.env, Boolean(process.stdout.isTTY)),
    stderrTTY: Boolean(process.stderr.isTTY) && process.env['TERM'] !== 'dumb',
  };
}

/**
 * NO_COLOR (no-color.org): any non-empty value turns colour off. FORCE_COLOR (any value but
 * `0` or `false`) turns it on where there is no terminal, as in a CI log. Otherwise colour goes
 * to terminals that are not dumb, never to pipes.
 */
export function colorWanted(env: Readonly<Record<string, string | undefined>>, isTTY: boolean): boolean {
  if (env['NO_COLOR']) return false;
  const force = env['FORCE_COLOR'];
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  return isTTY && env['TERM'] !== 'dumb';
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command !== undefined && isCommand(command)) {
      if (wantsHelp(rest)) {
        io.stdout(`${commandHelp(command)}\n`);
        return EXIT_PASSED;
      }
      const { COMMANDS } = await import('./cli-commands.js');
      return await COMMANDS[command](rest, io);
    }
    switch (command) {
      case '--version':
      case '-V':
      case 'version':
        io.stdout(`natproof ${natproofVersion()}\n`);
        return EXIT_PASSED;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout(`${usage()}\n`);
        return command === undefined ? EXIT_USAGE : EXIT_PASSED;
      default:
        io.stderr(`natproof: unknown command "${command}"\n${usage()}\n`);
        return EXIT_USAGE;
    }
  } catch (err) {
    if (err instanceof NatproofError && (await isInterrupt(err))) {
      io.stderr(`natproof: ${err.message}\n`);
      return EXIT_INTERRUPTED;
    }
    if (isUsageError(err) && command !== undefined && isCommand(command)) {
      io.stderr(`natproof ${command}: ${parserComplaint(err as Error)}\n${commandHelp(command)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof NatproofError || isUsageError(err)) {
      io.stderr(`natproof: ${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
    // Not a verdict: never let an unexpected error pass for "expectations not met" (exit 1).
    io.stderr(`natproof: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT_USAGE;
  }
}

/** RunAbortedError is run.js's: every command that can be interrupted has loaded it already. */
async function isInterrupt(err: NatproofError): Promise<boolean> {
  return err instanceof (await import('./run.js')).RunAbortedError;
}

/** `--help` or `-h` among the command's arguments, before a `--` that ends the options. */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** node:util's parser explains `--` at length; an unknown option is all the user needs to hear. */
function parserComplaint(err: Error): string {
  const unknown = /Unknown option '([^']+)'/.exec(err.message)?.[1];
  return unknown ? `unknown option ${unknown}` : err.message;
}

function isUsageError(err: unknown): boolean {
  return err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
}
