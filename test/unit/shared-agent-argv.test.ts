/**
 * The shared agent's command line: perl makes each node's sockets, and when they would not fit
 * under the open-files limit, prlimit raises it for that process only.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { raiseOwnNofileArgv, sharedAgentArgv } from '../../harness/backend/shared-agent.js';

const softLimit = (): number => {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return Number(line?.slice('Max open files'.length).trim().split(/\s+/)[0]);
};

describe('the shared agent command line', () => {
  it('passes each namespace with its socket count and ports, then the agent, and needs no prlimit for a few sockets', () => {
    const argv = sharedAgentArgv(
      [
        { netns: '/run/netns/a', sockets: 2, listen: [] },
        { netns: '/run/netns/b', sockets: 0, listen: [80, 8080] },
      ],
      ['node', 'main.js'],
    );
    expect(argv[0]).toBe('perl');
    expect(argv.slice(-9)).toEqual(['/run/netns/a', '2', '-', '/run/netns/b', '0', '80,8080', '--', 'node', 'main.js']);
  });

  it('raises the open-files limit when the sockets would not fit under it', () => {
    const sockets = softLimit() + 1;
    const argv = sharedAgentArgv([{ netns: '/run/netns/a', sockets, listen: [] }], ['node', 'main.js']);
    expect(argv[0]).toBe('prlimit');
    const [soft, hard] = argv[1]!.replace('--nofile=', '').split(':').map(Number);
    expect(soft).toBeGreaterThan(sockets);
    expect(hard).toBeGreaterThanOrEqual(soft!);
    expect(argv.slice(2, 4)).toEqual(['--', 'perl']);
  });

  it("raises natproof's own limit, by its pid, only when the sockets it is handed would not fit", () => {
    expect(raiseOwnNofileArgv([{ netns: '/run/netns/a', sockets: 5, listen: [80] }])).toBeUndefined();
    const sockets = softLimit() + 1;
    const argv = raiseOwnNofileArgv([{ netns: '/run/netns/a', sockets, listen: [] }]);
    expect(argv?.slice(0, 2)).toEqual(['prlimit', `--pid=${process.pid}`]);
    const [soft, hard] = argv![2]!.replace('--nofile=', '').split(':').map(Number);
    expect(soft).toBeGreaterThan(sockets);
    expect(hard).toBeGreaterThanOrEqual(soft!);
  });
});
