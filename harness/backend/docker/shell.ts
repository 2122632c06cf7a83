/**
 * Shell text for the scripts natproof runs in its observer: one exec carries many commands, and
 * each exec costs the engine a tenth of a second or more. Pure.
 */

/** argv as one shell line: every word that is not plainly safe is quoted, whatever a scenario put in it. */
export function shellLine(argv: readonly string[]): string {
  return argv.map(shellWord).join(' ');
}

function shellWord(word: string): string {
  return /^[\w./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
