// Seeded test runs: `SEED=<n>` replays one seed; a failure names its seed.

/** The seeds to run: `SEED` alone when set, else `count` seeds from `base`. */
export function seeds(count: number, base = 1): number[] {
  const fixed = process.env.SEED;
  if (fixed !== undefined && fixed !== '') return [Number(fixed)];
  return Array.from({ length: count }, (_, i) => base + i);
}

/** Runs `body` for each seed; a failure is rethrown with the seed and how to replay it. */
export function forEachSeed(count: number, body: (seed: number) => void, base = 1): void {
  for (const seed of seeds(count, base)) {
    try {
      body(seed);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`seed ${seed} failed (replay: SEED=${seed} npm test -- <this file>): ${msg}`, { cause: err });
    }
  }
}
