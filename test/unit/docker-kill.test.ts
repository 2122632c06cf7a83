/**
 * The docker observer signals processes of the Docker host by pid, with a kill its runner forks
 * (harness/backend/docker/observer.ts): only a signal name and host pids ever reach that kill.
 */
import { describe, expect, it } from 'vitest';
import { killArgv } from '../../harness/backend/docker/observer.js';

describe("the observer's kill", () => {
  it('sends one signal, by name, to every pid of a batch', () => {
    expect(killArgv('TERM', [4242, 4343])).toEqual(['kill', '-s', 'TERM', '4242', '4343']);
    expect(killArgv('USR1', [99])).toEqual(['kill', '-s', 'USR1', '99']);
  });

  it('refuses anything but a signal name and host pids', () => {
    expect(() => killArgv('TERM; reboot', [1234])).toThrow(/not a signal name/);
    expect(() => killArgv('-9', [1234])).toThrow(/not a signal name/);
    expect(() => killArgv('TERM', [1])).toThrow(/not host pids/);
    expect(() => killArgv('TERM', [0])).toThrow(/not host pids/);
    expect(() => killArgv('TERM', [-1])).toThrow(/not host pids/);
    expect(() => killArgv('TERM', [12.5])).toThrow(/not host pids/);
    expect(() => killArgv('TERM', [])).toThrow(/not host pids/);
  });
});
