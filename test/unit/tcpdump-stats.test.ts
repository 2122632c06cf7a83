/**
 * Draining a tcpdump: it has caught up when its counters say so, even when it counted packets
 * that came before its filter and will never write them. The tcpdump here is a stand-in that
 * answers SIGUSR1 with scripted counters, as tcpdump prints them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type LongProcess, startProcess } from '../../harness/exec.js';
import { TcpdumpStats } from '../../harness/trace/tcpdump-stats.js';

const running: LongProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
});

/** A process that answers the n-th SIGUSR1 with the n-th [captured, received, dropped] (the last one repeats). */
function fakeTcpdump(answers: Array<[number, number, number]>): LongProcess {
  const script = `
    const answers = ${JSON.stringify(answers)};
    let n = 0;
    process.on('SIGUSR1', () => {
      const [c, r, d] = answers[Math.min(n++, answers.length - 1)];
      process.stderr.write('tcpdump: ' + c + ' packets captured, ' + r + ' packets received by filter, ' + d + ' packets dropped by kernel\\n');
    });
    process.stderr.write('listening on any\\n');
    setInterval(() => {}, 1000);
  `;
  const proc = startProcess([process.execPath, '-e', script]);
  running.push(proc);
  return proc;
}

async function drained(answers: Array<[number, number, number]>, timeoutMs = 5_000): Promise<number> {
  const proc = fakeTcpdump(answers);
  await proc.waitForStderr(/listening on/, 5_000);
  const stats = new TcpdumpStats(proc);
  stats.askReference();
  return stats.drain(timeoutMs, 5);
}

describe('a tcpdump is drained', () => {
  it('when every packet it received is written or dropped', async () => {
    expect(
      await drained([
        [0, 0, 0],
        [10, 14, 0],
        [14, 14, 0],
      ]),
    ).toBe(0);
  });

  it('when it is back at the packets it counted before its filter was attached, which it never writes', async () => {
    expect(
      await drained([
        [0, 364, 0],
        [20, 390, 0],
        [26, 390, 0],
      ]),
    ).toBe(0);
  });

  it('never while packets of the probes are still unread: they are counted as missing at the deadline', async () => {
    expect(
      await drained(
        [
          [0, 364, 0],
          [20, 390, 0],
        ],
        300,
      ),
    ).toBe(6);
  });

  it('and its kernel drops are not unread packets', async () => {
    expect(
      await drained([
        [0, 0, 0],
        [10, 14, 4],
      ]),
    ).toBe(0);
  });
});
