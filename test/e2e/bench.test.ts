/** `npm run bench` in its smallest form (one iteration, 10 clients): proof that it works, not a measurement. */
import { describe, expect, it } from 'vitest';
import { renderBench, runBench, switchTimes } from '../../bench/bench.js';
import { expectPlausibleTimings } from '../timings.js';
import { dockerSkipReason } from './docker-host.js';
import { namespaces, netnsUnavailable } from './host.js';
import { runCommand } from '../commands.js';

describe.skipIf(netnsUnavailable)(`npm run bench${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('runs the hand-written baseline and natproof alternated, and the scale series, and prints the ratios', async () => {
    const report = await runBench({ iterations: 1, clients: [10], root: process.cwd(), log: () => {} });
    expect(report.script.samples).toHaveLength(1);
    expect(report.script.samples[0]!.wallS).toBeGreaterThan(0);
    expect(report.natproof.map((r) => r.samples.length)).toEqual([1, 1]);
    expectPlausibleTimings(report.natproof[0]!.timings[0], ['hairpin']);
    expectPlausibleTimings(report.natproof[1]!.timings[0], ['dnat-only', 'hairpin']);
    // The shipped seed switches rule sets once on its built topology.
    expect(switchTimes(report.natproof)).toHaveLength(1);
    expect(report.scale.map((r) => r.clients)).toEqual([10]);
    const text = renderBench(report, 1);
    expect(text).toMatch(/^hand-written script .* 1\.00x /m);
    expect(text).toMatch(/^natproof, seed, one rule set .* \d+\.\d\dx /m);
    expect(text).toMatch(/^10 clients .* ms\/client /m);
    // The script's namespaces are gone like natproof's.
    expect(namespaces().filter((n) => n.startsWith('npb-'))).toEqual([]);
  }, 180_000);
});

const dockerUnavailable = await dockerSkipReason();

describe.skipIf(dockerUnavailable)(`npm run bench -- --docker-only${dockerUnavailable ? ` (skipped: ${dockerUnavailable})` : ''}`, () => {
  it('runs the plain docker CLI script and natproof --backend docker alternated, and prints the ratio', async () => {
    const report = await runBench({ iterations: 1, clients: [], dockerOnly: true, root: process.cwd(), log: () => {} });
    expect(report.docker?.script.samples).toHaveLength(1);
    expect(report.docker!.script.samples[0]!.wallS).toBeGreaterThan(0);
    expect(report.docker!.natproof.map((r) => r.samples.length)).toEqual([1]);
    expectPlausibleTimings(report.docker!.natproof[0]!.timings[0], ['hairpin']);
    const text = renderBench(report, 1);
    expect(text).toMatch(/^plain docker CLI script .* 1\.00x /m);
    expect(text).toMatch(/^natproof --backend docker, seed, one rule set .* \d+\.\d\dx /m);
    // The script's containers, networks and DOCKER-USER accepts are gone like natproof's.
    const left = await runCommand('docker', ['ps', '-a', '--filter', 'label=npbd.pid', '--format', '{{.Names}}'], { timeoutMs: 30_000 });
    expect(left.stdout.trim()).toBe('');
    const networks = await runCommand('docker', ['network', 'ls', '--filter', 'label=npbd.pid', '--format', '{{.Name}}'], {
      timeoutMs: 30_000,
    });
    expect(networks.stdout.trim()).toBe('');
    const accepts = await runCommand('iptables', ['-w', '5', '-S', 'DOCKER-USER'], { timeoutMs: 10_000 });
    expect(accepts.stdout).not.toMatch(/npbd-/);
  }, 300_000);
});
