/**
 * Whether the natproof process that owns a run is still alive, so cleaning never touches a run
 * that is still going. Shared by the netns and docker backends.
 */

/** True while process `pid` exists (also when it belongs to another user: EPERM). */
export function isOwnerAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
