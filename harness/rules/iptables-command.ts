/**
 * Parsing one iptables command line (already split into words) into the command it runs:
 * table, action, chain and the rest of the rule, refusing commands that do not build rules.
 */
import type { RuleLineOrigin } from './rule-step.js';
import { joinContinuations, type SourceText } from './source-text.js';
import { ALLOWED_COMMANDS, type Word } from './words.js';

export const BUILTIN_CHAINS = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
} as const satisfies Record<string, readonly string[]>;
export type Table = keyof typeof BUILTIN_CHAINS;

export type Action = 'append' | 'insert' | 'delete' | 'replace' | 'new-chain' | 'policy' | 'flush' | 'delete-chain';

export const ACTION_FLAGS: Record<Action, readonly [short: string, long: string]> = {
  append: ['-A', '--append'],
  insert: ['-I', '--insert'],
  delete: ['-D', '--delete'],
  replace: ['-R', '--replace'],
  'new-chain': ['-N', '--new-chain'],
  policy: ['-P', '--policy'],
  flush: ['-F', '--flush'],
  'delete-chain': ['-X', '--delete-chain'],
};
const ACTION_BY_FLAG = new Map<string, Action>(
  Object.entries(ACTION_FLAGS).flatMap(([action, flags]) => flags.map((f): [string, Action] => [f, action as Action])),
);
/** Commands that read or check state rather than build the rule set. */
const REFUSED_COMMANDS = new Set([...['-L', '--list', '-S', '--list-rules', '-C', '--check'], ...['-Z', '--zero', '-E', '--rename-chain']]);
/** Long options natproof itself interprets, which getopt also accepts as `--name=value`. */
const SPLIT_LONG_OPTIONS = new Set(['--table', '--wait', ...Object.values(ACTION_FLAGS).map(([, long]) => long)]);

const PROGRAMS = new Set(['iptables', 'iptables-nft']);
const PROGRAM_HINTS: Record<string, string> = {
  sudo: 'drop `sudo`: natproof applies the rules as root inside the router',
  ip6tables: 'IPv6 rules are not supported: natproof routers are IPv4 only',
  'iptables-legacy': 'the router uses the nf_tables backend; write `iptables` (or `iptables-nft`)',
};

export interface IptablesCommand {
  table: Table;
  action: Action;
  /** The command flag as written (`-A`, `--append`), for messages. */
  flag: Word;
  chain: Word | undefined;
  /** Everything that is not the program, table, lock wait or command, in the user's order. */
  args: Word[];
  origin: RuleLineOrigin;
}

type Fail = (word: Word, message: string) => never;

export function parseCommand(source: SourceText, words: Word[]): IptablesCommand {
  const [program, ...rest] = words;
  if (!program) throw new Error('parseCommand: an empty command (the scanner never yields one)');
  const origin = commandOrigin(source, program, words[words.length - 1] ?? program);
  const fail: Fail = (word, message) => source.fail(word.start, message, origin.text);

  checkProgram(program, fail);
  const { table, command, args } = readOptions(rest.flatMap(splitLongOption), fail);
  if (!command) return fail(program, `no command (-A, -I, -D, -R, -N, -P, -F or -X); ${ALLOWED_COMMANDS}`);
  return { ...command, table, args, origin };
}

/** The command as the user wrote it, on one line, placed at its first word. */
function commandOrigin(source: SourceText, first: Word, last: Word): RuleLineOrigin {
  const text = joinContinuations(source.text.slice(first.start, last.end));
  return { position: source.position(first.start), text };
}

/** The command flag (`-A`, `--new-chain`, ...) with its chain, before the table and arguments join it. */
type CommandFlag = Pick<IptablesCommand, 'action' | 'flag' | 'chain'>;

/** What the options after the program name say. */
interface Options {
  table: Table;
  command: CommandFlag | undefined;
  args: Word[];
}

/** Sorts the words after the program into table, command (with its chain) and rule arguments. */
function readOptions(options: Word[], fail: Fail): Options {
  let table: Table = 'filter';
  let command: CommandFlag | undefined;
  const args: Word[] = [];
  for (let i = 0; i < options.length; i++) {
    const word = options[i]!;
    const action = ACTION_BY_FLAG.get(word.value);
    if (word.value === '-t' || word.value === '--table') {
      table = parseTable(options[++i], word, fail);
    } else if (word.value === '-w' || word.value === '--wait') {
      // The xtables lock wait means nothing to iptables-restore, which refuses it; drop it and its seconds.
      if (/^\d+$/.test(options[i + 1]?.value ?? '')) i++;
    } else if (action) {
      if (command) fail(word, `\`${word.value}\` after \`${command.flag.value}\`: one command per line`);
      // The chain is optional for -F and -X, so a following option is not taken as one.
      const next = options[i + 1];
      command = { action, flag: word, chain: next && !next.value.startsWith('-') ? options[++i] : undefined };
    } else if (REFUSED_COMMANDS.has(word.value)) {
      fail(word, `\`${word.value}\` does not build rules; ${ALLOWED_COMMANDS}`);
    } else {
      args.push(word);
    }
  }
  return { table, command, args };
}

/** Where Debian and most distributions install iptables; a script may name it by its path. */
const PROGRAM_DIRS = /^\/(usr\/(local\/)?)?s?bin\//;

function checkProgram(program: Word, fail: Fail): void {
  const name = program.value.replace(PROGRAM_DIRS, '');
  if (PROGRAMS.has(name)) return;
  const hint = PROGRAM_HINTS[name];
  if (hint) fail(program, `\`${program.value}\`: ${hint}`);
  if (name.startsWith('/')) {
    fail(
      program,
      `\`${program.value}\`: natproof runs its own iptables inside the router; a path may name it only in /sbin, /bin, /usr/sbin, /usr/bin or /usr/local/sbin`,
    );
  }
  const what = program.value.includes('=') ? 'a shell variable assignment' : `\`${program.value}\``;
  fail(program, `expected a command starting with \`iptables\` or \`iptables-nft\`, not ${what}; ${ALLOWED_COMMANDS}`);
}

/** getopt accepts `--table=nat`; split the options natproof reads so they look like `--table nat`. */
function splitLongOption(word: Word): Word[] {
  const eq = word.value.indexOf('=');
  if (eq === -1 || !SPLIT_LONG_OPTIONS.has(word.value.slice(0, eq))) return [word];
  return [
    { value: word.value.slice(0, eq), start: word.start, end: word.start + eq },
    { value: word.value.slice(eq + 1), start: word.start + eq + 1, end: word.end },
  ];
}

function parseTable(word: Word | undefined, flag: Word, fail: Fail): Table {
  const tables = Object.keys(BUILTIN_CHAINS);
  if (!word) return fail(flag, `\`${flag.value}\` needs a table name: ${tables.join(', ')}`);
  if (!tables.includes(word.value)) fail(word, `unknown table \`${word.value}\`; tables are ${tables.join(', ')}`);
  return word.value as Table;
}
