/** The processes a lab keeps: stopped at teardown, also when disposed. */
import { describe, expect, it } from 'vitest';
import { ProcessGroup } from '../../harness/backend/processes.js';
import { startProcess, type LongProcess } from '../../harness/exec.js';

describe('ProcessGroup', () => {
  it('stops every process still running, with the signal asked for', async () => {
    const group = new ProcessGroup();
    const done = group.add(startProcess(['true']));
    await done.exited;
    const procs = [group.add(startProcess(['sleep', '30'])), group.add(startProcess(['sleep', '30']))];
    await group.stopAll('SIGTERM', 1_000);
    expect(procs.map((p) => p.running)).toEqual([false, false]);
    expect((await procs[0]!.exited).signal).toBe('SIGTERM');
  });

  it('stops what it holds when disposed (await using)', async () => {
    let proc: LongProcess | undefined;
    {
      await using group = new ProcessGroup();
      proc = group.add(startProcess(['sleep', '30']));
    }
    expect(proc.running).toBe(false);
  });
});
