/**
 * The run's stopwatch for `timings`: consecutive laps of one clock. Each lap is the difference
 * of two rounded readings, so laps are whole milliseconds that never overlap and always add up
 * to the rounded time since the start (no rounding error accumulates).
 */
export class LapClock {
  private readonly origin = performance.now();
  private last = 0;

  /** Milliseconds since the previous lap (or the start), and start the next lap. */
  lap(): number {
    const now = this.elapsed();
    const lap = now - this.last;
    this.last = now;
    return lap;
  }

  /** Whole milliseconds since the clock started. */
  elapsed(): number {
    return Math.round(performance.now() - this.origin);
  }
}
