/**
 * Expectations against observations: an expected error kind, a TCP probe's success and a UDP
 * probe's wording are judged from what the client reported, one message per unmet expectation.
 */
import { describe, expect, it } from 'vitest';
import type { Diagnosis, ProbeResult } from '../../harness/result/result.js';
import { checkCause, checkExpectation, withDiagnosis, type Observed } from '../../harness/verdict/expect.js';

const failedWith = (error: string, kind: Observed['kind'] = 'http'): Observed => ({
  kind,
  ok: false,
  status: null,
  error,
  serverSaw: null,
  replyFrom: null,
  rewrites: [],
  bypassedRouter: false,
  answeredBy: null,
});

const httpOk: Observed = {
  kind: 'http',
  ok: true,
  status: 200,
  error: null,
  serverSaw: '203.0.113.5',
  replyFrom: '100.0.0.1',
  rewrites: ['DNAT', 'un-DNAT'],
  bypassedRouter: false,
  answeredBy: 'webserver',
};

const tcpOk: Observed = { ...httpOk, kind: 'tcp', status: null, serverSaw: null };

describe('an expected error kind', () => {
  it('is met by a probe that failed that way', () => {
    expect(checkExpectation({ error: 'refused' }, failedWith('refused'))).toEqual([]);
    expect(checkExpectation({ ok: false, error: 'timeout' }, failedWith('timeout'))).toEqual([]);
  });

  it('tells a refusal from silence: a timeout does not meet `error: refused`', () => {
    expect(checkExpectation({ ok: false, error: 'refused' }, failedWith('timeout'))).toEqual([
      'expected the request to fail with refused (a reset answering the SYN), but it failed with timeout (silence)',
    ]);
  });

  it('is not met by a probe that succeeded, said once when ok: false is also unmet', () => {
    expect(checkExpectation({ error: 'unreachable' }, httpOk)).toEqual([
      'expected the request to fail with unreachable (an ICMP error), but it got HTTP 200',
    ]);
    expect(checkExpectation({ ok: false, error: 'unreachable' }, httpOk)).toEqual(['expected the request to fail, but it got HTTP 200']);
  });

  it("names natproof's catch-all error as it is", () => {
    expect(checkExpectation({ error: 'reset' }, failedWith('error'))).toEqual([
      'expected the request to fail with reset (a reset after the connection was made), but it failed with error',
    ]);
  });
});

describe('a TCP probe', () => {
  it('meets ok: true with a completed handshake and no HTTP status', () => {
    expect(checkExpectation({ ok: true, replyFrom: '100.0.0.1', rewrites: ['DNAT', 'un-DNAT'] }, tcpOk)).toEqual([]);
  });

  it('speaks of a connection and a handshake, not of HTTP', () => {
    expect(checkExpectation({ ok: false, error: 'refused' }, tcpOk)).toEqual([
      'expected the connection to fail, but the handshake completed',
    ]);
    expect(checkExpectation({ error: 'refused' }, tcpOk)).toEqual([
      'expected the connection to fail with refused (a reset answering the SYN), but the handshake completed',
    ]);
    expect(checkExpectation({ ok: true }, failedWith('refused', 'tcp'))).toEqual([
      'expected the connection to succeed, but it failed (refused)',
    ]);
  });

  it('answered_by names the node that accepted the connection, or says none did', () => {
    expect(checkExpectation({ answeredBy: 'webserver' }, httpOk)).toEqual([]);
    expect(checkExpectation({ answeredBy: 'router' }, httpOk)).toEqual(['expected router to answer, but webserver did']);
    expect(checkExpectation({ answeredBy: 'router' }, failedWith('refused'))).toEqual([
      'expected router to answer, but no node accepted the connection',
    ]);
  });
});

describe('a udp probe', () => {
  const udpOk: Observed = { ...httpOk, kind: 'udp', status: null };

  it('speaks of a query and its answer, and of ICMP rather than a reset', () => {
    expect(checkExpectation({ error: 'refused' }, udpOk)).toEqual([
      'expected the query to fail with refused (an ICMP port unreachable), but the answer arrived',
    ]);
    expect(checkExpectation({ error: 'refused' }, failedWith('timeout', 'udp'))).toEqual([
      'expected the query to fail with refused (an ICMP port unreachable), but it failed with timeout (silence)',
    ]);
    expect(checkExpectation({ ok: true }, failedWith('unreachable', 'udp'))).toEqual([
      'expected the query to succeed, but it failed (unreachable)',
    ]);
  });

  it('names the query the responder did not log', () => {
    expect(checkExpectation({ serverSees: '10.53.0.1' }, failedWith('timeout', 'udp'))).toEqual([
      'expected the server to see 10.53.0.1, but it logged no query',
    ]);
  });
});

describe('an expected cause', () => {
  const diagnosed = (cause: Diagnosis['cause'], severity: Diagnosis['severity'] = 'failure'): Diagnosis => ({
    cause,
    severity,
    summary: `summary of ${cause}`,
    evidence: [],
    suggestion: null,
  });

  it('is met by the diagnosis that names it, and by no other', () => {
    expect(checkCause({ cause: 'rule-order' }, diagnosed('rule-order'))).toEqual([]);
    expect(checkCause({ cause: 'rule-order' }, diagnosed('no-dnat-match'))).toEqual([
      'expected the failure to be diagnosed as rule-order, but the diagnosis is no-dnat-match: summary of no-dnat-match',
    ]);
    expect(checkCause({ cause: 'forward-dropped' }, diagnosed('unknown'))).toEqual([
      'expected the failure to be diagnosed as forward-dropped, but the diagnosis is unknown: summary of unknown',
    ]);
  });

  it('is not met when nothing failed, nor by a warning', () => {
    expect(checkCause({ cause: 'rule-order' }, null)).toEqual(['expected the failure to be diagnosed as rule-order, but nothing failed']);
    expect(checkCause({ cause: 'rule-order' }, diagnosed('snat-router-originated', 'warning'))).toHaveLength(1);
    expect(checkCause({}, null)).toEqual([]);
  });

  it('joins the other failures of the result, which then misses its expectations', () => {
    const base = { expected: { ok: false, cause: 'rule-order' as const }, failures: [], expectationsMet: true };
    const missed = withDiagnosis(base as unknown as Omit<ProbeResult, 'diagnosis'>, diagnosed('no-dnat-match'));
    expect(missed).toMatchObject({ expectationsMet: false, diagnosis: { cause: 'no-dnat-match' } });
    expect(missed.failures).toHaveLength(1);
    const met = withDiagnosis(base as unknown as Omit<ProbeResult, 'diagnosis'>, diagnosed('rule-order'));
    expect(met).toMatchObject({ expectationsMet: true, failures: [] });
  });
});
