/**
 * natproof's engine options against docker-modem's own reading of the environment: an option
 * means what the variable of the same name means, and an option given wins over the variable.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connectEngine, engineAddress, type DockerBackendOptions } from '../../harness/backend/docker/connection.js';
import { HostError } from '../../harness/errors.js';

const VARIABLES = ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_PATH_PREFIX', 'DOCKER_CLIENT_TIMEOUT'] as const;
type Env = Partial<Record<(typeof VARIABLES)[number], string>>;
const saved = Object.fromEntries(VARIABLES.map((v) => [v, process.env[v]]));

function setEnv(env: Env): void {
  for (const v of VARIABLES) {
    if (env[v] === undefined) delete process.env[v];
    else process.env[v] = env[v];
  }
}

afterEach(() => setEnv(saved));

function certDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'natproof-certs-'));
  for (const file of ['ca', 'cert', 'key']) {
    writeFileSync(join(dir, `${file}.pem`), `-----BEGIN CERTIFICATE-----\n${name}-${file}\n-----END CERTIFICATE-----\n`);
  }
  return dir;
}

/** What the modem connects with; ca, cert and key as text (docker-modem splits the ca file). */
function connection(docker: Docker): Record<string, unknown> {
  const modem = docker.modem as unknown as Record<string, unknown>;
  const text = (value: unknown): string | undefined =>
    value === undefined ? undefined : Array.isArray(value) ? value.map(String).join('\n') : String(value).trim();
  return {
    socketPath: typeof modem['socketPath'] === 'string' ? modem['socketPath'] : undefined,
    host: modem['host'],
    port: modem['port'],
    protocol: modem['protocol'],
    username: modem['username'],
    ca: text(modem['ca']),
    cert: text(modem['cert']),
    key: text(modem['key']),
  };
}

describe('the docker backend reaches the engine', () => {
  const certs = certDir('env');
  afterAll(() => rmSync(certs, { recursive: true, force: true }));
  const cases: Env[] = [
    { DOCKER_HOST: 'unix:///tmp/natproof-test.sock' },
    { DOCKER_HOST: 'tcp://10.1.2.3:2375' },
    { DOCKER_HOST: 'tcp://10.1.2.3:2376' },
    { DOCKER_HOST: 'engine.example:2375' },
    { DOCKER_HOST: 'tcp://engine.example:2375', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs },
    { DOCKER_HOST: 'ssh://someone@engine.example' },
  ];

  it.each(cases)('with options as docker-modem with the environment $DOCKER_HOST', (env) => {
    setEnv(env);
    const expected = connection(new Docker());
    setEnv({});
    const options: DockerBackendOptions = {
      host: env.DOCKER_HOST,
      tlsVerify: env.DOCKER_TLS_VERIFY === undefined ? undefined : env.DOCKER_TLS_VERIFY === '1',
      certPath: env.DOCKER_CERT_PATH,
    };
    expect(connection(connectEngine(options))).toEqual(expected);
  });

  it('at the address an option names, not the one in the environment', () => {
    setEnv({ DOCKER_HOST: 'tcp://10.1.2.3:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    const docker = connectEngine({ host: 'unix:///tmp/natproof-test.sock' });
    expect(connection(docker)).toMatchObject({ socketPath: '/tmp/natproof-test.sock', host: undefined, protocol: 'http', ca: undefined });
    expect(engineAddress(docker)).toBe('unix:///tmp/natproof-test.sock');
  });

  it('with the environment for what the options leave out', () => {
    setEnv({ DOCKER_HOST: 'tcp://10.1.2.3:2375' });
    expect(engineAddress(connectEngine({ tlsVerify: true }))).toBe('https://10.1.2.3:2375');
  });

  it('as the environment says when there are no options', () => {
    setEnv({ DOCKER_HOST: 'tcp://10.1.2.3:2375' });
    expect(engineAddress(connectEngine())).toBe('http://10.1.2.3:2375');
  });

  it('not at all at an address that is none, or without its certificates', () => {
    setEnv({});
    expect(() => connectEngine({ host: 'tcp://[bad' })).toThrow(HostError);
    expect(() => connectEngine({ host: 'tcp://10.1.2.3:2376', certPath: join(tmpdir(), 'natproof-no-such-dir') })).toThrow(/ca\.pem/);
  });
});
