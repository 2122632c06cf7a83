/**
 * The shared prober's command line: perl makes each host's sockets, and when they would not fit
 * under the open-files limit, prlimit raises it for that process only.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { proberArgv } from '../../harness/backend/netns/prober.js';

const softLimit = (): number => {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return Number(line?.slice('Max open files'.length).trim().split(/\s+/)[0]);
};

describe('the shared prober command line', () => {
  it('passes each namespace with its socket count, then the agent, and needs no prlimit for a few sockets', () => {
    const argv = proberArgv(
      [
        { netns: '/run/netns/a', sockets: 2 },
        { netns: '/run/netns/b', sockets: 5 },
      ],
      ['node', 'main.js'],
    );
    expect(argv[0]).toBe('perl');
    expect(argv.slice(-7)).toEqual(['/run/netns/a', '2', '/run/netns/b', '5', '--', 'node', 'main.js']);
  });

  it('raises the open-files limit when the sockets would not fit under it', () => {
    const sockets = softLimit() + 1;
    const argv = proberArgv([{ netns: '/run/netns/a', sockets }], ['node', 'main.js']);
    expect(argv[0]).toBe('prlimit');
    const [soft, hard] = argv[1]!.replace('--nofile=', '').split(':').map(Number);
    expect(soft).toBeGreaterThan(sockets);
    expect(hard).toBeGreaterThanOrEqual(soft!);
    expect(argv.slice(2, 4)).toEqual(['--', 'perl']);
  });
});
