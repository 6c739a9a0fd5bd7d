import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cUpdate } from '../../src/format/crc32c';

/** Bit-at-a-time CRC-32C: the definition, with no tables to get wrong. */
function crc32cBitwise(buf: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) {
    c ^= buf[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the published check values', () => {
    const ascii = Buffer.from('123456789');
    expect(crc32c(ascii, 0, ascii.length)).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32), 0, 32)).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff), 0, 32)).toBe(0x62a8ab43);
    // RFC 3720 B.4: 32 bytes ascending 0..31, and descending 31..0.
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(crc32c(ascending, 0, 32)).toBe(0x46dd794e);
    expect(crc32c(ascending.reverse(), 0, 32)).toBe(0x113fdb5c);
    expect(crc32c(new Uint8Array(0), 0, 0)).toBe(0);
  });

  it('equals the bitwise definition on random buffers and ranges', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.nat(), (buf, x, y) => {
        const a = buf.length === 0 ? 0 : x % (buf.length + 1);
        const b = buf.length === 0 ? 0 : y % (buf.length + 1);
        const [start, end] = a <= b ? [a, b] : [b, a];
        expect(crc32c(buf, start, end)).toBe(crc32cBitwise(buf, start, end));
      }),
      { numRuns: 2000 },
    );
  });

  it('equals the bitwise definition on whole pages at odd offsets', () => {
    const page = randomBytes(65536 + 13);
    for (const [start, end] of [
      [0, 4096],
      [4, 4096],
      [13, 65536 + 13],
      [1, 8],
      [3, 3 + 7 * 8 + 5],
    ]) {
      expect(crc32c(page, start, end)).toBe(crc32cBitwise(page, start, end));
    }
  });

  it('chains through its seed: the CRC of the whole is the CRC of the pieces', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), (buf, x) => {
        const k = x % (buf.length + 1);
        expect(crc32c(buf, k, buf.length, crc32c(buf, 0, k))).toBe(crc32c(buf, 0, buf.length));
        const register = crc32cUpdate(crc32cUpdate(0xffffffff, buf, 0, k), buf, k, buf.length);
        expect(~register >>> 0).toBe(crc32c(buf, 0, buf.length));
      }),
    );
  });

  it('returns an unsigned 32-bit integer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (buf) => {
        const c = crc32c(buf, 0, buf.length);
        expect(Number.isInteger(c) && c >= 0 && c <= 0xffffffff).toBe(true);
      }),
    );
  });

  it('throws RangeError for a range outside the buffer instead of reading garbage', () => {
    const buf = new Uint8Array(8);
    expect(() => crc32c(buf, 0, 9)).toThrow(RangeError);
    expect(() => crc32c(buf, -1, 4)).toThrow(RangeError);
    expect(() => crc32c(buf, 5, 4)).toThrow(RangeError);
    expect(() => crc32c(buf, NaN, 4)).toThrow(RangeError);
  });
});
