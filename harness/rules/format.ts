/** Telling which of the three rule formats a `--rules FILE` is written in. */
import { RuleError } from '../errors.js';
import type { RuleFormat } from '../scenario/topology.js';

const FORMATS_ACCEPTED =
  'accepted formats: iptables command lines (`iptables -t nat -A PREROUTING ...`), ' +
  'iptables-save output (`*nat`, `:PREROUTING ACCEPT [0:0]`, rules, `COMMIT`), ' +
  'or an nft ruleset (`table ip nat { ... }`, a .nft file); a shell script of iptables lines may set `NAME=value` variables and use them';

/** An iptables command (by name or path, even with sudo or ip6tables), or a script's variable. */
const IPTABLES_LINE = /^((sudo\s+)?(\S*\/)?ip6?tables|[A-Za-z_][A-Za-z0-9_]*=|\$\{?[A-Za-z_])/;

/** Decides the format of a `--rules FILE` from its extension or its first meaningful line. */
export function detectRuleFormat(text: string, fileName: string): RuleFormat {
  if (fileName.endsWith('.nft')) return 'nft';
  const lines = text.split(/\r?\n/);
  if (/^#!.*\bnft\b/.test(lines[0] ?? '')) return 'nft';
  const index = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  const line = lines[index]?.trim();
  if (line === undefined) throw new RuleError(`${fileName} has no rules; ${FORMATS_ACCEPTED}`, undefined, undefined);
  if (/^(\*\w+|:\S+\s+\S+|COMMIT)(\s|$)/.test(line)) return 'iptables-save';
  if (/^(table|flush|add|insert|define|include)\s/.test(line)) return 'nft';
  // Also sudo/ip6tables lines: compiling them explains why they are refused. A firewall script
  // may start with its variables, or name iptables by a path or a variable.
  if (IPTABLES_LINE.test(line)) return 'iptables';
  // A script's first line may be `set -e` or the like: any iptables line makes it a script of
  // them, and compiling it names the line natproof does not run.
  if (lines.some((l) => IPTABLES_LINE.test(l.trim()))) return 'iptables';
  const indent = (lines[index] ?? '').search(/\S/);
  const position = { file: fileName, line: index + 1, column: indent + 1 };
  const first = line.split(/\s/)[0];
  throw new RuleError(
    `cannot tell the rule format: the first rule line starts with \`${first}\`, which starts none of the formats; ${FORMATS_ACCEPTED}`,
    position,
    line,
  );
}
