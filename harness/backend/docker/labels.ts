/**
 * The labels on everything the docker backend creates. Teardown and `natproof clean` find
 * natproof's containers and networks by them, never by name patterns.
 */
import { runTag } from '../run-tag.js';

export const LABELS = {
  /** The run's id: every container and network of one lab. */
  run: 'natproof.run',
  /** The natproof process and the machine it runs on, to tell a crashed run from a live one. */
  pid: 'natproof.pid',
  machine: 'natproof.machine',
  /** 'router', a host's name, or 'observer'. */
  node: 'natproof.node',
  /** NATPROOF_RUN_TAG of the process that made it (run-tag.ts), when set. */
  tag: 'natproof.tag',
  /**
   * On a kept lab's marker (a container created, never started: `natproof up`): the run is
   * owned by nothing, and `clean` leaves it while the marker is there.
   */
  kept: 'natproof.kept',
  /** On natproof's images (kept between runs). */
  image: 'natproof.image',
} as const;

/** Host firewall rules carry this comment, with the run id after it. */
export const RULE_COMMENT_PREFIX = 'natproof:';

export function runLabels(runId: string, pid: number, machine: string): Record<string, string> {
  const tag = runTag();
  return { [LABELS.run]: runId, [LABELS.pid]: String(pid), [LABELS.machine]: machine, ...(tag ? { [LABELS.tag]: tag } : {}) };
}
