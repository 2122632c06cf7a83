/**
 * The reaper process (reaper.ts): `node reaper-main.js PID ENGINE_JSON`. Waits, bounded, for
 * natproof process PID to be gone, then cleans the engine's dead runs; its runs are then dead.
 */
import { isOwnerAlive } from '../owner.js';
import type { DockerBackendOptions } from './connection.js';
import { DockerBackend } from './docker.js';

/** A process at 'exit' is gone within moments; one still there after this is not exiting. */
const WAIT_MS = 60_000;
const POLL_MS = 100;

const pid = Number(process.argv[2]);
const engine = JSON.parse(process.argv[3] ?? '{}') as DockerBackendOptions;
const until = Date.now() + WAIT_MS;
while (isOwnerAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, POLL_MS));
if (!isOwnerAlive(pid)) {
  // Nobody reads this process's output: a failure leaves the run to `natproof clean`.
  await new DockerBackend(engine)
    .clean()
    .then(() => {})
    .catch(() => {
      process.exitCode = 1;
    });
}
