// Key and value encodings through the public API: the documented key order as range() returns
// it, and values of every encoding round-tripping through putSync/put and get/getBinary.
import * as fs from 'node:fs';
import * as vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { OrderedKey } from '../../src/index';
import { ApiFolder, compareUtf8, expectCode, expectHealthy, prng } from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

/** Shuffles a copy of `items` with a seeded PRNG. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  const rnd = prng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rnd.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Every kind of ordered key, in the documented order: null < false < true < numbers < strings < arrays < binary. */
const ORDERED_KEYS: OrderedKey[] = [
  null,
  false,
  true,
  -Infinity,
  -1e300,
  -1e9,
  -2.5,
  -1,
  -0.5,
  -Number.MIN_VALUE,
  0,
  Number.MIN_VALUE,
  0.25,
  1,
  1.5,
  2,
  10,
  255,
  256,
  2 ** 32,
  2 ** 53,
  1e300,
  Infinity,
  '',
  '\0',
  'A',
  'Z',
  'a',
  'a\0',
  'aa',
  'ab',
  'b',
  '~',
  'é',
  '\uffff',
  '\u{10000}',
  [],
  [null],
  [false],
  [-1],
  [1],
  [1, null],
  [1, 2],
  [2],
  [''],
  ['a'],
  ['a', null],
  ['a', 1],
  ['a', 'x'],
  ['a', ['b']],
  ['a\0'],
  ['ab'],
  [[]],
  [[1]],
  [Buffer.from([0])],
  Buffer.alloc(0),
  Buffer.from([0]),
  Buffer.from([0, 0]),
  Buffer.from([0, 1]),
  Buffer.from([1]),
  Buffer.from([255]),
  Buffer.from([255, 255]),
];

/** A structurally equal key made of new objects (binary parts as plain Uint8Arrays). */
function cloneKey(k: OrderedKey): OrderedKey {
  if (Array.isArray(k)) return k.map(cloneKey);
  if (k instanceof Uint8Array) return new Uint8Array(k);
  return k;
}

describe("'ordered' keys", () => {
  it('come back from range() in the documented type and value order', () => {
    const db = folder.open<OrderedKey, number>({ keyEncoding: 'ordered' });
    const order = new Map<number, number>(); // value -> expected position
    for (const [i] of ORDERED_KEYS.entries()) order.set(i, i);
    for (const i of shuffled(
      ORDERED_KEYS.map((_, i) => i),
      1,
    )) {
      db.putSync(ORDERED_KEYS[i]!, i);
    }
    expect(db.count()).toBe(ORDERED_KEYS.length);
    const got = [...db.range()];
    expect(got.map((e) => e.value)).toEqual(ORDERED_KEYS.map((_, i) => i));
    expect(got.map((e) => e.key)).toEqual(ORDERED_KEYS);
    expect([...db.keys({ reverse: true })]).toEqual(ORDERED_KEYS.slice().reverse());
    expectHealthy(db);
  });

  it('each read back with get() under an equal key; binary keys decode as a Buffer', () => {
    const db = folder.open<OrderedKey, number>();
    db.transactionSync((txn) => {
      for (const [i, k] of ORDERED_KEYS.entries()) txn.put(k, i);
    });
    for (const [i, k] of ORDERED_KEYS.entries()) {
      // A structurally equal but distinct key object finds the same entry.
      expect(db.get(cloneKey(k))).toBe(i);
    }
    const bin = [...db.keys({ start: Buffer.alloc(0) })];
    expect(bin.length).toBe(7);
    for (const k of bin) expect(Buffer.isBuffer(k)).toBe(true);
  });

  it('store -0 and 0 as one key', () => {
    const db = folder.open<OrderedKey, string>();
    db.putSync(-0, 'minus zero');
    db.putSync(0, 'zero');
    expect(db.count()).toBe(1);
    expect(db.get(-0)).toBe('zero');
    expect(Object.is([...db.keys()][0], 0)).toBe(true);
  });

  it('order 2000 random numbers numerically, negatives and fractions included', () => {
    const db = folder.open<number, number>();
    const rnd = prng(7);
    const nums = new Set<number>();
    while (nums.size < 2000) {
      const r = rnd.next();
      const n =
        r < 0.3
          ? (rnd.next() - 0.5) * 1e6
          : r < 0.6
            ? rnd.int(2000) - 1000
            : (rnd.next() - 0.5) * 1e-3;
      nums.add(n === 0 ? 0 : n);
    }
    db.transactionSync((txn) => {
      for (const n of nums) txn.put(n, n);
    });
    const sorted = [...nums].sort((a, b) => a - b);
    expect([...db.keys()]).toEqual(sorted);
    expect([...db.values({ start: -1, end: 1 })]).toEqual(sorted.filter((n) => n >= -1 && n < 1));
    expectHealthy(db);
  });

  it('order tuples element by element, a shorter prefix first', () => {
    const db = folder.open<OrderedKey, number>();
    // Built in the expected order: [a] first, then [a, b, c] by b numerically, then c
    // (null before strings).
    const expected: OrderedKey[] = [];
    for (const a of ['x', 'y']) {
      expected.push([a]);
      for (const b of [-1, 0, 2, 10]) {
        expected.push([a, b]);
        for (const c of [null, 'p', 'q']) expected.push([a, b, c]);
      }
    }
    for (const k of shuffled(expected, 3)) db.putSync(k, 0);
    expect([...db.keys()]).toEqual(expected);
  });
});

describe("'string' keys", () => {
  it('round-trip and come back in code point (UTF-8 byte) order, the empty string included', () => {
    const db = folder.open<string, number>({ keyEncoding: 'string' });
    const keys = [
      '',
      'a',
      'a\0',
      'ab',
      'B',
      'é',
      '日本',
      '\uffff',
      '\u{10000}',
      '\u{1f600}',
      'zzz',
      ' ',
    ];
    for (const [i, k] of shuffled(keys, 2).entries()) db.putSync(k, i);
    const sorted = [...keys].sort(compareUtf8);
    expect([...db.keys()]).toEqual(sorted);
    for (const k of keys) expect(db.has(k)).toBe(true);
    expect(db.get('missing')).toBeUndefined();
    expect(db.keyEncoding).toBe('string');
  });
});

describe("'binary' keys", () => {
  it('round-trip as Buffers in bytewise order, shorter prefix first', () => {
    const db = folder.open<Uint8Array, number>({ keyEncoding: 'binary' });
    const keys = [
      [],
      [0],
      [0, 0],
      [0, 255],
      [1],
      [1, 2, 3],
      [128],
      [255],
      [255, 0],
      [255, 255, 255],
    ].map((b) => Buffer.from(b));
    for (const [i, k] of shuffled(keys, 4).entries()) db.putSync(new Uint8Array(k), i);
    const got = [...db.keys()];
    expect(got.map((k) => [...k])).toEqual(keys.map((k) => [...k]));
    for (const k of got) expect(Buffer.isBuffer(k)).toBe(true);
    // A key handed out is the caller's own copy.
    got[1]![0] = 99;
    expect([...db.keys()][1]).toEqual(Buffer.from([0]));
    expect(db.get(Uint8Array.from([1, 2, 3]))).toBeDefined();
  });
});

describe("'uint32' keys", () => {
  it('round-trip as numbers in numeric order from 0 to 2**32 - 1', () => {
    const db = folder.open<number, string>({ keyEncoding: 'uint32' });
    const keys = [
      0,
      1,
      2,
      9,
      10,
      100,
      255,
      256,
      65535,
      65536,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32 - 2,
      2 ** 32 - 1,
    ];
    for (const k of shuffled(keys, 5)) db.putSync(k, String(k));
    expect([...db.keys()]).toEqual(keys);
    for (const k of keys) expect(db.get(k)).toBe(String(k));
    expect([...db.keys({ start: 10, end: 65536 })]).toEqual([10, 100, 255, 256, 65535]);
  });
});

describe('msgpack values', () => {
  const values: Array<[string, unknown]> = [
    ['null', null],
    ['true', true],
    ['false', false],
    ['zero', 0],
    ['negative float', -12.375],
    ['large int', 2 ** 53 - 1],
    ['NaN', NaN],
    ['Infinity', -Infinity],
    ['empty string', ''],
    ['unicode string', 'héllo 日本 \u{1f600}'],
    ['long string', 'x'.repeat(10_000)],
    ['empty object', {}],
    ['nested object', { a: 1, b: { c: [1, 'two', { d: null }] }, e: 'f', g: [true, false] }],
    ['object with undefined inside', { a: undefined, b: 1 }],
    ['array', [1, 'a', null, [2, [3]], { x: 1 }]],
    ['Date', new Date(Date.UTC(2020, 1, 29, 12, 34, 56, 789))],
    [
      'Map',
      new Map<unknown, unknown>([
        [1, 'one'],
        ['two', 2],
        [true, [3]],
      ]),
    ],
    ['Set', new Set([1, 'a', 3])],
    ['Uint8Array', new Uint8Array([1, 2, 3, 255])],
    ['Buffer', Buffer.from('buffer bytes')],
    ['Float64Array', new Float64Array([1.5, -2.25, Math.PI])],
    ['Int32Array', new Int32Array([-1, 0, 2 ** 31 - 1])],
    ['Uint16Array', new Uint16Array([0, 65535])],
    ['bigint', 123n],
    ['negative bigint', -(2n ** 63n)],
    ['huge bigint', 2n ** 200n + 12345n],
    [
      'object of many types',
      {
        when: new Date(0),
        tags: new Set(['x']),
        m: new Map([['k', 1n]]),
        bytes: new Uint8Array([9]),
      },
    ],
  ];

  it('round-trip through putSync/get with their types', () => {
    const db = folder.open<string, unknown>();
    for (const [name, v] of values) db.putSync(name, v);
    for (const [name, v] of values) {
      const got = db.get(name);
      expect(got, name).toEqual(v);
      if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
        expect((got as object).constructor, name).toBe(v.constructor);
      }
    }
    expect(db.get('Date')).toBeInstanceOf(Date);
    expect(db.get('Map')).toBeInstanceOf(Map);
    expect(db.get('Set')).toBeInstanceOf(Set);
    expect(db.get('Float64Array')).toBeInstanceOf(Float64Array);
    expect(typeof db.get('bigint')).toBe('bigint');
    expect(typeof db.get('huge bigint')).toBe('bigint');
    expect(db.get('object with undefined inside')).toHaveProperty('a', undefined);
    expectHealthy(db);
  });

  it('round-trip through async put and after a reopen', async () => {
    const db = folder.open<string, unknown>();
    await Promise.all(values.map(([name, v]) => db.put(name, v)));
    await db.close();
    const again = folder.open<string, unknown>();
    for (const [name, v] of values) expect(again.get(name), name).toEqual(v);
    expect(again.valueEncoding).toBe('msgpack');
  });

  it("a value read is the caller's own: mutating it does not change the database", () => {
    const db = folder.open<string, any>();
    db.putSync('obj', { list: [1, 2], bytes: new Uint8Array([1, 2]) });
    const a = db.get('obj');
    a.list.push(3);
    a.bytes[0] = 99;
    expect(db.get('obj')).toEqual({ list: [1, 2], bytes: new Uint8Array([1, 2]) });
    // Changing the stored object after putSync changes nothing either.
    const src = { n: 1 };
    db.putSync('src', src);
    src.n = 2;
    expect(db.get('src')).toEqual({ n: 1 });
  });
});

describe('msgpack without records (msgpack: { useRecords: false })', () => {
  const record = { name: 'value', n: 42, tags: ['a', 'b'] };
  /** Whether msgpack bytes start with a plain map (fixmap, map16, map32), not a record. */
  const plainMap = (b: Uint8Array): boolean =>
    (b[0]! & 0xf0) === 0x80 || b[0] === 0xde || b[0] === 0xdf;

  it('is recorded in the file: a reopen without the option still reads objects as objects', async () => {
    const db = folder.open<string, unknown>({ msgpack: { useRecords: false } });
    db.putSync('k', record);
    // Plain msgpack: a map, not a msgpackr record.
    expect(plainMap(db.getBinary('k')!)).toBe(true);
    await db.close();

    const again = folder.open<string, unknown>();
    const got = again.get('k');
    expect(got).toEqual(record);
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    // New writes through the option-less handle stay plain too.
    again.putSync('k2', { x: 1 });
    expect(plainMap(again.getBinary('k2')!)).toBe(true);
    expectHealthy(again);
  });

  it('refuses an option that contradicts the file, and leaves the file as it was', async () => {
    const plainFile = folder.file('plain.mkv');
    const recordsFile = folder.file('records.mkv');
    const p = folder.open<string, unknown>({ msgpack: { useRecords: false } }, plainFile);
    p.putSync('k', record);
    await p.close();
    const r = folder.open<string, unknown>({}, recordsFile);
    r.putSync('k', record);
    expect(plainMap(r.getBinary('k')!)).toBe(false);
    await r.close();
    const before = [fs.readFileSync(plainFile), fs.readFileSync(recordsFile)];

    const e1 = expectCode(
      () => folder.open({ msgpack: { useRecords: true } }, plainFile),
      'ERR_INCOMPATIBLE',
    );
    expect(e1.message).toMatch(/without records/);
    const e2 = expectCode(
      () => folder.open({ msgpack: { useRecords: false } }, recordsFile),
      'ERR_INCOMPATIBLE',
    );
    expect(e2.message).toMatch(/with records/);
    expect(fs.readFileSync(plainFile).equals(before[0]!)).toBe(true);
    expect(fs.readFileSync(recordsFile).equals(before[1]!)).toBe(true);
    // The matching option, or none, opens both.
    expect(
      folder.open<string, unknown>({ msgpack: { useRecords: false } }, plainFile).get('k'),
    ).toEqual(record);
    expect(
      folder.open<string, unknown>({ msgpack: { useRecords: true } }, recordsFile).get('k'),
    ).toEqual(record);
  });

  it('is recorded per sub-database, and ignored for other value encodings', async () => {
    const db = folder.open<string, Uint8Array>({
      valueEncoding: 'binary',
      msgpack: { useRecords: false },
    });
    db.openDB<string, unknown>('plain').putSync('k', record);
    db.openDB<string, unknown>('json', { valueEncoding: 'json' }).putSync('k', record);
    await db.close();

    // Without the option: the plain sub-database still decodes objects; a new msgpack
    // sub-database gets records.
    const again = folder.open<string, Uint8Array>();
    const plain = again.openDB<string, unknown>('plain');
    expect(Object.getPrototypeOf(plain.get('k'))).toBe(Object.prototype);
    expect(again.openDB<string, unknown>('json').get('k')).toEqual(record);
    const fresh = again.openDB<string, unknown>('fresh');
    fresh.putSync('m', new Map([['a', 1]]));
    expect(fresh.get('m')).toBeInstanceOf(Map);
    await again.close();

    const third = folder.open<string, Uint8Array>({ msgpack: { useRecords: false } });
    expect(third.openDB<string, unknown>('plain').get('k')).toEqual(record);
    expect(third.openDB<string, unknown>('json').get('k')).toEqual(record);
    expectCode(() => third.openDB('fresh'), 'ERR_INCOMPATIBLE');
  });
});

describe('msgpack options', () => {
  it('refuses shared record structures, which would not be in the file, before creating it', () => {
    const file = folder.file('shared.mkv');
    for (const maxSharedStructures of [32, 1, -1, NaN]) {
      const err = expectCode(
        () => folder.open({ msgpack: { structures: [], maxSharedStructures } }, file),
        'ERR_BAD_OPTION',
      );
      expect(err.message).toMatch(/maxSharedStructures/);
    }
    expect(fs.existsSync(file)).toBe(false);
    // 0 (mapkv's own setting) is accepted, and values still decode after a reopen.
    const db = folder.open<string, unknown>(
      { msgpack: { structures: [], maxSharedStructures: 0 } },
      file,
    );
    db.putSync('k', { x: 1, y: [2] });
    expect(folder.open<string, unknown>({ readOnly: true }, file).get('k')).toEqual({
      x: 1,
      y: [2],
    });
  });

  it('refuses copyBuffers: false, under which binary inside a value would change after later writes', () => {
    const file = folder.file('views.mkv');
    const err = expectCode(
      () => folder.open({ msgpack: { copyBuffers: false } }, file),
      'ERR_BAD_OPTION',
    );
    expect(err.message).toMatch(/copyBuffers/);
    expect(fs.existsSync(file)).toBe(false);
    // With the default, a Buffer inside a value read keeps its bytes whatever comes after.
    const db = folder.open<string, { b: Buffer }>({ sync: 'none' }, file);
    db.putSync('k', { b: Buffer.alloc(3000, 1) });
    const held = db.get('k')!.b;
    for (let i = 0; i < 20; i++) {
      db.putSync('k', { b: Buffer.alloc(3000, 2 + i) });
      db.putSync(`z${i}`, { b: Buffer.alloc(3000, 100 + i) });
      db.get(`z${i}`);
    }
    expect(held.equals(Buffer.alloc(3000, 1))).toBe(true);
  });

  it('an option set to undefined is left out: mapkv defaults hold (copyBuffers, moreTypes)', () => {
    const db = folder.open<string, any>({
      sync: 'none',
      msgpack: { copyBuffers: undefined, moreTypes: undefined, useRecords: undefined },
    });
    db.putSync('k', { b: Buffer.alloc(3000, 1), set: new Set([1]), u32: new Uint32Array([7]) });
    const read = db.get('k');
    for (let i = 0; i < 20; i++) db.putSync('k', { b: Buffer.alloc(3000, 2 + i) });
    // Was a view of the mapping (copyBuffers overridden by undefined): it changed to 0x02...
    expect(read.b.equals(Buffer.alloc(3000, 1))).toBe(true);
    expect(read.set).toEqual(new Set([1])); // was an array without moreTypes
    expect(read.u32).toEqual(new Uint32Array([7]));
  });

  it('options that would leave values unreadable or shared are ERR_BAD_OPTION, and create no file', () => {
    const file = folder.file('refused.mkv');
    const throwing = Object.defineProperty({}, 'useRecords', {
      enumerable: true,
      get() {
        throw new Error('getter says no');
      },
    });
    const refused: unknown[] = [
      { copyBuffers: 0 },
      { copyBuffers: null },
      { sequential: true }, // opened fine, then every value was ERR_CORRUPT after a reopen
      { saveStructures: () => true, getStructures: () => [] },
      { structures: [['a', 'b']] },
      { structures: 5 },
      { useRecords: 0 }, // every object put failed with ERR_BAD_VALUE
      { moreTypes: false }, // msgpackr then stores a Uint32Array as 16 wrong bytes
      { maxOwnStructures: 9000 }, // msgpackr's own refusal, was a TypeError after creating the file
      throwing,
      'records',
    ];
    for (const msgpack of refused) {
      expectCode(() => folder.open({ msgpack } as never, file), 'ERR_BAD_OPTION');
      expect(fs.existsSync(file)).toBe(false);
    }
  });

  it('the msgpack options are read once, at open: changing the object later changes nothing', () => {
    const options: { useRecords?: boolean } = {};
    const db = folder.open<string, unknown>({ msgpack: options });
    options.useRecords = false; // would make sub-databases opened later plain msgpack
    const late = db.openDB<string, unknown>('late');
    late.putSync('m', new Map([['a', 1]]));
    expect(late.get('m')).toBeInstanceOf(Map); // with records, a Map stays a Map
  });

  it('a value that msgpack would store as undefined (toJSON returning undefined) is refused', () => {
    const db = folder.open<string, unknown>();
    class Money {
      toJSON(): undefined {
        return undefined;
      }
    }
    expectCode(() => db.putSync('m', new Money()), 'ERR_BAD_VALUE');
    expect(db.has('m')).toBe(false);
  });
});

describe("what msgpackr does not keep (the README's list)", () => {
  it('strings: an unpaired surrogate, a leading U+FEFF on a long string', () => {
    const db = folder.open<string, unknown>();
    db.putSync('s', 'a\ud800b');
    expect(db.get('s')).toBe('a\ufffd\ufffd\ufffdb');
    const long = `\ufeff${'x'.repeat(70)}`;
    db.putSync('bom', long);
    expect(db.get('bom')).toBe(long.slice(1));
    db.putSync('short', '\ufeffxy');
    expect(db.get('short')).toBe('\ufeffxy');
  });

  it('values of another realm lose their type; useRecords: false Maps with object keys do not decode', () => {
    const db = folder.open<string, any>();
    const foreign = vm.runInNewContext(
      '({ m: new Map([[1, 2]]), s: new Set([1]), u: new Uint8Array([5]), d: new Date(0) })',
    ) as Record<string, unknown>;
    db.putSync('f', foreign);
    expect(db.get('f')).toEqual({ m: {}, s: {}, u: { 0: 5 }, d: '1970-01-01T00:00:00.000Z' });
    const plain = folder.open<string, unknown>(
      { msgpack: { useRecords: false } },
      folder.file('plain.mkv'),
    );
    plain.putSync('m', new Map([[{ id: 1 }, 'x']]));
    expectCode(() => plain.get('m'), 'ERR_CORRUPT');
  });
});

describe('json, string and binary values', () => {
  it("'json' values round-trip as JSON does (a Date becomes its ISO string)", () => {
    const db = folder.open<string, unknown>({ valueEncoding: 'json' });
    const obj = { a: [1, 2, { b: 'c' }], d: null, e: true, f: -1.5, s: 'é\u{1f600}' };
    db.putSync('obj', obj);
    db.putSync('num', 42);
    db.putSync('str', '"quoted"');
    db.putSync('null', null);
    db.putSync('date', new Date(Date.UTC(2021, 0, 2)));
    expect(db.get('obj')).toEqual(obj);
    expect(db.get('num')).toBe(42);
    expect(db.get('str')).toBe('"quoted"');
    expect(db.get('null')).toBeNull();
    expect(db.get('date')).toBe('2021-01-02T00:00:00.000Z');
    expect(db.getBinary('obj')).toEqual(Buffer.from(JSON.stringify(obj), 'utf8'));
    expect(db.getBinary('null')).toEqual(Buffer.from('null'));
  });

  it("'string' values round-trip, and getBinary returns their UTF-8", () => {
    const db = folder.open<string, string>({ valueEncoding: 'string' });
    const strings = [
      '',
      'a',
      'héllo',
      '日本語',
      '\u{1f600}\u{1f601}',
      'x'.repeat(100_000),
      'nul\0inside',
    ];
    for (const [i, s] of strings.entries()) db.putSync(String(i), s);
    for (const [i, s] of strings.entries()) {
      expect(db.get(String(i))).toBe(s);
      expect(Buffer.from(db.getBinary(String(i))!).equals(Buffer.from(s, 'utf8'))).toBe(true);
    }
    expect(db.get('0')).toBe('');
    expect(db.has('0')).toBe(true);
  });

  it("'binary' values round-trip exactly, the empty one included, as Buffers the caller owns", async () => {
    const db = folder.open<string, Uint8Array>({ valueEncoding: 'binary' });
    const blobs = [
      new Uint8Array(0),
      Uint8Array.from([0]),
      Uint8Array.from([1, 2, 3, 0, 255]),
      Buffer.alloc(5000, 0xa5),
    ];
    for (const [i, b] of blobs.entries()) db.putSync(String(i), b);
    for (const [i, b] of blobs.entries()) {
      const got = db.get(String(i))!;
      expect(Buffer.isBuffer(got) || got instanceof Uint8Array).toBe(true);
      expect([...got]).toEqual([...b]);
      expect([...db.getBinary(String(i))!]).toEqual([...b]);
    }
    expect(db.get('0')).toBeDefined();
    expect(db.get('0')!.length).toBe(0);

    // The input buffer is copied: changing it after putSync or put changes nothing stored.
    const input = Uint8Array.from([1, 1, 1]);
    db.putSync('in', input);
    input[0] = 7;
    expect([...db.get('in')!]).toEqual([1, 1, 1]);
    const asyncInput = Uint8Array.from([2, 2, 2]);
    const p = db.put('async', asyncInput);
    asyncInput[0] = 7; // before the batch commits
    await p;
    expect([...db.get('async')!]).toEqual([2, 2, 2]);

    // A value handed out by get is a copy too.
    const out = db.get('2')!;
    out[0] = 42;
    expect([...db.get('2')!]).toEqual([1, 2, 3, 0, 255]);
  });
});

describe('getBinary', () => {
  it('returns exactly the stored bytes as a copy: mutating it does not change the database', () => {
    const db = folder.open<string, Uint8Array>({ valueEncoding: 'binary' });
    const bytes = Buffer.from([9, 8, 7, 6, 5]);
    const big = Buffer.alloc(100_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    db.putSync('small', bytes);
    db.putSync('big', big);
    const a = db.getBinary('small')!;
    expect(a).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(a).equals(bytes)).toBe(true);
    a.fill(0);
    expect(Buffer.from(db.getBinary('small')!).equals(bytes)).toBe(true);
    const b = db.getBinary('big')!;
    expect(Buffer.from(b).equals(big)).toBe(true);
    b.fill(1);
    expect(Buffer.from(db.getBinary('big')!).equals(big)).toBe(true);
    expect(db.getBinary('missing')).toBeUndefined();
    // Two reads are two distinct buffers.
    expect(db.getBinary('small')).not.toBe(db.getBinary('small'));
    expectHealthy(db);
  });

  it('returns msgpack bytes that decode back to the value, unaffected by later commits', () => {
    const db = folder.open<string, unknown>({ sync: 'none' });
    db.putSync('v', { a: 1 });
    const raw = db.getBinary('v')!;
    const copy = Buffer.from(raw);
    // Overwrite and grow the database: the returned bytes must not change under us.
    for (let i = 0; i < 200; i++) db.putSync('v', { a: i, pad: 'x'.repeat(i * 10) });
    db.removeSync('v');
    expect(Buffer.from(raw).equals(copy)).toBe(true);
    expect(raw.length).toBeGreaterThan(0);
  });

  it('returns Buffers of every size, small ones owning exactly their bytes', () => {
    const db = folder.open<Uint8Array, Uint8Array>({
      valueEncoding: 'binary',
      keyEncoding: 'binary',
    });
    // Around V8's 64-byte limit for typed arrays kept inside its heap (src/encoding/owned.ts).
    for (const n of [0, 1, 27, 63, 64, 65, 200, 5000]) {
      const bytes = Buffer.alloc(n);
      for (let i = 0; i < n; i++) bytes[i] = (i * 31 + n) & 0xff;
      const key = Buffer.from(`k${n}`);
      db.putSync(key, bytes);
      const snap = db.snapshot();
      const read = [db.getBinary(key)!, db.get(key)!, snap.getBinary(key)!];
      snap.close();
      for (const out of read) {
        expect(Buffer.isBuffer(out), `${n} bytes`).toBe(true);
        expect(out instanceof Buffer).toBe(true);
        const buf = out as Buffer;
        expect(buf.toString('hex')).toBe(bytes.toString('hex'));
        expect(buf.equals(bytes)).toBe(true);
        expect(Buffer.isBuffer(buf.subarray(1))).toBe(true);
        // A small copy is its whole ArrayBuffer: nothing else of the process's memory shows.
        if (n <= 64) {
          expect(buf.byteOffset).toBe(0);
          expect(buf.buffer.byteLength).toBe(n);
        }
      }
    }
    // Keys of the 'binary' encoding come back as Buffers too.
    const keys = [...db.range()].map((e) => e.key as unknown as Buffer);
    for (const k of keys) expect(Buffer.isBuffer(k)).toBe(true);
    expect(keys.map((k) => k.toString())).toContain('k27');
  });
});
