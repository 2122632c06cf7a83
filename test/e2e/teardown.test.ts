/** Failures and interruptions: a run reports what went wrong and removes everything it made. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { RuleError } from '../../harness/errors.js';
import { newRunId, RunAbortedError, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { leftBehind, netnsUnavailable } from './host.js';

const work = mkdtempSync(join(tmpdir(), 'natproof-teardown-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(netnsUnavailable)(`teardown on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('reports a rule the kernel rejects at its line in the scenario, and leaves nothing behind', async () => {
    const original = readFileSync('scenarios/home-router-hairpin.yaml', 'utf8');
    const broken = original.replace('-j SNAT --to 192.168.2.254', '-j SNAT --to-nowhere 192.168.2.254');
    const file = join(work, 'home-broken.yaml');
    writeFileSync(file, broken);
    const line = broken.split('\n').findIndex((l) => l.includes('--to-nowhere')) + 1;
    const runId = newRunId();
    const run = runScenario(await loadScenario(file), { backend: new NetnsBackend(), runId, rulesets: ['with-snat'] });
    await expect(run).rejects.toBeInstanceOf(RuleError);
    await expect(run).rejects.toThrow(new RegExp(`${file}:${line}:`));
    expect(leftBehind(runId)).toEqual([]);
  });

  it('stops when interrupted and removes every namespace it created', async () => {
    const runId = newRunId();
    const controller = new AbortController();
    const run = runScenario(await loadScenario('scenarios/dmz-three-network.yaml'), {
      backend: new NetnsBackend(),
      runId,
      signal: controller.signal,
      // Interrupt as soon as the first rule set starts: the topology exists by then.
      log: (line) => line.includes('applying rules') && controller.abort(),
    });
    await expect(run).rejects.toBeInstanceOf(RunAbortedError);
    expect(leftBehind(runId)).toEqual([]);
  });
});
