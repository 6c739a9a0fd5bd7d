/**
 * The log that holds a batch's async puts as bytes (src/putlog.ts): each put's key and value
 * come back as they went in, whatever else was added between reserving a key and appending its
 * value, across chunk ends and for values larger than a chunk; keyOrder sorts by the keys'
 * bytes and keeps the order of puts of one key; hashOrder sorts by a hash of the keys and keeps
 * the order of puts of one hash.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openOn } from '../../src/open';
import { PutLog } from '../../src/putlog';
import { MemoryStorage } from '../../src/storage/memory';

const enc = new TextEncoder();

/** Bytes as hex: quick to compare, and readable in a failure. */
const hex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** The key and value of put `i`, read back from the log. */
function entry(log: PutLog<string>, i: number): { db: string; key: string; value: string } {
  const c = log.chunk(i);
  const at = log.at(i);
  const kl = log.keyLength(i);
  return {
    db: log.db(i),
    key: hex(c.subarray(at, at + kl)),
    value: hex(c.subarray(at + kl, at + kl + log.valueLength(i))),
  };
}

/** Adds a put through a scratch buffer, as Database.put does. */
function put(log: PutLog<string>, db: string, key: Uint8Array, value: Uint8Array): void {
  const scratch = new Uint8Array(key.length + 8);
  scratch.set(key);
  const held = log.reserveKey(scratch, key.length);
  scratch.fill(0xee); // the caller's buffer is reused once the key is held
  log.append(db, held, key.length, value);
}

function compareBytes(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

describe('PutLog', () => {
  it('gives back every put it was given, across chunk ends and for values larger than a chunk', () => {
    const log = new PutLog<string>();
    const want: Array<{ db: string; key: string; value: string }> = [];
    const sizes = [0, 1, 64, 65, 4000, 100_000, 300_000, 5, 262_144, 262_100, 7];
    for (let i = 0; i < 40; i++) {
      const key = enc.encode(`key-${i}`);
      const value = new Uint8Array(sizes[i % sizes.length]!).map((_, j) => (i * 31 + j) & 0xff);
      const db = i % 3 === 0 ? 'a' : 'b';
      put(log, db, key, value);
      want.push({ db, key: hex(key), value: hex(value) });
    }
    expect(log.length).toBe(40);
    for (let i = 0; i < 40; i++) expect(entry(log, i)).toEqual(want[i]);
  });

  it('keeps a held key whole when other puts are added before its value (a re-entrant encoder)', () => {
    const log = new PutLog<string>();
    const scratch = enc.encode('outer-key');
    const held = log.reserveKey(scratch, scratch.length);
    // What a value getter that itself puts would do, into the same scratch buffer.
    put(log, 'x', enc.encode('inner-1'), enc.encode('v1'));
    put(log, 'x', enc.encode('inner-2'), new Uint8Array(70_000).fill(3));
    scratch.fill(0);
    log.append('y', held, 9, enc.encode('outer-value'));
    expect(log.length).toBe(3);
    expect(entry(log, 0)).toEqual({
      db: 'x',
      key: hex(enc.encode('inner-1')),
      value: hex(enc.encode('v1')),
    });
    expect(entry(log, 1).value).toBe('03'.repeat(70_000));
    expect(entry(log, 2)).toEqual({
      db: 'y',
      key: hex(enc.encode('outer-key')),
      value: hex(enc.encode('outer-value')),
    });
  });

  it('a key given back takes no room, however many puts fail', () => {
    const log = new PutLog<string>();
    put(log, 'a', enc.encode('k'), enc.encode('v'));
    const before = log.bytesHeld;
    for (let i = 0; i < 100_000; i++) {
      const held = log.reserveKey(enc.encode('failed-key'), 10);
      log.releaseKey(held, 10);
    }
    expect(log.bytesHeld).toBe(before);
    put(log, 'a', enc.encode('k2'), enc.encode('v2'));
    expect(entry(log, 1)).toEqual({
      db: 'a',
      key: hex(enc.encode('k2')),
      value: hex(enc.encode('v2')),
    });
  });

  it("db.put calls whose values fail to encode leave nothing in the store's log", async () => {
    const db = openOn<string, unknown>(new MemoryStorage(), '', { sync: 'none' });
    try {
      const log = (): PutLog<unknown> =>
        (db as unknown as { store: { log: PutLog<unknown> } }).store.log;
      const before = log().bytesHeld;
      const bad = {
        get x(): number {
          throw new Error('no value');
        },
      };
      for (let i = 0; i < 10_000; i++) await expect(db.put(`key${i}`, bad)).rejects.toThrow();
      expect(log().bytesHeld).toBe(before);
      await db.put('good', 1);
      expect(db.get('good')).toBe(1);
    } finally {
      await db.close();
    }
  });

  it('a key held for a value that failed to encode leaves the other puts alone', () => {
    const log = new PutLog<string>();
    log.reserveKey(enc.encode('lost'), 4);
    put(log, 'a', enc.encode('k'), enc.encode('v'));
    expect(log.length).toBe(1);
    expect(entry(log, 0)).toEqual({
      db: 'a',
      key: hex(enc.encode('k')),
      value: hex(enc.encode('v')),
    });
  });

  it('keyOrder sorts by key bytes, shorter first on a common prefix, and keeps the order of puts of one key', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            // Long shared prefixes reach past the 12 bytes keyOrder sorts on by radix.
            prefix: fc.constantFrom('', 'key000000000', 'key00000000000000'),
            tail: fc.uint8Array({ maxLength: 4 }),
            value: fc.uint8Array({ maxLength: 3 }),
          }),
          { maxLength: 120 },
        ),
        fc.nat(5),
        (puts, lead) => {
          const log = new PutLog<string>();
          // Puts before `from` are not part of the order asked for.
          for (let i = 0; i < lead; i++) put(log, 'a', enc.encode(`lead${i}`), new Uint8Array(1));
          const keys = puts.map((p) => Uint8Array.from([...enc.encode(p.prefix), ...p.tail]));
          puts.forEach((p, i) => put(log, 'a', keys[i]!, p.value));
          const order = Array.from(log.keyOrder(lead, lead + puts.length));
          const expected = puts
            .map((_, i) => i)
            .sort((a, b) => compareBytes([...keys[a]!], [...keys[b]!]) || a - b)
            .map((i) => i + lead);
          expect(order).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('hashOrder sorts by the hash of each key as an unsigned number, and keeps the order of puts of one hash', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.uint8Array({ maxLength: 6 }),
            value: fc.uint8Array({ maxLength: 3 }),
          }),
          {
            maxLength: 150,
          },
        ),
        fc.nat(5),
        fc.constantFrom(0, 0x3fff_ffff, 0xffff_fffe),
        (puts, lead, scale) => {
          const log = new PutLog<string>();
          for (let i = 0; i < lead; i++) put(log, 'a', enc.encode(`lead${i}`), new Uint8Array(1));
          puts.forEach((p) => put(log, 'a', p.key, p.value));
          // A hash of few values, so that many puts share one (stability), spread over the
          // whole unsigned range (every byte of the radix sort, the sign bit included).
          const hashOf = (b: Uint8Array, at: number, kl: number): number =>
            ((kl === 0 ? 0 : b[at]! % 5) * scale) >>> 0;
          const order = Array.from(log.hashOrder(lead, lead + puts.length, hashOf));
          const h = puts.map((p) => hashOf(p.key, 0, p.key.length));
          const expected = puts
            .map((_, i) => i)
            .sort((a, b) => h[a]! - h[b]! || a - b)
            .map((i) => i + lead);
          expect(order).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a recycled log is empty and takes puts again', () => {
    const log = new PutLog<string>();
    put(log, 'a', enc.encode('k1'), new Uint8Array(100_000).fill(1));
    log.recycle();
    expect(log.length).toBe(0);
    put(log, 'b', enc.encode('k2'), enc.encode('v2'));
    expect(entry(log, 0)).toEqual({
      db: 'b',
      key: hex(enc.encode('k2')),
      value: hex(enc.encode('v2')),
    });
  });
});
