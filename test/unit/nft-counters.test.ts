/** A counter for every nft rule that has none: after its matches, before its first statement; never a second one. */
import { describe, expect, it } from 'vitest';
import { counterCommands } from '../../harness/rules/nft-counters.js';

const match = (field: string, right: unknown) => ({ match: { op: '==', left: { payload: { protocol: 'ip', field } }, right } });
const listing = (rules: Array<{ handle: number; expr: Array<Record<string, unknown>> }>): string =>
  JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'ip', name: 'nat', handle: 1 } },
      {
        chain: { family: 'ip', table: 'nat', name: 'prerouting', handle: 1, type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' },
      },
      ...rules.map((r) => ({ rule: { family: 'ip', table: 'nat', chain: 'prerouting', ...r } })),
    ],
  });

describe('counters on nft rules', () => {
  it('goes after the matches and before the first statement, keeping the rule and its handle', () => {
    const [command] = counterCommands(listing([{ handle: 4, expr: [match('daddr', '100.0.0.254'), { dnat: { addr: '172.16.0.1' } }] }]));
    expect(command).toEqual({
      replace: {
        rule: {
          family: 'ip',
          table: 'nat',
          chain: 'prerouting',
          handle: 4,
          expr: [match('daddr', '100.0.0.254'), { counter: null }, { dnat: { addr: '172.16.0.1' } }],
        },
      },
    });
  });

  it('leaves a rule that counts already, and puts a counter at the end of a rule of matches only', () => {
    const commands = counterCommands(
      listing([
        { handle: 3, expr: [match('saddr', '10.0.0.1'), { counter: { packets: 2, bytes: 120 } }, { accept: null }] },
        { handle: 5, expr: [match('saddr', '10.0.0.2')] },
      ]),
    );
    expect(commands.map((c) => [c.replace.rule.handle, c.replace.rule.expr.length])).toEqual([[5, 2]]);
    expect(commands[0]?.replace.rule.expr[1]).toEqual({ counter: null });
  });

  it('asks for nothing when the listing is not JSON', () => {
    expect(counterCommands('Error: no such file')).toEqual([]);
  });
});
