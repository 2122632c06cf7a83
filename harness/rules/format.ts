/** Telling which of the three rule formats a `--rules FILE` is written in. */
import { RuleError } from '../errors.js';
import type { RuleFormat } from '../scenario/topology.js';

const FORMATS_ACCEPTED =
  'accepted formats: iptables command lines (`iptables -t nat -A PREROUTING ...`), ' +
  'iptables-save output (`*nat`, `:PREROUTING ACCEPT [0:0]`, rules, `COMMIT`), ' +
  'or an nft ruleset (`table ip nat { ... }`, a .nft file)';

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
  // Also sudo/ip6tables lines: compiling them explains why they are refused.
  if (/^(sudo\s+)?(ip6?tables)/.test(line)) return 'iptables';
  const indent = (lines[index] ?? '').search(/\S/);
  const position = { file: fileName, line: index + 1, column: indent + 1 };
  throw new RuleError(`cannot tell the rule format; ${FORMATS_ACCEPTED}`, position, line);
}
