import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { crc32c, crc32cJs, crc32cUpdate } from '../../src/format/crc32c';
import { native } from '../../src/storage/native';

/** Bit-at-a-time CRC-32C: the definition, with no tables to get wrong. */
function crc32cBitwise(buf: Uint8Array, start: number, end: number, seed = 0): number {
  let c = ~seed >>> 0;
  for (let i = start; i < end; i++) {
    c ^= buf[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

type Crc = (buf: Uint8Array, start: number, end: number, seed?: number) => number;

/**
 * Every way to compute the checksum: the exported one (native from 96 bytes), JavaScript
 * only, the addon's best (the crc32 instruction on this CPU when it has SSE4.2) and the
 * addon's portable table loop, which other CPUs run.
 */
const implementations: [string, Crc][] = [
  ['crc32c', crc32c],
  ['crc32cJs', crc32cJs],
  ['native.crc32c', (buf, start, end, seed = 0) => native.crc32c(buf, start, end, seed)],
  ['native.crc32cTable', (buf, start, end, seed = 0) => native.crc32cTable(buf, start, end, seed)],
];

describe('crc32c', () => {
  it.each(implementations)('%s matches the published check values', (_name, crc) => {
    const ascii = Buffer.from('123456789');
    expect(crc(ascii, 0, ascii.length)).toBe(0xe3069283);
    expect(crc(new Uint8Array(32), 0, 32)).toBe(0x8a9136aa);
    expect(crc(new Uint8Array(32).fill(0xff), 0, 32)).toBe(0x62a8ab43);
    // RFC 3720 B.4: 32 bytes ascending 0..31, and descending 31..0.
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(crc(ascending, 0, 32)).toBe(0x46dd794e);
    expect(crc(ascending.reverse(), 0, 32)).toBe(0x113fdb5c);
    expect(crc(new Uint8Array(0), 0, 0)).toBe(0);
    expect(crc(ascii, 3, 3, 0x12345678)).toBe(0x12345678);
  });

  it('equals the bitwise definition on random buffers and ranges', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300, size: 'max' }),
        fc.nat(),
        fc.nat(),
        (buf, x, y) => {
          const a = buf.length === 0 ? 0 : x % (buf.length + 1);
          const b = buf.length === 0 ? 0 : y % (buf.length + 1);
          const [start, end] = a <= b ? [a, b] : [b, a];
          const expected = crc32cBitwise(buf, start, end);
          for (const [, crc] of implementations) expect(crc(buf, start, end)).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it.each(implementations)(
    '%s equals the bitwise definition on pages at odd offsets',
    (_n, crc) => {
      const page = randomBytes(65536 + 13);
      for (const [start, end] of [
        [0, 4096],
        [4, 4096],
        [13, 65536 + 13],
        [1, 8],
        [3, 3 + 7 * 8 + 5],
      ]) {
        expect(crc(page, start, end)).toBe(crc32cBitwise(page, start, end));
      }
    },
  );

  it('the native and JavaScript versions agree on random views, ranges and seeds', () => {
    const backing = randomBytes(70000 + 16);
    const length = fc.oneof(
      fc.integer({ min: 0, max: 400 }),
      fc.integer({ min: 0, max: 9000 }),
      fc.integer({ min: 0, max: 70000 }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 16 }),
        fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 70000 })),
        length,
        fc.integer({ min: 0, max: 0xffffffff }),
        (viewOffset, from, n, seed) => {
          // A view that starts inside its ArrayBuffer, so byteOffset must be honoured too.
          const view = new Uint8Array(backing.buffer, backing.byteOffset + viewOffset, 70000);
          const start = Math.min(from, view.length);
          const end = Math.min(start + n, view.length);
          const expected = crc32cJs(view, start, end, seed);
          expect(native.crc32c(view, start, end, seed)).toBe(expected);
          expect(native.crc32cTable(view, start, end, seed)).toBe(expected);
          expect(crc32c(view, start, end, seed)).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('the native and JavaScript versions agree at every length around the native block edges', () => {
    // The instruction loop runs three interleaved chains over 3 x 1360 and 3 x 128 bytes, then
    // 8-byte words, then single bytes: test each edge from each alignment.
    const buf = randomBytes(3 * 4080 + 64);
    const edges = [0, 8, 384, 4080, 4080 + 384, 2 * 4080, 3 * 4080];
    for (const edge of edges) {
      for (let n = Math.max(0, edge - 9); n <= edge + 9; n++) {
        for (let start = 0; start < 8; start++) {
          const expected = crc32cJs(buf, start, start + n, n);
          expect(native.crc32c(buf, start, start + n, n)).toBe(expected);
          expect(native.crc32cTable(buf, start, start + n, n)).toBe(expected);
        }
      }
    }
  });

  it.each(implementations)(
    '%s chains through its seed: the CRC of the whole is the CRC of the pieces',
    (_n, crc) => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 1000, size: 'max' }), fc.nat(), (buf, x) => {
          const k = x % (buf.length + 1);
          expect(crc(buf, k, buf.length, crc(buf, 0, k))).toBe(crc(buf, 0, buf.length));
        }),
        // Shrinking a 1000-byte array takes minutes: report the first failure as found.
        { numRuns: 200, endOnFailure: true },
      );
    },
  );

  it('crc32cUpdate is the raw register the checksum inverts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), (buf, x) => {
        const k = x % (buf.length + 1);
        const register = crc32cUpdate(crc32cUpdate(0xffffffff, buf, 0, k), buf, k, buf.length);
        expect(~register >>> 0).toBe(crc32c(buf, 0, buf.length));
      }),
    );
  });

  it('treats a seed as its low 32 bits on both the JavaScript and the native path', () => {
    const buf = randomBytes(1000);
    for (const seed of [-1, 2 ** 32 + 5, -(2 ** 31), 0x80000000]) {
      expect(crc32c(buf, 0, 1000, seed)).toBe(crc32cJs(buf, 0, 1000, seed));
      expect(crc32c(buf, 0, 10, seed)).toBe(crc32cJs(buf, 0, 10, seed));
      expect(crc32c(buf, 0, 1000, seed)).toBe(native.crc32c(buf, 0, 1000, seed >>> 0));
    }
  });

  it('returns an unsigned 32-bit integer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400, size: 'max' }), (buf) => {
        for (const [, crc] of implementations) {
          const c = crc(buf, 0, buf.length);
          expect(Number.isInteger(c) && c >= 0 && c <= 0xffffffff).toBe(true);
        }
      }),
    );
  });

  it.each(implementations)(
    '%s throws RangeError for a range outside the buffer instead of reading garbage',
    (_n, crc) => {
      for (const size of [8, 4096]) {
        const buf = new Uint8Array(size);
        expect(() => crc(buf, 0, size + 1)).toThrow(RangeError);
        expect(() => crc(buf, -1, 4)).toThrow(RangeError);
        expect(() => crc(buf, 5, 4)).toThrow(RangeError);
        expect(() => crc(buf, NaN, 4)).toThrow(RangeError);
        expect(() => crc(buf, 0, NaN)).toThrow(RangeError);
        expect(() => crc(buf, 0.5, size)).toThrow(RangeError);
        expect(() => crc(buf, 0, size - 0.5)).toThrow(RangeError);
        expect(() => crc(buf, 0, Infinity)).toThrow(RangeError);
      }
    },
  );

  it('falls back to JavaScript when the addon cannot be loaded', async () => {
    const requireAddon = vi.fn(() => {
      throw new Error('Cannot find module mapkv.node');
    });
    vi.resetModules();
    vi.doMock('node:module', () => ({ createRequire: () => requireAddon }));
    try {
      const fallback = await import('../../src/format/crc32c.js');
      expect(requireAddon).toHaveBeenCalled();
      const page = randomBytes(4096);
      expect(fallback.crc32c(page, 4, 4096, 7)).toBe(crc32cBitwise(page, 4, 4096, 7));
      expect(fallback.crc32c(Buffer.from('123456789'), 0, 9)).toBe(0xe3069283);
    } finally {
      vi.doUnmock('node:module');
      vi.resetModules();
    }
  });
});
