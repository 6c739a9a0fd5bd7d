// range / keys / values / count: bounds, reverse, limit, prefix, snapshot isolation of
// iterators, release of their snapshot, and iteration inside a write transaction.
import * as fs from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { addExtension } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Database, OrderedKey } from '../../src/index';
import { ApiFolder, expectCode, expectHealthy, key } from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

/** A database holding k0000..k(n-1) -> i, written in one transaction. */
function filled(n: number, value: (i: number) => unknown = (i) => i): Database<string, any> {
  const db = folder.open<string, any>({ sync: 'none' });
  db.transactionSync((txn) => {
    for (let i = 0; i < n; i++) txn.put(key(i), value(i));
  });
  return db;
}

const ids = (from: number, to: number): string[] => {
  const out: string[] = [];
  if (from <= to) for (let i = from; i < to; i++) out.push(key(i));
  else for (let i = from; i > to; i--) out.push(key(i));
  return out;
};

describe('bounds', () => {
  it('start is inclusive and end exclusive', () => {
    const db = filled(20);
    expect([...db.keys({ start: key(5), end: key(10) })]).toEqual(ids(5, 10));
    expect([...db.range({ start: key(5), end: key(10) })]).toEqual(
      ids(5, 10).map((k, i) => ({ key: k, value: i + 5 })),
    );
    expect([...db.values({ start: key(5), end: key(10) })]).toEqual([5, 6, 7, 8, 9]);
    expect(db.count({ start: key(5), end: key(10) })).toBe(5);
  });

  it('bounds need not be present keys', () => {
    const db = filled(20);
    expect([...db.keys({ start: 'k0004x', end: 'k0007x' })]).toEqual([key(5), key(6), key(7)]);
    expect([...db.keys({ start: 'a', end: 'k0002' })]).toEqual([key(0), key(1)]);
    expect([...db.keys({ start: 'k0018x', end: 'z' })]).toEqual([key(19)]);
  });

  it('start alone runs to the end, end alone from the beginning, none covers everything', () => {
    const db = filled(20);
    expect([...db.keys({ start: key(17) })]).toEqual(ids(17, 20));
    expect([...db.keys({ end: key(3) })]).toEqual(ids(0, 3));
    expect([...db.keys()]).toEqual(ids(0, 20));
    expect([...db.keys({})]).toEqual(ids(0, 20));
  });

  it('an empty or inverted interval yields nothing', () => {
    const db = filled(20);
    expect([...db.keys({ start: key(5), end: key(5) })]).toEqual([]);
    expect([...db.keys({ start: key(9), end: key(3) })]).toEqual([]);
    expect([...db.keys({ start: key(9), end: key(3), reverse: true })]).toEqual([]);
    expect(db.count({ start: key(9), end: key(3) })).toBe(0);
    expect([...db.keys({ start: 'z' })]).toEqual([]);
  });

  it('an empty database yields nothing and counts 0', () => {
    const db = folder.open();
    expect([...db.range()]).toEqual([]);
    expect([...db.range({ reverse: true })]).toEqual([]);
    expect(db.count()).toBe(0);
    expect(db.count({ start: 'a' })).toBe(0);
  });
});

describe('reverse', () => {
  it('walks the same interval [start, end) in descending order', () => {
    const db = filled(20);
    expect([...db.keys({ start: key(5), end: key(10), reverse: true })]).toEqual(ids(9, 4));
    expect([...db.keys({ reverse: true })]).toEqual(ids(19, -1));
    expect([...db.keys({ end: key(3), reverse: true })]).toEqual([key(2), key(1), key(0)]);
    expect([...db.keys({ start: key(17), reverse: true })]).toEqual([key(19), key(18), key(17)]);
    expect([...db.keys({ start: 'k0004x', end: 'k0007x', reverse: true })]).toEqual([
      key(7),
      key(6),
      key(5),
    ]);
    expect([...db.values({ start: key(5), end: key(8), reverse: true })]).toEqual([7, 6, 5]);
  });

  it('reverse: false is the same as leaving it out', () => {
    const db = filled(10);
    expect([...db.keys({ reverse: false })]).toEqual(ids(0, 10));
  });
});

describe('limit', () => {
  it('caps the entries from the start (or, reversed, from the end) of the interval', () => {
    const db = filled(20);
    expect([...db.keys({ limit: 3 })]).toEqual(ids(0, 3));
    expect([...db.keys({ limit: 3, reverse: true })]).toEqual(ids(19, 16));
    expect([...db.keys({ start: key(5), end: key(10), limit: 2 })]).toEqual([key(5), key(6)]);
    expect([...db.keys({ start: key(5), end: key(10), limit: 2, reverse: true })]).toEqual([
      key(9),
      key(8),
    ]);
    expect([...db.keys({ limit: 0 })]).toEqual([]);
    expect([...db.keys({ limit: 1000 })]).toEqual(ids(0, 20));
    expect(db.count({ limit: 3 })).toBe(3);
    expect(db.count({ limit: 1000 })).toBe(20);
    expect(db.count({ start: key(15), limit: 10 })).toBe(5);
  });
});

describe('prefix', () => {
  it('selects the string keys that begin with a string prefix', () => {
    const db = folder.open<string, number>();
    for (const k of ['ap', 'app', 'apple', 'applied', 'apply', 'apps', 'apq', 'b', 'ap\uffff', 'a'])
      db.putSync(k, 1);
    expect([...db.keys({ prefix: 'app' })]).toEqual(['app', 'apple', 'applied', 'apply', 'apps']);
    expect([...db.keys({ prefix: 'app', reverse: true })]).toEqual([
      'apps',
      'apply',
      'applied',
      'apple',
      'app',
    ]);
    expect([...db.keys({ prefix: 'appl', limit: 2 })]).toEqual(['apple', 'applied']);
    expect([...db.keys({ prefix: 'zz' })]).toEqual([]);
    expect(db.count({ prefix: 'ap' })).toBe(8);
    expect(db.count({ prefix: '' })).toBe(10);
  });

  it('combines with start and end as an intersection', () => {
    const db = folder.open<string, number>();
    for (const k of ['app', 'apple', 'applied', 'apply', 'apps', 'b']) db.putSync(k, 1);
    expect([...db.keys({ prefix: 'app', start: 'appl' })]).toEqual([
      'apple',
      'applied',
      'apply',
      'apps',
    ]);
    expect([...db.keys({ prefix: 'app', end: 'apply' })]).toEqual(['app', 'apple', 'applied']);
    expect([...db.keys({ prefix: 'app', start: 'a', end: 'z' })]).toEqual([
      'app',
      'apple',
      'applied',
      'apply',
      'apps',
    ]);
  });

  it("a tuple prefix ['a'] matches ['a'], ['a', 1] and ['a', 'x'] but not ['ab'] or 'a'", () => {
    const db = folder.open<OrderedKey, number>();
    const all: OrderedKey[] = [
      ['a'],
      ['a', 1],
      ['a', 'x'],
      ['a', 'x', 2],
      ['a', null],
      ['ab'],
      ['ab', 1],
      ['b'],
      'a',
      'ab',
      [],
      ['\0'],
      ['a\0'],
    ];
    for (const k of all) db.putSync(k, 1);
    expect([...db.keys({ prefix: ['a'] })]).toEqual([
      ['a'],
      ['a', null],
      ['a', 1],
      ['a', 'x'],
      ['a', 'x', 2],
    ]);
    expect([...db.keys({ prefix: ['a', 'x'] })]).toEqual([
      ['a', 'x'],
      ['a', 'x', 2],
    ]);
    expect([...db.keys({ prefix: ['a'], reverse: true })]).toEqual([
      ['a', 'x', 2],
      ['a', 'x'],
      ['a', 1],
      ['a', null],
      ['a'],
    ]);
    expect(db.count({ prefix: ['a'] })).toBe(5);
    expect(db.count({ prefix: ['ab'] })).toBe(2);
    expect(db.count({ prefix: [] })).toBe(all.length - 2); // every tuple, not the strings
  });

  it('a binary prefix selects the keys whose bytes begin with it', () => {
    const db = folder.open<Uint8Array, number>({ keyEncoding: 'binary' });
    const keys = [[1], [1, 0], [1, 255], [1, 255, 255], [2], [0, 1], [255], [255, 255]].map((b) =>
      Buffer.from(b),
    );
    for (const k of keys) db.putSync(k, 1);
    expect([...db.keys({ prefix: Buffer.from([1]) })].map((k) => [...k])).toEqual([
      [1],
      [1, 0],
      [1, 255],
      [1, 255, 255],
    ]);
    expect([...db.keys({ prefix: Buffer.from([255]) })].map((k) => [...k])).toEqual([
      [255],
      [255, 255],
    ]);
    expect([...db.keys({ prefix: Buffer.from([1, 255]) })].map((k) => [...k])).toEqual([
      [1, 255],
      [1, 255, 255],
    ]);
  });
});

describe('count', () => {
  it('counts every entry without options and the entries of a range with them', () => {
    const db = filled(300);
    expect(db.count()).toBe(300);
    expect(db.count({})).toBe(300);
    expect(db.count({ start: key(100) })).toBe(200);
    expect(db.count({ end: key(100) })).toBe(100);
    expect(db.count({ start: key(10), end: key(20), reverse: true })).toBe(10);
    expect(db.count({ reverse: true })).toBe(300);
    expect(db.count({ prefix: 'k00' })).toBe(100);
    db.removeSync(key(0));
    db.putSync(key(0) + 'x', 0);
    db.putSync(key(1), 'overwritten');
    expect(db.count()).toBe(300);
    expect(db.count({ prefix: 'k00' })).toBe(100);
  });
});

describe('iterators and snapshots', () => {
  it('an iterator whose next() throws gives its pin back at once (for..of calls no return())', async () => {
    // A value that msgpackr refuses to revive: reading it throws inside next().
    class Unrevivable {}
    addExtension({
      Class: Unrevivable,
      type: 0x61,
      write: () => 1,
      read: () => {
        throw new Error('cannot revive');
      },
    });
    const db = folder.open<string, unknown>();
    db.putSync('a', 1);
    db.putSync('b', new Unrevivable());
    db.putSync('c', 3);
    const walks: Array<() => unknown> = [
      () => [...db.range()],
      () => [...db.values({ reverse: true })],
      () => {
        for (const e of db.range({ start: 'b' })) void e; // throws at the first entry
      },
    ];
    for (const walk of walks) {
      expect(walk).toThrow();
      expect(db.stats().openSnapshots).toBe(0); // was 1 per throw until the GC found it
    }
    expect([...db.keys()]).toEqual(['a', 'b', 'c']); // keys alone decode no value
    expect(db.count({ start: 'a' })).toBe(3);
    await db.close();
  });

  it('a for-of over db.range() sees one snapshot even when putSync/removeSync run inside the loop', () => {
    const n = 800;
    const db = filled(n, (i) => ({ i, pad: 'p'.repeat(100) }));
    const seen: Array<[string, number]> = [];
    let step = 0;
    for (const { key: k, value } of db.range()) {
      seen.push([k, value.i]);
      // Remove keys ahead, insert between keys ahead, overwrite the current and later ones.
      const i = Number(k.slice(1));
      if (i + 7 < n) db.removeSync(key(i + 7));
      db.putSync(`${key(i + 3)}-new`, { i: -1, pad: '' });
      if (i + 11 < n) db.putSync(key(i + 11), { i: -2, pad: 'q'.repeat(500) });
      if (++step % 300 === 0) expect(db.stats().openSnapshots).toBe(1);
    }
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => [key(i), i]));
    expect(db.stats().openSnapshots).toBe(0);
    expect(db.has(key(10))).toBe(false);
    expect(db.get(`${key(4)}-new`)).toEqual({ i: -1, pad: '' });
    expectHealthy(db);
  });

  it('keys() and values() loops and a reversed loop are isolated the same way', () => {
    const db = filled(400, (i) => i);
    const keys: string[] = [];
    for (const k of db.keys({ reverse: true })) {
      keys.push(k);
      db.removeSync(k);
      if (keys.length === 1) db.putSync('zzz', 0);
    }
    expect(keys).toEqual(ids(399, -1));
    expect(db.count()).toBe(1);
    const values: number[] = [];
    for (const v of db.values()) {
      values.push(v);
      db.putSync('aaa', 1);
    }
    expect(values).toEqual([0]);
    expectHealthy(db);
  });

  it('breaking out of a loop releases its snapshot', () => {
    const db = filled(100);
    expect(db.stats().openSnapshots).toBe(0);
    const it1 = db.range();
    expect(db.stats().openSnapshots).toBe(0); // an iterable not yet iterated holds nothing
    for (const e of it1) {
      expect(db.stats().openSnapshots).toBe(1);
      if (e.value === 3) break;
    }
    expect(db.stats().openSnapshots).toBe(0);
    for (const _ of db.keys({ reverse: true })) break;
    for (const _ of db.values({ start: key(50) })) break;
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('a loop that throws, one run to its end and one cut by limit release their snapshots', () => {
    const db = filled(50);
    expect(() => {
      for (const e of db.range()) if (e.value === 5) throw new Error('stop');
    }).toThrow('stop');
    expect(db.stats().openSnapshots).toBe(0);
    expect([...db.range()].length).toBe(50);
    expect(db.stats().openSnapshots).toBe(0);
    const it2 = db.keys({ limit: 2 })[Symbol.iterator]();
    it2.next();
    it2.next();
    expect(it2.next().done).toBe(true);
    expect(db.stats().openSnapshots).toBe(0);
    expect(db.count({ start: key(10) })).toBe(40);
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('two iterators of one iterable run independently', () => {
    const db = filled(10);
    const r = db.keys();
    const a = r[Symbol.iterator]();
    const b = r[Symbol.iterator]();
    expect(a.next().value).toBe(key(0));
    expect(a.next().value).toBe(key(1));
    expect(b.next().value).toBe(key(0));
    db.putSync(key(0), 'x');
    const rest = (it: Iterator<string>): string[] => {
      const out: string[] = [];
      for (let r = it.next(); !r.done; r = it.next()) out.push(r.value);
      return out;
    };
    expect(rest(a)).toEqual(ids(2, 10));
    expect(rest(b)).toEqual(ids(1, 10));
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('iterators dropped unfinished release their snapshots once garbage collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const db = filled(50);
    const finished = db.keys()[Symbol.iterator]();
    const start = (): void => {
      // Started and dropped: only the garbage collector can tell they will not go on.
      for (let i = 0; i < 3; i++) {
        const dropped = db.range({ start: key(i) })[Symbol.iterator]();
        dropped.next();
      }
      finished.next();
    };
    start();
    expect(db.stats().openSnapshots).toBe(4);
    let rest = 0;
    for (let r = finished.next(); !r.done; r = finished.next()) rest++;
    expect(rest).toBe(49);
    expect(db.stats().openSnapshots).toBe(3);
    db.putSync(key(0), 'changed'); // a later commit: the next ones pin another snapshot
    const later = db.keys()[Symbol.iterator]();
    later.next();
    expect(db.stats().openSnapshots).toBe(4);
    for (let round = 0; round < 20 && db.stats().openSnapshots > 1; round++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(db.stats().openSnapshots).toBe(1); // `later`, still reachable
    expect(later.next().value).toBe(key(1));
    later.return!();
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('a range that fails to start on a damaged catalog entry holds no snapshot', async () => {
    const db = folder.open<string, number>({ sync: 'none' });
    const users = db.openDB<string, number>('users');
    users.putSync('u1', 1);
    db.putSync('a', 1);
    // Damage the depth of the catalog's descriptor of 'users' (a leaf record: u16 key
    // length, u8 flags, u32 value length, key, value), in every copy of the page in the file:
    // records a leaf's slots point at, not stale bytes left in the free space of other pages.
    const record = Buffer.from([5, 0, 0, 48, 0, 0, 0, ...Buffer.from('users')]);
    const bytes = fs.readFileSync(db.path);
    const isRecord = (at: number): boolean => {
      const page = at - (at % 4096);
      if (bytes[page + 4] !== 3) return false;
      for (let i = 0; i < bytes.readUInt16LE(page + 6); i++) {
        if (bytes.readUInt16LE(page + 32 + 2 * i) === at - page) return true;
      }
      return false;
    };
    const fd = fs.openSync(db.path, 'r+');
    try {
      for (let at = bytes.indexOf(record); at >= 0; at = bytes.indexOf(record, at + 1)) {
        if (!isRecord(at)) continue;
        const depth = Buffer.alloc(4);
        depth.writeUInt32LE(200);
        fs.writeSync(fd, depth, 0, 4, at + record.length + 8);
      }
    } finally {
      fs.closeSync(fd);
    }
    db.putSync('b', 2); // a new commit: the catalog is read again
    expectCode(() => [...users.range()], 'ERR_CORRUPT');
    expect(db.stats().openSnapshots).toBe(0);
    await db.close();
  });

  it('ranges after commits that reshape the tree see the new tree', () => {
    const db = filled(3);
    const hash = db.openDB<string, number>('h', { kind: 'hash' });
    for (let round = 1; round <= 4; round++) {
      const n = 10 ** round;
      db.transactionSync((txn) => {
        for (let i = 0; i < n; i++) txn.put(key(i), i);
      });
      hash.transactionSync((txn) => {
        for (let i = 0; i < n; i++) txn.put(key(i), i);
      });
      // Broken off, run out and cut by a limit, in every order: whichever iterator's cursor
      // is taken up again must walk the new tree.
      for (const _ of db.keys({ start: key(n - 2) })) break;
      expect([...db.keys({ start: key(n - 3) })]).toEqual(ids(n - 3, n));
      expect([...db.keys({ reverse: true, limit: 2 })]).toEqual([key(n - 1), key(n - 2)]);
      expect([...db.values({ start: key(1), limit: 3 })]).toEqual([1, 2, 3]);
      for (const _ of hash.keys()) break;
      expect([...hash.keys()].sort()).toEqual(ids(0, n));
      expect(hash.count({ limit: 5 })).toBe(5);
    }
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('a range iterable takes its snapshot when iteration starts, not when range() is called', () => {
    const db = filled(3);
    const r = db.keys();
    db.putSync(key(3), 3);
    expect([...r]).toEqual(ids(0, 4));
  });
});

describe('txn.range inside transactionSync', () => {
  it("sees the transaction's own puts and removes", () => {
    const db = filled(10);
    db.transactionSync((txn) => {
      txn.put('k0004x', 'new');
      txn.remove(key(6));
      txn.put(key(2), 'changed');
      expect([...txn.keys({ start: key(2), end: key(8) })]).toEqual([
        key(2),
        key(3),
        key(4),
        'k0004x',
        key(5),
        key(7),
      ]);
      expect(txn.get(key(2))).toBe('changed');
      expect([...txn.values({ start: key(2), limit: 1 })]).toEqual(['changed']);
      expect(txn.count()).toBe(10);
      expect(txn.count({ start: key(5) })).toBe(4);
      expect([...txn.keys({ reverse: true, limit: 2 })]).toEqual([key(9), key(8)]);
      // The database outside still shows the last commit.
      expect([...db.keys({ start: key(2), end: key(8) })]).toEqual(ids(2, 8));
    });
    expect([...db.keys({ start: key(2), end: key(8) })]).toEqual([
      key(2),
      key(3),
      key(4),
      'k0004x',
      key(5),
      key(7),
    ]);
  });

  it('keeps working when the transaction writes during the iteration', () => {
    const n = 600;
    const db = filled(n, (i) => ({ i, pad: 'v'.repeat(150) }));
    const removedAhead = new Set<number>();
    const seen: string[] = [];
    db.transactionSync((txn) => {
      let step = 0;
      for (const { key: k, value } of txn.range()) {
        seen.push(k);
        const i = Number(k.slice(1));
        expect(value.i).toBe(i);
        // Overwrite the current entry (bigger, so pages split), remove one ahead, and
        // insert keys behind the cursor, which the loop must not yield.
        txn.put(k, { i, pad: 'w'.repeat(300) });
        if (step % 3 === 0 && i + 2 < n) {
          txn.remove(key(i + 2));
          removedAhead.add(i + 2);
        }
        txn.put(`a-${k}`, { i: -1, pad: '' });
        step++;
      }
    });
    const expected = ids(0, n).filter((k) => !removedAhead.has(Number(k.slice(1))));
    expect(seen).toEqual(expected);
    expect(db.count()).toBe(expected.length * 2);
    expect(db.get(key(1))).toEqual({ i: 1, pad: 'w'.repeat(300) });
    expectHealthy(db);
  });

  it('a reversed txn.range keeps working when the transaction removes the entries it passed', () => {
    const db = filled(500, (i) => 'x'.repeat(100 + (i % 50)));
    const seen: string[] = [];
    db.transactionSync((txn) => {
      for (const k of txn.keys({ reverse: true })) {
        seen.push(k);
        txn.remove(k);
      }
      expect(txn.count()).toBe(0);
    });
    expect(seen).toEqual(ids(499, -1));
    expect(db.count()).toBe(0);
    expectHealthy(db);
  });

  it('yields each key once when the transaction changes a leaf it already wrote (in place)', () => {
    const db = folder.open<string, number>();
    db.transactionSync((txn) => {
      for (let i = 0; i < 10; i++) txn.put(`k${i}`, i);
      const seen: string[] = [];
      for (const k of txn.keys()) {
        seen.push(k);
        if (k === 'k0') {
          txn.remove('k1');
          txn.remove('k5');
        }
        if (k === 'k3') txn.put('k3a', 1);
      }
      expect(seen).toEqual(['k0', 'k2', 'k3', 'k3a', 'k4', 'k6', 'k7', 'k8', 'k9']);
    });
    expect([...db.keys()]).toEqual(['k0', 'k2', 'k3', 'k3a', 'k4', 'k6', 'k7', 'k8', 'k9']);
  });

  it('an iterator made before the transaction writes starts from what the transaction wrote', () => {
    const db = filled(2);
    const many = ids(2, 3000);
    db.transactionSync((txn) => {
      const forward = txn.keys()[Symbol.iterator]();
      const backward = txn.keys({ reverse: true })[Symbol.iterator]();
      // Enough puts to give the tree new levels and more leaves than the file had pages.
      for (const k of many) txn.put(k, 'x'.repeat(40));
      const drain = (it: Iterator<string>): string[] => {
        const out: string[] = [];
        for (let r = it.next(); !r.done; r = it.next()) out.push(r.value);
        return out;
      };
      expect(drain(forward)).toEqual(ids(0, 3000));
      expect(drain(backward)).toEqual(ids(2999, -1));
    });
  });

  it('keeps walking after one step wrote more leaves than the file had pages', () => {
    const db = filled(2);
    db.transactionSync((txn) => {
      const it = txn.keys()[Symbol.iterator]();
      expect(it.next().value).toBe(key(0));
      for (const k of ids(2, 3000)) txn.put(k, 'x'.repeat(40));
      const rest: string[] = [];
      for (let r = it.next(); !r.done; r = it.next()) rest.push(r.value);
      expect(rest).toEqual(ids(1, 3000));
    });
  });

  it('a txn iterator does not pin a snapshot', () => {
    const db = filled(20);
    db.transactionSync((txn) => {
      for (const _ of txn.range()) expect(db.stats().openSnapshots).toBe(0);
    });
  });
});

describe('ranges of a snapshot', () => {
  it('support the same options as db.range', () => {
    const db = filled(30);
    const snap = db.snapshot();
    try {
      db.removeSync(key(5));
      expect([...snap.keys({ start: key(4), end: key(7) })]).toEqual([key(4), key(5), key(6)]);
      expect([...snap.keys({ start: key(4), end: key(7), reverse: true, limit: 2 })]).toEqual([
        key(6),
        key(5),
      ]);
      expect(snap.count({ prefix: 'k000' })).toBe(10);
      expect(snap.count()).toBe(30);
      expect(db.count()).toBe(29);
    } finally {
      snap.close();
    }
  });
});
