/** Positions in the rule text: offsets into what natproof reads -> the user's file, line and column. */
import { RuleError, type SourcePosition } from '../errors.js';
import type { RuleSource } from '../scenario/topology.js';

/** The rule text with CRLF normalised, able to turn an offset into the user's file position. */
export class SourceText {
  readonly text: string;
  private readonly lineStarts: number[] = [0];

  constructor(private readonly src: RuleSource) {
    this.text = src.text.replace(/\r\n/g, '\n');
    for (let i = 0; i < this.text.length; i++) if (this.text[i] === '\n') this.lineStarts.push(i + 1);
  }

  position(offset: number): SourcePosition {
    let line = this.lineStarts.length - 1;
    while ((this.lineStarts[line] ?? 0) > offset) line--;
    const column = offset - (this.lineStarts[line] ?? 0);
    return { file: this.src.origin.file, line: this.src.origin.line + line, column: this.src.origin.column + column };
  }

  /** The text from `from` to the end of the line holding `offset`, for errors found before a command is complete. */
  upToEndOfLine(from: number, offset: number): string {
    const end = this.text.indexOf('\n', offset);
    return joinContinuations(this.text.slice(from, end === -1 ? undefined : end)).trim();
  }

  fail(offset: number, message: string, ruleText: string): never {
    throw new RuleError(message, this.position(offset), ruleText);
  }
}

/** The command as one line, as the user would read it back: `a \<newline>    b` becomes `a b`. */
export function joinContinuations(text: string): string {
  return text.replace(/[ \t]*\\\n[ \t]*/g, ' ');
}
