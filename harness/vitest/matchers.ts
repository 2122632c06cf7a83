/**
 * vitest matchers over a probe's result. Each judges one observed fact; its failure message says
 * what was expected and what the kernel's evidence showed, then the probe's ladder and diagnosis,
 * as the CLI prints them, so a red test explains itself. Pure: no vitest import here, so the
 * messages are testable and the types below are the only tie to vitest.
 */
import type { ProbeError, ProbeResult, AddressBook } from '../result/result.js';
import type { RewriteKind } from '../scenario/topology.js';
import { renderDiagnosis } from '../report/diagnosis.js';
import { ladder, ladderLine } from '../report/ladder.js';
import { outcome, probeTarget } from '../report/summary.js';
import { formatRewrites } from '../verdict/expect.js';

/** What the matchers take: a probe's result, with the run's address book when probeResult gave it. */
export type MatchedProbe = ProbeResult & { readonly addresses?: AddressBook };

export interface NatproofMatchers<R = unknown> {
  /** The probe succeeded and `host` (a host's name, or `router`) accepted the connection. */
  toReach(host: string): R;
  /** The server logged the request as coming from `address`. */
  toBeSeenByServerAs(address: string): R;
  /** The router's rewrites, exactly and in order, e.g. ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT']. */
  toHaveRewrites(rewrites: readonly RewriteKind[]): R;
  /** The server's reply reached the client without passing the router. */
  toBypassRouter(): R;
  /** The probe failed, in this way. */
  toFailWith(error: ProbeError): R;
}

declare module 'vitest' {
  // The generic must be declared as vitest declares it for the interfaces to merge.
  // biome-ignore lint/suspicious/noExplicitAny: vitest's own declaration is `Assertion<T = any>`.
  interface Assertion<T = any> extends NatproofMatchers<void> {}
}

interface MatcherContext {
  isNot: boolean;
}

interface MatcherOutcome {
  pass: boolean;
  message: () => string;
}

/** One fact of a probe: whether it holds, and the expected and observed in words. */
interface Judgement {
  pass: boolean;
  expected: string;
  notExpected: string;
  observed: string;
}

function matcher<A extends unknown[]>(judge: (probe: MatchedProbe, ...args: A) => Judgement) {
  return function (this: MatcherContext, received: unknown, ...args: A): MatcherOutcome {
    const probe = asProbe(received);
    const j = judge(probe, ...args);
    return { pass: j.pass, message: () => explain(probe, this.isNot ? j.notExpected : j.expected, j.observed) };
  };
}

export const natproofMatchers = {
  toReach: matcher((p, host: string) => ({
    pass: p.ok && p.answeredBy === host,
    expected: `to reach ${host}`,
    notExpected: `not to reach ${host}`,
    observed: `${outcome(p)}; answered by ${p.answeredBy ?? 'nobody'}`,
  })),
  toBeSeenByServerAs: matcher((p, address: string) => ({
    pass: p.serverSaw === address,
    expected: `to be seen by the server as ${address}`,
    notExpected: `not to be seen by the server as ${address}`,
    observed: p.serverSaw === null ? 'no server logged the request' : `the server saw ${p.serverSaw}`,
  })),
  toHaveRewrites: matcher((p, rewrites: readonly RewriteKind[]) => ({
    pass: p.rewrites.length === rewrites.length && p.rewrites.every((r, i) => r === rewrites[i]),
    expected: `to have the rewrites ${formatRewrites(rewrites)}`,
    notExpected: `not to have the rewrites ${formatRewrites(rewrites)}`,
    observed: `rewrites ${formatRewrites(p.rewrites)}`,
  })),
  toBypassRouter: matcher((p) => ({
    pass: p.bypassedRouter,
    expected: "to have the server's reply bypass the router",
    notExpected: "not to have the server's reply bypass the router",
    observed: p.bypassedRouter ? 'the reply bypassed the router' : 'the reply did not bypass the router',
  })),
  toFailWith: matcher((p, error: ProbeError) => ({
    pass: !p.ok && p.error === error,
    expected: `to fail with ${error}`,
    notExpected: `not to fail with ${error}`,
    observed: outcome(p),
  })),
};

/** Expected, observed, then the ladder, the probe's unmet expectations and its diagnosis. */
export function explain(probe: MatchedProbe, expected: string, observed: string): string {
  const book = probe.addresses ?? { router: { name: 'router', interfaces: [] }, hosts: [] };
  const steps = ladder(probe);
  const lines = [
    `expected probe ${probe.name} (rule set ${probe.ruleset}: ${probe.client} ${probe.clientAddress} → ${probeTarget(probe)}) ${expected}`,
    `observed: ${observed}`,
    '',
    ...(steps.length > 0 ? steps.map((s) => `  ${ladderLine(s, book)}`) : ['  (no packet of this probe was captured)']),
    ...probe.failures.map((f) => `  ${f}`),
    ...(probe.diagnosis ? renderDiagnosis(probe.diagnosis, '  ') : []),
  ];
  return lines.join('\n');
}

function asProbe(received: unknown): MatchedProbe {
  const r = received as Partial<ProbeResult> | null;
  if (typeof r !== 'object' || r === null || typeof r.name !== 'string' || !Array.isArray(r.hops) || !Array.isArray(r.rewrites)) {
    throw new TypeError('expected a natproof probe result: probeResult(result, name, { ruleset }) gives one');
  }
  return r as MatchedProbe;
}
