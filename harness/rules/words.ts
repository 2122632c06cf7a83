/**
 * Shell-word splitting of iptables command lines.
 *
 * iptables command lines are not run through a shell. They are tokenised like a shell would
 * (quotes, backslash escapes, `\` continuations, `#` comments), with the variables of a
 * firewall script: `NAME=value` lines, then `$NAME` and `${NAME}` replaced by that literal
 * value (split into words outside double quotes, as sh does). Everything else a shell would do
 * (command substitution, other expansions, pipes, `;`, redirections) is refused, so what is
 * tested is exactly the rules the user wrote, and nothing is ever run to compute them.
 */
import type { SourceText } from './source-text.js';

/** What natproof accepts as command lines, the hint ending every refusal of one. */
export const ALLOWED_COMMANDS =
  'each command must be a single `iptables` (or `iptables-nft`) invocation using -A, -I, -D, -R, -N, -P, -F or -X; ' +
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable syntax, as the user writes it.
  'quotes, `\\` line continuations, `#` comments and `NAME=value` variables (used as `$NAME` or `${NAME}`) are understood';

export interface Word {
  value: string;
  /** Offsets in the rule text of the word's first character and one past its last. */
  start: number;
  end: number;
}

/** Characters a shell would act on; natproof runs no shell, so they are refused, not ignored. */
const SHELL_OPERATORS: Record<string, string> = {
  ';': 'write one command per line instead of joining them with `;`',
  '&': '`&` and `&&` are shell syntax',
  '|': 'pipes and `||` are shell syntax',
  '<': 'redirections are shell syntax',
  '>': 'redirections are shell syntax',
  '(': 'subshells are shell syntax',
  ')': 'subshells are shell syntax',
  '`': 'command substitution is shell syntax; write the value itself',
};

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=/;

/** Splits the text into commands (lists of words) the way sh would, expanding only variables set in it. */
export class ShellScanner {
  private readonly text: string;
  private pos = 0;
  private readonly commands: Word[][] = [];
  private words: Word[] = [];
  private word: Word | undefined;
  private readonly variables = new Map<string, string>();
  /** Where each word of the current command began, as written: an assignment must be written as one. */
  private literalStarts = new Set<number>();

  constructor(private readonly source: SourceText) {
    this.text = source.text;
  }

  scan(): Word[][] {
    while (this.pos < this.text.length) this.step(this.text.charAt(this.pos));
    this.endCommand();
    return this.commands;
  }

  private step(c: string): void {
    if (c === '\n') {
      this.endCommand();
      this.pos++;
    } else if (c === ' ' || c === '\t') {
      this.endWord();
      this.pos++;
    } else if (c === '#' && !this.word) {
      const end = this.text.indexOf('\n', this.pos);
      this.pos = end === -1 ? this.text.length : end;
    } else if (c === '\\') {
      this.readBackslash();
    } else if (c === "'") {
      this.readSingleQuoted();
    } else if (c === '"') {
      this.readDoubleQuoted();
    } else if (c === '$') {
      this.readExpansion(false);
    } else if (c in SHELL_OPERATORS) {
      this.fail(this.pos, `\`${c}\`: ${SHELL_OPERATORS[c]}; ${ALLOWED_COMMANDS}`);
    } else {
      if (!this.word) this.literalStarts.add(this.pos);
      this.append(this.pos, c);
      this.pos++;
    }
  }

  /**
   * `$NAME` or `${NAME}` at `this.pos`: the value set earlier in the text. Unquoted, sh splits
   * the value into words at blanks; inside double quotes it stays one.
   */
  private readExpansion(quoted: boolean): string {
    const at = this.pos;
    const braced = this.text[at + 1] === '{';
    const rest = this.text.slice(at + (braced ? 2 : 1));
    const name = NAME.exec(rest)?.[0];
    const substitution = 'command substitution runs a command, and natproof runs none: write the value itself';
    if (rest.startsWith('(')) this.fail(at, `\`$(\`: ${substitution}`);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable syntax, as the user writes it.
    if (!name) this.fail(at, '`$` must start a variable, `$NAME` or `${NAME}`; write a literal `$` as `\\$` or in single quotes');
    if (braced && rest[name!.length] !== '}') {
      this.fail(at, `\`\${${name}\` followed by \`${rest[name!.length] ?? ''}\`: only \`\${NAME}\` is understood, no other expansion`);
    }
    const value = this.variables.get(name!);
    if (value === undefined)
      this.fail(at, `\`$${name}\` is not set: set it on a line of its own above (\`${name}=value\`); natproof reads no environment`);
    this.pos = at + (braced ? 3 : 1) + name!.length;
    // Neither in double quotes nor in an assignment's value does sh split the value into words.
    const inAssignment = this.word !== undefined && this.literalStarts.has(this.word.start) && ASSIGNMENT.test(this.word.value);
    if (quoted) return value!;
    if (inAssignment) {
      this.append(at, value!);
      return '';
    }
    const fields = value!.split(/[ \t\n]+/);
    fields.forEach((field, i) => {
      if (i > 0) this.endWord();
      if (field !== '') this.append(at, field);
    });
    return '';
  }

  private readBackslash(): void {
    const next = this.text.charAt(this.pos + 1);
    // Backslash-newline is a continuation: sh removes both characters.
    if (next !== '\n') {
      if (next === '') this.fail(this.pos, 'the text ends with a `\\` continuation but no next line');
      this.append(this.pos, next);
    }
    this.pos += 2;
  }

  private readSingleQuoted(): void {
    const close = this.text.indexOf("'", this.pos + 1);
    if (close === -1) this.fail(this.pos, 'unterminated single quote');
    this.append(this.pos, this.text.slice(this.pos + 1, close));
    this.pos = close + 1;
  }

  private readDoubleQuoted(): void {
    const open = this.pos;
    let value = '';
    let i = open + 1;
    for (; i < this.text.length && this.text[i] !== '"'; i++) {
      const c = this.text.charAt(i);
      if (c === '`') this.fail(i, `\`${c}\` inside double quotes: ${SHELL_OPERATORS[c]}`);
      if (c === '$') {
        this.pos = i;
        value += this.readExpansion(true);
        i = this.pos - 1;
        continue;
      }
      // Inside double quotes sh only treats a backslash before these as an escape.
      if (c === '\\' && '$`"\\\n'.includes(this.text.charAt(i + 1))) {
        i++;
        if (this.text[i] !== '\n') value += this.text[i];
      } else {
        value += c;
      }
    }
    if (i >= this.text.length) this.fail(open, 'unterminated double quote');
    // The opening quote starts the word even when the quoted string is empty (`--comment ""`).
    this.append(open, value);
    this.pos = i + 1;
  }

  private append(at: number, chars: string): void {
    this.word ??= { value: '', start: at, end: at };
    this.word.value += chars;
  }

  private endWord(): void {
    if (!this.word) return;
    if (this.word.value.includes('\n')) {
      this.fail(this.word.start, 'a quoted argument spans lines; iptables-restore reads one rule per line');
    }
    this.word.end = this.pos;
    this.words.push(this.word);
    this.word = undefined;
  }

  /** Quotes the command as far as the line of the error, since it is not complete. */
  private fail(offset: number, message: string): never {
    const start = this.words[0]?.start ?? this.word?.start ?? offset;
    return this.source.fail(offset, message, this.source.upToEndOfLine(start, offset));
  }

  private endCommand(): void {
    this.endWord();
    const assignments = this.words.filter((w) => this.literalStarts.has(w.start) && ASSIGNMENT.test(w.value));
    if (assignments.length === this.words.length) {
      // `A=1 B=2` on a line of their own set variables for the lines below, as sh does.
      for (const w of assignments) {
        const name = ASSIGNMENT.exec(w.value)![1]!;
        this.variables.set(name, w.value.slice(name.length + 1));
      }
    } else {
      if (assignments[0] === this.words[0]) {
        const first = this.words[0]!;
        this.source.fail(
          first.start,
          `\`${first.value}\` before a command only sets that command's environment, which iptables does not read: put the assignment on a line of its own`,
          this.source.upToEndOfLine(first.start, first.start),
        );
      }
      this.commands.push(this.words);
    }
    this.words = [];
    this.literalStarts = new Set();
  }
}
