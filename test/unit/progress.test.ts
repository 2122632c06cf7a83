/** Progress while probes are out: quiet for a second, then which are waiting, on a terminal or in a log. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressPrinter, waitingLine, watchedAgents, type ProbeProgress } from '../../harness/progress.js';
import type { ProbeAgents } from '../../harness/run.js';

describe('progress of a probe round', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function printer(tty: boolean): { out: string[]; progress: ProgressPrinter } {
    const out: string[] = [];
    return { out, progress: new ProgressPrinter({ write: (t) => out.push(t), tty }, () => Date.now()) };
  }

  it('names the waiting probes and for how long', () => {
    expect(waitingLine('hairpin', ['dmz-to-public'], 5, 2_345)).toBe('rule set hairpin: 1 of 5 probes waiting after 2 s: dmz-to-public');
  });

  it('prints nothing for a round that ends within a second', () => {
    const { out, progress } = printer(true);
    progress.started('hairpin', ['a', 'b']);
    vi.advanceTimersByTime(900);
    progress.settled('a');
    progress.settled('b');
    progress.ended();
    vi.advanceTimersByTime(5_000);
    expect(out).toEqual([]);
  });

  it('rewrites one line on a terminal, and clears it when the round ends', () => {
    const { out, progress } = printer(true);
    progress.started('hairpin', ['a', 'b', 'c']);
    vi.advanceTimersByTime(1_000);
    expect(out.at(-1)).toBe('\r\x1b[Krule set hairpin: 3 of 3 probes waiting after 1 s: a, b, c');
    progress.settled('a');
    vi.advanceTimersByTime(1_000);
    expect(out.at(-1)).toBe('\r\x1b[Krule set hairpin: 2 of 3 probes waiting after 2 s: b, c');
    expect(out.every((t) => !t.includes('\n'))).toBe(true);
    progress.ended();
    expect(out.at(-1)).toBe('\r\x1b[K');
    const written = out.length;
    vi.advanceTimersByTime(5_000);
    expect(out).toHaveLength(written);
  });

  it('adds a whole line every few seconds to a log', () => {
    const { out, progress } = printer(false);
    progress.started('dnat-only', ['dmz-to-public', 'internet-to-public']);
    progress.settled('internet-to-public');
    vi.advanceTimersByTime(4_000);
    expect(out).toEqual(['rule set dnat-only: 1 of 2 probes waiting after 1 s: dmz-to-public\n']);
    vi.advanceTimersByTime(2_000);
    expect(out).toEqual([
      'rule set dnat-only: 1 of 2 probes waiting after 1 s: dmz-to-public\n',
      'rule set dnat-only: 1 of 2 probes waiting after 6 s: dmz-to-public\n',
    ]);
    progress.ended();
    expect(out).toHaveLength(2);
  });

  it('learns from the agents which probe was sent and which settled, by source port', async () => {
    const events: string[] = [];
    const progress: ProbeProgress = {
      started: (ruleset, probes) => events.push(`started ${ruleset} ${probes.join(',')}`),
      settled: (probe) => events.push(`settled ${probe}`),
      ended: () => events.push('ended'),
    };
    let answer: () => void = () => {};
    const signals: Array<AbortSignal | undefined> = [];
    const agents: ProbeAgents = {
      of: () => ({
        probe: (request, signal) =>
          new Promise((resolve) => {
            signals.push(signal);
            const reply = {
              id: 1,
              op: 'probe' as const,
              ok: true,
              status: 200,
              error: null,
              detail: null,
              durationMs: 1,
              decidedBy: 'client' as const,
            };
            if (request.localPort === 20_001) answer = () => resolve({ ...reply, localPort: 20_001 });
            else resolve({ ...reply, localPort: request.localPort });
          }),
      }),
      drainRequests: async () => [],
    };
    const watched = watchedAgents(agents, progress, 'hairpin', ['first', 'second'], [20_000, 20_001]);
    const request = { kind: 'http' as const, address: '10.0.0.1', port: 80, path: '/', timeoutMs: 1_000 };
    const stop = new AbortController();
    const second = watched.of('client').probe({ ...request, localPort: 20_001 }, stop.signal);
    await watched.of('client').probe({ ...request, localPort: 20_000 });
    // The evidence's stop signal reaches the agent through the watch.
    expect(signals).toEqual([stop.signal, undefined]);
    expect(events).toEqual(['started hairpin first,second', 'settled first']);
    answer();
    await second;
    expect(events).toEqual(['started hairpin first,second', 'settled first', 'settled second']);
  });
});
