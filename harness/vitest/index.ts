/**
 * `natproof/vitest`: importing it registers natproof's matchers with vitest's `expect` (that
 * is its whole purpose, so it happens on import; list it in `setupFiles` or import it in a
 * test file). `natproofMatchers` is there for an `expect.extend` of your own.
 */
import { expect } from 'vitest';
import { natproofMatchers } from './matchers.js';

expect.extend(natproofMatchers);

export { natproofMatchers, type NatproofMatchers, type MatchedProbe } from './matchers.js';
