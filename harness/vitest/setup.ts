/**
 * `natproof/vitest/setup`, a vitest globalSetup: before the suite, removes what dead runs left
 * (an earlier suite killed mid-run); after it, removes what this suite's dead test processes
 * left and says so. Only runs whose owner process is gone are touched, so a second suite running
 * on the same machine keeps its labs.
 */
import { cleanAround, deadRunCleaners } from './clean.js';

/** The globalSetup hook (vitest passes it its project, unused); its result is the teardown. */
export function setup(): Promise<() => Promise<void>> {
  return cleanAround(deadRunCleaners());
}
