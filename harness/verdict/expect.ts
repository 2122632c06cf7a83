/** Expectations against observations: pure, one message per unmet expectation. */
import type { Diagnosis, ProbeResult } from '../result/result.js';
import type { ExpectableError, Expectation, ProbeKind, RewriteKind } from '../scenario/topology.js';

export interface Observed {
  kind: ProbeKind;
  ok: boolean;
  status: number | null;
  error: string | null;
  serverSaw: string | null;
  replyFrom: string | null;
  rewrites: RewriteKind[];
  bypassedRouter: boolean;
  /** The node that accepted the connection, or null. */
  answeredBy: string | null;
}

/** What each expectable error means on the wire, for the failure message. */
const ERROR_MEANING: Record<ExpectableError, string> = {
  refused: 'a reset answering the SYN',
  reset: 'a reset after the connection was made',
  timeout: 'silence',
  unreachable: 'an ICMP error',
  'no-route': 'no route from the client',
};

/** UDP has no reset: a closed port answers with ICMP. */
const UDP_MEANING: Partial<Record<ExpectableError, string>> = { refused: 'an ICMP port unreachable' };

const WHAT: Record<ProbeKind, string> = { http: 'request', tcp: 'connection', udp: 'query' };

export function checkExpectation(expect: Expectation, observed: Observed): string[] {
  const failures: string[] = [];
  const what = WHAT[observed.kind];
  const errorText = (error: string | null): string => describeError(error, observed.kind);
  if (expect.ok !== undefined && expect.ok !== observed.ok) {
    failures.push(
      expect.ok
        ? `expected the ${what} to succeed, but it failed (${observed.error ?? 'no response'})`
        : `expected the ${what} to fail, but ${succeeded(observed)}`,
    );
  }
  // An unmet `ok: false` already says the probe succeeded; one message per unmet expectation.
  if (expect.error !== undefined && expect.error !== observed.error && !(observed.ok && expect.ok === false)) {
    failures.push(
      `expected the ${what} to fail with ${errorText(expect.error)}, but ${observed.ok ? succeeded(observed) : `it failed with ${errorText(observed.error)}`}`,
    );
  }
  if (expect.status !== undefined && expect.status !== observed.status) {
    failures.push(`expected HTTP ${expect.status}, got ${observed.status ?? 'no response'}`);
  }
  if (expect.serverSees !== undefined && expect.serverSees !== observed.serverSaw) {
    failures.push(
      `expected the server to see ${expect.serverSees}, but ${observed.serverSaw ? `it saw ${observed.serverSaw}` : `it logged no ${observed.kind === 'udp' ? 'query' : 'request'}`}`,
    );
  }
  if (expect.replyFrom !== undefined && expect.replyFrom !== observed.replyFrom) {
    failures.push(
      `expected replies from ${expect.replyFrom}, but ${observed.replyFrom ? `they came from ${observed.replyFrom}` : 'no reply reached the client'}`,
    );
  }
  if (expect.rewrites !== undefined && !sameList(expect.rewrites, observed.rewrites)) {
    failures.push(`expected rewrites ${formatRewrites(expect.rewrites)}, observed ${formatRewrites(observed.rewrites)}`);
  }
  if (expect.bypassedRouter !== undefined && expect.bypassedRouter !== observed.bypassedRouter) {
    failures.push(
      expect.bypassedRouter
        ? 'expected the reply to bypass the router, but it did not'
        : 'the reply went from the server straight to the client, bypassing the router',
    );
  }
  if (expect.answeredBy !== undefined && expect.answeredBy !== observed.answeredBy) {
    failures.push(
      `expected ${expect.answeredBy} to answer, but ${observed.answeredBy ? `${observed.answeredBy} did` : 'no node accepted the connection'}`,
    );
  }
  return failures;
}

/**
 * The expected cause against the diagnosis, which is made after the other expectations are
 * checked (it reads the kernel's evidence, gathered once every probe has run).
 */
export function checkCause(expect: Pick<Expectation, 'cause'>, diagnosis: Diagnosis | null): string[] {
  if (expect.cause === undefined) return [];
  if (diagnosis?.severity !== 'failure') return [`expected the failure to be diagnosed as ${expect.cause}, but nothing failed`];
  if (diagnosis.cause === expect.cause) return [];
  return [`expected the failure to be diagnosed as ${expect.cause}, but the diagnosis is ${diagnosis.cause}: ${diagnosis.summary}`];
}

/** A probe's result with its diagnosis, and the expected cause judged against it. */
export function withDiagnosis(result: Omit<ProbeResult, 'diagnosis'>, diagnosis: Diagnosis | null): ProbeResult {
  const failures = [...result.failures, ...checkCause(result.expected, diagnosis)];
  return { ...result, failures, expectationsMet: failures.length === 0, diagnosis };
}

/** `timeout (silence)`; `error`, natproof's word for anything else, stands alone. */
function describeError(error: string | null, kind: ProbeKind): string {
  if (error === null) return 'no error';
  const meanings: Record<string, string | undefined> = kind === 'udp' ? { ...ERROR_MEANING, ...UDP_MEANING } : ERROR_MEANING;
  const meaning = meanings[error];
  return meaning ? `${error} (${meaning})` : error;
}

function succeeded(observed: Observed): string {
  if (observed.kind === 'udp') return 'the answer arrived';
  return observed.kind === 'tcp' ? 'the handshake completed' : `it got HTTP ${observed.status}`;
}

export function formatRewrites(list: readonly RewriteKind[]): string {
  return list.length === 0 ? '(none)' : list.join(' → ');
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
