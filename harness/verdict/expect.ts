/** Expectations against observations: pure, one message per unmet expectation. */
import type { Expectation, RewriteKind } from '../scenario/topology.js';

export interface Observed {
  ok: boolean;
  status: number | null;
  error: string | null;
  serverSaw: string | null;
  replyFrom: string | null;
  rewrites: RewriteKind[];
  bypassedRouter: boolean;
}

export function checkExpectation(expect: Expectation, observed: Observed): string[] {
  const failures: string[] = [];
  if (expect.ok !== undefined && expect.ok !== observed.ok) {
    failures.push(
      expect.ok
        ? `expected the request to succeed, but it failed (${observed.error ?? 'no response'})`
        : `expected the request to fail, but it got HTTP ${observed.status}`,
    );
  }
  if (expect.status !== undefined && expect.status !== observed.status) {
    failures.push(`expected HTTP ${expect.status}, got ${observed.status ?? 'no response'}`);
  }
  if (expect.serverSees !== undefined && expect.serverSees !== observed.serverSaw) {
    failures.push(
      `expected the server to see ${expect.serverSees}, but ${observed.serverSaw ? `it saw ${observed.serverSaw}` : 'it logged no request'}`,
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
  return failures;
}

export function formatRewrites(list: readonly RewriteKind[]): string {
  return list.length === 0 ? '(none)' : list.join(' → ');
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
