/**
 * Bounds on calls to the Docker engine. An engine that stops answering (a wedged dockerd, a
 * remote engine behind a dead link) must fail a build or a teardown, never hang it: every
 * engine call goes through `engine()`, with a limit that fits what it does.
 */

/** Creating, starting, inspecting, connecting, listing, removing: seconds on a healthy engine. */
export const ENGINE_TIMEOUT_MS = 60_000;
/** Building one of natproof's images (a Dockerfile's apt-get and copies). */
export const IMAGE_BUILD_TIMEOUT_MS = 20 * 60_000;
/** Pulling an image a scenario names, from a registry. */
export const IMAGE_PULL_TIMEOUT_MS = 20 * 60_000;

/** `promise`, or a rejection after `ms`. The call itself is not cancelled: the API has no way to. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message || `timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An engine call, bounded; `what` names it in the error (`docker create np-…-router`). */
export function engine<T>(what: string, promise: Promise<T>, ms: number = ENGINE_TIMEOUT_MS): Promise<T> {
  return withTimeout(promise, ms, `the Docker engine did not answer ${what} within ${ms / 1000} s`);
}

/**
 * Like Promise.all, but settles only once every promise has: the first failure is thrown after
 * the siblings are done, so a teardown never races creates that are still in flight.
 */
export async function allSettledOrThrow<T>(promises: Iterable<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
