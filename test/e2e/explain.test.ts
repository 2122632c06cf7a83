/**
 * `natproof explain` on the seed's summary rules (scenarios/dmz-three-network.yaml): each DNAT
 * rule is needed only by the probes to its own router address, the DMZ hairpin SNAT only by the
 * DMZ client's probes, and the trusted network's SNAT, which no probe exercises, is untested.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Explanation } from '../../harness/diff/explain.js';
import { netnsUnavailable } from './host.js';

describe.skipIf(netnsUnavailable)(`natproof explain on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it("names the probes each of the seed's rules is needed by, and the rule no probe tests", () => {
    const r = spawnSync(
      process.execPath,
      ['bin/natproof.js', 'explain', 'scenarios/dmz-three-network.yaml', '--ruleset', 'hairpin', '--json'],
      {
        encoding: 'utf8',
        timeout: 180_000,
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout) as Explanation;
    const needs = e.rules.map((rule) => [
      rule.text.replace(/^iptables -t nat -A /, ''),
      rule.verdict,
      rule.changes.map((c) => `${c.name} ${c.class}`),
    ]);
    expect(needs).toEqual([
      [
        'PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        'needed',
        ['internet-to-public regressed', 'dmz-to-public regressed', 'trusted-to-public regressed'],
      ],
      ['PREROUTING -d 172.16.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1', 'needed', ['dmz-to-router-dmz regressed']],
      ['PREROUTING -d 192.168.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1', 'needed', ['trusted-to-router-trusted regressed']],
      [
        'POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
        'needed',
        ['dmz-to-public regressed', 'dmz-to-router-dmz regressed'],
      ],
      ['POSTROUTING -s 192.168.0.0/24 -d 192.168.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 192.168.0.254', 'untested', []],
    ]);
    expect(e.rules[4]?.packets).toBe(0);
  });
});
