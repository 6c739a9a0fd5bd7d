import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  binaryKeyEncoder,
  decodeUtf8InPieces,
  stringKeyEncoder,
  uint32KeyEncoder,
} from '../../src/encoding/keys';
import type { KeyEncoder } from '../../src/encoding/types';

function encodeWith<K>(enc: KeyEncoder<K>, key: K, limit = 1982): Buffer {
  const target = new Uint8Array(limit);
  return Buffer.from(target.subarray(0, enc.encode(key, target)));
}

function compareCodePoints(a: string, b: string): number {
  const ca = Array.from(a, (ch) => ch.codePointAt(0)!);
  const cb = Array.from(b, (ch) => ch.codePointAt(0)!);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    if (ca[i] !== cb[i]) return ca[i] < cb[i] ? -1 : 1;
  }
  return Math.sign(ca.length - cb.length);
}

/** Writes into a window of a larger buffer; checks that the bytes beyond it are untouched. */
function expectTooLargeWithoutOverflow<K>(enc: KeyEncoder<K>, key: K, limit: number): void {
  const backing = new Uint8Array(limit + 8).fill(0xcc);
  expect(() => enc.encode(key, backing.subarray(0, limit))).toThrow(
    expect.objectContaining({ code: 'ERR_KEY_TOO_LARGE' }),
  );
  expect(backing.subarray(limit).every((b) => b === 0xcc)).toBe(true);
}

function expectBadKey<K>(enc: KeyEncoder<K>, key: unknown): void {
  expect(() => enc.encode(key as K, new Uint8Array(64))).toThrow(
    expect.objectContaining({ code: 'ERR_BAD_KEY' }),
  );
}

const unicode = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\u0000', 'a', '\uffff', '\u{10000}'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  ),
  maxLength: 6,
});

describe("'string' keys", () => {
  it('orders by code point and round-trips', () => {
    fc.assert(
      fc.property(unicode, unicode, (a, b) => {
        const ea = encodeWith(stringKeyEncoder, a);
        expect(Math.sign(Buffer.compare(ea, encodeWith(stringKeyEncoder, b)))).toBe(
          compareCodePoints(a, b),
        );
        expect(stringKeyEncoder.decode(ea, 0, ea.length)).toBe(a);
      }),
      { numRuns: 3000 },
    );
  });

  it('stores raw UTF-8 and allows the empty string', () => {
    expect(encodeWith(stringKeyEncoder, 'key00000042').toString('latin1')).toBe('key00000042');
    expect(encodeWith(stringKeyEncoder, '\u00e9\u{1f600}').toString('hex')).toBe('c3a9f09f9880');
    expect(stringKeyEncoder.encode('', new Uint8Array(0))).toBe(0);
    expect(stringKeyEncoder.decode(new Uint8Array(4), 2, 2)).toBe('');
  });

  it('decodes keys of every short length, ASCII or not, from inside a larger buffer', () => {
    const page = new Uint8Array(64).fill(0x41);
    for (let length = 0; length <= 20; length++) {
      for (let i = 0; i < length; i++) page[7 + i] = 0x20 + ((i * 37 + length) % 95);
      const ascii = Buffer.from(page.subarray(7, 7 + length)).toString('latin1');
      expect(stringKeyEncoder.decode(page, 7, 7 + length)).toBe(ascii);
      // One two-byte character at each place in turn: the whole key is decoded as UTF-8.
      for (let at = 0; at + 1 < length; at++) {
        const bytes = Buffer.from(page.subarray(7, 7 + length));
        bytes[at] = 0xc3;
        bytes[at + 1] = 0xa9;
        const copy = new Uint8Array(64).fill(0x41);
        copy.set(bytes, 7);
        expect(stringKeyEncoder.decode(copy, 7, 7 + length)).toBe(bytes.toString('utf8'));
      }
    }
    // A byte that is not UTF-8 decodes to U+FFFD, as it did through Buffer's decoder.
    expect(stringKeyEncoder.decode(Uint8Array.from([0x61, 0xff, 0x62]), 0, 3)).toBe('a\ufffdb');
  });

  it('refuses non-strings and unpaired surrogates with ERR_BAD_KEY', () => {
    for (const key of [1, null, undefined, ['a'], Buffer.from('a'), Symbol('s'), 'x\ud83d']) {
      expectBadKey(stringKeyEncoder, key);
    }
  });

  it('refuses a key over the limit with ERR_KEY_TOO_LARGE without writing past it', () => {
    expect(stringKeyEncoder.encode('abcd', new Uint8Array(4))).toBe(4);
    expectTooLargeWithoutOverflow(stringKeyEncoder, 'abcde', 4);
    expectTooLargeWithoutOverflow(stringKeyEncoder, 'ab\u00e9', 3);
    expectTooLargeWithoutOverflow(stringKeyEncoder, 'a\u20ac', 3);
    expectTooLargeWithoutOverflow(stringKeyEncoder, 'a\u{1f600}', 4);
  });
});

describe("'binary' keys", () => {
  it('orders bytewise and round-trips to a Buffer copy', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (a, b) => {
        const ea = encodeWith(binaryKeyEncoder, a);
        expect(Buffer.compare(ea, encodeWith(binaryKeyEncoder, b))).toBe(Buffer.compare(a, b));
        const decoded = binaryKeyEncoder.decode(ea, 0, ea.length);
        expect(Buffer.isBuffer(decoded)).toBe(true);
        expect(decoded).toEqual(Buffer.from(a));
      }),
    );
  });

  it('returns a copy that does not alias the page', () => {
    const page = Uint8Array.from([9, 1, 2, 3, 9]);
    const key = binaryKeyEncoder.decode(page, 1, 4);
    page.fill(0);
    expect([...key]).toEqual([1, 2, 3]);
  });

  it('accepts Buffer and the empty key; refuses other types with ERR_BAD_KEY', () => {
    expect(encodeWith(binaryKeyEncoder, Buffer.from('hi')).toString()).toBe('hi');
    expect(binaryKeyEncoder.encode(new Uint8Array(0), new Uint8Array(0))).toBe(0);
    for (const key of ['a', 1, null, new Uint16Array(2), new ArrayBuffer(2), [1, 2]]) {
      expectBadKey(binaryKeyEncoder, key);
    }
  });

  it('refuses a key over the limit with ERR_KEY_TOO_LARGE without writing past it', () => {
    expectTooLargeWithoutOverflow(binaryKeyEncoder, new Uint8Array(5).fill(7), 4);
  });
});

describe("'uint32' keys", () => {
  it('orders numerically and round-trips', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (a, b) => {
        const ea = encodeWith(uint32KeyEncoder, a);
        expect(Math.sign(Buffer.compare(ea, encodeWith(uint32KeyEncoder, b)))).toBe(
          Math.sign(a - b),
        );
        expect(uint32KeyEncoder.decode(ea, 0, ea.length)).toBe(a);
      }),
    );
  });

  it('writes 4 big-endian bytes, 0 and 2^32-1 included', () => {
    expect(encodeWith(uint32KeyEncoder, 0).toString('hex')).toBe('00000000');
    expect(encodeWith(uint32KeyEncoder, 0x01020304).toString('hex')).toBe('01020304');
    expect(encodeWith(uint32KeyEncoder, 0xffffffff).toString('hex')).toBe('ffffffff');
    expect(uint32KeyEncoder.decode(Uint8Array.from([0xff, 0xff, 0xff, 0xff]), 0, 4)).toBe(
      0xffffffff,
    );
  });

  it('refuses anything but an integer 0..2^32-1 with ERR_BAD_KEY', () => {
    for (const key of [-1, 1.5, 2 ** 32, NaN, Infinity, '1', 1n, null]) {
      expectBadKey(uint32KeyEncoder, key);
    }
  });

  it('refuses a target under 4 bytes with ERR_KEY_TOO_LARGE without writing past it', () => {
    expectTooLargeWithoutOverflow(uint32KeyEncoder, 1, 3);
  });

  it('decoding a key that is not 4 bytes is ERR_CORRUPT', () => {
    expect(() => uint32KeyEncoder.decode(new Uint8Array(3), 0, 3)).toThrow(
      expect.objectContaining({ code: 'ERR_CORRUPT' }),
    );
  });
});

describe('UTF-8 longer than Node decodes at once', () => {
  // Node decodes at most 2^29 - 24 bytes into one string, so longer text is decoded in pieces
  // cut at character starts. The same cuts, with small pieces, over strings of 1- to 4-byte
  // characters must give what one decode gives.
  const text = fc.string({
    // U+FEFF: text, not a byte-order mark to drop where a piece starts.
    unit: fc.constantFrom('a', '\u00e9', '\u20ac', '\u{1F600}', '\uffff', '\ufeff'),
    maxLength: 60,
  });

  it('decoding in pieces of any size equals decoding at once', () => {
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 9 }), (s, piece) => {
        const bytes = Buffer.concat([Buffer.from('xy'), Buffer.from(s), Buffer.from('z')]);
        expect(decodeUtf8InPieces(bytes, 2, bytes.length, piece)).toBe(`${s}z`);
      }),
      { numRuns: 500 },
    );
  });

  it('bytes that are not UTF-8 (a damaged file) still end the loop, with every byte consumed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 1, max: 9 }), (b, piece) => {
        const out = decodeUtf8InPieces(b, 0, b.length, piece);
        // Each byte yields at most one UTF-16 unit of U+FFFD or its character.
        expect(out.length).toBeLessThanOrEqual(b.length);
        expect(out.length > 0).toBe(b.length > 0);
      }),
      { numRuns: 500 },
    );
  });
});
