/**
 * `natproof explain` on the seed's summary rules (scenarios/dmz-three-network.yaml): each DNAT
 * rule is needed only by the probes to its own router address, the DMZ hairpin SNAT only by the
 * DMZ client's probes, and the trusted network's SNAT, which no probe exercises, is untested.
 * With the router's own connection into the DMZ (scenarios/dmz-router-traffic.yaml), the seed's
 * efficiency note: the hairpin SNAT without --ctstate DNAT also takes the router's packets, which
 * do not need it, as the kernel's nft trace shows; with --ctstate DNAT it does not. The same on
 * an nft rule set, one unit per nft rule. A router that cannot trace still runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Explanation } from '../../harness/diff/explain.js';
import type { RunResult } from '../../harness/result/result.js';
import { dockerSkipReason } from './docker-host.js';
import { netnsUnavailable } from './host.js';

const dockerUnavailable = await dockerSkipReason();
/** The first docker run may build natproof's images. */
const IMAGE_BUILD_MS = 600_000;
/**
 * An explain runs the rule set once whole and once per rule: seconds on an idle machine, minutes
 * on one that runs other suites too. A wait for the command to finish, never a verdict.
 */
const EXPLAIN_MS = 300_000;

const ROUTER_TRAFFIC = 'scenarios/dmz-router-traffic.yaml';

/**
 * The bin, as users call it, without blocking the test worker (a blocked worker misses vitest's
 * own messages). Past the limit it gets SIGTERM, on which natproof tears its lab down.
 */
function natproof(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/natproof.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGTERM'), IMAGE_BUILD_MS);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Per rule: its text without the command, its verdict, who needs it, whose packets it took, which of those need it not. */
function summary(e: Explanation): Array<[string, string, string[], string[] | null, string[]]> {
  return e.rules.map((r) => [
    r.text.replace(/^iptables -t nat -A /, ''),
    r.verdict,
    r.changes.map((c) => `${c.name} ${c.class}`),
    r.took,
    r.alsoTook.map((p) => p.name),
  ]);
}

describe.skipIf(netnsUnavailable)(`natproof explain on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it(
    "names the probes each of the seed's rules is needed by, and the rule no probe tests",
    async () => {
      const r = await natproof(['explain', 'scenarios/dmz-three-network.yaml', '--ruleset', 'hairpin', '--json']);
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
      // The kernel's trace agrees: no probe's packet reached it; each DNAT took its probes' packets.
      expect(e.rules[4]?.took).toEqual([]);
      expect(e.rules[1]?.took).toEqual(['dmz-to-router-dmz']);
    },
    EXPLAIN_MS,
  );

  it(
    "the hairpin SNAT without --ctstate DNAT also takes the router's own packets into the DMZ, which work the same without it",
    async () => {
      await expectEfficiencyPoint('netns');
    },
    EXPLAIN_MS,
  );

  it(
    'with --ctstate DNAT the SNAT takes only the DNATed connection, and the terminal says so',
    async () => {
      const r = await natproof(['explain', ROUTER_TRAFFIC, '--ruleset', 'hairpin']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(
        [
          'line 47: iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
          '    dmz-to-public fails without it',
          '    took the packets of (nft trace): dmz-to-public',
        ].join('\n'),
      );
      expect(r.stdout).not.toContain('also took');
    },
    EXPLAIN_MS,
  );

  describe('an nft rule set, and a router that cannot trace', () => {
    const work = mkdtempSync(join(tmpdir(), 'natproof-explain-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it(
      'explains each nft rule, placed in the trace by its handle',
      async () => {
        const rules = join(work, 'hairpin-any.nft');
        writeFileSync(
          rules,
          [
            'table ip hairpin {',
            '  chain prerouting {',
            '    type nat hook prerouting priority dstnat; policy accept;',
            '    ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1',
            '  }',
            '  chain postrouting {',
            '    type nat hook postrouting priority srcnat; policy accept;',
            '    ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 snat to 172.16.0.254',
            '  }',
            '}',
            '',
          ].join('\n'),
        );
        const r = await natproof(['explain', ROUTER_TRAFFIC, '--rules', rules, '--json']);
        expect(r.status, r.stderr).toBe(0);
        const e = JSON.parse(r.stdout) as Explanation;
        expect(summary(e)).toEqual([
          [
            'ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1',
            'needed',
            ['internet-to-public regressed', 'dmz-to-public regressed'],
            ['internet-to-public', 'dmz-to-public'],
            [],
          ],
          [
            'ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 snat to 172.16.0.254',
            'needed',
            ['dmz-to-public regressed'],
            ['dmz-to-public', 'router-to-webserver'],
            ['router-to-webserver'],
          ],
        ]);
        expect(e.rules.map((rule) => [rule.line, rule.packets, rule.snatLimit])).toEqual([
          [4, null, null],
          [8, null, 'ct status dnat'],
        ]);
      },
      EXPLAIN_MS,
    );

    it(
      'a router whose nft cannot trace: the run passes, and its evidence says the trace is missing',
      async () => {
        // An nft that does everything but monitor, found first on the PATH natproof runs tools with.
        const bin = join(work, 'bin');
        rmSync(bin, { recursive: true, force: true });
        mkdirSync(bin);
        const real = spawnSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8', timeout: 5_000 }).stdout.trim();
        writeFileSync(
          join(bin, 'nft'),
          `#!/bin/sh\nfor a in "$@"; do [ "$a" = monitor ] && { echo "nft: no tracing here" >&2; exit 1; }; done\nexec ${real} "$@"\n`,
        );
        chmodSync(join(bin, 'nft'), 0o755);
        const r = await natproof(['run', ROUTER_TRAFFIC, '--ruleset', 'hairpin-any', '--json'], {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
        });
        expect(r.status, r.stderr).toBe(0);
        const result = JSON.parse(r.stdout) as RunResult;
        const router = result.rulesets[0]!.evidence.router;
        expect(router.missing).toContain('nft monitor did not start in the router: nft: no tracing here');
        expect([router.nftTrace, router.nftChains]).toEqual([[], []]);
        // The rest of the evidence stands: the router's own connection was still counted on the SNAT.
        expect(result.rulesets[0]!.warnings.map((w) => w.cause)).toEqual(['snat-router-originated']);
      },
      EXPLAIN_MS,
    );
  });
});

describe.skipIf(dockerUnavailable)(`natproof explain on docker${dockerUnavailable ? ` (skipped: ${dockerUnavailable})` : ''}`, () => {
  it(
    "the hairpin SNAT without --ctstate DNAT also takes the router's own packets into the DMZ, as on netns",
    async () => {
      await expectEfficiencyPoint('docker');
    },
    IMAGE_BUILD_MS,
  );
});

/** explain on hairpin-any: the SNAT is needed by the DMZ client, and also took the router's own connection. */
async function expectEfficiencyPoint(backend: 'netns' | 'docker'): Promise<void> {
  const r = await natproof(['explain', ROUTER_TRAFFIC, '--ruleset', 'hairpin-any', '--json', '--backend', backend]);
  expect(r.status, r.stderr).toBe(0);
  const e = JSON.parse(r.stdout) as Explanation;
  expect(summary(e)).toEqual([
    [
      'PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
      'needed',
      ['internet-to-public regressed', 'dmz-to-public regressed'],
      ['internet-to-public', 'dmz-to-public'],
      [],
    ],
    [
      'POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -j SNAT --to 172.16.0.254',
      'needed',
      ['dmz-to-public regressed'],
      ['dmz-to-public', 'router-to-webserver'],
      ['router-to-webserver'],
    ],
  ]);
  expect(e.rules[1]?.alsoTook).toEqual([{ name: 'router-to-webserver', fromRouter: true, clientAddress: '172.16.0.254' }]);
}
