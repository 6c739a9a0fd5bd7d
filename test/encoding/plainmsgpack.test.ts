// The plain msgpack decoder must give exactly what msgpackr gives, or give up (NOT_PLAIN).
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr, Unpackr, type Options } from 'msgpackr';
import { describe, expect, it } from 'vitest';

import { NOT_PLAIN, plainDecoderFor, plainObjectsRead } from '../../src/encoding/plainmsgpack';

/** Deep strict equality plus the same order of keys in every object and Map. */
function sameValue(a: unknown, b: unknown): boolean {
  if (!isDeepStrictEqual(a, b)) return false;
  if (a instanceof Map && b instanceof Map) {
    const av = [...a];
    const bv = [...b];
    // Keys that are objects (a map or an array as a key) are new objects on each decode:
    // compare them by value; other keys by identity (so 0 and -0 differ).
    const sameKey = (x: unknown, y: unknown): boolean =>
      x !== null && typeof x === 'object' ? sameValue(x, y) : Object.is(x, y);
    return av.every(([k, v], i) => sameKey(k, bv[i]![0]) && sameValue(v, bv[i]![1]));
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.every((v, i) => sameValue(v, b[i]));
  if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') {
    const ak = Object.keys(a);
    const bk = Object.keys(b);
    return (
      ak.join('\u0000') === bk.join('\u0000') &&
      ak.every((k) =>
        sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
      )
    );
  }
  return true;
}

/** msgpackr's result for `bytes`, or the error it throws. */
function msgpackrDecode(
  unpackr: Unpackr,
  bytes: Uint8Array,
): { value: unknown } | { error: unknown } {
  try {
    return { value: unpackr.unpack(Buffer.from(bytes)) };
  } catch (error) {
    return { error };
  }
}

/**
 * Decodes `bytes` with both decoders, from inside a larger "page" as the engine does; the plain
 * result, when there is one, must equal msgpackr's. Returns whether the plain decoder decoded.
 */
function agrees(
  options: Options,
  plain: ReturnType<typeof plainDecoderFor>,
  bytes: Uint8Array,
): boolean {
  const page = new Uint8Array(bytes.length + 40).fill(0x91);
  page.set(bytes, 13);
  const got = plain!(page, 13, 13 + bytes.length);
  if (got === NOT_PLAIN) return false;
  const expected = msgpackrDecode(new Unpackr({ ...options }), bytes);
  if (!('value' in expected)) {
    throw new Error(`msgpackr refused bytes the plain decoder read: ${String(expected.error)}`);
  }
  if (!sameValue(got, expected.value)) {
    throw new Error(
      `decoders disagree on ${Buffer.from(bytes).toString('hex')}: ` +
        `${JSON.stringify(got)} vs ${JSON.stringify(expected.value)}`,
    );
  }
  return true;
}

const CONFIGS: Array<{ name: string; options: Options }> = [
  { name: 'useRecords: false (maps as objects)', options: { useRecords: false } },
  { name: 'maps as Maps', options: { useRecords: false, mapsAsObjects: false } },
  { name: "mapkv's defaults (records)", options: { useRecords: true, moreTypes: true } },
  { name: 'float32 packing', options: { useRecords: false, useFloat32: 1 } },
];

describe('the comparison itself', () => {
  it('maps with maps or arrays as keys agree by value (a random run once failed on 818000)', () => {
    const options: Options = { useRecords: false, mapsAsObjects: false };
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    for (const hex of ['818000', '8180a0', '81818000c0', '8190a0', '81920102c3']) {
      expect(agrees(options, plain, Buffer.from(hex, 'hex')), hex).toBe(true);
    }
    // And a real difference in such a key is still one.
    expect(sameValue(new Map([[[1], 0]]), new Map([[[2], 0]]))).toBe(false);
  });
});

const keyString = fc.oneof(
  fc.constantFrom('__proto__', '__proto_', 'constructor', 'toString', '0', '1', '', 'n', 'name'),
  fc.string({ maxLength: 6 }),
  fc.string({ minLength: 30, maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
);

const plainish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, -0, -1, 127, 128, -32, -33, 255, 256, 65535, 65536),
    fc.constantFrom(2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 - 1),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.string({ unit: 'grapheme', maxLength: 10 }),
    fc.string({ minLength: 17, maxLength: 300 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(keyString, tie('value')), { maxLength: 6 }).map((pairs) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of pairs)
        Object.defineProperty(o, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      return o;
    }),
  ),
})).value;

describe('plain msgpack decoding agrees with msgpackr', () => {
  for (const { name, options } of CONFIGS) {
    it(`random values (${name})`, () => {
      const packr = new Packr({ ...options });
      const plain = plainDecoderFor(new Unpackr({ ...options }));
      expect(plain).not.toBeNull();
      let decoded = 0;
      fc.assert(
        fc.property(plainish, (value) => {
          if (agrees(options, plain, packr.pack(value))) decoded++;
        }),
        { numRuns: 1500 },
      );
      // The plain path is taken, not always given up.
      expect(decoded).toBeGreaterThan(100);
    });

    it(`random and damaged bytes are decoded the same or given up (${name})`, () => {
      const packr = new Packr({ ...options });
      const plain = plainDecoderFor(new Unpackr({ ...options }));
      fc.assert(
        fc.property(
          fc.oneof(
            fc.uint8Array({ minLength: 1, maxLength: 40 }),
            fc
              .tuple(plainish, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(3))
              .map(([value, at, byte, cut]) => {
                const bytes = Uint8Array.from(packr.pack(value));
                bytes[at % bytes.length] = byte;
                return bytes.subarray(0, Math.max(1, bytes.length - cut));
              }),
          ),
          (bytes) => {
            agrees(options, plain, bytes);
          },
        ),
        { numRuns: 3000 },
      );
    });
  }

  it('rows of a few random shapes, whole and damaged, agree (the shapes are learnt and read)', () => {
    // Objects repeat their keys here, as rows do, so the shape readers run: on random values,
    // on a key or value changed by one byte, and on rows cut short.
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    const shapes = fc.array(fc.uniqueArray(keyString, { minLength: 1, maxLength: 5 }), {
      minLength: 1,
      maxLength: 3,
    });
    // Values every decoder reads as plain: with them a row must decode, so a reader that gives
    // up where it should not (msgpackr then decodes it, and agrees() cannot tell) fails too.
    const simple = fc.oneof(
      fc.integer({ min: -40, max: 70_000 }),
      fc.stringMatching(/^[a-z]{0,20}$/),
      fc.array(fc.oneof(fc.stringMatching(/^[a-z]{0,3}$/), fc.nat(200)), { maxLength: 3 }),
    );
    const five = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { minLength: 5, maxLength: 5 });
    const rows = fc.array(fc.tuple(fc.nat(), five(plainish), five(simple), fc.nat(), fc.nat()), {
      minLength: 4,
      maxLength: 16,
    });
    let decoded = 0;
    fc.assert(
      fc.property(shapes, rows, (keyLists, rowList) => {
        for (const [pick, values, simples, at, byte] of rowList) {
          const keys = keyLists[pick % keyLists.length]!;
          const rowOf = (vs: unknown[]): Record<string, unknown> => {
            const row: Record<string, unknown> = {};
            keys.forEach((k, i) =>
              Object.defineProperty(row, k, {
                value: vs[i],
                enumerable: true,
                writable: true,
                configurable: true,
              }),
            );
            return row;
          };
          // A key msgpackr writes in another form than fixstr / str8, or `__proto__`, keeps an
          // object off the shape readers, and a non-ASCII one is left to msgpackr.
          const plainKeys = keys.every((k) => k !== '__proto__' && /^[\x20-\x7e]*$/.test(k));
          const simpleBytes = packr.pack(rowOf(simples));
          for (let i = 0; i < 2; i++) {
            const ok = agrees(options, plain, simpleBytes);
            if (plainKeys) expect(ok).toBe(true);
          }
          const bytes = packr.pack(rowOf(values));
          for (let i = 0; i < 2; i++) if (agrees(options, plain, bytes)) decoded++;
          const damaged = Uint8Array.from(bytes);
          damaged[at % damaged.length] = byte & 0xff;
          agrees(options, plain, damaged);
          agrees(options, plain, bytes.subarray(0, Math.max(1, bytes.length - 1 - (at % 4))));
        }
      }),
      { numRuns: 300 },
    );
    expect(decoded).toBeGreaterThan(1000);
  });

  it('objects in a row with the same, reordered, partly shared and colliding keys', () => {
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    const rows: unknown[] = [];
    for (let i = 0; i < 6; i++) rows.push({ name: 'v', n: i, tags: ['a', 'b'] });
    rows.push({ name: 'v', n: 9, tagz: 1 }, { name: 'v', n: 9, tag: 1 }, { name: 'v', n: 9 });
    rows.push({ name: 'v', n: 9, tags: 1 }, { name: 'w', nn: 9, tags: 1 });
    for (let i = 0; i < 3; i++) rows.push({ n: i, name: 'v', tags: [] }); // reordered
    for (let i = 0; i < 3; i++) rows.push({ name: 'v', n: i, tagz: 1 }); // last key differs
    for (let i = 0; i < 3; i++) rows.push({ name: 'v', n: i }); // a prefix
    for (let i = 0; i < 3; i++) rows.push({ name: 'v', n: i, tags: 1, more: 2 }); // longer
    // Same length, first and last byte: the key cache's slot is shared.
    for (let i = 0; i < 4; i++) rows.push(i % 2 ? { abc: i } : { axc: i });
    // Nested objects of two shapes at one depth, and the outer shape around them.
    for (let i = 0; i < 4; i++) rows.push({ a: { x: i, y: i }, b: { p: i, q: [{ x: 1 }] } });
    rows.push({ __proto__: null, constructor: 1, toString: 2, 7: 'seven' });
    rows.push(Object.defineProperty({}, '__proto__', { value: 1, enumerable: true }));
    rows.push(Object.defineProperty({}, '__proto__', { value: 2, enumerable: true }));
    rows.push(Object.defineProperty({ x: 1 }, '__proto__', { value: 3, enumerable: true }));
    rows.push({ ['k'.repeat(40)]: 1, ['k'.repeat(40) + 'x']: 2 }); // str8 keys
    rows.push({ ['k'.repeat(40)]: 1, ['k'.repeat(40) + 'x']: 2 });
    rows.push({ ['k'.repeat(40)]: 1, ['k'.repeat(40) + 'x']: 2 });
    rows.push({ é: 1 }); // a non-ASCII key: left to msgpackr
    // Every row twice over, so each shape is met learned and unlearned.
    for (const row of [...rows, ...rows]) agrees(options, plain, packr.pack(row));
    // A map with one key twice (msgpackr's packer never writes one): the last value wins.
    const dup = Uint8Array.from([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02]);
    for (let i = 0; i < 3; i++) expect(agrees(options, plain, dup)).toBe(true);
    const dupProto = Uint8Array.from([
      0x83,
      0xa1,
      0x61,
      0x01,
      0xa9,
      ...Buffer.from('__proto__'),
      0x02,
      0xa1,
      0x61,
      0x03,
    ]);
    for (let i = 0; i < 3; i++) expect(agrees(options, plain, dupProto)).toBe(true);
  });

  it('counts longer than the bytes left are left to msgpackr', () => {
    const options: Options = { useRecords: false };
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    for (const bytes of [
      [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
      [0xdc, 0x00, 0x03, 0x01, 0x02],
      [0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01],
      [0xde, 0x00, 0x02, 0xa1, 0x61, 0x01],
      [0x93, 0x01],
      [0xdb, 0xff, 0xff, 0xff, 0xf0, 0x61],
    ]) {
      expect(agrees(options, plain, Uint8Array.from(bytes))).toBe(false);
    }
  });

  it('an object that leaves its shape after nested values is read on, not read again', () => {
    // Objects { a: <the next level>, b: i } nested 24 deep teach every level their shape;
    // then objects whose second key is c or d, in turn, share each level's shape slot (same
    // count, same first key) and leave the shape only after their nested value. Reading such
    // an object again from its start would read the level below twice, and so on down: up to
    // 2^24 objects read for one value (a hang at 60 levels).
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    const LEVELS = 24;
    const nest = (seconds: string[]): unknown => {
      let value: unknown = 0;
      for (let i = 0; i < LEVELS; i++) value = { a: value, [seconds[i % seconds.length]!]: i };
      return value;
    };
    const learnt = packr.pack(nest(['b']));
    const other = packr.pack(nest(['c', 'd']));
    for (const bytes of [learnt, learnt, learnt, other, other, other, learnt]) {
      const before = plainObjectsRead();
      expect(agrees(options, plain, bytes)).toBe(true);
      expect(plainObjectsRead() - before).toBe(LEVELS);
    }
  });

  it('a learnt shape whose value is not plain gives up, and the next object reads right', () => {
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    const row = (tags: unknown): Uint8Array => packr.pack({ name: 'v', n: 1, tags });
    for (let i = 0; i < 3; i++) expect(agrees(options, plain, row(['a']))).toBe(true);
    // Binary in the last value: the shape's reader gives up after reading the first two.
    expect(agrees(options, plain, row(Buffer.from([1, 2])))).toBe(false);
    expect(agrees(options, plain, row([{ x: 1 }, 'b']))).toBe(true);
    // A key that is not the shape's after a value, then an object of the shape again.
    expect(agrees(options, plain, packr.pack({ name: 'v', m: [1, { y: 2 }], tags: 3 }))).toBe(true);
    expect(agrees(options, plain, row(7))).toBe(true);
  });

  it("a learnt shape's inline reads give what read() gives, at every edge", () => {
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    const ascii = (n: number): number[] => Array.from({ length: n }, (_, i) => 0x61 + (i % 26));
    // Values as raw msgpack, the bytes the inline reads look at first: fixints at both ends of
    // their range, one-byte strings (ASCII, not, not UTF-8), fixstrs of 0, 2, 16 (the longest
    // read inline) and 17 bytes, UTF-8 in a fixstr, fixmaps and fixarrays (msgpackr writes
    // map16 for objects, other writers fixmap), arrays of such, nil, a uint8 and a str8.
    const tokens: number[][] = [
      [0x00],
      [0x7f],
      [0xe0],
      [0xff],
      [0xa1, 0x61],
      [0xa1, 0x7f],
      [0xa1, 0x00],
      [0xa1, 0x80],
      [0xa1, 0xc3],
      [0xa0],
      [0xa2, 0x61, 0x62],
      [0xa2, 0xc3, 0xa9],
      [0xa3, 0x61, 0xc3, 0xa9],
      [0xa3, 0xef, 0xbb, 0xbf],
      [0xb0, ...ascii(16)],
      [0xaf, ...ascii(14), 0x80],
      [0xb1, ...ascii(17)],
      [0x80],
      [0x81, 0xa1, 0x61, 0x01],
      [0x90],
      [0x92, 0xa1, 0x61, 0x7f],
      [0x92, 0x80, 0xe0],
      [0x91, 0xa1, 0xc3],
      [0xc0],
      [0xcc, 0x80],
      [0xd9, 0x02, 0x61, 0x62],
      [0xc1],
    ];
    const name = [0xa4, ...Buffer.from('name')];
    const n = [0xa1, 0x6e];
    let decoded = 0;
    for (const x of tokens) {
      for (const y of tokens) {
        // A row that teaches the shape { name, n } its reader, then the pair both ways.
        expect(agrees(options, plain, packr.pack({ name: 'v', n: 1 }))).toBe(true);
        for (const [a, b] of [
          [x, y],
          [y, x],
        ]) {
          const bytes = Uint8Array.from([0xde, 0x00, 0x02, ...name, ...a!, ...n, ...b!]);
          if (agrees(options, plain, bytes)) decoded++;
        }
      }
    }
    // Most pairs are plain; those with a byte msgpackr refuses or reads otherwise are not.
    expect(decoded).toBeGreaterThan(tokens.length * tokens.length);
  });

  it('a value cut short is never completed from the bytes after it in the page', () => {
    // The inline reads of small integers and short strings (shape readers, array elements)
    // stop at the value's end like read() does, and a decode that ends past it gives up: here
    // the bytes after the value would read as fixints, one-letter strings or the rest of a
    // key. (Either guard alone keeps this; without both, `tags` of the first value reads 5.)
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    const values = [
      { name: 'value', n: 7, tags: ['a', 'b'] },
      { name: 'value', n: 7, tags: [1, 2, 3] },
      [1, 'a', 2, 'b'],
      { k: 1, kk: 'xy' },
    ];
    const fillers = [[0x05], [0xa1, 0x61], [0x61, 0x67, 0x73, 0x05]];
    for (const value of values) {
      const bytes = packr.pack(value);
      // Learnt shapes first: the shape readers run below.
      for (let i = 0; i < 3; i++) expect(agrees(options, plain, bytes)).toBe(true);
      for (const filler of fillers) {
        for (let cut = 1; cut < bytes.length; cut++) {
          const page = new Uint8Array(bytes.length + 64);
          for (let i = 0; i < page.length; i++) page[i] = filler[i % filler.length]!;
          page.set(bytes.subarray(0, cut), 8);
          const got = plain!(page, 8, 8 + cut);
          expect(got, `${JSON.stringify(value)} cut at ${cut}`).toBe(NOT_PLAIN);
        }
      }
    }
  });

  it('deep nesting is left to msgpackr', () => {
    const options: Options = { useRecords: false };
    let value: unknown = 1;
    for (let i = 0; i < 100; i++) value = [value];
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    expect(agrees(options, plain, new Packr({ ...options }).pack(value))).toBe(false);
  });

  it('gives up on extensions, binary and 64-bit integers', () => {
    const options: Options = { useRecords: false, moreTypes: true };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    for (const v of [
      new Date(0),
      Buffer.from([1, 2]),
      2n ** 40n,
      -(2n ** 40n),
      { a: [undefined] },
      new Set([1]),
    ]) {
      expect(agrees(options, plain, packr.pack(v))).toBe(false);
    }
  });

  it('reads well-formed UTF-8 of any length, and leaves the rest to msgpackr', () => {
    const options: Options = { useRecords: false };
    const packr = new Packr({ ...options });
    const plain = plainDecoderFor(new Unpackr({ ...options }));
    for (const text of [
      'é',
      'héllo wörld',
      '€'.repeat(30),
      '\u{1f600}'.repeat(40),
      'ü'.repeat(200),
    ]) {
      expect(agrees(options, plain, packr.pack(text))).toBe(true);
      expect(agrees(options, plain, packr.pack({ [text.slice(0, 20)]: text }))).toBe(true);
    }
    // msgpackr writes a lone surrogate as its three bytes, which are not UTF-8; and it drops a
    // leading byte order mark from strings over 64 bytes only.
    for (const text of ['a\ud800b', '\udc00'.repeat(50), '\ufeffab', '\ufeff' + 'x'.repeat(100)]) {
      agrees(options, plain, packr.pack(text));
      agrees(options, plain, packr.pack({ k: text }));
    }
    const str = (bytes: number[]): Uint8Array =>
      Uint8Array.from(
        bytes.length < 32 ? [0xa0 + bytes.length, ...bytes] : [0xd9, bytes.length, ...bytes],
      );
    const long = (bytes: number[]): number[] => [...Array(70).fill(0x61), ...bytes];
    for (const bad of [
      [0x80],
      [0xc0, 0xaf], // overlong
      [0xc3],
      [0xe0, 0x80, 0xaf], // overlong
      [0xed, 0xa0, 0x80], // a surrogate
      [0xf0, 0x8f, 0xbf, 0xbf], // overlong
      [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
      [0xf5, 0x80, 0x80, 0x80],
      [0xe2, 0x82],
      [0xf0, 0x9f, 0x98], // cut short
    ]) {
      expect(agrees(options, plain, str(bad))).toBe(false);
      expect(agrees(options, plain, str(long(bad)))).toBe(false);
    }
    const bom = [0xef, 0xbb, 0xbf];
    expect(agrees(options, plain, str([...bom, 0x61]))).toBe(false);
    expect(agrees(options, plain, str([...bom, ...long([])]))).toBe(false);
    expect(agrees(options, plain, str(long(bom)))).toBe(true); // not leading: a character
  });

  it('is not used with options that change how plain msgpack decodes', () => {
    expect(plainDecoderFor(new Unpackr({ structures: [] }))).toBeNull();
    expect(plainDecoderFor(new Unpackr({ getStructures: () => [] }))).toBeNull();
    expect(plainDecoderFor(new Unpackr({ freezeData: true } as Options))).toBeNull();
    expect(plainDecoderFor(new Unpackr({ useFloat32: 3 }))).toBeNull();
    expect(plainDecoderFor(new Unpackr({ sequential: true }))).toBeNull();
  });
});
