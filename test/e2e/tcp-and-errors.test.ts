/**
 * Plain TCP probes and expected error kinds on a real topology (scenarios/tcp-and-errors.yaml):
 * a TCP connect through DNAT to a port that serves HTTP succeeds without any HTTP; a forward to
 * a port nothing listens on is refused; a DROP is silence and a REJECT an ICMP error, and an
 * expectation that names the wrong one of those fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import type { RunResult } from '../../harness/result/result.js';
import { leftBehind, netnsUnavailable } from './host.js';
import { probeOf } from './backend-cases.js';

const SCENARIO = 'scenarios/tcp-and-errors.yaml';

/**
 * The scenario plus a copy of its `drop` rule set whose expectations swap the two failures:
 * the refused connection expected to time out, the dropped one expected to be refused.
 */
function withMisjudgedRuleset(topology: Topology): Topology {
  const drop = topology.rulesets.find((r) => r.name === 'drop');
  if (!drop) throw new Error('the scenario has no drop rule set');
  const misjudged = {
    ...drop,
    name: 'misjudged',
    expect: { telnet: { error: 'timeout' as const }, database: { error: 'refused' as const } },
  };
  return { ...topology, rulesets: [...topology.rulesets, misjudged] };
}

describe.skipIf(netnsUnavailable)(`tcp-and-errors on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  let result: RunResult;
  const runId = newRunId();

  beforeAll(async () => {
    const topology = withMisjudgedRuleset(await loadScenario(SCENARIO));
    result = await runScenario(topology, { backend: new NetnsBackend(), runId });
  });

  it("meets every expectation of the scenario's own rule sets", () => {
    const own = result.probes.filter((p) => p.ruleset !== 'misjudged');
    expect(own.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
    expect(own).toHaveLength(8);
  });

  it('a TCP probe through DNAT to a port that serves HTTP connects, with no HTTP status and no server log', () => {
    const p = probeOf(result, 'drop', 'ssh');
    expect(p).toMatchObject({
      kind: 'tcp',
      ok: true,
      status: null,
      error: null,
      serverSaw: null,
      serverSawSource: null,
      serverLog: null,
      replyFrom: '198.18.10.1',
      rewrites: ['DNAT', 'un-DNAT'],
      bypassedRouter: false,
    });
    // The handshake, seen on the wire from natproof's chosen source port: the SYN DNATed to the
    // server's port, its SYN-ACK un-DNATed back.
    expect(p.hops).toContainEqual(expect.objectContaining({ packet: 'request', where: 'lan@server', dst: '10.77.0.10:8080', flags: 'S' }));
    expect(p.hops).toContainEqual(
      expect.objectContaining({
        packet: 'reply',
        where: 'router:eth0',
        src: '198.18.10.1:22',
        dst: `198.18.10.20:${p.clientPort}`,
        flags: 'S.',
      }),
    );
  });

  it('an HTTP probe beside it is still an HTTP request the server logs', () => {
    expect(probeOf(result, 'drop', 'web')).toMatchObject({ kind: 'http', ok: true, status: 200, serverSaw: '198.18.10.20' });
  });

  it('a forward to a port nothing listens on is refused: the reset answering the SYN', () => {
    const p = probeOf(result, 'drop', 'telnet');
    expect(p).toMatchObject({ kind: 'tcp', ok: false, error: 'refused', replyFrom: '198.18.10.1', expectationsMet: true });
    expect(p.hops).toContainEqual(expect.objectContaining({ packet: 'reply', where: 'lan@server', flags: 'R.' }));
  });

  it('a dropped connection is a timeout, decided after the probe timeout counted from the SYN', () => {
    const p = probeOf(result, 'drop', 'database');
    expect(p).toMatchObject({ kind: 'tcp', ok: false, error: 'timeout', replyFrom: null, expectationsMet: true });
    expect(p.durationMs).toBeGreaterThanOrEqual(700);
    expect(p.hops.filter((h) => h.packet === 'reply')).toEqual([]);
  });

  it('a connection rejected with an ICMP error is unreachable, not refused and not a timeout', () => {
    expect(probeOf(result, 'reject', 'database')).toMatchObject({ ok: false, error: 'unreachable', expectationsMet: true });
  });

  it('an expectation naming the wrong error kind fails, saying what happened instead', () => {
    expect(probeOf(result, 'misjudged', 'telnet')).toMatchObject({
      error: 'refused',
      expectationsMet: false,
      failures: ['expected the connection to fail with timeout (silence), but it failed with refused (a reset answering the SYN)'],
    });
    expect(probeOf(result, 'misjudged', 'database')).toMatchObject({
      error: 'timeout',
      expectationsMet: false,
      failures: ['expected the connection to fail with refused (a reset answering the SYN), but it failed with timeout (silence)'],
    });
    expect(result.passed).toBe(false);
  });

  it('leaves nothing behind', () => {
    expect(leftBehind(runId)).toEqual([]);
  });
});
