/**
 * mulberry32: a small seedable PRNG, good enough to pick soak interruptions and fuzz mutations.
 * Seeded, so a run's seed replays its choices; here rather than in test/ because bench's own
 * build (bench/tsconfig.json) compiles bench/ and what it imports, never test/.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
