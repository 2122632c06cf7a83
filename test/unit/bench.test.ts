import { describe, expect, it } from 'vitest';
import { median, renderBench, type BenchReport, type Row } from '../../bench/bench.js';
import type { RunTimings } from '../../harness/result/result.js';
import { mulberry32 } from '../../bench/random.js';
import { clientAddress, scaleScenario } from '../../bench/scale.js';
import { parseScenario } from '../../harness/scenario/load.js';

describe('the bench scale scenarios', () => {
  it('are valid scenarios with one probe per client, each from its own address', () => {
    const topology = parseScenario(scaleScenario(300), 'scale-300.yaml');
    expect(topology.hosts).toHaveLength(301);
    expect(topology.probes).toHaveLength(300);
    const addresses = new Set(topology.hosts.map((h) => h.address));
    expect(addresses.size).toBe(301);
    expect(topology.probes[255]).toMatchObject({ from: 'client-255', target: { address: '100.0.0.254', port: 80 } });
    expect(clientAddress(255)).toBe('10.0.1.0');
    expect(topology.probes[0]!.timeoutMs).toBe(5000);
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe('mulberry32', () => {
  it('is the published mulberry32, so a seed replays the same soak and fuzz cases', () => {
    const next = mulberry32(1);
    expect([next(), next(), next()]).toEqual([0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
    const again = mulberry32(1);
    expect(again()).toBe(0.6270739405881613);
  });
});

/** A run's timings with every phase `ms`, one rule set. */
function timings(ms: number): RunTimings {
  const rs = { name: 'hairpin', applyMs: ms, captureMs: ms, probesMs: ms, evidenceMs: ms, analysisMs: ms };
  return { totalMs: 8 * ms, buildMs: ms, agentsMs: ms, rulesets: [rs], teardownMs: ms };
}

function row(name: string, walls: number[], phaseMs?: number, cpuS = 0.5): Row {
  return {
    name,
    samples: walls.map((wallS) => ({ wallS, cpuS })),
    timings: phaseMs === undefined ? [] : walls.map(() => timings(phaseMs)),
  };
}

describe('renderBench', () => {
  const netns = {
    script: row('hand-written script', [0.4, 0.5, 0.6], undefined, 0.25),
    natproof: [row('natproof, seed', [1, 2, 3], 10)],
    scale: [],
  };
  const docker = { script: row('plain docker CLI script', [6, 8, 7]), natproof: [row('natproof --backend docker', [12, 14, 10.5], 700)] };

  it('puts each natproof row against its own script: the docker row against the docker script, not the netns one', () => {
    const text = renderBench({ ...netns, docker }, 3);
    // CPU too, against the script's: 0.5 CPU s against 0.25.
    expect(text).toMatch(/^natproof, seed +2\.00 s +4\.00x +0\.50 CPU s +2\.00x$/m);
    expect(text).toMatch(/^docker backend, against a plain docker CLI script/m);
    expect(text).toMatch(/^plain docker CLI script +7\.00 s +1\.00x /m);
    // 12 s median against the docker script's 7 s.
    expect(text).toMatch(/^natproof --backend docker +12\.00 s +1\.71x /m);
    expect(text).toContain(
      '    where the time went (median ms): build 700, agents 700, apply 700, capture 700, probes 700, evidence 700, analysis 700, teardown 700',
    );
  });

  it('prints the docker pair alone when the netns pair did not run', () => {
    const report: BenchReport = { script: row('', []), natproof: [], scale: [], docker };
    const text = renderBench(report, 3);
    expect(text).not.toMatch(/hand-written script|rule-set switch/);
    expect(text).toMatch(/^natproof --backend docker .* 1\.71x /m);
  });

  it('prints no docker rows unless asked for', () => {
    expect(renderBench(netns, 3)).not.toMatch(/docker/);
  });
});
