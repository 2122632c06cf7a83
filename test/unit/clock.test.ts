import { describe, expect, it } from 'vitest';
import { LapClock } from '../../harness/clock.js';

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

describe('LapClock', () => {
  it('gives whole-millisecond laps that add up exactly to the time elapsed', () => {
    const clock = new LapClock();
    const laps: number[] = [];
    for (const ms of [0, 3, 0.4, 0.6, 7, 1.5]) {
      busy(ms);
      laps.push(clock.lap());
    }
    for (const lap of laps) {
      expect(Number.isInteger(lap)).toBe(true);
      expect(lap).toBeGreaterThanOrEqual(0);
    }
    expect(laps[1]).toBeGreaterThanOrEqual(3);
    expect(laps[4]).toBeGreaterThanOrEqual(7);
    // Differences of rounded readings: the laps add up to a reading, never past it.
    const sum = laps.reduce((a, b) => a + b, 0);
    expect(sum).toBeGreaterThanOrEqual(12);
    expect(sum).toBeLessThanOrEqual(clock.elapsed());
  });
});
