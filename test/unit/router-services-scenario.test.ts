/**
 * The router as a server and as a probe source in a scenario: `router.services`, `from: router`
 * and `answered_by`, resolved with the whole file in view; bad input is a ScenarioError naming
 * the file, line and field.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../harness/errors.js';
import { parseScenario } from '../../harness/scenario/load.js';

const shipped = readFileSync('scenarios/router-services.yaml', 'utf8');

describe('router services, probes from the router and answered_by', () => {
  it('resolves the shipped scenario: the router serves, one probe starts on the router', () => {
    const topology = parseScenario(shipped, 'router-services.yaml');
    expect(topology.router.services).toEqual([
      { kind: 'http', port: 80 },
      { kind: 'http', port: 3128 },
    ]);
    expect(topology.probes.find((p) => p.name === 'router-to-public')).toMatchObject({
      from: 'router',
      expect: { answeredBy: 'webserver', rewrites: ['DNAT', 'un-DNAT'] },
    });
    expect(topology.rulesets.find((r) => r.name === 'redirect')?.expect['browse']).toMatchObject({
      answeredBy: 'router',
      rewrites: ['REDIRECT', 'un-REDIRECT'],
    });
  });

  it('refuses answered_by naming a node the scenario does not have, and lists the ones it has', () => {
    const text = shipped.replace(
      'expect: { ok: true, status: 200, answered_by: router,',
      'expect: { ok: true, status: 200, answered_by: routr,',
    );
    expect(() => parseScenario(text, 'bad.yaml')).toThrow(ScenarioError);
    expect(() => parseScenario(text, 'bad.yaml')).toThrow(
      /bad\.yaml:\d+:\d+: probes\.admin-page\.expect\.answered_by: unknown node "routr"; a connection can be answered by: router, internet-client, lan-client, webserver/,
    );
  });

  it('refuses a probe from a node that is neither a host nor the router', () => {
    const text = shipped.replace('    from: router\n', '    from: gateway\n');
    expect(() => parseScenario(text, 'bad.yaml')).toThrow(/probes\.router-to-public\.from: unknown host "gateway"; hosts: .*, or router/);
  });

  it('refuses a router service port listed twice', () => {
    const text = shipped.replace('    - http: 3128', '    - http: 80');
    expect(() => parseScenario(text, 'bad.yaml')).toThrow(/router\.services\[1\]\.http: http port 80 is listed twice/);
  });

  it('a router without services has none', () => {
    const seed = parseScenario(readFileSync('scenarios/dmz-three-network.yaml', 'utf8'), 'seed.yaml');
    expect(seed.router.services).toEqual([]);
  });
});
