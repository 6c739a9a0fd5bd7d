/**
 * Values for the model-based tests: byte strings of a pattern (so that two values of one size
 * differ), mostly short, some long enough for overflow pages.
 */
import fc from 'fast-check';

/** `size` bytes of the pattern that `seed` starts. */
export function patternBytes(seed: number, size: number): Uint8Array {
  const v = new Uint8Array(size);
  for (let i = 0; i < size; i++) v[i] = (seed + i * 31) & 0xff;
  return v;
}

/**
 * Pattern values whose sizes are drawn from `small` (inclusive bounds) `weights[0]` times for
 * each `weights[1]` times from `large`.
 */
export function patternBytesArb(
  small: [number, number],
  large: [number, number],
  weights: [number, number],
): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.oneof(
        { weight: weights[0], arbitrary: fc.integer({ min: small[0], max: small[1] }) },
        { weight: weights[1], arbitrary: fc.integer({ min: large[0], max: large[1] }) },
      ),
    )
    .map(([seed, size]) => patternBytes(seed, size));
}
