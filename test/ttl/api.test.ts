/**
 * Expiring sub-databases (openDB(name, { ttl })) through the public API, point by point of the
 * contract: option checks (and that a refused option writes nothing), per-put ttl, reads of the
 * database, of transactions and of snapshots treating expired entries as absent, expiresAt,
 * remove of an expired entry, purgeExpired / purgeExpiredSync, and durability (reopen and
 * backup). Date is faked (only Date: batched writes run on real setImmediate).
 */
import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { open, type Database, type DatabaseBase } from '../../src/index';
import {
  ApiFolder,
  bytesOf,
  expectCode,
  expectHealthy,
  expectRejectCode,
  expectUnchanged,
} from '../helpers/api-helpers';

type Bytes = Uint8Array;
type Sub = DatabaseBase<string, Bytes>;

const T0 = 1_700_000_000_000;
const KINDS = ['btree', 'hash'] as const;
type Kind = (typeof KINDS)[number];
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(T0);
});

afterEach(async () => {
  vi.useRealTimers();
  await folder.cleanup();
});

/** Sets the fake clock to T0 + ms. */
const at = (ms: number): void => {
  vi.setSystemTime(T0 + ms);
};

const val = (k: string): Bytes => new Uint8Array(Buffer.from(`value of ${k}`));
const hex = (v: Uint8Array | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v).toString('hex');

/** The root database of the folder's file (sync 'none': these tests do not need flushes). */
function root(file?: string): Database<any, any> {
  return folder.open<any, any>({ sync: 'none' }, file);
}

function sub(db: Database<any, any>, name: string, kind: Kind, ttl?: number): Sub {
  return db.openDB<string, Bytes>(name, { kind, ...enc, ...(ttl === undefined ? {} : { ttl }) });
}

/** Keys of an iteration: as returned for a btree (which must already be in order), sorted for a hash. */
function keysOf(kind: Kind, it: Iterable<string>): string[] {
  const out = [...it];
  return kind === 'hash' ? out.sort() : out;
}

interface Reader {
  get(k: string): Bytes | undefined;
  getBinary(k: string): Bytes | undefined;
  has(k: string): boolean;
  range(opts?: { limit?: number }): Iterable<{ key: string; value: Bytes }>;
  keys(opts?: { limit?: number }): Iterable<string>;
  values(opts?: { limit?: number }): Iterable<Bytes>;
  count(opts?: { limit?: number }): number;
}

/**
 * Asserts that `r` shows exactly the keys `live` (values val(k)) out of `all`: point reads,
 * iterations (with and without limit) and count.
 */
function expectView(kind: Kind, r: Reader, live: string[], all: string[]): void {
  const want = [...live].sort();
  for (const k of all) {
    const on = want.includes(k);
    expect(r.has(k), `has(${k})`).toBe(on);
    expect(hex(r.get(k)), `get(${k})`).toBe(on ? hex(val(k)) : undefined);
    expect(hex(r.getBinary(k)), `getBinary(${k})`).toBe(on ? hex(val(k)) : undefined);
  }
  expect(keysOf(kind, r.keys())).toEqual(want);
  const entries = [...r.range()].map((e) => [e.key, hex(e.value)]);
  if (kind === 'hash') entries.sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  expect(entries).toEqual(want.map((k) => [k, hex(val(k))]));
  expect([...r.values()].map(hex).sort()).toEqual(want.map((k) => hex(val(k))).sort());
  expect(r.count()).toBe(want.length);
  // A limit counts live entries only.
  const limit = Math.max(1, want.length - 1);
  const limited = [...r.keys({ limit })];
  expect(limited.length).toBe(Math.min(limit, want.length));
  for (const k of limited) expect(want).toContain(k);
  expect(r.count({ limit })).toBe(Math.min(limit, want.length));
}

describe('ttl option checks', () => {
  const badTtls: Array<[string, unknown]> = [
    ['0', 0],
    ['-1', -1],
    ['-Infinity', -Infinity],
    ['NaN', NaN],
    ["'5'", '5'],
    ['{}', {}],
    ['null', null],
    ['true', true],
    ['5n', BigInt(5)],
  ];

  for (const kind of KINDS) {
    for (const [label, bad] of badTtls) {
      it(`openDB(name, { ttl: ${label} }) is ERR_BAD_OPTION and writes nothing (${kind})`, async () => {
        const db = root();
        db.putSync('x', 1);
        const before = bytesOf(db.path);
        const txnId = db.stats().txnId;
        expectCode(
          () => db.openDB<string, Bytes>('e', { kind, ...enc, ttl: bad as number }),
          'ERR_BAD_OPTION',
        );
        expect(db.stats().txnId).toBe(txnId);
        expectUnchanged(db.path, before);
        // Nothing was recorded: the name opens as a new, non-expiring database.
        const e = sub(db, 'e', kind);
        expect(e.expiring).toBe(false);
        expectHealthy(db);
        await db.close();
      });
    }
  }

  it('a bad per-put ttl is ERR_BAD_OPTION for put, putSync and txn.put, and writes nothing', async () => {
    const db = root();
    for (const kind of KINDS) {
      const e = sub(db, `e-${kind}`, kind, 1000);
      const other = sub(db, `o-${kind}`, kind, 1000);
      for (const [, bad] of badTtls) {
        const txnId = db.stats().txnId;
        const opts = { ttl: bad as number };
        expectCode(() => e.putSync('k', val('k'), opts), 'ERR_BAD_OPTION');
        await expectRejectCode(e.put('k', val('k'), opts), 'ERR_BAD_OPTION');
        expectCode(
          () => e.transactionSync((txn) => txn.put('k', val('k'), opts)),
          'ERR_BAD_OPTION',
        );
        expectCode(
          () => e.transactionSync((txn) => txn.db(other).put('k', val('k'), opts)),
          'ERR_BAD_OPTION',
        );
        await expectRejectCode(
          e.transaction((txn) => txn.put('k', val('k'), opts)),
          'ERR_BAD_OPTION',
        );
        expect(db.stats().txnId).toBe(txnId);
        expect(e.has('k')).toBe(false);
        expect(other.has('k')).toBe(false);
        expect(e.purgeExpiredSync()).toBe(0);
      }
    }
    expectHealthy(db);
    await db.close();
  });

  it('unknown keys in put options are ERR_BAD_OPTION (expiring and not)', async () => {
    const db = root();
    for (const kind of KINDS) {
      const e = sub(db, `e-${kind}`, kind, 1000);
      const n = sub(db, `n-${kind}`, kind);
      for (const opts of [{ tll: 5 }, { ttl: 5, extra: true }, { expires: 5 }]) {
        for (const d of [e, n]) {
          const txnId = db.stats().txnId;
          expectCode(() => d.putSync('k', val('k'), opts as never), 'ERR_BAD_OPTION');
          await expectRejectCode(d.put('k', val('k'), opts as never), 'ERR_BAD_OPTION');
          expectCode(
            () => d.transactionSync((txn) => txn.put('k', val('k'), opts as never)),
            'ERR_BAD_OPTION',
          );
          expect(db.stats().txnId).toBe(txnId);
          expect(d.has('k')).toBe(false);
        }
      }
      // An empty options object is fine on both.
      e.putSync('k', val('k'), {});
      n.putSync('k', val('k'), {});
      expect(hex(e.get('k'))).toBe(hex(val('k')));
      expect(hex(n.get('k'))).toBe(hex(val('k')));
    }
    expectHealthy(db);
    await db.close();
  });

  it('a ttl option on a put into a non-expiring database is ERR_BAD_OPTION', async () => {
    const db = root();
    for (const kind of KINDS) {
      const n = sub(db, `n-${kind}`, kind);
      const e = sub(db, `e-${kind}`, kind, 1000);
      for (const ttl of [1000, Infinity]) {
        const txnId = db.stats().txnId;
        expectCode(() => n.putSync('k', val('k'), { ttl }), 'ERR_BAD_OPTION');
        await expectRejectCode(n.put('k', val('k'), { ttl }), 'ERR_BAD_OPTION');
        expectCode(
          () => n.transactionSync((txn) => txn.put('k', val('k'), { ttl })),
          'ERR_BAD_OPTION',
        );
        // Through txn.db() from an expiring database's transaction.
        expectCode(
          () => e.transactionSync((txn) => txn.db(n).put('k', val('k'), { ttl })),
          'ERR_BAD_OPTION',
        );
        // The root database cannot expire either.
        expectCode(() => db.putSync('k', 1, { ttl }), 'ERR_BAD_OPTION');
        await expectRejectCode(db.put('k', 1, { ttl }), 'ERR_BAD_OPTION');
        expect(db.stats().txnId).toBe(txnId);
        expect(n.has('k')).toBe(false);
        expect(db.has('k')).toBe(false);
      }
    }
    expectHealthy(db);
    await db.close();
  });

  for (const kind of KINDS) {
    it(`ttl on an existing non-expiring sub-database is ERR_INCOMPATIBLE and writes nothing (${kind})`, async () => {
      let db = root();
      const n = sub(db, 'n', kind);
      n.putSync('a', val('a'));
      for (const ttl of [1000, Infinity]) {
        const before = bytesOf(db.path);
        expectCode(() => sub(db, 'n', kind, ttl), 'ERR_INCOMPATIBLE');
        expectUnchanged(db.path, before);
      }
      await db.close();
      db = root();
      const before = bytesOf(db.path);
      expectCode(() => sub(db, 'n', kind, 1000), 'ERR_INCOMPATIBLE');
      expectUnchanged(db.path, before);
      const again = sub(db, 'n', kind);
      expect(again.expiring).toBe(false);
      expect(hex(again.get('a'))).toBe(hex(val('a')));
      expectHealthy(db);
      await db.close();
    });

    it(`a bad ttl on an existing expiring sub-database is ERR_BAD_OPTION (${kind})`, async () => {
      const db = root();
      sub(db, 'e', kind, 1000).putSync('a', val('a'));
      const before = bytesOf(db.path);
      for (const bad of [0, -5, NaN, '100']) {
        expectCode(
          () => db.openDB<string, Bytes>('e', { kind, ...enc, ttl: bad as number }),
          'ERR_BAD_OPTION',
        );
      }
      expectUnchanged(db.path, before);
      expectHealthy(db);
      await db.close();
    });
  }

  it('open(path, { ttl }) of a file created without ttl is ERR_INCOMPATIBLE and changes nothing', async () => {
    const db = root();
    db.putSync('a', 1);
    await db.close();
    const before = bytesOf(db.path);
    expectCode(() => open(db.path, { ttl: 1000 }), 'ERR_INCOMPATIBLE');
    expectCode(() => open(db.path, { ttl: Infinity, readOnly: true }), 'ERR_INCOMPATIBLE');
    expectUnchanged(db.path, before);
    const again = root();
    expect(again.expiring).toBe(false);
    expect(again.ttl).toBe(Infinity);
    expect(again.get('a')).toBe(1);
    expectCode(() => again.putSync('b', 2, { ttl: 10 }), 'ERR_BAD_OPTION');
    expectHealthy(again);
    await again.close();
  });

  for (const [label, bad] of badTtls) {
    it(`open(path, { ttl: ${label} }) is ERR_BAD_OPTION and creates no file`, () => {
      const file = folder.file(`bad-ttl.mkv`);
      expectCode(() => open(file, { ttl: bad as number }), 'ERR_BAD_OPTION');
      expect(fs.existsSync(file)).toBe(false);
    });
  }
});

describe('the unnamed database with ttl (open(path, { ttl }))', () => {
  type Root = Database<string, Bytes>;
  /** The folder's file opened with string keys and binary values, and `ttl` when given. */
  function expiringRoot(ttl?: number, file?: string, readOnly = false): Root {
    return folder.open<string, Bytes>(
      {
        sync: 'none',
        ...enc,
        ...(ttl === undefined ? {} : { ttl }),
        ...(readOnly ? { readOnly } : {}),
      },
      file,
    );
  }

  it('expires the entries of a file created with it, as a sub-database does', async () => {
    const db = expiringRoot(1000);
    expect(db.expiring).toBe(true);
    expect(db.ttl).toBe(1000);
    db.putSync('dflt', val('dflt'));
    db.putSync('short', val('short'), { ttl: 10 });
    db.putSync('inf', val('inf'), { ttl: Infinity });
    await db.put('async', val('async'), { ttl: 500 });
    db.transactionSync((txn) => txn.put('txn', val('txn'), { ttl: 20 }));
    expect(db.expiresAt('dflt')).toBe(T0 + 1000);
    expect(db.expiresAt('short')).toBe(T0 + 10);
    expect(db.expiresAt('inf')).toBe(Infinity);
    expect(db.expiresAt('async')).toBe(T0 + 500);
    expect(db.expiresAt('txn')).toBe(T0 + 20);
    const all = ['async', 'dflt', 'inf', 'short', 'txn'];
    expectView('btree', db, all, all);
    const snap = db.snapshot();
    at(10);
    expectView('btree', db, ['async', 'dflt', 'inf', 'txn'], all);
    // A snapshot reads with the clock of its creation.
    expect(hex(snap.get('short'))).toBe(hex(val('short')));
    snap.close();
    at(1000);
    expectView('btree', db, ['inf'], all);
    expect(db.expiresAt('dflt')).toBeUndefined();
    // The deadlines are in the expiry index check() verifies, and a purge deletes by them.
    expectHealthy(db);
    expect(db.purgeExpiredSync()).toBe(4);
    expect(db.stats().entries).toBe(1);
    expect(await db.purgeExpired()).toBe(0);
    // A sub-database of the file is not expiring unless created with its own ttl.
    const sub = db.openDB<string, Bytes>('s', enc);
    expect(sub.expiring).toBe(false);
    sub.putSync('x', val('x'));
    at(1_000_000);
    expect(hex(sub.get('x'))).toBe(hex(val('x')));
    expectHealthy(db);
    await db.close();
  });

  it('stays expiring: reopened without ttl, with another ttl and read-only', async () => {
    let db = expiringRoot(1000);
    db.putSync('a', val('a'));
    await db.close();
    db = expiringRoot();
    expect(db.expiring).toBe(true);
    expect(db.ttl).toBe(Infinity);
    expect(db.expiresAt('a')).toBe(T0 + 1000);
    // Puts through a handle without ttl never expire, unless the put says so.
    db.putSync('b', val('b'));
    db.putSync('c', val('c'), { ttl: 2000 });
    expect(db.expiresAt('b')).toBe(Infinity);
    await db.close();
    db = expiringRoot(50);
    db.putSync('d', val('d'));
    expect(db.expiresAt('d')).toBe(T0 + 50);
    const reader = expiringRoot(undefined, db.path, true);
    expect(reader.expiring).toBe(true);
    const all = ['a', 'b', 'c', 'd'];
    at(50);
    expectView('btree', reader, ['a', 'b', 'c'], all);
    at(1000);
    expectView('btree', reader, ['b', 'c'], all);
    at(2000);
    expectView('btree', reader, ['b'], all);
    expectHealthy(db);
    await reader.close();
    await db.close();
  });

  it('takes keys of up to maxKeySize - 8 bytes', async () => {
    const db = expiringRoot(1000);
    const max = db.stats().maxKeySize - 8;
    db.putSync('k'.repeat(max), val('max'));
    expect(hex(db.get('k'.repeat(max)))).toBe(hex(val('max')));
    const txnId = db.stats().txnId;
    expectCode(() => db.putSync('k'.repeat(max + 1), val('long')), 'ERR_KEY_TOO_LARGE');
    expect(db.stats().txnId).toBe(txnId);
    expectHealthy(db);
    await db.close();
  });

  for (const compact of [false, true]) {
    it(`keeps its deadlines through backup (compact: ${compact})`, async () => {
      const db = expiringRoot(1000);
      db.transactionSync((txn) => {
        for (let i = 0; i < 300; i++) {
          const k = `m${String(i).padStart(3, '0')}`;
          txn.put(k, val(k), { ttl: i < 200 ? 500 : Infinity });
        }
      });
      const copyFile = folder.file(`copy-${compact}.mkv`);
      await db.backup(copyFile, { compact });
      await db.close();
      const copy = expiringRoot(undefined, copyFile);
      expect(copy.expiring).toBe(true);
      expectHealthy(copy);
      expect(copy.expiresAt('m000')).toBe(T0 + 500);
      expect(copy.expiresAt('m250')).toBe(Infinity);
      expect(copy.count()).toBe(300);
      at(500);
      expect(copy.count()).toBe(100);
      expect(copy.purgeExpiredSync()).toBe(200);
      expect([...copy.keys()]).toEqual(
        Array.from({ length: 100 }, (_, i) => `m${String(200 + i).padStart(3, '0')}`),
      );
      expectHealthy(copy);
      await copy.close();
    });
  }
});

describe('expiring handles', () => {
  for (const kind of KINDS) {
    it(`ttl and expiring report the handle and the sub-database (${kind})`, async () => {
      const db = root();
      expect(db.expiring).toBe(false);
      expect(db.ttl).toBe(Infinity);
      const e = sub(db, 'e', kind, 1000);
      expect(e.expiring).toBe(true);
      expect(e.ttl).toBe(1000);
      const inf = sub(db, 'inf', kind, Infinity);
      expect(inf.expiring).toBe(true);
      expect(inf.ttl).toBe(Infinity);
      const n = sub(db, 'n', kind);
      expect(n.expiring).toBe(false);
      expect(n.ttl).toBe(Infinity);
      // An Infinity default: entries never expire unless a put says otherwise.
      inf.putSync('forever', val('forever'));
      inf.putSync('brief', val('brief'), { ttl: 10 });
      expect(inf.expiresAt('forever')).toBe(Infinity);
      expect(inf.expiresAt('brief')).toBe(T0 + 10);
      at(10);
      expect(inf.has('brief')).toBe(false);
      at(100 * 365 * 24 * 3600 * 1000);
      expect(hex(inf.get('forever'))).toBe(hex(val('forever')));
      expectHealthy(db);
      await db.close();
    });

    it(`an expiring sub-database stays expiring: opened later without ttl it still honours expiry (${kind})`, async () => {
      let db = root();
      const e = sub(db, 'e', kind, 1000);
      e.putSync('a', val('a'));
      e.putSync('b', val('b'), { ttl: 5000 });
      expectHealthy(db);
      await db.close();

      db = root();
      const plain = sub(db, 'e', kind);
      expect(plain.expiring).toBe(true);
      expect(plain.ttl).toBe(Infinity);
      expect(plain.expiresAt('a')).toBe(T0 + 1000);
      expect(plain.expiresAt('b')).toBe(T0 + 5000);
      // Puts through a handle without ttl never expire, unless the put gives one.
      plain.putSync('c', val('c'));
      plain.putSync('d', val('d'), { ttl: 2000 });
      expect(plain.expiresAt('c')).toBe(Infinity);
      expect(plain.expiresAt('d')).toBe(T0 + 2000);
      at(999);
      expectView(kind, plain, ['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd']);
      at(1000);
      expectView(kind, plain, ['b', 'c', 'd'], ['a', 'b', 'c', 'd']);
      at(2000);
      expectView(kind, plain, ['b', 'c'], ['a', 'b', 'c', 'd']);
      at(5000);
      expectView(kind, plain, ['c'], ['a', 'b', 'c', 'd']);
      at(50 * 365 * 24 * 3600 * 1000);
      expectView(kind, plain, ['c'], ['a', 'b', 'c', 'd']);
      expectHealthy(db);
      await db.close();
    });

    it(`a read-only handle opened later honours expiry (${kind})`, async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      e.putSync('a', val('a'), { ttl: 100 });
      e.putSync('b', val('b'));
      e.putSync('c', val('c'), { ttl: Infinity });
      await db.close();
      const ro = folder.open<any, any>({ readOnly: true });
      const r = sub(ro, 'e', kind);
      expect(r.expiring).toBe(true);
      at(99);
      expectView(kind, r, ['a', 'b', 'c'], ['a', 'b', 'c']);
      at(100);
      expectView(kind, r, ['b', 'c'], ['a', 'b', 'c']);
      expect(r.expiresAt('b')).toBe(T0 + 1000);
      at(1000);
      expectView(kind, r, ['c'], ['a', 'b', 'c']);
      expectHealthy(ro);
      await ro.close();
    });

    it(`ttl and expiring are read-only (${kind})`, async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      const assign = (d: Sub): void => {
        // @ts-expect-error ttl is read-only
        d.ttl = 5;
        // @ts-expect-error expiring is read-only
        d.expiring = false;
      };
      expect(typeof assign).toBe('function');
      expect(e.ttl).toBe(1000);
      await db.close();
    });

    it(`an existing expiring sub-database opened with another ttl uses it for its puts (${kind})`, async () => {
      let db = root();
      sub(db, 'e', kind, 1000).putSync('a', val('a'));
      await db.close();
      db = root();
      const e = sub(db, 'e', kind, 300);
      expect(e.ttl).toBe(300);
      expect(e.expiring).toBe(true);
      e.putSync('b', val('b'));
      expect(e.expiresAt('a')).toBe(T0 + 1000);
      expect(e.expiresAt('b')).toBe(T0 + 300);
      at(300);
      expectView(kind, e, ['a'], ['a', 'b']);
      expectHealthy(db);
      await db.close();
    });

    it(`two handles of one expiring sub-database with different ttls each put with their own (${kind})`, async () => {
      const db = root();
      const e1 = sub(db, 'e', kind, 1000);
      e1.putSync('a', val('a'));
      const e2 = sub(db, 'e', kind, 300);
      expect(e2.ttl).toBe(300);
      e2.putSync('b', val('b'));
      expect(e1.expiresAt('a')).toBe(T0 + 1000);
      expect(e1.expiresAt('b')).toBe(T0 + 300);
      const e3 = sub(db, 'e', kind);
      expect(e3.ttl).toBe(Infinity);
      e3.putSync('c', val('c'));
      expect(e1.expiresAt('c')).toBe(Infinity);
      expectHealthy(db);
      await db.close();
    });
  }

  it('any key and value encoding can expire', async () => {
    let db = root();
    const ordered = db.openDB('ordered', { kind: 'btree', ttl: 100 });
    const nums = db.openDB('nums', {
      kind: 'hash',
      keyEncoding: 'uint32',
      valueEncoding: 'json',
      ttl: 100,
    });
    const strs = db.openDB('strs', {
      kind: 'btree',
      keyEncoding: 'binary',
      valueEncoding: 'string',
      ttl: 100,
    });
    ordered.putSync(['user', 1], { name: 'ann', tags: [1, 2] });
    ordered.putSync(['user', 2], { name: 'bob' }, { ttl: 1000 });
    nums.putSync(7, { n: 7 });
    nums.putSync(8, [8], { ttl: Infinity });
    strs.putSync(new Uint8Array([1, 2]), 'héllo');
    strs.putSync(new Uint8Array([3]), '', { ttl: 1000 });
    at(99);
    expect(ordered.get(['user', 1])).toEqual({ name: 'ann', tags: [1, 2] });
    expect(nums.get(7)).toEqual({ n: 7 });
    expect(strs.get(new Uint8Array([1, 2]))).toBe('héllo');
    at(100);
    expect(ordered.get(['user', 1])).toBeUndefined();
    expect([...ordered.range()]).toEqual([{ key: ['user', 2], value: { name: 'bob' } }]);
    expect(ordered.count({ prefix: ['user'] })).toBe(1);
    expect(nums.get(7)).toBeUndefined();
    expect([...nums.range()]).toEqual([{ key: 8, value: [8] }]);
    expect(strs.get(new Uint8Array([1, 2]))).toBeUndefined();
    expect(strs.get(new Uint8Array([3]))).toBe('');
    expect(strs.count()).toBe(1);
    expectHealthy(db);
    await db.close();
    db = root();
    expect(db.openDB('nums').get(8)).toEqual([8]);
    expect(db.openDB('ordered').expiresAt(['user', 2])).toBe(T0 + 1000);
    expectHealthy(db);
    await db.close();
  });
});

for (const kind of KINDS) {
  describe(`writes with ttl (${kind})`, () => {
    it('a per-put ttl overrides the default; an entry expires once Date.now() >= expiresAt', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      e.putSync('dflt', val('dflt'));
      e.putSync('short', val('short'), { ttl: 10 });
      e.putSync('long', val('long'), { ttl: 5000 });
      e.putSync('inf', val('inf'), { ttl: Infinity });
      e.putSync('undef', val('undef'), { ttl: undefined });
      expect(e.expiresAt('dflt')).toBe(T0 + 1000);
      expect(e.expiresAt('short')).toBe(T0 + 10);
      expect(e.expiresAt('long')).toBe(T0 + 5000);
      expect(e.expiresAt('inf')).toBe(Infinity);
      expect(e.expiresAt('undef')).toBe(T0 + 1000);
      expect(e.expiresAt('missing')).toBeUndefined();
      const all = ['dflt', 'inf', 'long', 'short', 'undef'];
      at(9);
      expectView(kind, e, all, all);
      at(10);
      expectView(kind, e, ['dflt', 'inf', 'long', 'undef'], all);
      expect(e.expiresAt('short')).toBeUndefined();
      at(999);
      expectView(kind, e, ['dflt', 'inf', 'long', 'undef'], all);
      at(1000);
      expectView(kind, e, ['inf', 'long'], all);
      expect(e.expiresAt('dflt')).toBeUndefined();
      at(4999);
      expect(e.expiresAt('long')).toBe(T0 + 5000);
      at(5000);
      expectView(kind, e, ['inf'], all);
      expect(e.expiresAt('long')).toBeUndefined();
      expect(e.expiresAt('inf')).toBe(Infinity);
      expectHealthy(db);
      await db.close();
    });

    it('put reads the clock when it is called, not when its batch commits', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      const p1 = e.put('a', val('a'));
      at(100);
      const p2 = e.put('b', val('b'), { ttl: 50 });
      at(120);
      await Promise.all([p1, p2]);
      expect(e.expiresAt('a')).toBe(T0 + 1000);
      expect(e.expiresAt('b')).toBe(T0 + 150);
      at(149);
      expectView(kind, e, ['a', 'b'], ['a', 'b']);
      at(150);
      expectView(kind, e, ['a'], ['a', 'b']);
      expectHealthy(db);
      await db.close();
    });

    it('txn.put reads the clock at each call, also through txn.db()', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      const f = sub(db, 'f', kind, 200);
      const n = sub(db, 'n', kind);
      e.transactionSync((txn) => {
        txn.put('a', val('a'));
        at(10);
        txn.put('b', val('b'), { ttl: 20 });
        txn.db(f).put('c', val('c'));
        txn.db(f).put('d', val('d'), { ttl: Infinity });
        txn.db(n).put('e', val('e'));
      });
      expect(e.expiresAt('a')).toBe(T0 + 1000);
      expect(e.expiresAt('b')).toBe(T0 + 30);
      expect(f.expiresAt('c')).toBe(T0 + 210);
      expect(f.expiresAt('d')).toBe(Infinity);
      expect(n.expiresAt('e')).toBe(Infinity);
      await e.transaction((txn) => {
        txn.put('g', val('g'), { ttl: 5 });
        txn.db(f).put('h', val('h'));
      });
      expect(e.expiresAt('g')).toBe(T0 + 15);
      expect(f.expiresAt('h')).toBe(T0 + 210);
      at(30);
      expectView(kind, e, ['a'], ['a', 'b', 'g']);
      at(210);
      expectView(kind, f, ['d'], ['c', 'd', 'h']);
      expectHealthy(db);
      await db.close();
    });

    it('overwriting an entry sets its new expiry; an expired entry put again is live', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 100);
      e.putSync('a', val('a'));
      at(50);
      e.putSync('a', val('a'), { ttl: 500 });
      expect(e.expiresAt('a')).toBe(T0 + 550);
      e.putSync('a', val('a'), { ttl: 10 });
      expect(e.expiresAt('a')).toBe(T0 + 60);
      at(60);
      expect(e.has('a')).toBe(false);
      const other = new Uint8Array([9, 8, 7]);
      e.putSync('a', other);
      expect(e.expiresAt('a')).toBe(T0 + 160);
      expect(hex(e.get('a'))).toBe(hex(other));
      expect(e.count()).toBe(1);
      // The overwrite replaced the expired entry: there is nothing to purge.
      expect(e.purgeExpiredSync()).toBe(0);
      at(160);
      expect(e.count()).toBe(0);
      await e.put('a', val('a'), { ttl: Infinity });
      expect(e.expiresAt('a')).toBe(Infinity);
      expect(e.count()).toBe(1);
      expectHealthy(db);
      await db.close();
    });

    it('a huge finite ttl is accepted and does not expire', async () => {
      const db = root();
      const e = sub(db, 'e', kind, Number.MAX_VALUE);
      e.putSync('a', val('a'));
      e.putSync('b', val('b'), { ttl: 1e300 });
      at(1000 * 365 * 24 * 3600 * 1000);
      expect(e.has('a')).toBe(true);
      expect(e.has('b')).toBe(true);
      expect(e.expiresAt('a')).toBeGreaterThan(T0 + 1e15);
      expectHealthy(db);
      await db.close();
    });
  });

  describe(`reads treat expired entries as absent (${kind})`, () => {
    const ALL = ['a', 'b', 'c', 'd'];

    /** 'a' expires at +100, 'b' at +200, 'c' never, 'd' at +1000 (the default). */
    function fixture(db: Database<any, any>, name = 'e'): Sub {
      const e = sub(db, name, kind, 1000);
      e.transactionSync((txn) => {
        txn.put('a', val('a'), { ttl: 100 });
        txn.put('b', val('b'), { ttl: 200 });
        txn.put('c', val('c'), { ttl: Infinity });
        txn.put('d', val('d'));
      });
      return e;
    }

    it('get, getBinary, has, range, keys, values and count of the database', async () => {
      const db = root();
      const e = fixture(db);
      at(99);
      expectView(kind, e, ALL, ALL);
      at(100);
      expectView(kind, e, ['b', 'c', 'd'], ALL);
      at(150);
      expectView(kind, e, ['b', 'c', 'd'], ALL);
      at(200);
      expectView(kind, e, ['c', 'd'], ALL);
      at(1000);
      expectView(kind, e, ['c'], ALL);
      expectHealthy(db);
      await db.close();
    });

    it("reads of a transaction, of txn.db() and the transaction's own writes", async () => {
      const db = root();
      const e = fixture(db);
      const f = fixture(db, 'f');
      at(150);
      e.transactionSync((txn) => {
        expectView(kind, txn, ['b', 'c', 'd'], ALL);
        expectView(kind, txn.db(f), ['b', 'c', 'd'], ALL);
        txn.put('z', val('z'), { ttl: 10 });
        expectView(kind, txn, ['b', 'c', 'd', 'z'], [...ALL, 'z']);
        // Reads of a transaction use the clock at the call.
        at(160);
        expectView(kind, txn, ['b', 'c', 'd'], [...ALL, 'z']);
        at(200);
        expectView(kind, txn, ['c', 'd'], [...ALL, 'z']);
        expectView(kind, txn.db(f), ['c', 'd'], ALL);
      });
      expectView(kind, e, ['c', 'd'], [...ALL, 'z']);
      await e.transaction((txn) => {
        expectView(kind, txn, ['c', 'd'], [...ALL, 'z']);
      });
      expectHealthy(db);
      await db.close();
    });

    it('a snapshot reads with the clock of its creation', async () => {
      const db = root();
      const e = fixture(db);
      const f = fixture(db, 'f');
      at(50);
      const early = e.snapshot();
      at(150);
      const later = db.snapshot();
      try {
        at(5000);
        expectView(kind, e, ['c'], ALL);
        expectView(kind, early, ALL, ALL);
        expectView(kind, early.db(f), ALL, ALL);
        expectView(kind, later.db(e), ['b', 'c', 'd'], ALL);
        expectView(kind, later.db(f), ['b', 'c', 'd'], ALL);
        // A purge commits after the snapshots: they keep seeing their state.
        expect(e.purgeExpiredSync()).toBe(3);
        expectView(kind, early, ALL, ALL);
        expectView(kind, later.db(e), ['b', 'c', 'd'], ALL);
        expectView(kind, e, ['c'], ALL);
        // Taken now, a snapshot sees what is live now, even when the clock goes on.
        const now = db.snapshot();
        at(6000);
        expectView(kind, now.db(f), ['c'], ALL);
        now.close();
      } finally {
        early.close();
        later.close();
      }
      expectHealthy(db);
      await db.close();
    });

    it('an iteration started before entries expire goes on with the clock of its start', async () => {
      const db = root();
      const e = fixture(db);
      at(50);
      const it = e.keys()[Symbol.iterator]();
      const first = it.next();
      at(5000);
      const got = [first.value as string];
      for (let r = it.next(); !r.done; r = it.next()) got.push(r.value);
      expect(keysOf(kind, got)).toEqual(ALL);
      // A new iteration starts now.
      expect([...e.keys()]).toEqual(['c']);
      expectHealthy(db);
      await db.close();
    });

    it('getBinary returns exactly the value bytes (empty, small, overflow; binary and msgpack)', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      const n = sub(db, 'n', kind);
      const big = new Uint8Array(100_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
      const values: Array<[string, Bytes]> = [
        ['empty', new Uint8Array(0)],
        ['one', new Uint8Array([0])],
        ['ff', new Uint8Array(8).fill(0xff)],
        ['big', big],
      ];
      for (const [k, v] of values) {
        e.putSync(k, v);
        n.putSync(k, v);
      }
      const snap = e.snapshot();
      try {
        for (const [k, v] of values) {
          expect(e.getBinary(k)!.length, k).toBe(v.length);
          expect(Buffer.compare(e.getBinary(k)!, v), k).toBe(0);
          expect(Buffer.compare(e.get(k)!, v), k).toBe(0);
          expect(Buffer.compare(snap.getBinary(k)!, v), k).toBe(0);
          e.transactionSync((txn) => {
            expect(Buffer.compare(txn.getBinary(k)!, v), k).toBe(0);
          });
        }
      } finally {
        snap.close();
      }
      // msgpack values: the bytes are those a non-expiring database stores for the same value.
      const em = db.openDB('em', { kind, keyEncoding: 'string', ttl: 1000 });
      const nm = db.openDB('nm', { kind, keyEncoding: 'string' });
      const value = { a: [1, 2, 3], s: 'x'.repeat(50), m: new Map([[1, 2]]) };
      em.putSync('v', value);
      nm.putSync('v', value);
      expect(hex(em.getBinary('v'))).toBe(hex(nm.getBinary('v')));
      expect(em.get('v')).toEqual(value);
      at(1000);
      expect(em.getBinary('v')).toBeUndefined();
      expect(e.getBinary('big')).toBeUndefined();
      expectHealthy(db);
      await db.close();
    });

    it('expiresAt: a number while live, undefined when absent or expired, Infinity on a non-expiring database', async () => {
      const db = root();
      const e = fixture(db);
      const n = sub(db, 'n', kind);
      n.putSync('p', val('p'));
      db.putSync('r', 1);
      expect(e.expiresAt('a')).toBe(T0 + 100);
      expect(e.expiresAt('b')).toBe(T0 + 200);
      expect(e.expiresAt('c')).toBe(Infinity);
      expect(e.expiresAt('d')).toBe(T0 + 1000);
      expect(e.expiresAt('nope')).toBeUndefined();
      expect(n.expiresAt('p')).toBe(Infinity);
      expect(n.expiresAt('nope')).toBeUndefined();
      expect(db.expiresAt('r')).toBe(Infinity);
      expect(db.expiresAt('nope')).toBeUndefined();
      at(100);
      expect(e.expiresAt('a')).toBeUndefined();
      expect(e.expiresAt('b')).toBe(T0 + 200);
      at(100_000);
      expect(n.expiresAt('p')).toBe(Infinity);
      expect(e.expiresAt('d')).toBeUndefined();
      expectHealthy(db);
      await db.close();
    });

    if (kind === 'btree') {
      it('ordered range options (start, end, reverse, prefix, limit) skip expired entries', async () => {
        const db = root();
        const e = sub(db, 'e', kind, 1000);
        const keys: string[] = [];
        e.transactionSync((txn) => {
          for (let i = 0; i < 300; i++) {
            const k = `k${String(i).padStart(3, '0')}`;
            keys.push(k);
            txn.put(k, val(k), { ttl: i % 3 === 0 ? 100 : Infinity });
          }
        });
        at(100);
        const live = keys.filter((_, i) => i % 3 !== 0);
        expect([...e.keys()]).toEqual(live);
        expect([...e.keys({ reverse: true })]).toEqual([...live].reverse());
        expect([...e.keys({ start: 'k030', end: 'k060' })]).toEqual(
          live.filter((k) => k >= 'k030' && k < 'k060'),
        );
        expect([...e.keys({ reverse: true, limit: 5 })]).toEqual([...live].reverse().slice(0, 5));
        expect(e.count({ prefix: 'k1' })).toBe(live.filter((k) => k.startsWith('k1')).length);
        expect(e.count({ start: 'k100' })).toBe(live.filter((k) => k >= 'k100').length);
        expect([...e.values({ start: 'k000', limit: 2 })].map(hex)).toEqual(
          live.slice(0, 2).map((k) => hex(val(k))),
        );
        expect(e.count()).toBe(200);
        expect(e.purgeExpiredSync()).toBe(100);
        expect([...e.keys()]).toEqual(live);
        expectHealthy(db);
        await db.close();
      });
    }
  });

  describe(`remove of an expired entry (${kind})`, () => {
    function setup(db: Database<any, any>): Sub {
      const e = sub(db, 'e', kind, 1000);
      e.putSync('x', val('x'), { ttl: 10 });
      e.putSync('y', val('y'), { ttl: 10 });
      e.putSync('live', val('live'));
      at(10);
      return e;
    }

    it('removeSync deletes it and returns false', async () => {
      const db = root();
      const e = setup(db);
      expect(e.removeSync('x')).toBe(false);
      expect(e.removeSync('nope')).toBe(false);
      expect(e.removeSync('live')).toBe(true);
      expect(e.has('live')).toBe(false);
      // 'x' is gone from the index: only 'y' is left to purge.
      expect(e.purgeExpiredSync()).toBe(1);
      expect(e.purgeExpiredSync()).toBe(0);
      expect(e.count()).toBe(0);
      expectHealthy(db);
      await db.close();
    });

    it('remove deletes it and resolves false', async () => {
      const db = root();
      const e = setup(db);
      const results = await Promise.all([e.remove('x'), e.remove('live'), e.remove('nope')]);
      expect(results).toEqual([false, true, false]);
      expect(e.purgeExpiredSync()).toBe(1);
      expectHealthy(db);
      await db.close();
    });

    it('txn.remove deletes it and returns false; an aborted one deletes nothing', async () => {
      const db = root();
      const e = setup(db);
      e.transactionSync((txn) => {
        expect(txn.remove('x')).toBe(false);
        expect(txn.remove('y')).toBe(false);
        txn.abort();
      });
      e.transactionSync((txn) => {
        expect(txn.remove('x')).toBe(false);
        expect(txn.has('x')).toBe(false);
        expect(txn.remove('live')).toBe(true);
      });
      await e.transaction((txn) => {
        expect(txn.remove('y')).toBe(false);
      });
      expect(e.purgeExpiredSync()).toBe(0);
      expect(e.count()).toBe(0);
      expectHealthy(db);
      await db.close();
    });
  });

  describe(`purgeExpired and purgeExpiredSync (${kind})`, () => {
    it('purgeExpiredSync deletes every expired entry in one commit and returns how many', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      const f = sub(db, 'f', kind, 1000);
      const n = sub(db, 'n', kind);
      const keys: string[] = [];
      e.transactionSync((txn) => {
        for (let i = 0; i < 600; i++) {
          const k = `k${String(i).padStart(4, '0')}`;
          keys.push(k);
          // Every other one expires at +100; a few values go to overflow pages.
          const v = i % 97 === 0 ? new Uint8Array(5000).fill(i & 0xff) : val(k);
          txn.put(k, v, { ttl: i % 2 === 0 ? 100 : 10_000 });
          txn.db(f).put(k, val(k), { ttl: 100 });
          txn.db(n).put(k, val(k));
        }
      });
      expect(e.purgeExpiredSync()).toBe(0);
      at(100);
      expect(e.count()).toBe(300);
      expect(f.count()).toBe(0);
      const txnId = db.stats().txnId;
      expect(e.purgeExpiredSync()).toBe(300);
      expect(db.stats().txnId).toBe(txnId + 1);
      expectHealthy(db);
      expect(e.purgeExpiredSync()).toBe(0);
      expect(keysOf(kind, e.keys())).toEqual(keys.filter((_, i) => i % 2 === 1));
      expect(e.count()).toBe(300);
      // Other sub-databases are untouched.
      expect(f.purgeExpiredSync()).toBe(600);
      expect(n.purgeExpiredSync()).toBe(0);
      expect(n.count()).toBe(600);
      expect(db.purgeExpiredSync()).toBe(0);
      at(10_000);
      expect(e.count()).toBe(0);
      expect(e.purgeExpiredSync()).toBe(300);
      expect(e.count()).toBe(0);
      expectHealthy(db);
      // The emptied databases take new entries.
      e.putSync('again', val('again'));
      expect(keysOf(kind, e.keys())).toEqual(['again']);
      expectHealthy(db);
      await db.close();
    });

    it('purgeExpired is queued with the batched writes and resolves to how many it deleted', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      const n = sub(db, 'n', kind);
      for (let i = 0; i < 20; i++) e.putSync(`k${i}`, val(`k${i}`), { ttl: i < 15 ? 10 : 1000 });
      expect(await e.purgeExpired()).toBe(0);
      at(10);
      const p1 = e.put('fresh', val('fresh'), { ttl: 5 });
      const purged = e.purgeExpired();
      const p2 = e.remove('k16');
      await Promise.all([p1, p2]);
      expect(await purged).toBe(15);
      expect(keysOf(kind, e.keys())).toEqual(['fresh', 'k15', 'k17', 'k18', 'k19']);
      expect(await n.purgeExpired()).toBe(0);
      expect(await db.purgeExpired()).toBe(0);
      at(15);
      expect(await e.purgeExpired()).toBe(1);
      expect(e.purgeExpiredSync()).toBe(0);
      expectHealthy(db);
      await db.close();
    });
  });

  describe(`durability (${kind})`, () => {
    /** 'a' +100, 'b' +1000, 'c' never, plus 200 entries at +500 and 100 never. */
    function fill(e: Sub): void {
      e.transactionSync((txn) => {
        txn.put('a', val('a'), { ttl: 100 });
        txn.put('b', val('b'));
        txn.put('c', val('c'), { ttl: Infinity });
        for (let i = 0; i < 300; i++) {
          const k = `m${String(i).padStart(3, '0')}`;
          txn.put(k, val(k), { ttl: i < 200 ? 500 : Infinity });
        }
      });
    }

    function expectState(e: Sub, t: number): void {
      at(t);
      const live = [
        ...(t < 100 ? ['a'] : []),
        ...(t < 1000 ? ['b'] : []),
        'c',
        ...Array.from({ length: 300 }, (_, i) => `m${String(i).padStart(3, '0')}`).filter(
          (_, i) => i >= 200 || t < 500,
        ),
      ];
      expectView(kind, e, live, ['a', 'b', 'c', 'm000', 'm199', 'm200', 'm299']);
      expect(e.expiresAt('a')).toBe(t < 100 ? T0 + 100 : undefined);
      expect(e.expiresAt('b')).toBe(t < 1000 ? T0 + 1000 : undefined);
      expect(e.expiresAt('c')).toBe(Infinity);
      expect(e.expiresAt('m000')).toBe(t < 500 ? T0 + 500 : undefined);
      expect(e.expiresAt('m250')).toBe(Infinity);
    }

    it('expiry survives close and reopen', async () => {
      let db = root();
      fill(sub(db, 'e', kind, 1000));
      expectHealthy(db);
      await db.close();
      db = root();
      let e = sub(db, 'e', kind);
      expect(e.expiring).toBe(true);
      expectState(e, 50);
      expectHealthy(db);
      await db.close();
      db = root();
      e = sub(db, 'e', kind, 1000);
      expectState(e, 700);
      expect(e.purgeExpiredSync()).toBe(201);
      expectHealthy(db);
      await db.close();
      db = root();
      e = sub(db, 'e', kind);
      expectState(e, 700);
      expectState(e, 2000);
      expect(e.purgeExpiredSync()).toBe(1);
      expectHealthy(db);
      await db.close();
    });

    for (const compact of [false, true]) {
      it(`expiry survives backup (compact: ${compact})`, async () => {
        const db = root();
        const e = sub(db, 'e', kind, 1000);
        fill(e);
        at(50);
        const copyFile = folder.file(`copy-${compact}.mkv`);
        await db.backup(copyFile, { compact });
        expectHealthy(db);
        await db.close();
        expect(fs.existsSync(copyFile)).toBe(true);
        const copy = root(copyFile);
        const ce = sub(copy, 'e', kind);
        expect(ce.expiring).toBe(true);
        expectHealthy(copy);
        expectState(ce, 50);
        expectState(ce, 700);
        expectState(ce, 2000);
        expect(ce.purgeExpiredSync()).toBe(202);
        expectHealthy(copy);
        await copy.close();
      });
    }

    it('a backup taken after entries expired still expires the rest (compact and not)', async () => {
      const db = root();
      const e = sub(db, 'e', kind, 1000);
      fill(e);
      at(700);
      for (const compact of [false, true]) {
        await db.backup(folder.file(`late-${compact}.mkv`), { compact });
      }
      await db.close();
      for (const compact of [false, true]) {
        const copy = root(folder.file(`late-${compact}.mkv`));
        const ce = sub(copy, 'e', kind);
        expectState(ce, 700);
        expectState(ce, 2000);
        expectHealthy(copy);
        // Whatever the copy kept of the expired entries, a purge leaves only live ones.
        ce.purgeExpiredSync();
        expect(ce.purgeExpiredSync()).toBe(0);
        expectState(ce, 2000);
        expectHealthy(copy);
        await copy.close();
      }
    });
  });
}
