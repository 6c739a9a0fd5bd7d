/**
 * The keyed hash of the hash index: HalfSipHash-1-3 with a 32-bit result.
 *
 * Why not murmur3 or xxhash32 with a seed: both have seed-independent multicollisions
 * (Aumasson, Bernstein, Boßlet: "Hash-flooding DoS reloaded", 2012), so a key set built
 * against the algorithm collides under every seed and a seed buys nothing. HalfSipHash is
 * SipHash's 32-bit-word variant, a keyed pseudo-random function: without the 64-bit key a
 * key set cannot be made to collide more than chance allows. The 1-3 rounds are what Linux
 * uses for its hash tables (`hsiphash`). It works on 32-bit words only, which is what a
 * JavaScript engine computes fastest.
 *
 * The algorithm is the reference `halfsiphash.c` with cROUNDS = 1, dROUNDS = 3 and a 4-byte
 * output: the 64-bit key is (k0, k1) as two little-endian words, the message is read as
 * little-endian words, the last word holds the tail bytes and `length << 24`.
 * test/hash/siphash.test.ts checks the round function against the reference vectors of
 * HalfSipHash-2-4.
 */

/** HalfSipHash-1-3 of `b[start, start + len)` under the key (k0, k1); an unsigned 32-bit value. */
export function halfSipHash13(
  k0: number,
  k1: number,
  b: Uint8Array,
  start: number,
  len: number,
): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  const end = start + (len & ~3);
  let i = start;
  for (; i < end; i += 4) {
    const m = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    v3 ^= m;
    // SipRound, written out: a call per round costs more than the round.
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  let m = len << 24;
  const left = len & 3;
  if (left >= 3) m |= b[i + 2]! << 16;
  if (left >= 2) m |= b[i + 1]! << 8;
  if (left >= 1) m |= b[i]!;
  v3 ^= m;
  for (let round = 0; round < 4; round++) {
    // One compression round for the last word, then (after v2 ^= 0xff) three finalisation
    // rounds.
    if (round === 1) {
      v0 ^= m;
      v2 ^= 0xff;
    }
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
  }
  return (v1 ^ v3) >>> 0;
}
