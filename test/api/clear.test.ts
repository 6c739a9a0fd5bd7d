// clear(), clearSync() and txn.clear(): every entry of one database deleted in one commit, the
// file's other databases untouched, the pages back in the free space, snapshots unchanged.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { Database, DatabaseBase, Transaction } from '../../src/index';
import { ApiFolder, expectCode, expectHealthy, expectRejectCode } from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  vi.useRealTimers();
  await folder.cleanup();
});

type Where = 'main' | 'btree' | 'hash';
const WHERE: readonly Where[] = ['main', 'btree', 'hash'];

/** The folder's file and, in it, the database under test (string keys, msgpack values). */
function setup(where: Where): { root: Database<string, any>; db: DatabaseBase<string, any> } {
  const root = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
  const db =
    where === 'main' ? root : root.openDB<string, any>('t', { kind: where, keyEncoding: 'string' });
  return { root, db };
}

/** `n` entries k00000.. (every 50th with a value large enough for an overflow run). */
function fill(db: DatabaseBase<string, any>, n: number, tag = 'v'): void {
  db.transactionSync((txn) => {
    for (let i = 0; i < n; i++) {
      const k = `k${String(i).padStart(5, '0')}`;
      txn.put(k, i % 50 === 0 ? { tag, big: 'x'.repeat(6000 + i) } : { tag, i });
    }
  });
}

const sorted = (it: Iterable<string>): string[] => [...it].sort();

describe.each(WHERE)('clearing a database (%s)', (where) => {
  it('clearSync deletes every entry in one commit and leaves the other databases as they were', () => {
    const { root, db } = setup(where);
    // Another database of the same file, of each kind, must not change.
    const other = root.openDB<string, any>('other', { keyEncoding: 'string' });
    const otherHash = root.openDB<string, any>('otherHash', {
      kind: 'hash',
      keyEncoding: 'string',
    });
    fill(db, 9_000);
    other.putSync('o', 1);
    otherHash.putSync('h', 2);
    if (where !== 'main') root.putSync('m', 3);
    const txnId = root.stats().txnId;
    db.clearSync();
    expect(root.stats().txnId).toBe(txnId + 1);
    expect(db.count()).toBe(0);
    expect([...db.keys()]).toEqual([]);
    expect(db.get('k00000')).toBeUndefined();
    expect(db.has('k08999')).toBe(false);
    expect(other.get('o')).toBe(1);
    expect(otherHash.get('h')).toBe(2);
    if (where !== 'main') expect(root.get('m')).toBe(3);
    expectHealthy(root);
    // Clearing an empty database commits nothing.
    db.clearSync();
    expect(root.stats().txnId).toBe(txnId + 1);
    // It takes new entries as a new one does.
    db.putSync('again', { tag: 'new' });
    expect(sorted(db.keys())).toEqual(['again']);
    expectHealthy(root);
  });

  it('gives its pages back: refilled, the file does not grow', () => {
    const { root, db } = setup(where);
    fill(db, 6_000);
    const pages = root.stats().pages;
    db.clearSync();
    // The pages the clear freed are reusable once a later commit is durable (one into another
    // database: a key left in this one would make the refill split its leaves in the middle).
    root.openDB('marker').putSync('~', 0);
    expect(root.stats().freePages).toBeGreaterThan(pages * 0.9);
    fill(db, 6_000, 'w');
    expect(root.stats().pages).toBeLessThanOrEqual(pages + 8);
    expect(db.get('k00007')).toEqual({ tag: 'w', i: 7 });
    expectHealthy(root);
  });

  it('a snapshot taken before keeps every entry; a transaction sees its own clear', async () => {
    const { root, db } = setup(where);
    fill(db, 300);
    const snap = db.snapshot();
    // Cleared, then written again in the same transaction: only the later puts stay.
    db.transactionSync((txn) => {
      expect(txn.get('k00001')).toEqual({ tag: 'v', i: 1 });
      txn.clear();
      expect(txn.get('k00001')).toBeUndefined();
      expect([...txn.keys()]).toEqual([]);
      txn.put('after', 1);
      expect([...txn.keys()]).toEqual(['after']);
    });
    expect(sorted(db.keys())).toEqual(['after']);
    expect(snap.count()).toBe(300);
    expect(snap.get('k00299')).toEqual({ tag: 'v', i: 299 });
    snap.close();
    // An aborted clear changes nothing; so does one whose transaction throws.
    db.transactionSync((txn) => {
      txn.clear();
      txn.abort();
    });
    expect(() =>
      db.transactionSync((txn) => {
        txn.clear();
        throw new Error('no');
      }),
    ).toThrow('no');
    expect(sorted(db.keys())).toEqual(['after']);
    // clear() is queued with the batched writes, in order: a put before it goes, one after stays.
    const p1 = db.put('before', 1);
    const cleared = db.clear();
    const p2 = db.put('later', 2);
    await Promise.all([p1, cleared, p2]);
    expect(sorted(db.keys())).toEqual(['later']);
    expectHealthy(root);
  });

  it('txn.db(x).clear() clears x only, atomically with the other writes', () => {
    const { root, db } = setup(where);
    const other = root.openDB<string, any>('other', { kind: 'hash', keyEncoding: 'string' });
    fill(db, 100);
    other.putSync('keep', 1);
    other.transactionSync((txn) => {
      txn.db(db).clear();
      txn.put('new', 2);
    });
    expect(db.count()).toBe(0);
    expect(sorted(other.keys())).toEqual(['keep', 'new']);
    expectHealthy(root);
  });

  it('is refused on a read-only or closed handle, and writes nothing', async () => {
    const { root, db } = setup(where);
    fill(db, 10);
    const reader = folder.open<string, any>({ readOnly: true }, root.path);
    const rdb = where === 'main' ? reader : reader.openDB<string, any>('t');
    expectCode(() => rdb.clearSync(), 'ERR_READ_ONLY');
    await expectRejectCode(rdb.clear(), 'ERR_READ_ONLY');
    expect(db.count()).toBe(10);
    await root.close();
    expectCode(() => db.clearSync(), 'ERR_CLOSED');
    await expectRejectCode(db.clear(), 'ERR_CLOSED');
  });

  it('refuses an argument (a key, a prefix, range options) and deletes nothing', async () => {
    // From JavaScript nothing stops clearSync('k00001'): ignored, it would delete every entry.
    const { root, db } = setup(where);
    fill(db, 10);
    const txnId = root.stats().txnId;
    const anyDb = db as unknown as {
      clearSync(...a: unknown[]): void;
      clear(...a: unknown[]): Promise<void>;
    };
    for (const arg of ['k00001', { prefix: 'k' }, { start: 'a', end: 'b' }, null, undefined]) {
      expectCode(() => anyDb.clearSync(arg), 'ERR_BAD_OPTION');
      await expectRejectCode(anyDb.clear(arg), 'ERR_BAD_OPTION');
      expectCode(
        () =>
          db.transactionSync((txn) => {
            txn.put('new', 1);
            (txn as unknown as { clear(...a: unknown[]): void }).clear(arg);
          }),
        'ERR_BAD_OPTION',
      );
    }
    expect(db.count()).toBe(10);
    expect(db.get('new')).toBeUndefined();
    expect(root.stats().txnId).toBe(txnId);
  });
});

describe.each(WHERE)('clearing an expiring database (%s)', (where) => {
  it('deletes live and expired entries, and empties the expiry index with them', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const T0 = 1_700_000_000_000;
    vi.setSystemTime(T0);
    const file = folder.file('ttl.mkv');
    const root = folder.open<string, any>(
      { sync: 'none', keyEncoding: 'string', ...(where === 'main' ? { ttl: 1000 } : {}) },
      file,
    );
    const db =
      where === 'main'
        ? root
        : root.openDB<string, any>('t', { kind: where, keyEncoding: 'string', ttl: 1000 });
    db.transactionSync((txn) => {
      for (let i = 0; i < 5_000; i++) txn.put(`k${i}`, i, { ttl: i % 2 === 0 ? 10 : Infinity });
    });
    vi.setSystemTime(T0 + 10);
    expect(db.count()).toBe(2_500);
    db.clearSync();
    expect(db.count()).toBe(0);
    expect(db.purgeExpiredSync()).toBe(0);
    // check() compares the expiry index with the records: both empty.
    expectHealthy(root);
    db.putSync('fresh', 1, { ttl: 5 });
    expect(db.expiresAt('fresh')).toBe(T0 + 15);
    vi.setSystemTime(T0 + 15);
    expect(db.purgeExpiredSync()).toBe(1);
    expectHealthy(root);
  });
});

describe('dropDB', () => {
  it.each(['btree', 'hash', 'expiring hash'] as const)(
    'deletes a %s sub-database: its entries, its pages and its name',
    (what) => {
      const root = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
      const kind = what === 'btree' ? 'btree' : 'hash';
      const t = root.openDB<string, any>('t', {
        kind,
        keyEncoding: 'string',
        ...(what === 'expiring hash' ? { ttl: 60_000 } : {}),
      });
      const other = root.openDB<string, any>('other', { keyEncoding: 'string' });
      fill(t, 6_000);
      other.putSync('o', 1);
      root.putSync('m', 2);
      const snap = root.snapshot();
      const pages = root.stats().pages;
      expect(root.dropDB('t')).toBe(true);
      expectHealthy(root);
      // The pages are free once a later commit is durable.
      other.putSync('o2', 3);
      expect(root.stats().freePages).toBeGreaterThan(pages * 0.9);
      // The name is free: it opens as a new database, of another kind and encodings.
      const again = root.openDB<number, string>('t', {
        kind: kind === 'btree' ? 'hash' : 'btree',
        keyEncoding: 'uint32',
        valueEncoding: 'string',
      });
      expect(again.count()).toBe(0);
      again.putSync(1, 'one');
      expect(again.get(1)).toBe('one');
      // The rest of the file is as it was; a snapshot taken before still reads the dropped one.
      expect(sorted(other.keys())).toEqual(['o', 'o2']);
      expect(root.get('m')).toBe(2);
      expect(snap.db(t).count()).toBe(6_000);
      expect(snap.db(t).get('k00003')).toEqual({ tag: 'v', i: 3 });
      snap.close();
      expect(root.dropDB('missing')).toBe(false);
      expectHealthy(root);
    },
  );

  it('leaves handles of the dropped database working: empty, and created again by a write', async () => {
    const root = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
    const t = root.openDB<string, any>('t', { kind: 'hash', keyEncoding: 'string' });
    fill(t, 100);
    const txnId = root.stats().txnId;
    expect(root.dropDB('t')).toBe(true);
    expect(root.stats().txnId).toBe(txnId + 1);
    expect(t.count()).toBe(0);
    expect(t.get('k00001')).toBeUndefined();
    expect(root.dropDB('t')).toBe(false);
    expect(root.stats().txnId).toBe(txnId + 1);
    t.putSync('back', 1);
    await root.close();
    const reopened = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
    const t2 = reopened.openDB<string, any>('t');
    expect(t2.kind).toBe(t.kind);
    expect(sorted(t2.keys())).toEqual(['back']);
    expectHealthy(reopened);
  });

  it.each([
    ['the new handle first, the stale one then', false],
    ['the stale handle first, the new one then', true],
    ['a name dropped again: the new handle creates it in the transaction', null],
  ] as const)(
    'refuses, in one transaction with a handle of the new database, a stale handle of another shape (%s)',
    (_, staleFirst) => {
      // A handle of a dropped name whose kind differs from the database created under the
      // name since must not reach it through a transaction that another handle of the name
      // already opened: the transaction then holds the database's descriptor, and before the
      // fix the stale handle's B+tree writes went into the hash table's pages.
      const root = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
      const stale = root.openDB<string, any>('t', { kind: 'btree', keyEncoding: 'string' });
      stale.putSync('s', 1);
      expect(root.dropDB('t')).toBe(true);
      // In the last case the same kind and encodings, but expiring: its records differ too.
      const fresh = root.openDB<string, any>(
        't',
        staleFirst === null
          ? { kind: 'btree', keyEncoding: 'string', ttl: 60_000 }
          : { kind: 'hash', keyEncoding: 'string' },
      );
      if (staleFirst === null) {
        expect(root.dropDB('t')).toBe(true);
      } else {
        fresh.putSync('f', 2);
      }
      const txnId = root.stats().txnId;
      for (const write of [
        (t: Transaction<string, any>) => t.put('k', 3),
        (t: Transaction<string, any>) => t.remove('f'),
        (t: Transaction<string, any>) => t.get('f'),
      ]) {
        expectCode(
          () =>
            root.transactionSync((txn) => {
              if (staleFirst === true) write(txn.db(stale));
              write(txn.db(fresh));
              write(txn.db(stale));
            }),
          'ERR_INCOMPATIBLE',
        );
      }
      expect(root.stats().txnId).toBe(txnId);
      expectHealthy(root);
      if (staleFirst !== null) {
        expect(sorted(fresh.keys())).toEqual(['f']);
        expectCode(() => stale.get('f'), 'ERR_INCOMPATIBLE');
      }
    },
  );

  it('openDB creates a name again that another handle of the file dropped, though it holds a handle of it', () => {
    // openDB keeps the handles it made; it returned the kept one without looking whether the
    // name was still in the file, so a name dropped through another open() of the file stayed
    // missing, against "openDB of a new name creates it".
    const one = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
    const two = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' }, one.path);
    const opts = { kind: 'hash', keyEncoding: 'string', ttl: 60_000 } as const;
    const kept = two.openDB<string, any>('t', opts);
    kept.putSync('a', 1);
    expect(one.dropDB('t')).toBe(true);
    const txnId = two.stats().txnId;
    expect(two.openDB<string, any>('t', opts)).toBe(kept);
    expect(two.stats().txnId).toBe(txnId + 1);
    expect(kept.count()).toBe(0);
    // It is in the file: the other handle finds it, of the kind and expiry it was opened with.
    expectCode(() => one.openDB('t', { kind: 'btree' }), 'ERR_INCOMPATIBLE');
    expect(one.openDB<string, any>('t').expiring).toBe(true);
    expect(one.dropDB('t')).toBe(true);
    expectHealthy(one);
  });

  it('refuses a bad name, a read-only or closed handle, and a call inside a write transaction', async () => {
    const root = folder.open<string, any>({ sync: 'none', keyEncoding: 'string' });
    const t = root.openDB<string, any>('t', { keyEncoding: 'string' });
    t.putSync('a', 1);
    for (const bad of ['', 'x'.repeat(256), 'a\uD800', 7, null]) {
      expectCode(() => root.dropDB(bad as string), 'ERR_BAD_OPTION');
    }
    expectCode(() => root.transactionSync(() => root.dropDB('t')), 'ERR_LOCKED');
    const reader = folder.open<string, any>({ readOnly: true }, root.path);
    expectCode(() => reader.dropDB('t'), 'ERR_READ_ONLY');
    expect(t.get('a')).toBe(1);
    await root.close();
    expectCode(() => root.dropDB('t'), 'ERR_CLOSED');
  });
});
