/**
 * Bounded concurrency for work whose cost grows with the topology (a process per host, a spawn
 * per namespace): started all at once, hundreds of processes share two cores and each looks
 * hung to its own timeout; a few at a time, each finishes in its usual time and the total is
 * linear in the number of items.
 */
import { availableParallelism } from 'node:os';

/** Processes started at once: enough to overlap one's waiting with another's CPU, no more. */
export function startConcurrency(): number {
  return Math.max(4, 2 * availableParallelism());
}

/**
 * `work` on every item, at most `limit` at a time, results in the items' order. After a
 * failure no new item starts; the first failure is thrown once the ones already running end.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!, index);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
  return results;
}
