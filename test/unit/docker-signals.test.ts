/**
 * The docker observer's signal shell (harness/backend/docker/signals.ts), run here as a local
 * `sh` in place of the observer's exec: the same script, real processes, real signals.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startProcess } from '../../harness/exec.js';
import { SignalShell } from '../../harness/backend/docker/signals.js';

const started: Array<{ kill(signal: NodeJS.Signals): boolean }> = [];

/** A process that waits for a signal and exits; resolves with the signal that ended it. */
function sleeper(): { pid: number; ended: Promise<NodeJS.Signals | null> } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  started.push(child);
  return { pid: child.pid!, ended: new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal))) };
}

afterEach(() => {
  for (const child of started.splice(0)) child.kill('SIGKILL');
});

describe('the observer signal shell', () => {
  it('sends each batch to every pid, and answers in the order batches were sent', async () => {
    const shell = new SignalShell(startProcess);
    const [a, b, c] = [sleeper(), sleeper(), sleeper()];
    await Promise.all([shell.send('TERM', [a.pid, b.pid]), shell.send('INT', [c.pid])]);
    expect(await Promise.all([a.ended, b.ended, c.ended])).toEqual(['SIGTERM', 'SIGTERM', 'SIGINT']);
    shell.close();
  });

  it('still signals the other pids of a batch when one is gone, and stays usable', async () => {
    const shell = new SignalShell(startProcess);
    const gone = sleeper();
    process.kill(gone.pid, 'SIGKILL');
    await gone.ended;
    const alive = sleeper();
    await shell.send('TERM', [gone.pid, alive.pid]);
    expect(await alive.ended).toBe('SIGTERM');
    const later = sleeper();
    await shell.send('USR1', [later.pid]);
    expect(await later.ended).toBe('SIGUSR1');
    shell.close();
  });

  it('refuses anything but a signal name and host pids, before the shell sees it', async () => {
    const shell = new SignalShell(startProcess);
    await expect(shell.send('TERM; reboot', [1234])).rejects.toThrow(/not a signal name/);
    await expect(shell.send('TERM', [1])).rejects.toThrow(/not host pids/);
    await expect(shell.send('TERM', [])).rejects.toThrow(/not host pids/);
    shell.close();
  });

  it('is no longer alive once closed or once its shell ends, and rejects what is still waiting', async () => {
    const closed = new SignalShell(startProcess);
    closed.close();
    expect(closed.alive).toBe(false);
    await expect(closed.send('TERM', [4242])).rejects.toThrow(/ended/);

    // A "shell" that exits at once, as the observer's would when its container is removed.
    const dead = new SignalShell(() => startProcess(['true']));
    const waiting = dead.send('TERM', [4242]);
    await expect(waiting).rejects.toThrow(/ended/);
    expect(dead.alive).toBe(false);
  });
});
