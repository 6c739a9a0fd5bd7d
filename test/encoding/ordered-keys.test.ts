import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_KEY_NESTING, orderedKeyEncoder, type OrderedKey } from '../../src/encoding/keys';
import { MapKVError } from '../../src/errors';

const MAX_KEY = 1982; // a realistic limit; the property keys stay well under it

function encode(key: OrderedKey, limit = MAX_KEY): Buffer {
  const target = new Uint8Array(limit);
  const n = orderedKeyEncoder.encode(key, target);
  return Buffer.from(target.subarray(0, n));
}

function decode(bytes: Uint8Array): OrderedKey {
  return orderedKeyEncoder.decode(bytes, 0, bytes.length);
}

/** memcmp then shorter-first: what the engine does with key bytes. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Math.sign(Buffer.compare(a, b));
}

// ---------------------------------------------------------------------------------------------
// The reference order, written from the documented rules and nothing else.

function typeRank(k: OrderedKey): number {
  if (k === null) return 0;
  if (k === false) return 1;
  if (k === true) return 2;
  if (typeof k === 'number') return 3;
  if (typeof k === 'string') return 4;
  if (Array.isArray(k)) return 5;
  return 6; // binary
}

/** Strings compare by Unicode code point, not by UTF-16 code unit as JS `<` does. */
function compareCodePoints(a: string, b: string): number {
  const ca = Array.from(a, (ch) => ch.codePointAt(0)!);
  const cb = Array.from(b, (ch) => ch.codePointAt(0)!);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    if (ca[i] !== cb[i]) return ca[i] < cb[i] ? -1 : 1;
  }
  return Math.sign(ca.length - cb.length);
}

function naturalCompare(a: OrderedKey, b: OrderedKey): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return compareCodePoints(a, b);
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = naturalCompare(a[i], b[i]);
      if (c !== 0) return c;
    }
    return Math.sign(a.length - b.length);
  }
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Math.sign(Buffer.compare(a, b));
  return 0; // null, false, true
}

/** What a key decodes to: -0 becomes 0 and binary comes back as a Buffer. */
function normalized(k: OrderedKey): OrderedKey {
  if (typeof k === 'number') return k === 0 ? 0 : k;
  if (Array.isArray(k)) return k.map(normalized);
  if (k instanceof Uint8Array) return Buffer.from(k);
  return k;
}

// ---------------------------------------------------------------------------------------------
// Generators: small alphabets so that ties, prefixes and embedded zero bytes are common.

const tricky = fc.constantFrom(
  '\u0000',
  '\u0001',
  'a',
  'b',
  '\u007f',
  '\u00e9',
  '\uffff',
  '\ue000',
  '\u{10000}',
  '\u{1f600}',
);
const stringKey = fc.oneof(
  fc.string({ unit: tricky, maxLength: 5 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
);
const numberKey = fc.oneof(
  fc.double({ noNaN: true }),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0, -0, Infinity, -Infinity, Number.MIN_VALUE, -Number.MIN_VALUE, 0.5, -0.5),
);
const binaryKey = fc.oneof(
  fc
    .array(fc.constantFrom(0x00, 0x01, 0xfe, 0xff), { maxLength: 5 })
    .map((a) => Uint8Array.from(a)),
  fc.uint8Array({ maxLength: 6 }),
  fc.uint8Array({ maxLength: 3 }).map((a) => Buffer.from(a)),
);
const scalarKey: fc.Arbitrary<OrderedKey> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  numberKey,
  stringKey,
  binaryKey,
);
const { key: anyKey } = fc.letrec<{ key: OrderedKey }>((tie) => ({
  key: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarKey,
    fc.array(tie('key'), { maxLength: 4 }),
  ),
}));

// ---------------------------------------------------------------------------------------------

describe('ordered keys: byte order equals natural order', () => {
  it('for random pairs of keys, the bytes compare like the keys', () => {
    fc.assert(
      fc.property(anyKey, anyKey, (a, b) => {
        expect(compareBytes(encode(a), encode(b))).toBe(naturalCompare(a, b));
      }),
      { numRuns: 5000 },
    );
  });

  it('a tuple sorts right against its own extensions and truncations', () => {
    fc.assert(
      fc.property(fc.array(anyKey, { maxLength: 4 }), anyKey, anyKey, (prefix, x, y) => {
        const a = [...prefix, x];
        const b = [...prefix, y];
        expect(compareBytes(encode(prefix), encode(a))).toBe(-1);
        expect(compareBytes(encode(a), encode(b))).toBe(naturalCompare(x, y));
      }),
      { numRuns: 2000 },
    );
  });

  it('sorting keys by their bytes gives their natural order', () => {
    fc.assert(
      fc.property(fc.array(anyKey, { maxLength: 20 }), (keys) => {
        const byBytes = [...keys].sort((a, b) => compareBytes(encode(a), encode(b)));
        const byNature = [...keys].sort(naturalCompare);
        expect(byBytes.map((k) => encode(k).toString('hex'))).toEqual(
          byNature.map((k) => encode(k).toString('hex')),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('orders the types null < false < true < numbers < strings < arrays < binary', () => {
    const ascending: OrderedKey[] = [
      null,
      false,
      true,
      -Infinity,
      Infinity,
      '',
      '\u{10ffff}',
      [],
      [null],
      new Uint8Array(0),
      new Uint8Array([0xff]),
    ];
    for (let i = 1; i < ascending.length; i++) {
      expect(compareBytes(encode(ascending[i - 1]), encode(ascending[i]))).toBe(-1);
    }
  });

  it('orders doubles that differ in any single bit numerically', () => {
    // Neighbours in bit space probe every byte of the body, which random pairs rarely do.
    const view = new DataView(new ArrayBuffer(8));
    fc.assert(
      fc.property(fc.double({ noNaN: true }), fc.nat(63), (a, bit) => {
        view.setFloat64(0, a);
        const byte = bit >> 3;
        view.setUint8(byte, view.getUint8(byte) ^ (1 << (bit & 7)));
        const b = view.getFloat64(0);
        if (Number.isNaN(b)) return;
        expect(compareBytes(encode(a), encode(b))).toBe(naturalCompare(a, b));
        expect(compareBytes(encode([a, 'x']), encode([b]))).toBe(naturalCompare(a, b) || 1);
      }),
      { numRuns: 5000 },
    );
  });

  it('orders negative, fractional and infinite numbers numerically', () => {
    const ascending = [
      -Infinity,
      -Number.MAX_VALUE,
      -1e10,
      -2,
      -1.5,
      -1,
      -0.5,
      -Number.MIN_VALUE,
      0,
      Number.MIN_VALUE,
      0.25,
      1,
      1.0000000000000002,
      2 ** 53,
      Number.MAX_VALUE,
      Infinity,
    ];
    for (let i = 1; i < ascending.length; i++) {
      expect(compareBytes(encode(ascending[i - 1]), encode(ascending[i]))).toBe(-1);
    }
  });

  it('treats -0 and 0 as one key, which decodes as 0', () => {
    expect(encode(-0)).toEqual(encode(0));
    expect(encode([-0, 'x'])).toEqual(encode([0, 'x']));
    expect(Object.is(decode(encode(-0)), 0)).toBe(true);
  });

  it("orders prefix strings 'a' < 'a\\u0000' < 'ab', alone and inside tuples", () => {
    const ascending = ['a', 'a\u0000', 'a\u0000\u0000', 'a\u0001', 'ab'];
    for (let i = 1; i < ascending.length; i++) {
      const lo = ascending[i - 1];
      const hi = ascending[i];
      expect(compareBytes(encode(lo), encode(hi))).toBe(-1);
      expect(compareBytes(encode([lo]), encode([hi]))).toBe(-1);
      expect(compareBytes(encode([lo, 'z']), encode([hi]))).toBe(-1);
      expect(compareBytes(encode([lo, null]), encode([hi, null]))).toBe(-1);
      expect(compareBytes(encode([[lo], 'z']), encode([[hi], '']))).toBe(-1);
    }
    // The element boundary sorts before any continuation of the string.
    expect(compareBytes(encode(['a', 'b']), encode(['a\u0000b']))).toBe(-1);
    expect(compareBytes(encode(['a', 'b']), encode(['ab']))).toBe(-1);
  });

  it('orders strings by code point, unlike JS < on UTF-16 (surrogate pairs)', () => {
    const bmpHigh = '\uffff';
    const astral = '\u{10000}'; // '\ud800\udc00' in UTF-16
    expect(astral < bmpHigh).toBe(true); // JS compares code units
    expect(compareBytes(encode(bmpHigh), encode(astral))).toBe(-1);
    expect(compareBytes(encode([bmpHigh]), encode([astral]))).toBe(-1);
    expect(compareBytes(encode('\ue000'), encode('\u{1f600}'))).toBe(-1);
  });

  it('orders binary with 0x00 and 0xFF bytes bytewise, alone and inside tuples', () => {
    const ascending = [
      [],
      [0x00],
      [0x00, 0x00],
      [0x00, 0xff],
      [0x01],
      [0xff],
      [0xff, 0x00],
      [0xff, 0xff],
    ];
    for (let i = 1; i < ascending.length; i++) {
      const lo = Uint8Array.from(ascending[i - 1]);
      const hi = Uint8Array.from(ascending[i]);
      expect(compareBytes(encode(lo), encode(hi))).toBe(-1);
      expect(compareBytes(encode([lo, 9]), encode([hi, 1]))).toBe(-1);
    }
  });

  it('orders nested tuples element by element, a prefix first', () => {
    const ascending: OrderedKey[] = [
      [],
      [1],
      ['a', ['b', []]],
      ['a', ['b', [null]]],
      ['a', ['c']],
      [[]],
      [[], null],
      [[null]],
      [[1, 'a']],
      [[1, 'a'], 'x'],
      [[1, 'b']],
      [[2]],
    ];
    for (let i = 1; i < ascending.length; i++) {
      expect(compareBytes(encode(ascending[i - 1]), encode(ascending[i]))).toBe(-1);
    }
  });
});

describe('ordered keys: decode(encode(k)) round-trips', () => {
  it('for random keys (with -0 as 0 and binary as Buffer)', () => {
    fc.assert(
      fc.property(anyKey, (k) => {
        expect(decode(encode(k))).toStrictEqual(normalized(k));
      }),
      { numRuns: 5000 },
    );
  });

  it('decodes a key in the middle of a larger buffer', () => {
    fc.assert(
      fc.property(anyKey, fc.nat(16), (k, offset) => {
        const bytes = encode(k);
        const page = new Uint8Array(offset + bytes.length + 7).fill(0xaa);
        page.set(bytes, offset);
        expect(orderedKeyEncoder.decode(page, offset, offset + bytes.length)).toStrictEqual(
          normalized(k),
        );
      }),
    );
  });

  it('keeps edge values: the empty string, strings with U+0000, astral characters, empty binary', () => {
    const keys: OrderedKey[] = [
      '',
      '\u0000',
      'a\u0000b',
      ['\u0000', '\u0000\u0000', ''],
      '\u{1f600}\u00e9',
      [new Uint8Array([0, 0xff, 0])],
      new Uint8Array(0),
      [new Uint8Array(0), []],
      [[[]]],
      [-Infinity, Infinity, -1.5, 1e-300],
    ];
    for (const k of keys) expect(decode(encode(k))).toStrictEqual(normalized(k));
  });

  it('decodes binary as a Buffer that does not alias the page', () => {
    const page = encode(new Uint8Array([1, 2, 3]));
    const out = decode(page) as Buffer;
    expect(Buffer.isBuffer(out)).toBe(true);
    page.fill(0);
    expect([...out]).toEqual([1, 2, 3]);
    const nestedPage = encode([new Uint8Array([0, 5])]);
    const nested = decode(nestedPage) as Buffer[];
    nestedPage.fill(0);
    expect([...nested[0]]).toEqual([0, 5]);
  });

  it('uses the documented layout', () => {
    expect(encode(null).toString('hex')).toBe('10');
    expect(encode(false).toString('hex')).toBe('20');
    expect(encode(true).toString('hex')).toBe('21');
    expect(encode(1).toString('hex')).toBe('30bff0000000000000');
    expect(encode(-1).toString('hex')).toBe('30400fffffffffffff');
    expect(encode('ab').toString('hex')).toBe('406162');
    expect(encode(['a\u0000', new Uint8Array([0])]).toString('hex')).toBe(
      '50' + '406100ff0000' + '6000ff0000' + '00',
    );
    expect(encode(new Uint8Array([0, 1])).toString('hex')).toBe('600001');
  });
});

describe('ordered keys: refused keys', () => {
  const cases: [string, unknown, RegExp][] = [
    ['undefined', undefined, /undefined/],
    ['a symbol', Symbol('s'), /symbol/],
    ['a function', () => 1, /function/],
    ['a bigint', 1n, /bigint/],
    ['NaN', NaN, /NaN/],
    ['a plain object', { a: 1 }, /plain object/],
    ['a Date', new Date(0), /Date/],
    ['a Map', new Map(), /Map/],
    ['an Int8Array', new Int8Array(1), /Int8Array/],
    ['an ArrayBuffer', new ArrayBuffer(1), /ArrayBuffer/],
    ['NaN inside a tuple', [1, NaN], /NaN/],
    ['undefined inside a tuple', ['a', undefined], /undefined/],
    ['a hole in a sparse tuple', [1, , 2], /undefined/], // eslint-disable-line no-sparse-arrays
    ['an object nested in a tuple', [[{}]], /plain object/],
    ['a string with a lone high surrogate', 'a\ud800', /surrogate/],
    ['a string with a lone low surrogate', '\udc00b', /surrogate/],
    ['swapped surrogates', '\udc00\ud800', /surrogate/],
  ];
  for (const [name, key, message] of cases) {
    it(`refuses ${name} with ERR_BAD_KEY naming it`, () => {
      const err = catchError(() => orderedKeyEncoder.encode(key as OrderedKey, new Uint8Array(64)));
      expect(err).toBeInstanceOf(MapKVError);
      expect((err as MapKVError).code).toBe('ERR_BAD_KEY');
      expect((err as MapKVError).message).toMatch(message);
    });
  }
});

describe('ordered keys: size limit', () => {
  it('a key larger than the target is ERR_KEY_TOO_LARGE and nothing is written past the target', () => {
    fc.assert(
      fc.property(anyKey, fc.nat(40), (k, limit) => {
        const full = encode(k);
        const backing = new Uint8Array(limit + 16).fill(0xcc);
        const target = backing.subarray(0, limit);
        const err = catchError(() => orderedKeyEncoder.encode(k, target));
        if (full.length <= limit) {
          expect(err).toBeUndefined();
          expect(Buffer.from(target.subarray(0, full.length))).toEqual(full);
        } else {
          expect((err as MapKVError).code).toBe('ERR_KEY_TOO_LARGE');
        }
        expect(backing.subarray(limit).every((b) => b === 0xcc)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('fits a key of exactly the limit and refuses one byte more', () => {
    expect(orderedKeyEncoder.encode('x'.repeat(99), new Uint8Array(100))).toBe(100);
    expect(() => orderedKeyEncoder.encode('x'.repeat(100), new Uint8Array(100))).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_LARGE' }),
    );
    // Multi-byte characters at the boundary.
    expect(orderedKeyEncoder.encode('\u{1f600}'.repeat(25), new Uint8Array(101))).toBe(101);
    expect(() => orderedKeyEncoder.encode('\u{1f600}'.repeat(25), new Uint8Array(100))).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_LARGE' }),
    );
  });

  it('a cyclic tuple ends in an error, not a hang', () => {
    const cyclic: OrderedKey[] = [];
    cyclic.push(cyclic);
    // Deeper than the nesting bound before 512 bytes run out; with less room, too large.
    expect(() => orderedKeyEncoder.encode(cyclic, new Uint8Array(512))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_KEY' }),
    );
    expect(() => orderedKeyEncoder.encode(cyclic, new Uint8Array(50))).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_LARGE' }),
    );
  });

  it(`arrays nest at most ${MAX_KEY_NESTING} levels: deeper keys are refused, deeper bytes damaged`, () => {
    const nest = (levels: number): OrderedKey => {
      let k: OrderedKey = 'x';
      for (let i = 0; i < levels; i++) k = [k];
      return k;
    };
    const target = new Uint8Array(4096);
    const n = orderedKeyEncoder.encode(nest(MAX_KEY_NESTING), target);
    expect(orderedKeyEncoder.decode(target, 0, n)).toEqual(nest(MAX_KEY_NESTING));
    expect(() => orderedKeyEncoder.encode(nest(MAX_KEY_NESTING + 1), target)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_KEY' }),
    );
    // The bytes of a key one level deeper (as a damaged or forged file could hold them).
    const deeper = new Uint8Array(n + 2);
    deeper[0] = 0x50; // array tag
    deeper.set(target.subarray(0, n), 1);
    deeper[n + 1] = 0x00; // end of the array
    expect(() => orderedKeyEncoder.decode(deeper, 0, deeper.length)).toThrow(
      expect.objectContaining({ code: 'ERR_CORRUPT' }),
    );
    // Unbounded, 6,000 levels were written and then could not be read back (a RangeError).
    expect(() => orderedKeyEncoder.encode(nest(6000), new Uint8Array(16363))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_KEY' }),
    );
  });
});

describe('ordered keys: damaged bytes', () => {
  const damaged: [string, number[]][] = [
    ['an empty key', []],
    ['an unknown tag', [0x99]],
    ['a truncated number', [0x30, 0xbf, 0xf0]],
    ['bytes after a value', [0x10, 0x10]],
    ['an array with no terminator', [0x50, 0x10]],
    ['a nested string with no terminator', [0x50, 0x40, 0x61]],
    ['a bad escape', [0x50, 0x40, 0x61, 0x00, 0x07, 0x00, 0x00, 0x00]],
  ];
  for (const [name, bytes] of damaged) {
    it(`decoding ${name} is ERR_CORRUPT`, () => {
      expect(() => decode(Uint8Array.from(bytes))).toThrow(
        expect.objectContaining({ code: 'ERR_CORRUPT' }),
      );
    });
  }
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
