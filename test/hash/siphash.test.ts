/**
 * The hash index's keyed hash is HalfSipHash-1-3. A straightforward HalfSipHash-c-d written
 * from the reference `halfsiphash.c` is checked against the reference's published 32-bit test
 * vectors (c = 2, d = 4); the engine's unrolled 1-3 must then agree with it at c = 1, d = 3.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { halfSipHash13 } from '../../src/hash/siphash';

function rotl(x: number, b: number): number {
  return (x << b) | (x >>> (32 - b));
}

/** Reference HalfSipHash-c-d, 32-bit output, key = 8 bytes. */
function halfSipHashRef(c: number, d: number, key: Uint8Array, msg: Uint8Array): number {
  const word = (b: Uint8Array, i: number): number =>
    b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
  const k0 = word(key, 0);
  const k1 = word(key, 4);
  const v = [k0, k1, 0x6c796765 ^ k0, 0x74656462 ^ k1];
  const round = (): void => {
    v[0] = (v[0]! + v[1]!) | 0;
    v[1] = rotl(v[1]!, 5);
    v[1] ^= v[0]!;
    v[0] = rotl(v[0]!, 16);
    v[2] = (v[2]! + v[3]!) | 0;
    v[3] = rotl(v[3]!, 8);
    v[3] ^= v[2]!;
    v[0] = (v[0]! + v[3]!) | 0;
    v[3] = rotl(v[3]!, 7);
    v[3] ^= v[0]!;
    v[2] = (v[2]! + v[1]!) | 0;
    v[1] = rotl(v[1]!, 13);
    v[1] ^= v[2]!;
    v[2] = rotl(v[2]!, 16);
  };
  const end = msg.length - (msg.length % 4);
  for (let i = 0; i < end; i += 4) {
    const m = word(msg, i);
    v[3] ^= m;
    for (let r = 0; r < c; r++) round();
    v[0] ^= m;
  }
  let b = (msg.length & 0xff) << 24;
  for (let i = msg.length - 1; i >= end; i--) b |= msg[i]! << (8 * (i - end));
  v[3] ^= b;
  for (let r = 0; r < c; r++) round();
  v[0] ^= b;
  v[2] ^= 0xff;
  for (let r = 0; r < d; r++) round();
  return (v[1]! ^ v[3]!) >>> 0;
}

// vectors_hsip32 of the reference implementation (key 00..07, message 00..len-1), the first 26.
const VECTORS_HSIP32 = [
  [0xa9, 0x35, 0x9f, 0x5b],
  [0x27, 0x47, 0x5a, 0xb8],
  [0xfa, 0x62, 0xa6, 0x03],
  [0x8a, 0xfe, 0xe7, 0x04],
  [0x2a, 0x6e, 0x46, 0x89],
  [0xc5, 0xfa, 0xb6, 0x69],
  [0x58, 0x63, 0xfc, 0x23],
  [0x8b, 0xcf, 0x63, 0xc5],
  [0xd0, 0xb8, 0x84, 0x8f],
  [0xf8, 0x06, 0xe7, 0x79],
  [0x94, 0xb0, 0x79, 0x34],
  [0x08, 0x08, 0x30, 0x50],
  [0x57, 0xf0, 0x87, 0x2f],
  [0x77, 0xe6, 0x63, 0xff],
  [0xd6, 0xff, 0xf8, 0x7c],
  [0x74, 0xfe, 0x2b, 0x97],
  [0xd9, 0xb5, 0xac, 0x84],
  [0xc4, 0x74, 0x64, 0x5b],
  [0x46, 0x5b, 0x8d, 0x9b],
  [0x7b, 0xef, 0xe3, 0x87],
  [0xe3, 0x4d, 0x10, 0x45],
  [0x61, 0x3f, 0x62, 0xb3],
  [0x70, 0xf3, 0x67, 0xfe],
  [0xe6, 0xad, 0xb8, 0xbd],
  [0x27, 0x40, 0x0c, 0x63],
  [0x26, 0x78, 0x78, 0x75],
];

describe('HalfSipHash', () => {
  it('the reference HalfSipHash-2-4 gives the published 32-bit test vectors', () => {
    const key = Uint8Array.from({ length: 8 }, (_, i) => i);
    VECTORS_HSIP32.forEach((bytes, len) => {
      const msg = Uint8Array.from({ length: len }, (_, i) => i);
      const want = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
      expect(halfSipHashRef(2, 4, key, msg)).toBe(want);
    });
  });

  it('the engine hash equals reference HalfSipHash-1-3 for any key and message', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.nat(7),
        (key, msg, pad) => {
          const k0 = (key[0]! | (key[1]! << 8) | (key[2]! << 16) | (key[3]! << 24)) >>> 0;
          const k1 = (key[4]! | (key[5]! << 8) | (key[6]! << 16) | (key[7]! << 24)) >>> 0;
          // The message inside a larger buffer, at an offset, with bytes after it.
          const buf = new Uint8Array(pad + msg.length + 5).fill(0xee);
          buf.set(msg, pad);
          expect(halfSipHash13(k0, k1, buf, pad, msg.length)).toBe(halfSipHashRef(1, 3, key, msg));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('another key gives another hash (the key is used)', () => {
    const msg = new TextEncoder().encode('key00000042');
    const a = halfSipHash13(1, 2, msg, 0, msg.length);
    const b = halfSipHash13(1, 3, msg, 0, msg.length);
    const c = halfSipHash13(2, 2, msg, 0, msg.length);
    expect(new Set([a, b, c]).size).toBe(3);
  });
});
