/** Scenarios as typed objects, candidate rules from files and strings, and probe lookups. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defineScenario, type ScenarioDefinition } from '../../harness/api/scenario.js';
import { loadRules, rulesFromText } from '../../harness/api/rules.js';
import { probeResult } from '../../harness/api/lookup.js';
import { RuleError, ScenarioError, UsageError, NatproofError } from '../../harness/errors.js';
import { parseRunResult } from '../../harness/run-dir.js';

const DNAT = 'iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 192.168.1.10\n';

function scenario(): ScenarioDefinition {
  return {
    name: 'api',
    networks: { lan: { subnet: '192.168.1.0/24' }, wan: { subnet: '100.0.0.0/24' } },
    router: {
      interfaces: { eth0: { network: 'wan', address: '100.0.0.1' }, eth1: { network: 'lan', address: '192.168.1.1' } },
      default_route: { dev: 'eth0' },
    },
    hosts: {
      server: { network: 'lan', address: '192.168.1.10', gateway: '192.168.1.1', services: [{ http: 80 }] },
      client: { network: 'wan', address: '203.0.113.5', remote: true, gateway: '100.0.0.1' },
    },
    probes: { forward: { from: 'client', to: '100.0.0.1:80', expect: { ok: true, server_sees: '203.0.113.5' } } },
    rulesets: { dnat: { iptables: `# the forward\n${DNAT}` } },
  };
}

describe('defineScenario', () => {
  it('gives the same topology as the same scenario in a file, named after the call', () => {
    const topology = defineScenario(scenario());
    expect(topology.file).toBe('defineScenario(api)');
    expect(topology.hosts.map((h) => [h.name, h.address])).toEqual([
      ['server', '192.168.1.10'],
      ['client', '203.0.113.5'],
    ]);
    expect(topology.probes[0]).toMatchObject({ name: 'forward', from: 'client', target: { address: '100.0.0.1', port: 80 } });
    // The rule text is the caller's string, exactly; its lines are counted within it.
    expect(topology.rulesets[0]?.rules).toEqual({
      format: 'iptables',
      text: `# the forward\n${DNAT}`,
      origin: { file: 'defineScenario(api) rulesets.dnat.iptables', line: 1, column: 1 },
    });
  });

  it('keeps shared objects as plain values and trailing blanks out of the rules', () => {
    const s = scenario();
    const services = [{ http: 80 }];
    s.hosts['server'] = { ...s.hosts['server']!, services };
    s.hosts['other'] = { network: 'lan', address: '192.168.1.11', services };
    s.rulesets['dnat'] = { iptables: `${DNAT}   ` };
    const topology = defineScenario(s);
    expect(topology.hosts.find((h) => h.name === 'other')?.services).toEqual(topology.hosts.find((h) => h.name === 'server')?.services);
    expect(topology.rulesets[0]?.rules.text).toBe(DNAT);
  });

  it('names the field of a bad address, with no line of the generated text', () => {
    const s = scenario();
    s.hosts['server']!.address = '192.168.1.300';
    const err = catchError(() => defineScenario(s));
    expect(err).toBeInstanceOf(ScenarioError);
    expect(err).toMatchObject({ field: 'hosts.server.address', position: undefined });
    expect((err as Error).message).toMatch(/^defineScenario\(api\): hosts\.server\.address: "192\.168\.1\.300" is not an IPv4 address/);
  });

  it('names the field the schema refuses, and a dangling reference', () => {
    const s = scenario() as unknown as { probes: { forward: { from: unknown } } };
    s.probes.forward.from = 42;
    expect(() => defineScenario(s as unknown as ScenarioDefinition)).toThrow(/^defineScenario\(api\): probes\.forward\.from: /);
    const t = scenario();
    t.probes['forward']!.from = 'nobody';
    expect(catchError(() => defineScenario(t))).toMatchObject({ field: 'probes.forward.from' });
  });

  it('points a rule mistake at its line within the rule string', () => {
    const s = scenario();
    s.rulesets['dnat'] = { iptables: `${DNAT}iptables -t nat -A prerouting -j ACCEPT\n` };
    const err = catchError(() => defineScenario(s));
    expect(err).toBeInstanceOf(RuleError);
    expect((err as Error).message).toMatch(/^defineScenario\(api\) rulesets\.dnat\.iptables:2:20: no chain prerouting/);
  });
});

describe('candidate rules', () => {
  const dir = mkdtempSync(join(tmpdir(), 'natproof-api-rules-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a file, detecting its format and naming the rule set after it', async () => {
    const file = join(dir, 'hairpin.nft');
    writeFileSync(file, 'table ip nat {\n  chain prerouting { type nat hook prerouting priority dstnat; }\n}\n');
    const rules = await loadRules(file);
    expect(rules).toEqual({
      name: 'hairpin',
      source: { format: 'nft', text: readFileSync(file, 'utf8'), origin: { file, line: 1, column: 1 } },
    });
  });

  it('says why a file cannot be read', async () => {
    await expect(loadRules(join(dir, 'missing.sh'))).rejects.toThrow(RuleError);
    await expect(loadRules(join(dir, 'missing.sh'))).rejects.toThrow(/cannot read rules file .*missing\.sh/);
  });

  it('takes a string in any format, detected or given', () => {
    expect(rulesFromText(DNAT).source).toMatchObject({ format: 'iptables', origin: { file: 'rulesFromText(rules)' } });
    const save = '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 192.168.1.10\nCOMMIT\n';
    expect(rulesFromText(save, { name: 'saved' })).toMatchObject({ name: 'saved', source: { format: 'iptables-save' } });
    expect(rulesFromText(save, { format: 'iptables-save' }).source.format).toBe('iptables-save');
  });

  it('refuses bad rules where they are made, at the line in the string', () => {
    expect(() => rulesFromText(`${DNAT}iptables -t nat -A prerouting -j ACCEPT\n`, { name: 'typo' })).toThrow(
      /^rulesFromText\(typo\):2:20: no chain prerouting/,
    );
    expect(() => rulesFromText('hello world\n')).toThrow(/cannot tell the rule format/);
    expect(() => rulesFromText(DNAT, { name: 'Not A Name' })).toThrow(UsageError);
    expect(() => rulesFromText(DNAT, { format: 'pf' as 'nft' })).toThrow(/format "pf" is none of iptables, iptables-save, nft/);
  });
});

describe('probeResult', () => {
  const result = parseRunResult(readFileSync('test/fixtures/dmz-three-network.result.json', 'utf8'), 'fixture');

  it('finds a probe by name and rule set, with the run address book', () => {
    const probe = probeResult(result, 'dmz-to-public', { ruleset: 'hairpin' });
    expect(probe).toMatchObject({ name: 'dmz-to-public', ruleset: 'hairpin' });
    expect(probe.addresses).toBe(result.addresses);
  });

  it('needs the rule set when the probe ran under several, and lists what exists', () => {
    expect(() => probeResult(result, 'dmz-to-public')).toThrow(/ran under rule sets dnat-only, hairpin: say which/);
    expect(() => probeResult(result, 'dmz-to-public', { ruleset: 'nope' })).toThrow(
      /did not run under rule set "nope"; it ran under: dnat-only, hairpin/,
    );
    const err = catchError(() => probeResult(result, 'nope'));
    expect(err).toBeInstanceOf(NatproofError);
    expect((err as Error).message).toMatch(/no probe named "nope".*; probes: .*dmz-to-public/);
  });
});

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
