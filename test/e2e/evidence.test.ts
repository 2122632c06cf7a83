/**
 * A failing probe decided by evidence, on each backend: the seed's DNAT-only rule set, every
 * probe given a minute of timeout, so only the captures can end the DMZ probes early. Their
 * answer bypassed the router and the client reset it: they end as the timeout they would have
 * been, decidedBy evidence, long before that minute; every other probe is its client's own.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../harness/result/result.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { BACKENDS, IMAGE_BUILD_MS, probeOf, skipNote } from './backend-cases.js';

const TIMEOUT_MS = 60_000;

describe.each(BACKENDS)('probes decided by evidence on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`the seed's DNAT-only rule set${skipNote(backend.unavailable)}`, () => {
    let result: RunResult;
    const runId = newRunId();

    beforeAll(async () => {
      const seed = await loadScenario('scenarios/dmz-three-network.yaml');
      const topology = { ...seed, probes: seed.probes.map((p) => ({ ...p, timeoutMs: TIMEOUT_MS })) };
      result = await runScenario(topology, { backend: backend.make(), runId, rulesets: ['dnat-only'] });
    }, IMAGE_BUILD_MS + TIMEOUT_MS);

    it('ends the bypassed DMZ probes as the timeout they would have been, from the captures, long before it', () => {
      for (const name of ['dmz-to-public', 'dmz-to-router-dmz']) {
        const p = probeOf(result, 'dnat-only', name);
        expect(p, name).toMatchObject({ ok: false, error: 'timeout', decidedBy: 'evidence', bypassedRouter: true, expectationsMet: true });
        expect(p.errorDetail, name).toContain('and the client reset it');
        expect(p.durationMs, name).toBeLessThan(TIMEOUT_MS / 2);
      }
    });

    it('leaves every other probe to its client, and the evidence whole', () => {
      const others = result.probes.filter((p) => !p.name.startsWith('dmz-'));
      expect(others.map((p) => [p.name, p.ok, p.decidedBy])).toEqual(others.map((p) => [p.name, true, 'client']));
      expect(result.passed).toBe(true);
      expect(result.rulesets[0]!.captureDrops).toBe(0);
      // What happened after the abort was still captured: the client's reset of the stray answer.
      expect(probeOf(result, 'dnat-only', 'dmz-to-public').clientRejectedReply).toBe(true);
    });

    it('leaves nothing behind', async () => {
      expect(await backend.leftBehind(runId)).toEqual([]);
    });
  });
});
