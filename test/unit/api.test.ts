/**
 * The public API, used the way another project's test suite would: everything through
 * harness/index.ts, nothing from inside natproof.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as natproof from '../../harness/index.js';

const SCENARIO = `name: api
networks:
  lan: { subnet: 192.168.1.0/24 }
  wan: { subnet: 100.0.0.0/24 }
router:
  interfaces:
    eth0: { network: wan, address: 100.0.0.1 }
    eth1: { network: lan, address: 192.168.1.1 }
  default_route: { dev: eth0 }
hosts:
  server: { network: lan, address: 192.168.1.10, gateway: 192.168.1.1, services: [{ http: 80 }] }
  client: { network: wan, address: 203.0.113.5, remote: true, gateway: 100.0.0.1 }
probes:
  forward: { from: client, to: 100.0.0.1:80, expect: { ok: true, server_sees: 203.0.113.5 } }
rulesets:
  dnat:
    iptables: |
      iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 192.168.1.10
`;

describe('the public API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'natproof-api-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exports what a user needs and no CLI internals or helpers', () => {
    expect(Object.keys(natproof).sort()).toEqual(
      [
        'CommandError',
        'DockerBackend',
        'HostError',
        'NatproofError',
        'NetnsBackend',
        'RuleError',
        'RunAbortedError',
        'ScenarioError',
        'TeardownError',
        'UsageError',
        'defineScenario',
        'loadRules',
        'loadScenario',
        'probeResult',
        'rulesFromText',
        'newRunId',
        'parseScenario',
        'readRunResult',
        'renderHtml',
        'renderJunit',
        'renderMarkdown',
        'renderPrMarkdown',
        'renderRun',
        'runScenario',
        'up',
      ].sort(),
    );
  });

  it('parses a scenario into a topology, and names the line of a mistake with a ScenarioError', () => {
    const topology: natproof.Topology = natproof.parseScenario(SCENARIO, 'api.yaml');
    expect(topology.probes.map((p) => [p.name, p.from, `${p.target.address}:${p.target.port}`])).toEqual([
      ['forward', 'client', '100.0.0.1:80'],
    ]);
    expect(topology.rulesets.map((r) => r.name)).toEqual(['dnat']);
    const broken = SCENARIO.replace('address: 192.168.1.10,', 'address: 192.168.1.300,');
    expect(() => natproof.parseScenario(broken, 'api.yaml')).toThrow(natproof.ScenarioError);
    expect(() => natproof.parseScenario(broken, 'api.yaml')).toThrow(/api\.yaml:11:/);
  });

  it('reads a kept run back and renders every report from it', async () => {
    cpSync('test/fixtures/dmz-three-network.result.json', join(dir, 'result.json'));
    const result: natproof.RunResult = await natproof.readRunResult(dir);
    const probe: natproof.ProbeResult | undefined = result.probes.find((p) => p.ruleset === 'dnat-only' && p.name === 'dmz-to-public');
    expect(probe?.diagnosis?.cause satisfies natproof.DiagnosisCause | undefined).toBe('reply-bypassed-router');
    expect(natproof.renderRun(result, { color: false })).toContain('dmz-to-public');
    expect(natproof.renderHtml(result)).toMatch(/^<!doctype html>/i);
    expect(natproof.renderMarkdown(result)).toContain('| **hairpin** |');
    // The compact form for a PR comment: only what failed, and where the artifacts are.
    const comment = natproof.renderPrMarkdown(result, { artifact: { name: 'natproof-report', url: 'https://ci.example/run/1' } });
    expect(comment).toContain('natproof-report');
    expect(comment.length).toBeLessThan(natproof.renderMarkdown(result).length);
    expect(natproof.renderJunit(result)).toContain('<testsuite name="dmz-three-network.hairpin"');
  });

  it('says what is wrong with a directory that holds no run', async () => {
    await expect(natproof.readRunResult(join(dir, 'nothing-here'))).rejects.toThrow(natproof.NatproofError);
    await expect(natproof.readRunResult(join(dir, 'nothing-here'))).rejects.toThrow(/give the directory a run wrote with --out/);
  });

  it('offers both backends by name', () => {
    const backends: natproof.Backend[] = [new natproof.NetnsBackend(), new natproof.DockerBackend()];
    expect(backends.map((b) => b.name)).toEqual(['netns', 'docker'] satisfies natproof.BackendName[]);
  });
});
