/** What every run's `timings` must satisfy: phases of one clock, so none negative, none overlapping. */
import { expect } from 'vitest';
import type { RunTimings } from '../harness/result/result.js';

export function expectPlausibleTimings(timings: RunTimings | undefined, rulesets: string[]): void {
  expect(timings, 'the result has no timings').toBeDefined();
  const t = timings!;
  expect(t.rulesets.map((r) => r.name)).toEqual(rulesets);
  const phases = [
    t.buildMs,
    t.agentsMs,
    t.teardownMs,
    ...t.rulesets.flatMap((r) => [r.applyMs, r.captureMs, r.probesMs, r.evidenceMs, r.analysisMs]),
  ];
  for (const ms of [t.totalMs, ...phases]) {
    expect(Number.isInteger(ms), `${ms} is not whole milliseconds`).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(0);
  }
  expect(phases.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(t.totalMs);
  // Building namespaces and starting processes takes real time: a clock that never ran would pass the rest.
  expect(t.buildMs).toBeGreaterThan(0);
  expect(t.agentsMs).toBeGreaterThan(0);
}
