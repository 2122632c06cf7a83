/**
 * Shell-word splitting of iptables command lines.
 *
 * iptables command lines are not run through a shell. They are tokenised like a shell would
 * (quotes, backslash escapes, `\` continuations, `#` comments) and everything a shell would do
 * beyond that (variables, pipes, `;`, redirections) is refused, so what is tested is exactly
 * the rules the user wrote.
 */
import type { SourceText } from './source-text.js';

/** What natproof accepts as command lines, the hint ending every refusal of one. */
export const ALLOWED_COMMANDS =
  'each command must be a single `iptables` (or `iptables-nft`) invocation using -A, -I, -D, -R, -N, -P, -F or -X; ' +
  'quotes, `\\` line continuations and `#` comments are understood';

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
  $: 'shell variables and substitutions are not expanded; write the value itself',
};

/** Splits the text into commands (lists of words) the way sh would, without expanding anything. */
export class ShellScanner {
  private readonly text: string;
  private pos = 0;
  private readonly commands: Word[][] = [];
  private words: Word[] = [];
  private word: Word | undefined;

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
    } else if (c in SHELL_OPERATORS) {
      this.fail(this.pos, `\`${c}\`: ${SHELL_OPERATORS[c]}; ${ALLOWED_COMMANDS}`);
    } else {
      this.append(this.pos, c);
      this.pos++;
    }
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
      if (c === '$' || c === '`') this.fail(i, `\`${c}\` inside double quotes: ${SHELL_OPERATORS[c]}`);
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
    if (this.words.length > 0) this.commands.push(this.words);
    this.words = [];
  }
}
