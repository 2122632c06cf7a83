/** What the command line's entry (cli.ts) and its commands (cli-commands.ts) share. */

export const EXIT_PASSED = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  color: boolean;
  /** stderr is a terminal: progress rewrites one line there instead of adding lines. */
  stderrTTY?: boolean;
}
