/**
 * The test-suite API end to end, as another project would use it: a scenario written as a typed
 * object, candidate rules from a string, probes looked up by name, and every natproof/vitest
 * matcher on what the kernel showed, including a failing matcher whose message is the ladder.
 * Only the package's entry points are imported (the run-id helper is the tests' own).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { defineScenario, NetnsBackend, newRunId, probeResult, rulesFromText, runScenario, type RunResult } from '../../harness/index.js';
import '../../harness/vitest/index.js';
import { leftBehind, netnsUnavailable } from './host.js';

const topology = defineScenario({
  name: 'api-vitest',
  networks: { wan: { subnet: '100.0.0.0/24' }, dmz: { subnet: '172.16.0.0/24' } },
  router: {
    interfaces: { eth0: { network: 'wan', address: '100.0.0.1' }, eth1: { network: 'dmz', address: '172.16.0.254' } },
    default_route: { dev: 'eth0' },
  },
  hosts: {
    web: { network: 'dmz', address: '172.16.0.10', gateway: '172.16.0.254', services: [{ http: 80 }] },
    'dmz-client': { network: 'dmz', address: '172.16.0.20', gateway: '172.16.0.254' },
    client: { network: 'wan', address: '203.0.113.5', remote: true, gateway: '100.0.0.1' },
  },
  probe_timeout_ms: 1000,
  probes: {
    outside: { from: 'client', to: '100.0.0.1:80', expect: { ok: true, server_sees: '203.0.113.5' } },
    hairpin: { from: 'dmz-client', to: '100.0.0.1:80', expect: { ok: true, server_sees: '172.16.0.254' } },
    closed: { from: 'client', to: '100.0.0.1:81', expect: { error: 'refused' } },
  },
  rulesets: {
    hairpin: {
      iptables: [
        'iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 172.16.0.10',
        'iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 81 -j DNAT --to 172.16.0.10',
        'iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.10 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
        '',
      ].join('\n'),
    },
  },
});

// The candidate under test: the forwards without the hairpin SNAT.
const candidate = rulesFromText(
  `# forwards only
iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 172.16.0.10
iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 81 -j DNAT --to 172.16.0.10
`,
  { name: 'forwards-only' },
);

describe.skipIf(netnsUnavailable)(`the test-suite API on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  const runId = newRunId();
  let result: RunResult;

  beforeAll(async () => {
    result = await runScenario(topology, { backend: new NetnsBackend(), rules: candidate, runId });
  });

  it('runs the candidate rules, not the scenario own, and leaves nothing behind', () => {
    expect(result.rulesets.map((r) => [r.name, r.rules?.file, r.rules?.line])).toEqual([
      ['forwards-only', 'rulesFromText(forwards-only)', 1],
    ]);
    expect(result.passed).toBe(false);
    expect(leftBehind(runId)).toEqual([]);
  });

  it('a forward reaches the server, which sees the client, through DNAT and back', () => {
    const outside = probeResult(result, 'outside');
    expect(outside).toReach('web');
    expect(outside).toBeSeenByServerAs('203.0.113.5');
    expect(outside).toHaveRewrites(['DNAT', 'un-DNAT']);
    expect(outside).not.toBypassRouter();
  });

  it('a forward to a port nothing listens on is refused', () => {
    expect(probeResult(result, 'closed', { ruleset: 'forwards-only' })).toFailWith('refused');
  });

  it('without the hairpin SNAT the reply bypasses the router, and a failing matcher explains it with the ladder', () => {
    const hairpin = probeResult(result, 'hairpin');
    expect(hairpin).toBypassRouter();
    expect(hairpin).toFailWith('timeout');
    expect(hairpin).not.toReach('web');
    let message = '';
    try {
      expect(hairpin).toReach('web');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(
      /^expected probe hairpin \(rule set forwards-only: dmz-client 172\.16\.0\.20 → http 100\.0\.0\.1:80\) to reach web\n/,
    );
    expect(message).toMatch(/\n {2}Original: +from 172\.16\.0\.20:\d+ \(dmz-client\) to 100\.0\.0\.1:80 \(router eth0\)\n/);
    expect(message).toMatch(/\n {2}DNAT: +from 172\.16\.0\.20:\d+ \(dmz-client\) to 172\.16\.0\.10:80 \(web\)\n/);
    expect(message).toContain('bypassed the router');
    expect(message).toContain('diagnosis: reply-bypassed-router: ');
  });
});
