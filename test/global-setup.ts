/**
 * Around the whole suite: clear what crashed earlier runs left (so one bad session cannot fail
 * every later one), and fail the suite if any natproof namespace is still present at the end,
 * because then some test's run leaked.
 */
import { NetnsBackend, listNamespaces } from '../harness/backend/netns/netns.js';

const ours = (names: Set<string>): string[] => [...names].filter((n) => n.startsWith('np-'));

export async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) return async () => {};
  const stale = await new NetnsBackend().clean();
  if (stale.length > 0) console.warn(`removed namespaces left by earlier crashed runs: ${stale.join(' ')}`);
  return async () => {
    const left = ours(await listNamespaces());
    if (left.length > 0) {
      await new NetnsBackend().clean();
      throw new Error(`natproof runs left namespaces behind after the tests: ${left.join(' ')}`);
    }
  };
}
