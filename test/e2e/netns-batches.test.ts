/**
 * The netns backend configures every namespace from one process that enters each in turn
 * (harness/backend/netns/ip-batches.ts): each batch runs inside its own namespace, and a batch
 * ip refuses is reported with the namespace it was meant for.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ipBatchesIn } from '../../harness/backend/netns/ip-batches.js';
import { newRunId } from '../../harness/run.js';
import { netnsUnavailable } from './host.js';

const addresses = (ns: string): string[] =>
  (
    JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8', timeout: 5_000 })) as Array<{
      addr_info: Array<{ local: string }>;
    }>
  ).flatMap((l) => l.addr_info.map((a) => a.local));

describe.skipIf(netnsUnavailable)(`ip batches inside namespaces${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('runs each batch in its own namespace, and names the namespace whose batch ip refused', async () => {
    const runId = newRunId();
    const names = [0, 1, 2].map((i) => `np-${runId}-batch-${i}`);
    try {
      for (const ns of names) execFileSync('ip', ['netns', 'add', ns], { timeout: 5_000 });
      // More namespaces than run at once: the later ones wait for a slot.
      await ipBatchesIn(
        names.map((ns, i) => [`/run/netns/${ns}`, ['link set lo up', `addr add 10.77.${i}.1/32 dev lo`]]),
        2,
      );
      expect(names.map((ns) => addresses(ns).filter((a) => a.startsWith('10.77.')))).toEqual([['10.77.0.1'], ['10.77.1.1'], ['10.77.2.1']]);
      expect(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8', timeout: 5_000 })).not.toContain('10.77.');

      const failing = ipBatchesIn(
        [
          [`/run/netns/${names[0]}`, ['link set lo up']],
          [`/run/netns/${names[1]}`, ['addr add 10.77.9.1/32 dev no-such-device']],
        ],
        2,
      );
      await expect(failing).rejects.toThrow(new RegExp(`/run/netns/${names[1]}: .*no-such-device`, 's'));
    } finally {
      for (const ns of names) execFileSync('ip', ['netns', 'del', ns], { timeout: 5_000 });
    }
  });
});
