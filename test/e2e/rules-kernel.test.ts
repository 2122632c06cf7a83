/**
 * Compiled rules against the real tools and kernel, in a scratch namespace of this test's own:
 * what loads shows up in iptables-save / nft list, and what the kernel refuses comes back as a
 * RuleError at the user's line.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuleError } from '../../harness/errors.js';
import { execCommand, type ExecResult } from '../../harness/exec.js';
import { applyRules } from '../../harness/rules/apply.js';
import { netnsUnavailable } from './host.js';
import type { RuleFormat, RuleSource } from '../../harness/scenario/topology.js';

const TIMEOUT_MS = 15_000;
const NETNS = `nptest-rules-${randomBytes(4).toString('hex')}`;
const FILE = 'rules-kernel.yaml';

const unavailable = netnsUnavailable;

function inNetns(argv: string[], input?: string): Promise<ExecResult> {
  return execCommand(['ip', 'netns', 'exec', NETNS, ...argv], { input, timeoutMs: TIMEOUT_MS, allowFailure: true });
}

function source(text: string, format: RuleFormat = 'iptables'): RuleSource {
  return { format, text, origin: { file: FILE, line: 10, column: 7 } };
}

/** Feeds the rules to the scratch namespace exactly as a run feeds the router. */
function apply(src: RuleSource): Promise<void> {
  return applyRules({ exec: (_node, argv, options) => execCommand(['ip', 'netns', 'exec', NETNS, ...argv], options) }, src);
}

async function applyError(src: RuleSource): Promise<RuleError> {
  try {
    await apply(src);
  } catch (err) {
    if (err instanceof RuleError) return err;
    throw err;
  }
  throw new Error('expected the kernel to refuse the rules');
}

async function saved(table: string): Promise<string[]> {
  const result = await inNetns(['iptables-save', '-t', table]);
  expect(result.exitCode).toBe(0);
  return result.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

describe.skipIf(unavailable)(`rules in a real kernel${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let created = false;
  beforeAll(async () => {
    await execCommand(['ip', 'netns', 'add', NETNS], { timeoutMs: TIMEOUT_MS });
    created = true;
  });
  afterAll(async () => {
    if (created) await execCommand(['ip', 'netns', 'del', NETNS], { timeoutMs: TIMEOUT_MS });
  });

  it('loads the seed hairpin rules and iptables-save shows them', async () => {
    await apply(
      source(`# DNAT: port 80 on any router address goes to the DMZ web server
iptables -t nat -A PREROUTING -d 100.0.0.254 \\
    -p tcp --dport 80 -j DNAT --to 172.16.0.1
# SNAT: make same-network clients and servers talk through the router
iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 \\
    -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254
`),
    );
    expect(await saved('nat')).toEqual(
      expect.arrayContaining([
        '-A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1',
        '-A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 172.16.0.254',
      ]),
    );
  });

  it('loads a firewall script with paths and variables as the values it sets', async () => {
    await apply(
      source(`#!/bin/sh
IPT=/usr/sbin/iptables
WAN=eth1 PUBLIC=100.0.0.254 WEB=172.16.0.1
NOTE="web server"
$IPT -t nat -A PREROUTING -i $WAN -d \${PUBLIC} -p tcp --dport 80 -j DNAT --to $WEB
/sbin/iptables -A FORWARD -d $WEB -m comment --comment "$NOTE" -j ACCEPT
`),
    );
    expect(await saved('nat')).toContain(
      '-A PREROUTING -d 100.0.0.254/32 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1',
    );
    expect(await saved('filter')).toContain('-A FORWARD -d 172.16.0.1/32 -m comment --comment "web server" -j ACCEPT');
    // The next test reads whole chains.
    expect((await inNetns(['nft', 'flush', 'ruleset'])).exitCode).toBe(0);
  });

  it('sets policies and chains, keeps quoted arguments, and replaces as -R would', async () => {
    await apply(
      source(`iptables -P FORWARD DROP
iptables -N WEB
iptables -A WEB -p tcp --dport 80 -m comment --comment "web forward" -j ACCEPT
iptables -A FORWARD -s 10.0.0.1 -j DROP
iptables -A FORWARD -j WEB
iptables -R FORWARD 1 -s 10.0.0.2 -j DROP
`),
    );
    const filter = await saved('filter');
    expect(filter).toEqual(
      expect.arrayContaining([
        ':FORWARD DROP [0:0]',
        ':WEB - [0:0]',
        '-A WEB -p tcp -m tcp --dport 80 -m comment --comment "web forward" -j ACCEPT',
      ]),
    );
    // Rule 1 replaced in place, not appended.
    expect(filter.filter((l) => l.startsWith('-A FORWARD'))).toEqual(['-A FORWARD -s 10.0.0.2/32 -j DROP', '-A FORWARD -j WEB']);
  });

  it('flushes and deletes every chain of a table for -F and -X without a chain', async () => {
    await apply(
      source(`iptables -t mangle -N MARKS
iptables -t mangle -A MARKS -j ACCEPT
iptables -t mangle -A PREROUTING -j MARKS
iptables -t mangle -F
iptables -t mangle -X
iptables -t mangle -A PREROUTING -s 10.0.0.3 -j ACCEPT
`),
    );
    expect((await saved('mangle')).filter((l) => l.startsWith('-A') || l.includes('MARKS'))).toEqual([
      '-A PREROUTING -s 10.0.0.3/32 -j ACCEPT',
    ]);
  });

  it.each([
    ['an unknown option', 'iptables -t nat -A PREROUTING -p tcp --dprot 80 -j DNAT --to 172.16.0.1', 'unknown option "--dprot"'],
    ['a bad address', 'iptables -t nat -A PREROUTING -d 300.0.0.1 -j ACCEPT', "host/network `300.0.0.1' not found"],
    ['a target the table does not have', 'iptables -A FORWARD -j DNAT --to 172.16.0.1', 'RULE_APPEND failed (Invalid argument)'],
    ['a jump to a missing chain', 'iptables -t nat -A PREROUTING -j NOWHERE', "Chain 'NOWHERE' does not exist"],
  ])('names the user line of %s', async (_what, rule, toolMessage) => {
    // The bad rule is the third command, on lines 14-15 of the file, after a continued command and a blank line.
    const text = `iptables -t nat -A PREROUTING -d 1.2.3.4 -j ACCEPT
iptables -t nat -A PREROUTING -d 5.6.7.8 \\
    -j ACCEPT

  ${rule.replace(/ -j /, ' \\\n      -j ')}
iptables -t nat -A POSTROUTING -j ACCEPT
`;
    const err = await applyError(source(text));
    expect(err.position).toEqual({ file: FILE, line: 14, column: 9 });
    expect(err.ruleText).toBe(rule);
    expect(err.message).toContain(toolMessage);
  });

  it('loads an nft ruleset', async () => {
    await apply(
      source(
        `table ip nptest {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1
  }
}
`,
        'nft',
      ),
    );
    const listed = await inNetns(['nft', 'list', 'table', 'ip', 'nptest']);
    // With the counter natproof gives every nft rule, after its matches: the verdict is the rule's own.
    expect(listed.stdout).toContain('ip daddr 100.0.0.254 tcp dport 80 counter packets 0 bytes 0 dnat to 172.16.0.1');
  });

  it('names the user line and column of an nft error', async () => {
    const text = `table ip nptest2 {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 100.0.0.254 tcp dprot 80 dnat to 172.16.0.1
  }
}
`;
    const err = await applyError(source(text, 'nft'));
    // Line 4 of the text; nft's column 30 of the raw line, the text starting at column 7.
    expect(err.position).toEqual({ file: FILE, line: 13, column: 36 });
    expect(err.message).toContain('syntax error');
  });

  it('names the user line of an nft rule for a table that does not exist', async () => {
    const err = await applyError(source('add rule ip nosuch prerouting tcp dport 80 accept\n', 'nft'));
    expect(err.position).toEqual({ file: FILE, line: 10, column: 19 });
    expect(err.message).toContain('No such file or directory');
  });
});
