/**
 * How natproof reaches a Docker engine. natproof's own options are the three settings the
 * docker CLI reads from the environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH);
 * they are translated to dockerode's here, so no dockerode type is part of natproof's API.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { HostError } from '../../errors.js';

const require = createRequire(import.meta.url);

/** How to reach the Docker engine. Each setting left out is read from its environment variable. */
export interface DockerBackendOptions {
  /**
   * The engine's address, written as in DOCKER_HOST: `unix:///var/run/docker.sock`,
   * `tcp://engine.example:2376`, `ssh://user@engine.example`. Left out, and DOCKER_HOST unset:
   * the local socket.
   */
  host?: string;
  /** Speak TLS to a tcp:// engine, as DOCKER_TLS_VERIFY=1 does (port 2376 implies it too). */
  tlsVerify?: boolean;
  /** The directory with ca.pem, cert.pem and key.pem for TLS, as DOCKER_CERT_PATH. */
  certPath?: string;
}

/** What docker-modem falls back to for a unix:// address without a path. */
const DEFAULT_SOCKET = '/var/run/docker.sock';

/** A client for the engine `options` name, else the one the environment names. */
export function connectEngine(options: DockerBackendOptions = {}): Docker {
  // Loaded here, by the docker backend only: dockerode (with its gRPC, protobuf and SSH modules)
  // costs every netns run ~0.4 CPU-seconds of loading, a third of natproof's own start.
  const DockerClient = require('dockerode') as typeof Docker;
  // Without options docker-modem reads DOCKER_HOST and the TLS variables, as the docker CLI does.
  return new DockerClient(dockerodeOptions(options));
}

/**
 * dockerode's options for natproof's, each setting left out taken from the environment, read
 * the way docker-modem reads it, so `{ host: process.env.DOCKER_HOST }` means the same as no
 * options. docker-modem also merges the environment's settings under these: whatever a remote
 * or a socket address does not use is cleared explicitly.
 */
export function dockerodeOptions(options: DockerBackendOptions, env: NodeJS.ProcessEnv = process.env): Docker.DockerOptions | undefined {
  if (options.host === undefined && options.tlsVerify === undefined && options.certPath === undefined) return undefined;
  const host = options.host ?? env['DOCKER_HOST'];
  if (!host) return undefined;
  if (host.startsWith('unix://')) {
    return { socketPath: host.slice('unix://'.length) || DEFAULT_SOCKET, host: undefined, port: undefined, protocol: 'http', ...noTls() };
  }
  const url = parseAddress(host);
  const tls = (options.tlsVerify ?? env['DOCKER_TLS_VERIFY'] === '1') || url.port === '2376';
  const certPath = options.certPath ?? env['DOCKER_CERT_PATH'];
  return {
    host: url.hostname,
    port: url.port,
    ...(tls ? { protocol: 'https' } : url.protocol === 'ssh:' ? ssh(url, env) : { protocol: 'http' }),
    ...(certPath ? certificates(certPath) : noTls()),
  };
}

/** An address without a scheme is a tcp one, as for the docker CLI. */
function parseAddress(host: string): URL {
  try {
    return new URL(host.includes('//') ? host : `tcp://${host}`);
  } catch (err) {
    throw new HostError(`the Docker engine address ${host} is not one like tcp://localhost:2376 or unix:///var/run/docker.sock`, {
      cause: err,
    });
  }
}

function ssh(url: URL, env: NodeJS.ProcessEnv): Docker.DockerOptions {
  return { protocol: 'ssh', username: url.username, sshOptions: { agent: env['SSH_AUTH_SOCK'] } };
}

function certificates(dir: string): Pick<Docker.DockerOptions, 'ca' | 'cert' | 'key'> {
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (err) {
      throw new HostError(`cannot read ${name} for TLS to the Docker engine in ${dir}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}

function noTls(): Pick<Docker.DockerOptions, 'ca' | 'cert' | 'key'> {
  return { ca: undefined, cert: undefined, key: undefined };
}

/** Where the engine is, as the modem resolved it (its fields are not in dockerode's types). */
export function engineAddress(docker: Docker): string {
  const modem = docker.modem as { socketPath?: unknown; host?: unknown; port?: unknown; protocol?: unknown };
  if (typeof modem.socketPath === 'string') return `unix://${modem.socketPath}`;
  if (typeof modem.host === 'string') {
    const protocol = typeof modem.protocol === 'string' ? modem.protocol : 'http';
    return `${protocol}://${modem.host}${modem.port !== undefined ? `:${String(modem.port)}` : ''}`;
  }
  return 'the Docker engine';
}
