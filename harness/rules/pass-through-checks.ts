/**
 * What can be known about iptables-save and nft text without a kernel. Both go to their tool
 * unchanged, so the tool judges the rules themselves; these checks refuse, before anything is
 * built, the shapes the tool would only refuse after the whole topology is up, and what the
 * tool must never be asked to do (read a file of the machine natproof runs on).
 */
import { RuleError } from '../errors.js';
import { BUILTIN_CHAINS, type Table } from './iptables-command.js';
import type { RuleLineOrigin } from './rule-step.js';

const TABLES = Object.keys(BUILTIN_CHAINS) as Table[];
const POLICIES = new Set(['ACCEPT', 'DROP']);
/** A rule command, after the `[packets:bytes]` that `iptables-save -c` puts first. */
const RULE_LINE = /^(\[\d+:\d+\]\s+)?(-[AIDRNXFPZ]|--(append|insert|delete|replace))\s/;

/** iptables-restore's grammar: `*table`, chain headers, rule commands, `COMMIT`, in that nesting. */
export function checkSaveText(lines: readonly RuleLineOrigin[]): void {
  let open: { table: Table; origin: RuleLineOrigin } | undefined;
  const fail = (origin: RuleLineOrigin, message: string): never => {
    throw new RuleError(message, origin.position, origin.text);
  };
  for (const origin of lines) {
    const line = origin.text;
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const table = line.slice(1);
      if (open) fail(origin, `\`${line}\` starts a table before \`*${open.table}\` ended: end each table with COMMIT`);
      if (!TABLES.includes(table as Table)) fail(origin, `unknown table \`${table}\`; tables are ${TABLES.join(', ')}`);
      open = { table: table as Table, origin };
    } else if (!open) {
      fail(origin, 'outside a table: iptables-save text puts every chain and rule between `*table` and `COMMIT`');
    } else if (line === 'COMMIT') {
      open = undefined;
    } else if (line.startsWith(':')) {
      checkChainHeader(origin, open.table, fail);
    } else if (!RULE_LINE.test(line)) {
      fail(origin, 'not an iptables-save line: expected a rule (`-A CHAIN ...`), a chain (`:CHAIN POLICY [0:0]`) or COMMIT');
    }
  }
  if (open) fail(open.origin, `\`*${open.table}\` has no COMMIT: iptables-restore applies a table only at its COMMIT`);
}

/** `:CHAIN POLICY [packets:bytes]`; a user chain's policy is `-`. */
function checkChainHeader(origin: RuleLineOrigin, table: Table, fail: (o: RuleLineOrigin, m: string) => never): void {
  const [chain = '', policy, counters, ...extra] = origin.text.slice(1).split(/\s+/);
  const builtin = (BUILTIN_CHAINS[table] as readonly string[]).includes(chain);
  const shape = 'a chain line is `:CHAIN POLICY [packets:bytes]`, the policy `-` for a user chain';
  if (chain === '' || policy === undefined || extra.length > 0) fail(origin, shape);
  if (counters !== undefined && !/^\[\d+:\d+\]$/.test(counters)) fail(origin, shape);
  if (builtin && !POLICIES.has(policy!)) fail(origin, `the policy of ${table} ${chain} must be ACCEPT or DROP, not \`${policy}\``);
  if (!builtin && policy !== '-') fail(origin, `${chain} is not a built-in chain of ${table}, so its policy must be \`-\``);
}

/**
 * nft runs inside the router's namespace but reads files from the machine natproof runs on, so an
 * `include` would bring the host's files into the test (or stall on one like /dev/zero).
 */
export function checkNftText(lines: readonly RuleLineOrigin[]): void {
  for (const origin of lines) {
    if (/(^|[;{]\s*)include\s/.test(withoutComment(origin.text))) {
      throw new RuleError(
        '`include` is not allowed: nft would read a file of the machine running natproof; put the rules themselves in the rule set',
        origin.position,
        origin.text,
      );
    }
  }
}

/** The line up to a `#` that is not inside a quoted string. */
function withoutComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === '#' && !quoted) return line.slice(0, i);
  }
  return line;
}
