import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { addExtension } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  createBinaryValueEncoder,
  createJsonValueEncoder,
  createMsgpackValueEncoder,
  createStringValueEncoder,
} from '../../src/encoding/values';
import type { ValueEncoder } from '../../src/encoding/types';

/**
 * Encodes, copies the bytes into a "page" at an offset (as the engine does), and decodes from
 * that page; then overwrites the page, so a decoded value that aliased it would change.
 */
function roundTrip<V>(enc: ValueEncoder<V>, value: V, decoder: ValueEncoder<V> = enc): V {
  const bytes = enc.encode(value);
  const page = new Uint8Array(bytes.length + 64).fill(0xee);
  page.set(bytes, 17);
  const out = decoder.decode(page, 17, 17 + bytes.length);
  page.fill(0x55);
  return out;
}

function expectBadValue<V>(enc: ValueEncoder<V>, value: unknown, message?: RegExp): void {
  expect(() => enc.encode(value as V)).toThrow(
    expect.objectContaining({
      code: 'ERR_BAD_VALUE',
      ...(message ? { message: expect.stringMatching(message) } : {}),
    }),
  );
}

/** Stands for an invalid Date, which isDeepStrictEqual finds unequal to another (NaN times). */
const INVALID_DATE = Symbol('Invalid Date');

/**
 * msgpack stores -0 as 0 (an integer); everything else must come back deep-strict-equal. Both
 * sides of a comparison go through this, so that invalid Dates compare equal.
 */
function withoutNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (v instanceof Date && Number.isNaN(v.getTime())) return INVALID_DATE;
  if (Array.isArray(v)) return v.map(withoutNegativeZero);
  if (v instanceof Map)
    return new Map([...v].map(([k, x]) => [withoutNegativeZero(k), withoutNegativeZero(x)]));
  if (v instanceof Set) return new Set([...v].map(withoutNegativeZero));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = withoutNegativeZero((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** msgpackr renames an own `__proto__` key (its prototype-pollution guard); tested apart. */
function hasProtoKey(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (Object.prototype.hasOwnProperty.call(v, '__proto__')) return true;
  const children =
    v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Object.values(v);
  return children.some(hasProtoKey);
}

const msgpackValue = fc
  .anything({
    withMap: true,
    withSet: true,
    withDate: true,
    withBigInt: true,
    withTypedArray: true,
    withSparseArray: false,
    withNullPrototype: false,
    withBoxedValues: false,
    withObjectString: false,
    maxDepth: 4,
  })
  .filter((v) => v !== undefined && !hasProtoKey(v));

describe('msgpack values', () => {
  it('round-trips random values, decoded by the same and by a fresh encoder', () => {
    const enc = createMsgpackValueEncoder();
    fc.assert(
      fc.property(fc.array(msgpackValue, { minLength: 1, maxLength: 4 }), (values) => {
        // Encode several before decoding: no state may carry from one value to the next.
        const stored = values.map((v) => Buffer.from(enc.encode(v)));
        for (let i = 0; i < values.length; i++) {
          const expected = withoutNegativeZero(values[i]);
          const decoded = enc.decode(stored[i], 0, stored[i].length);
          expect(isDeepStrictEqual(withoutNegativeZero(decoded), expected)).toBe(true);
          const fresh = createMsgpackValueEncoder();
          const again = fresh.decode(stored[i], 0, stored[i].length);
          expect(isDeepStrictEqual(withoutNegativeZero(again), expected)).toBe(true);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('keeps plain objects plain and Maps as Maps, with non-string Map keys', () => {
    const enc = createMsgpackValueEncoder();
    const obj = roundTrip(enc, { a: 1, b: { c: [1, 'x'] } }) as Record<string, unknown>;
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(obj.b)).toBe(Object.prototype);
    expect(obj).toStrictEqual({ a: 1, b: { c: [1, 'x'] } });
    const map = new Map<unknown, unknown>([
      [1, 'one'],
      ['k', { z: 1 }],
      [null, new Map([['inner', true]])],
    ]);
    const decoded = roundTrip(enc, map);
    expect(decoded).toBeInstanceOf(Map);
    expect(decoded).toStrictEqual(map);
    expect(roundTrip(enc, { m: new Map() })).toStrictEqual({ m: new Map() });
    expect(roundTrip(enc, {})).toStrictEqual({});
  });

  it('round-trips Date, Set, bigint, RegExp and Error', () => {
    const enc = createMsgpackValueEncoder();
    const date = new Date(1700000000123);
    expect(roundTrip(enc, date)).toStrictEqual(date);
    expect(roundTrip(enc, new Date(-1))).toStrictEqual(new Date(-1));
    expect(roundTrip(enc, new Set([1, 'a', null]))).toStrictEqual(new Set([1, 'a', null]));
    for (const n of [
      0n,
      5n,
      -5n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n - 1n,
      2n ** 200n,
      -(3n ** 150n),
    ]) {
      expect(roundTrip(enc, n)).toBe(n);
      expect(roundTrip(enc, [n])).toStrictEqual([n]);
    }
    expect(roundTrip(enc, /a+b/gi)).toStrictEqual(/a+b/gi);
    const err = roundTrip(enc, new TypeError('boom')) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('boom');
  });

  it('round-trips every typed array type as a copy the caller owns', () => {
    const enc = createMsgpackValueEncoder();
    const arrays = [
      new Int8Array([-1, 2]),
      new Uint8Array([0, 255]),
      new Uint8ClampedArray([3, 4]),
      new Int16Array([-300, 300]),
      new Uint16Array([65535]),
      new Int32Array([-1, 1 << 30]),
      new Uint32Array([0xffffffff]),
      new Float32Array([1.5, -0]),
      new Float64Array([Math.PI, -0, Infinity]),
      new BigInt64Array([-1n, 2n]),
      new BigUint64Array([2n ** 64n - 1n]),
    ];
    for (const a of arrays) {
      const out = roundTrip(enc, { a });
      expect(out).toStrictEqual({ a });
    }
  });

  it('returns nested Buffers as Buffers that do not alias the page', () => {
    const enc = createMsgpackValueEncoder();
    const value = { blob: Buffer.from([1, 2, 3]), list: [Buffer.from('xyz')] };
    const bytes = Buffer.from(enc.encode(value));
    const out = enc.decode(bytes, 0, bytes.length) as typeof value;
    bytes.fill(0); // the page is reused by a later commit
    expect(Buffer.isBuffer(out.blob)).toBe(true);
    expect([...out.blob]).toEqual([1, 2, 3]);
    expect(out.list[0].toString()).toBe('xyz');
  });

  it('decodes nested binary as a Buffer even from a plain Uint8Array page', () => {
    const enc = createMsgpackValueEncoder();
    const bytes = enc.encode({ blob: Buffer.from([7]) });
    const page = new Uint8Array(bytes.length);
    page.set(bytes);
    const out = enc.decode(page, 0, page.length) as { blob: Buffer };
    expect(Buffer.isBuffer(out.blob)).toBe(true);
  });

  it('a decode re-entered from a msgpackr extension leaves the outer one intact', () => {
    class Nested {
      constructor(readonly bytes: Uint8Array) {}
    }
    const enc = createMsgpackValueEncoder();
    addExtension({
      Class: Nested,
      type: 0x33,
      pack: (n: Nested) => Buffer.from(n.bytes),
      unpack: (b: Uint8Array) => enc.decode(b, 0, b.length),
    });
    // Both values hold records, so both take msgpackr's path, with its small-value copy.
    const inner = enc.encode({ x: 'the inner value', d: new Date(5) }).slice();
    const out = roundTrip(enc, [new Nested(inner), { after: 'the extension', n: 7 }]);
    expect(out).toEqual([
      { x: 'the inner value', d: new Date(5) },
      { after: 'the extension', n: 7 },
    ]);
  });

  it('decodes from a large long-lived segment without aliasing it', () => {
    const enc = createMsgpackValueEncoder();
    const segment = new Uint8Array(1 << 17);
    const bytes = enc.encode({ s: 'hello', b: Buffer.from([4, 5]) });
    segment.set(bytes, 70000);
    for (let i = 0; i < 3; i++) {
      const out = enc.decode(segment, 70000, 70000 + bytes.length) as { s: string; b: Buffer };
      expect(out.s).toBe('hello');
      expect([...out.b]).toEqual([4, 5]);
    }
    const out = enc.decode(segment, 70000, 70000 + bytes.length) as { b: Buffer };
    segment.fill(0);
    expect([...out.b]).toEqual([4, 5]);
  });

  it('round-trips strings, numbers, null, booleans and arrays', () => {
    const enc = createMsgpackValueEncoder();
    for (const v of [
      '',
      'héllo \u{1f600}',
      'x'.repeat(70000),
      0,
      -1,
      1.5,
      2 ** 40,
      -(2 ** 53),
      NaN,
      Infinity,
      null,
      true,
      false,
      [],
      [null, [1, [2]]],
    ]) {
      expect(roundTrip(enc, v)).toStrictEqual(v);
    }
    expect(roundTrip(enc, [undefined, 1])).toStrictEqual([undefined, 1]);
    expect(roundTrip(enc, { u: undefined })).toStrictEqual({ u: undefined });
  });

  it('stores -0 as 0 and renames an own __proto__ key (msgpackr rules)', () => {
    const enc = createMsgpackValueEncoder();
    expect(Object.is(roundTrip(enc, -0), 0)).toBe(true);
    const out = roundTrip(enc, JSON.parse('{"__proto__": {"x": 1}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto_']);
  });

  it('round-trips a value larger than the 8 KiB working buffer, and many shapes in one value', () => {
    const enc = createMsgpackValueEncoder();
    const big = { data: Buffer.alloc(3 << 20, 7), text: 'é'.repeat(100000) };
    const out = roundTrip(enc, big) as typeof big;
    expect(Buffer.isBuffer(out.data) && out.data.equals(big.data)).toBe(true);
    expect(out.text === big.text).toBe(true);
    const shapes: Record<string, unknown> = {};
    for (let i = 0; i < 300; i++) shapes[`k${i}`] = { [`a${i}`]: i, [`b${i}`]: { [`c${i}`]: [i] } };
    expect(roundTrip(enc, shapes, createMsgpackValueEncoder())).toStrictEqual(shapes);
  });

  it('refuses undefined, functions and symbols, at the top level and nested, with ERR_BAD_VALUE', () => {
    const enc = createMsgpackValueEncoder();
    expectBadValue(enc, undefined, /undefined/);
    expectBadValue(enc, () => 1, /function/);
    expectBadValue(enc, Symbol('s'), /symbol/);
    expectBadValue(enc, { f: () => 1 }, /function/);
    expectBadValue(enc, [1, [function named() {}]], /function/);
    expectBadValue(enc, { s: Symbol('s') }, /symbol/);
    expectBadValue(enc, new Map([['k', Symbol('s')]]), /symbol/);
  });

  it('refuses a cyclic value with ERR_BAD_VALUE and stays usable afterwards', () => {
    const enc = createMsgpackValueEncoder();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expectBadValue(enc, cyclic);
    expectBadValue(enc, { f: () => 1 });
    expect(roundTrip(enc, { after: 'failure' })).toStrictEqual({ after: 'failure' });
  });

  it('decoding damaged bytes is ERR_CORRUPT', () => {
    const enc = createMsgpackValueEncoder();
    for (const bytes of [[], [0x92, 0x01], [0xa5, 0x61], [0x01, 0x02]]) {
      const page = Uint8Array.from(bytes);
      expect(() => enc.decode(page, 0, page.length)).toThrow(
        expect.objectContaining({ code: 'ERR_CORRUPT' }),
      );
    }
    expect(roundTrip(enc, [1, 'ok'])).toStrictEqual([1, 'ok']);
  });
});

describe('msgpackr buffer after a large value', () => {
  it('packs the next values into a small buffer again, not one the size of the large value', () => {
    // msgpackr packs into one module-level buffer, grown to fit the largest value ever packed
    // and kept (up to 1 GiB): a single 50 MiB value held 100-190 MiB until the process ended.
    const enc = createMsgpackValueEncoder();
    const big = enc.encode({ text: 'x'.repeat(8 << 20) });
    expect(big.length).toBeGreaterThan(8 << 20);
    const small = enc.encode({ a: 1 });
    expect(small.buffer.byteLength).toBeLessThan(1 << 20);
    expect(enc.decode(small, 0, small.length)).toEqual({ a: 1 });
    // A value that fails to pack part-way through leaves no large buffer behind either.
    const bad = { text: 'y'.repeat(8 << 20), f: Symbol('no') };
    expect(() => enc.encode(bad)).toThrow();
    expect(enc.encode({ b: 2 }).buffer.byteLength).toBeLessThan(1 << 20);
  });

  it('a value packed inside another one (a getter, a toJSON) leaves the outer value whole', () => {
    // Swapping msgpackr's buffer after the inner value, while the outer pack was still
    // writing into it, stored the outer value empty or cut short.
    const enc = createMsgpackValueEncoder();
    const other = createMsgpackValueEncoder(); // msgpackr's buffer is shared by every encoder
    enc.encode({ warm: 'moves msgpackr past the start of its buffer' });
    const outer = {
      before: 'abcdef',
      get mid(): number {
        other.encode({ big: 'x'.repeat(2 << 20) });
        return 42;
      },
      after: [1, 2, 3],
    };
    const packed = enc.encode(outer);
    expect(enc.decode(packed, 0, packed.length)).toEqual({
      before: 'abcdef',
      mid: 42,
      after: [1, 2, 3],
    });
    class Failing {
      toJSON(): unknown {
        expect(() => other.encode({ f: Symbol('no') })).toThrow();
        return { hello: 'world' };
      }
    }
    const packed2 = enc.encode({ pre: 'zzzz', v: new Failing() });
    expect(enc.decode(packed2, 0, packed2.length)).toEqual({ pre: 'zzzz', v: { hello: 'world' } });
    // The large inner value's buffer is let go once the outer pack is done.
    expect(enc.encode({ c: 3 }).buffer.byteLength).toBeLessThan(1 << 20);
  });
});

describe('json values', () => {
  it('round-trips random JSON values', () => {
    const enc = createJsonValueEncoder();
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(roundTrip(enc, v)).toStrictEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 1000 },
    );
  });

  it('stores JSON text in UTF-8, including values larger than the scratch buffer', () => {
    const enc = createJsonValueEncoder();
    expect(Buffer.from(enc.encode({ a: 'é' })).toString('utf8')).toBe('{"a":"é"}');
    for (const v of [
      { s: '\u{1f600}'.repeat(20000) },
      { s: 'x'.repeat(3 << 20) },
      ['€'.repeat(500000)],
    ]) {
      expect(roundTrip(enc, v)).toStrictEqual(v);
    }
    expect(roundTrip(enc, { small: 1 })).toStrictEqual({ small: 1 });
  });

  it('follows JSON.stringify inside a value: undefined properties are left out, Dates become strings', () => {
    const enc = createJsonValueEncoder();
    expect(roundTrip(enc, { a: undefined, b: 1 })).toStrictEqual({ b: 1 });
    expect(roundTrip(enc, { d: new Date(0) })).toStrictEqual({ d: '1970-01-01T00:00:00.000Z' });
  });

  it('refuses undefined, functions, symbols, bigint and cycles with ERR_BAD_VALUE', () => {
    const enc = createJsonValueEncoder();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectBadValue(enc, undefined, /undefined/);
    expectBadValue(enc, () => 1, /function/);
    expectBadValue(enc, Symbol('s'), /symbol/);
    expectBadValue(enc, 1n);
    expectBadValue(enc, { n: 1n });
    expectBadValue(enc, cyclic);
    expectBadValue(enc, { toJSON: () => undefined });
  });

  it('decoding damaged bytes is ERR_CORRUPT', () => {
    const enc = createJsonValueEncoder();
    const page = Buffer.from('{"a":');
    expect(() => enc.decode(page, 0, page.length)).toThrow(
      expect.objectContaining({ code: 'ERR_CORRUPT' }),
    );
  });
});

describe('string values', () => {
  it('round-trips any well-formed string', () => {
    const enc = createStringValueEncoder();
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(roundTrip(enc, s)).toBe(s);
      }),
    );
    for (const s of ['', '\u0000', 'é'.repeat(400000), 'x'.repeat(2 << 20)])
      expect(roundTrip(enc, s)).toBe(s);
  });

  it('refuses non-strings and unpaired surrogates with ERR_BAD_VALUE', () => {
    const enc = createStringValueEncoder();
    for (const v of [undefined, null, 1, {}, Buffer.from('a'), Symbol('s')]) expectBadValue(enc, v);
    expectBadValue(enc, 'a\udc00', /surrogate/);
  });
});

describe('binary values', () => {
  it('round-trips bytes to a Buffer copy that does not alias the page', () => {
    const enc = createBinaryValueEncoder();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const out = roundTrip(enc, bytes);
        expect(Buffer.isBuffer(out)).toBe(true);
        expect(out).toEqual(Buffer.from(bytes));
      }),
    );
  });

  it('refuses anything but a Uint8Array with ERR_BAD_VALUE', () => {
    const enc = createBinaryValueEncoder();
    for (const v of [undefined, 'a', 1, [1], new Uint16Array(1), new ArrayBuffer(1)])
      expectBadValue(enc, v);
  });
});
