/**
 * A rule set's rules one by one, each removable without moving any other rule's line, and where
 * the kernel will list it (for its counter).
 */
import { describe, expect, it } from 'vitest';
import { ruleUnits } from '../../harness/rules/units.js';
import type { RuleSource } from '../../harness/scenario/topology.js';

const source = (format: RuleSource['format'], text: string): RuleSource => ({ format, text, origin: { file: 'r', line: 10, column: 1 } });

describe('ruleUnits', () => {
  it('iptables command lines: rules and policies, not chain creation; -I positions as the kernel lists them', () => {
    const src = source(
      'iptables',
      [
        'iptables -t nat -N PORTFWD',
        'iptables -t nat -A PREROUTING -j PORTFWD',
        'iptables -t nat -A PORTFWD -p tcp \\',
        '    --dport 80 -j DNAT --to 10.0.0.1',
        'iptables -t nat -I PORTFWD 1 -s 10.0.0.0/8 -j RETURN',
        'iptables -P FORWARD DROP',
        '',
      ].join('\n'),
    );
    const units = ruleUnits(src);
    expect(units.map((u) => [u.line, u.place])).toEqual([
      [11, { table: 'nat', chain: 'PREROUTING', position: 1 }],
      [12, { table: 'nat', chain: 'PORTFWD', position: 2 }],
      [14, { table: 'nat', chain: 'PORTFWD', position: 1 }],
      [15, { table: 'filter', chain: 'FORWARD', position: 'policy' }],
    ]);
    expect(units[1]?.text).toBe('iptables -t nat -A PORTFWD -p tcp --dport 80 -j DNAT --to 10.0.0.1');
    // Removed as spaces: every other rule keeps its line, and what is left still parses.
    const without = units[1]!.without.text.split('\n');
    expect(without).toHaveLength(7);
    expect(without[2]?.trim()).toBe('');
    expect(without[3]?.trim()).toBe('');
    expect(without[4]).toBe('iptables -t nat -I PORTFWD 1 -s 10.0.0.0/8 -j RETURN');
    expect(ruleUnits(units[1]!.without)).toHaveLength(3);
  });

  it('iptables-save: each -A line, positioned per chain', () => {
    const units = ruleUnits(source('iptables-save', '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j A\n-A PREROUTING -j B\nCOMMIT\n'));
    expect(units.map((u) => [u.line, u.place])).toEqual([
      [12, { table: 'nat', chain: 'PREROUTING', position: 1 }],
      [13, { table: 'nat', chain: 'PREROUTING', position: 2 }],
    ]);
  });

  it('nft: the rule lines of chain blocks, not their type, policy, comments or structure, placed in family, table and chain', () => {
    const text = [
      'table inet t {',
      '  define x = { 1 }',
      '  chain dstnat {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      '    # a comment',
      '    ct state vmap { established : accept }',
      '    tcp dport 80 dnat ip to 10.0.0.1',
      '  }',
      '  chain srcnat {',
      '    type nat hook postrouting priority srcnat;',
      '    masquerade',
      '  }',
      '}',
      'table nat {',
      '  chain x {',
      '    accept',
      '  }',
      '}',
      'table inet t {',
      '  chain dstnat {',
      '    tcp dport 81 dnat ip to 10.0.0.2',
      '  }',
      '}',
    ].join('\n');
    const units = ruleUnits(source('nft', text));
    expect(units.map((u) => [u.line, u.text])).toEqual([
      [15, 'ct state vmap { established : accept }'],
      [16, 'tcp dport 80 dnat ip to 10.0.0.1'],
      [20, 'masquerade'],
      [25, 'accept'],
      [30, 'tcp dport 81 dnat ip to 10.0.0.2'],
    ]);
    // A later block of the same table adds to the chain: its rule comes after the earlier ones.
    // A table written without a family is nft's default, ip.
    expect(units.map((u) => u.place)).toEqual([
      { family: 'inet', table: 't', chain: 'dstnat', position: 1 },
      { family: 'inet', table: 't', chain: 'dstnat', position: 2 },
      { family: 'inet', table: 't', chain: 'srcnat', position: 1 },
      { family: 'ip', table: 'nat', chain: 'x', position: 1 },
      { family: 'inet', table: 't', chain: 'dstnat', position: 3 },
    ]);
  });
});
