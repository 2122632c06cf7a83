/** Reading `nft -a list ruleset`: chains with their hooks, rules with their handles, sets skipped. */
import { describe, expect, it } from 'vitest';
import { mayMatchDestination, parseNftRuleset, ruleStatement } from '../../harness/verdict/nft-rules.js';

const RULESET = `table inet fw4 { # handle 5
	define lan = 1
	set blocked { # handle 9
		type ipv4_addr
		elements = { 192.0.2.1,
			     192.0.2.2 }
	}

	chain dstnat { # handle 20
		type nat hook prerouting priority dstnat; policy accept;
		iifname "br-lan" jump dstnat_lan comment "!fw4: Handle lan IPv4/IPv6 dstnat traffic" # handle 21
	}

	chain dstnat_lan { # handle 22
		ip saddr 192.168.1.0/24 ip daddr 203.0.113.2 tcp dport 80 counter packets 3 bytes 180 dnat ip to 192.168.1.10:8080 # handle 23
	}
}
table ip nat { # handle 6
	chain prerouting { # handle 1
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr 172.16.0.0/24 accept # handle 3
	}
}
`;

describe('parseNftRuleset', () => {
  it('reads base chains with their type and hook, regular chains, and each rule with its handle', () => {
    const chains = parseNftRuleset(RULESET);
    expect(chains.map((c) => `${c.family} ${c.table} ${c.name} ${c.type}/${c.hook}`)).toEqual([
      'inet fw4 dstnat nat/prerouting',
      'inet fw4 dstnat_lan null/null',
      'ip nat prerouting nat/prerouting',
    ]);
    expect(chains[1]?.rules).toEqual([
      {
        text: 'ip saddr 192.168.1.0/24 ip daddr 203.0.113.2 tcp dport 80 counter packets 3 bytes 180 dnat ip to 192.168.1.10:8080',
        handle: 23,
      },
    ]);
    expect(chains[2]?.rules).toEqual([{ text: 'ip saddr 172.16.0.0/24 accept', handle: 3 }]);
  });
});

describe('mayMatchDestination', () => {
  const rule = (text: string) => ({ text, handle: null });
  it('reads the destination address and port only', () => {
    expect(mayMatchDestination(rule('ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1'), '100.0.0.254', 80)).toBe(true);
    expect(mayMatchDestination(rule('ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1'), '100.0.0.254', 443)).toBe(false);
    expect(mayMatchDestination(rule('ip daddr 100.0.0.1 tcp dport 80 dnat to 172.16.0.1'), '100.0.0.254', 80)).toBe(false);
    expect(mayMatchDestination(rule('tcp dport { 80, 443 } dnat to 172.16.0.1'), '100.0.0.254', 443)).toBe(true);
    expect(mayMatchDestination(rule('tcp dport 8000-8100 dnat to 172.16.0.1'), '100.0.0.254', 8080)).toBe(true);
    expect(mayMatchDestination(rule('dnat to 172.16.0.1'), '100.0.0.254', 22)).toBe(true);
  });
});

describe('ruleStatement', () => {
  it('drops the counter, which natproof gave every rule while it ran and the user need not have written', () => {
    expect(ruleStatement({ text: 'tcp dport 80 counter packets 3 bytes 180 dnat to 10.0.0.1', handle: 4 })).toBe(
      'tcp dport 80 dnat to 10.0.0.1',
    );
    expect(ruleStatement({ text: 'ip saddr 10.0.0.0/8 counter accept', handle: 5 })).toBe('ip saddr 10.0.0.0/8 accept');
  });
});
