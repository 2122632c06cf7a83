/**
 * A counter on every rule of an nft rule set that has none, so the evidence can say which rule
 * took a probe's packets (iptables rules always count; nft rules only when written with
 * `counter`). The counter goes after the rule's matches, before its first statement, so it
 * counts the packets the rule took; a counter changes no verdict. `nft replace rule` keeps each
 * rule's handle, so the kernel's trace still names the user's rules. Pure: the lab runs it.
 */

/** A rule of `nft -j list ruleset`. */
interface JsonRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  expr: Array<Record<string, unknown>>;
}

/** The `nft -j -f` commands that give every rule without a counter one; none when all count. */
export function counterCommands(listing: string): Array<{ replace: { rule: JsonRule } }> {
  let parsed: { nftables?: Array<Record<string, unknown>> };
  try {
    parsed = JSON.parse(listing) as typeof parsed;
  } catch {
    return [];
  }
  const commands: Array<{ replace: { rule: JsonRule } }> = [];
  for (const item of parsed.nftables ?? []) {
    const rule = item['rule'] as JsonRule | undefined;
    if (!rule || !Array.isArray(rule.expr) || rule.expr.some((e) => 'counter' in e)) continue;
    const firstStatement = rule.expr.findIndex((e) => !('match' in e));
    const at = firstStatement === -1 ? rule.expr.length : firstStatement;
    const { family, table, chain, handle } = rule;
    commands.push({
      replace: { rule: { family, table, chain, handle, expr: [...rule.expr.slice(0, at), { counter: null }, ...rule.expr.slice(at)] } },
    });
  }
  return commands;
}
