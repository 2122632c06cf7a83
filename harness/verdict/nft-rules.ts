/**
 * The router's nft rule set as `nft -a list ruleset` prints it: tables, chains (with a base
 * chain's type and hook) and their rules in order, each with its handle. Enough for a diagnosis
 * to name a rule the kernel's trace points at and the rules after it; nft's matches are not
 * evaluated here. Pure.
 */

import { plural } from './chains.js';
import type { DnatDestination } from './netfilter-match.js';

export interface NftRule {
  /** The rule as nft prints it, without its `# handle` comment. */
  text: string;
  handle: number | null;
}

export interface NftChain {
  family: string;
  table: string;
  name: string;
  /** A base chain's `type` (filter, nat, route) and `hook`; null for a regular chain. */
  type: string | null;
  hook: string | null;
  rules: NftRule[];
}

const HANDLE = /\s+# handle (\d+)\s*$/;

export function parseNftRuleset(text: string): NftChain[] {
  const chains: NftChain[] = [];
  let table: { family: string; name: string } | null = null;
  let chain: NftChain | null = null;
  // Sets, maps, flowtables and multi-line elements: skipped until their braces close.
  let skipping = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const opens = (line.match(/{/g) ?? []).length;
    const closes = (line.match(/}/g) ?? []).length;
    if (skipping > 0) {
      skipping += opens - closes;
      continue;
    }
    const tableMatch = /^table (\S+) (\S+) {/.exec(line);
    if (tableMatch) {
      table = { family: tableMatch[1] ?? '', name: tableMatch[2] ?? '' };
      continue;
    }
    const chainMatch = /^chain (\S+) {/.exec(line);
    if (chainMatch && table) {
      chain = { family: table.family, table: table.name, name: chainMatch[1] ?? '', type: null, hook: null, rules: [] };
      chains.push(chain);
      continue;
    }
    if (line.startsWith('}')) {
      if (chain) chain = null;
      else table = null;
      continue;
    }
    if (!chain) {
      // A set, map or flowtable of the table.
      if (opens > closes) skipping = opens - closes;
      continue;
    }
    const base = /^type (\S+) hook (\S+)/.exec(line);
    if (base) {
      chain.type = base[1] ?? null;
      chain.hook = base[2] ?? null;
      continue;
    }
    const handle = HANDLE.exec(line);
    chain.rules.push({ text: line.replace(HANDLE, ''), handle: handle ? Number(handle[1]) : null });
  }
  return chains;
}

/** `ip nat prerouting`. */
export function chainPlace(chain: Pick<NftChain, 'family' | 'table' | 'name'>): string {
  return `${chain.family} ${chain.table} ${chain.name}`;
}

/** Does the rule rewrite the destination (a port forward)? */
export function isNftDnat(rule: NftRule): boolean {
  return /\b(dnat|redirect)\b/.test(rule.text);
}

/**
 * natproof's reading of a rule's text: could it match a request for this address and port? Only
 * the destination address and port are read; a rule that names neither could.
 */
export function mayMatchDestination(rule: NftRule, address: string, port: number): boolean {
  const daddr = /\bip daddr (!= )?([\d.]+)(?:\/(\d+))?(?=\s|$)/.exec(rule.text);
  if (daddr && !daddr[1] && !daddr[3] && daddr[2] !== address) return false;
  const dport = /\b(?:tcp|udp|th) dport (!= )?(\{[^}]*\}|\S+)/.exec(rule.text);
  if (dport && !dport[1]) {
    const ports = (dport[2] ?? '').replace(/[{}\s]/g, '').split(',');
    const covered = ports.some((p) => {
      const [lo, hi] = p.split('-').map(Number);
      return lo !== undefined && (hi === undefined ? lo === port : lo <= port && port <= hi);
    });
    if (!covered) return false;
  }
  return true;
}

/** The packets the rule's counter counted (natproof gives every rule one, rules/nft-counters.ts); null without one. */
export function nftRuleCounter(rule: NftRule): number | null {
  const m = /\bcounter packets (\d+) bytes \d+/.exec(rule.text);
  return m ? Number(m[1]) : null;
}

/** The rule as the user wrote it and where it is, with the kernel's count of the packets it took: `TEXT # handle 4 (kernel counter: 1 packet)`. */
export function describeNftRule(rule: NftRule): string {
  const count = nftRuleCounter(rule);
  return `${ruleStatement(rule)}${rule.handle !== null ? ` # handle ${rule.handle}` : ''}${count !== null ? ` (kernel counter: ${plural(count, 'packet')})` : ''}`;
}

/**
 * A rule written back for `nft add/insert rule`, without its counter: natproof gives every rule
 * one while it runs (rules/nft-counters.ts), which the user's rule need not have.
 */
export function ruleStatement(rule: NftRule): string {
  return rule.text.replace(/\s*\bcounter( packets \d+ bytes \d+)?(?=\s|$)/, '').trim();
}

/** A jump (or goto) on the way to a rule: its rule, its target, and the matches before its verdict. */
export interface JumpStep {
  rule: NftRule;
  /** The chain that holds the jump, and the chain it leads to: `inet fw4 dstnat`. */
  from: string;
  to: string;
  matches: string;
}

/** Chains are followed at most this deep: nft itself refuses loops, so this only bounds the walk. */
export const MAX_JUMP_DEPTH = 16;

/** `<matches> jump|goto <chain>`, with nft's trailing comment if any. */
const JUMP = /^(.*?)\s*\b(?:jump|goto) (\S+)(?:\s+comment\s+"[^"]*")?$/;

/** The chain a rule jumps or goes to, in the same table, and the step that records it. */
export function jumpOf(chains: readonly NftChain[], from: NftChain, rule: NftRule): { chain: NftChain; step: JumpStep } | null {
  const jump = JUMP.exec(rule.text);
  if (!jump) return null;
  const chain = chains.find((c) => c.family === from.family && c.table === from.table && c.name === jump[2]);
  // The jump's own matches go with a rule that is moved out of its chain; its counter does not.
  const matches = (jump[1] ?? '').replace(/\bcounter( packets \d+ bytes \d+)?/, '').trim();
  return chain ? { chain, step: { rule, from: chainPlace(from), to: chainPlace(chain), matches } } : null;
}

/**
 * natproof's reading of a rule's input (`iifname`) or output (`oifname`) interface match: one
 * that names another interface cannot match.
 */
export function mayMatchInterface(rule: NftRule, iface: string | undefined, direction: 'in' | 'out' = 'in'): boolean {
  const m = (direction === 'in' ? /\biifname (!= )?(?:"([^"]+)"|(\S+))/ : /\boifname (!= )?(?:"([^"]+)"|(\S+))/).exec(rule.text);
  // Not read: a negation, a set of names, or an interface natproof did not see.
  if (!m || m[1] || m[3]?.startsWith('{') || iface === undefined) return true;
  const name = m[2] ?? m[3] ?? '';
  // nft's wildcard: a trailing * matches any suffix.
  return name.endsWith('*') ? iface.startsWith(name.slice(0, -1)) : name === iface;
}

/** A dnat (or redirect) rule, the chain it is in, and the jumps from a nat prerouting base chain to it. */
export interface ReachedDnat {
  rule: NftRule;
  where: NftChain;
  via: JumpStep[];
}

/** Every dnat and redirect rule that nat prerouting reaches, in its own chains or through jumps. */
export function reachableDnats(chains: readonly NftChain[]): ReachedDnat[] {
  const found: ReachedDnat[] = [];
  const walk = (chain: NftChain, via: JumpStep[]): void => {
    for (const rule of chain.rules) {
      if (isNftDnat(rule)) found.push({ rule, where: chain, via });
      const jump = jumpOf(chains, chain, rule);
      if (jump && via.length < MAX_JUMP_DEPTH) walk(jump.chain, [...via, jump.step]);
    }
  };
  for (const base of chains.filter((c) => c.type === 'nat' && c.hook === 'prerouting')) walk(base, []);
  return found;
}

/** Where a dnat rule sends the request: `192.168.1.10:8080`; null for a redirect or a map. */
export function nftDnatTarget(rule: NftRule): DnatDestination | null {
  const m = /\bdnat (?:ip )?to ([\d.]+)(?::(\d+))?(?=\s|$)/.exec(rule.text);
  return m?.[1] ? { address: m[1], port: m[2] ? Number(m[2]) : null } : null;
}
