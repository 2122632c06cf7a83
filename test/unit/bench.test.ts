import { describe, expect, it } from 'vitest';
import { median } from '../../bench/bench.js';
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
