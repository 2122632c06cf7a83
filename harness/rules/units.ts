/**
 * A rule set's rules one by one, each removable: what `natproof explain` takes away to see which
 * probes need it. Pure. A removed rule's characters become spaces (its line breaks stay), so
 * every other rule keeps its line number and the kernel's errors still point at the user's line.
 *
 * A rule is an iptables command that adds a rule or sets a policy (-A, -I, -P), an `-A` line of
 * iptables-save text, or a rule line inside an nft chain block. Chain creation, flushes and
 * table structure are not rules: without them the rest would not load.
 */
import type { RuleSource } from '../scenario/topology.js';
import { parseCommand } from './iptables-command.js';
import { joinContinuations, SourceText } from './source-text.js';
import { ShellScanner } from './words.js';

export interface RuleUnit {
  /** The user's line the rule starts on (in the user's file). */
  line: number;
  /** The rule as written, continuation lines joined. */
  text: string;
  /**
   * Where the kernel lists it, when natproof can tell: table, chain and position (or the policy).
   * `family` is set for an nft rule (its table's family); an iptables rule is iptables-nft's, in
   * the nf_tables family `ip`.
   */
  place: RulePlace | null;
  /** The rule set without this rule. */
  without: RuleSource;
}

export interface RulePlace {
  family?: string;
  table: string;
  chain: string;
  /** 1-based, in the order the kernel runs the chain's rules. */
  position: number | 'policy';
}

export function ruleUnits(src: RuleSource): RuleUnit[] {
  switch (src.format) {
    case 'iptables':
      return commandUnits(src);
    case 'iptables-save':
      return saveUnits(src);
    case 'nft':
      return nftUnits(src);
  }
}

function blank(src: RuleSource, start: number, end: number): RuleSource {
  const text = src.text.replace(/\r\n/g, '\n');
  return { ...src, text: text.slice(0, start) + text.slice(start, end).replace(/[^\n]/g, ' ') + text.slice(end) };
}

function commandUnits(src: RuleSource): RuleUnit[] {
  const source = new SourceText(src);
  const order = new Map<string, string[]>();
  const units: RuleUnit[] = [];
  for (const words of new ShellScanner(source).scan()) {
    const command = parseCommand(source, words);
    const first = words[0];
    const last = words[words.length - 1];
    if (!first || !last || !command.chain) continue;
    const chain = command.chain.value;
    const key = `${command.table}/${chain}`;
    const listed = order.get(key) ?? [];
    order.set(key, listed);
    const id = `${units.length}`;
    if (command.action === 'append') listed.push(id);
    else if (command.action === 'insert') {
      // `-I CHAIN [n] ...`: a number right after the chain is the position (default 1).
      const n = Number(command.args[0]?.value);
      listed.splice(Number.isInteger(n) && n > 0 ? n - 1 : 0, 0, id);
    } else if (command.action !== 'policy') continue;
    units.push({
      line: command.origin.position.line,
      text: command.origin.text,
      place:
        command.action === 'policy' ? { table: command.table, chain, position: 'policy' } : { table: command.table, chain, position: 0 },
      without: blank(src, first.start, last.end),
    });
  }
  // Positions as the kernel lists them once every command ran.
  for (const [key, ids] of order) {
    const [table, chain] = key.split('/');
    ids.forEach((id, index) => {
      const unit = units[Number(id)];
      if (unit?.place && unit.place.table === table && unit.place.chain === chain) unit.place.position = index + 1;
    });
  }
  return units;
}

function lineUnits(src: RuleSource, pick: (line: string, state: LineState) => RuleUnit['place'] | null): RuleUnit[] {
  const text = src.text.replace(/\r\n/g, '\n');
  const units: RuleUnit[] = [];
  const state: LineState = { family: '', table: '', chain: null };
  let offset = 0;
  text.split('\n').forEach((raw, index) => {
    const picked = pick(raw, state);
    if (picked !== null) {
      units.push({
        line: src.origin.line + index,
        text: joinContinuations(raw).trim(),
        place: picked,
        without: blank(src, offset, offset + raw.length),
      });
    }
    offset += raw.length + 1;
  });
  return units;
}

/** Where a line-by-line reading is: the table (and, for nft, family and chain block) it is in. */
interface LineState {
  family: string;
  table: string;
  chain: string | null;
}

function saveUnits(src: RuleSource): RuleUnit[] {
  const positions = new Map<string, number>();
  return lineUnits(src, (raw, state) => {
    const line = raw.trim();
    if (line.startsWith('*')) state.table = line.slice(1).trim();
    const rule = /^(?:\[\d+:\d+\]\s+)?-A\s+(\S+)/.exec(line);
    if (!rule?.[1]) return null;
    const key = `${state.table}/${rule[1]}`;
    const position = (positions.get(key) ?? 0) + 1;
    positions.set(key, position);
    return { table: state.table, chain: rule[1], position };
  });
}

/**
 * Lines of an nft chain block that are rules: not its type, policy, comments or braces. Each is
 * placed in its table (`table [family] NAME {`, family `ip` when not written) and chain, in
 * order: nft keeps a chain's rules in the order the file gives them, also when a later block of
 * the same table adds to it.
 */
function nftUnits(src: RuleSource): RuleUnit[] {
  const positions = new Map<string, number>();
  return lineUnits(src, (raw, state) => {
    const line = raw.replace(/#.*$/, '').trim();
    const table = /^table\s+(?:(ip|ip6|inet|arp|bridge|netdev)\s+)?(\S+)\s*\{$/.exec(line);
    if (table?.[2]) {
      state.family = table[1] ?? 'ip';
      state.table = table[2];
      return null;
    }
    const chain = /^chain\s+(\S+)\s*\{$/.exec(line);
    if (chain?.[1]) {
      state.chain = chain[1];
      return null;
    }
    if (state.chain === null) return null;
    if (line === '}') {
      state.chain = null;
      return null;
    }
    if (line === '' || /^(type|policy)\s/.test(line)) return null;
    const key = `${state.family} ${state.table} ${state.chain}`;
    const position = (positions.get(key) ?? 0) + 1;
    positions.set(key, position);
    return { family: state.family, table: state.table, chain: state.chain, position };
  });
}
