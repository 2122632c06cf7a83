/** natproof/vitest's matchers over recorded probes: what passes, what fails, and what a failure says. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import '../../harness/vitest/index.js';
import { probeResult } from '../../harness/api/lookup.js';
import { parseRunResult } from '../../harness/run-dir.js';

const result = parseRunResult(readFileSync('test/fixtures/dmz-three-network.result.json', 'utf8'), 'fixture');
const hairpin = probeResult(result, 'dmz-to-public', { ruleset: 'hairpin' });
const broken = probeResult(result, 'dmz-to-public', { ruleset: 'dnat-only' });

/** The message of a matcher that fails. */
function failure(assertion: () => void): string {
  try {
    assertion();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the matcher passed');
}

describe('natproof matchers', () => {
  it('pass on what the kernel showed', () => {
    expect(hairpin).toBeSeenByServerAs('172.16.0.254');
    expect(hairpin).toHaveRewrites(['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT']);
    expect(hairpin).not.toBypassRouter();
    expect(broken).toBypassRouter();
    expect(broken).toFailWith('timeout');
    expect(broken).not.toFailWith('refused');
    expect(hairpin).not.toFailWith('timeout');
    // The recorded run predates answeredBy, so no probe in it reaches a named host.
    expect(hairpin).not.toReach('webserver');
    expect({ ...hairpin, answeredBy: 'webserver' }).toReach('webserver');
  });

  it('fail with expected and observed, then the ladder with names, and the diagnosis', () => {
    const message = failure(() => expect(broken).toReach('webserver'));
    expect(message).toMatch(
      /^expected probe dmz-to-public \(rule set dnat-only: dmz-client 172\.16\.0\.2 → http 100\.0\.0\.254:80\) to reach webserver\n/,
    );
    expect(message).toContain('observed: failed: timeout');
    expect(message).toContain('answered by nobody');
    expect(message).toMatch(/\n {2}Original: +from 172\.16\.0\.2:\d+ \(dmz-client\) to 100\.0\.0\.254:80 \(router eth1\)/);
    expect(message).toMatch(/\n {2}DNAT: +from 172\.16\.0\.2:\d+ \(dmz-client\) to 172\.16\.0\.1:80 \(webserver\)/);
    expect(message).toContain('[bypassed the router; client rejected it]');
    expect(message).toContain('diagnosis: reply-bypassed-router: ');
    expect(message).toContain('fix: iptables -t nat -A POSTROUTING');
  });

  it('say what was not expected under .not', () => {
    const message = failure(() => expect(hairpin).not.toHaveRewrites(['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT']));
    expect(message).toMatch(
      /^expected probe dmz-to-public \(rule set hairpin: .*\) not to have the rewrites DNAT → SNAT → un-SNAT → un-DNAT\n/,
    );
    expect(message).toContain('observed: rewrites DNAT → SNAT → un-SNAT → un-DNAT');
    expect(failure(() => expect(hairpin).toBeSeenByServerAs('172.16.0.2'))).toContain('observed: the server saw 172.16.0.254');
    expect(failure(() => expect(broken).toHaveRewrites(['DNAT', 'un-DNAT']))).toContain('observed: rewrites DNAT\n');
    expect(failure(() => expect(hairpin).toBypassRouter())).toContain('observed: the reply did not bypass the router');
    expect(failure(() => expect(hairpin).toFailWith('timeout'))).toContain('observed: HTTP 200');
  });

  it('read a probe taken straight from result.probes, without host names', () => {
    const plain = result.probes.find((p) => p.ruleset === 'dnat-only' && p.name === 'dmz-to-public')!;
    const message = failure(() => expect(plain).toReach('webserver'));
    expect(message).toMatch(/\n {2}Original: +from 172\.16\.0\.2:\d+ to 100\.0\.0\.254:80\n/);
  });

  it('refuse what is not a probe result', () => {
    expect(() => expect({ name: 'x' }).toReach('web')).toThrow(/expected a natproof probe result: probeResult\(result, name/);
  });
});
