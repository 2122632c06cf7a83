/** `image:` on a host: only a service host may name one, and it cannot send probes. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../harness/errors.js';
import { parseScenario } from '../../harness/scenario/load.js';

const seed = readFileSync('scenarios/dmz-three-network.yaml', 'utf8');

describe('a host with its own image', () => {
  it('is resolved onto the host, which keeps its services', () => {
    const text = seed.replace('    services: [{ http: 80 }]\n', '    services: [{ http: 80 }]\n    image: nginx:1.25\n');
    const web = parseScenario(text, 'own.yaml').hosts.find((h) => h.name === 'webserver')!;
    expect(web).toMatchObject({ image: 'nginx:1.25', services: [{ kind: 'http', port: 80 }] });
    expect(parseScenario(seed, 'seed.yaml').hosts.every((h) => h.image === undefined)).toBe(true);
  });

  it('must serve something', () => {
    const text = seed.replace('  dmz-client: { network: dmz,', '  dmz-client: { image: nginx, network: dmz,');
    expect(() => parseScenario(text, 'own.yaml')).toThrow(ScenarioError);
    expect(() => parseScenario(text, 'own.yaml')).toThrow(
      /own\.yaml:\d+:\d+: hosts\.dmz-client\.image: an image serves the host's services/,
    );
  });

  it('cannot send probes: it has no natproof agent', () => {
    const text = seed
      .replace('    services: [{ http: 80 }]\n', '    services: [{ http: 80 }]\n    image: nginx:1.25\n')
      .replace('    from: dmz-client\n    to: 100.0.0.254:80', '    from: webserver\n    to: 100.0.0.254:80');
    expect(() => parseScenario(text, 'own.yaml')).toThrow(
      /probes\.dmz-to-public\.from: host "webserver" runs its own image \(nginx:1\.25\).*probe from one of: internet-client, dmz-client, trusted-client/,
    );
  });
});
