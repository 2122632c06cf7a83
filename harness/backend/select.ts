/** A backend by its name: the one place above the backends that knows which ones there are. */
import { UsageError } from '../errors.js';
import type { Backend } from './backend.js';
import { DockerBackend } from './docker/docker.js';
import { NetnsBackend } from './netns/netns.js';

export function backendNamed(name: string | undefined): Backend {
  if (name === 'netns') return new NetnsBackend();
  if (name === 'docker') return new DockerBackend();
  throw new UsageError(`unknown backend "${name}"; available: netns, docker`);
}
