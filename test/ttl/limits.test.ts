/**
 * The key size of an expiring sub-database: its expiry index stores each key behind an 8-byte
 * deadline, so its keys take at most maxKeySize - 8 bytes. A longer key is ERR_KEY_TOO_LARGE
 * for every put, and nothing is written.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Database, type DatabaseBase } from '../../src/index';
import { ApiFolder, expectCode, expectRejectCode } from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

describe.each(['btree', 'hash'] as const)('keys of an expiring %s sub-database', (kind) => {
  let root: Database<any, any>;
  let db: DatabaseBase<string, string>;

  beforeEach(() => {
    root = folder.open({ sync: 'none' });
    db = root.openDB<string, string>('c', {
      kind,
      ttl: 60_000,
      keyEncoding: 'string',
      valueEncoding: 'string',
    });
  });

  it('take up to maxKeySize - 8 bytes, with or without a deadline', async () => {
    const max = root.stats().maxKeySize - 8;
    const a = 'a'.repeat(max);
    const b = 'b'.repeat(max);
    db.putSync(a, 'x');
    await db.put(b, 'y', { ttl: Infinity });
    db.transactionSync((txn) => txn.put('c'.repeat(max), 'z', { ttl: 5 }));
    expect(db.get(a)).toBe('x');
    expect(db.get(b)).toBe('y');
    expect(db.removeSync(a)).toBe(true);
    expect(root.check().ok).toBe(true);
  });

  it('one byte more is ERR_KEY_TOO_LARGE, and nothing is written', async () => {
    const long = 'k'.repeat(root.stats().maxKeySize - 7);
    const before = root.stats().txnId;
    expectCode(() => db.putSync(long, 'x'), 'ERR_KEY_TOO_LARGE');
    await expectRejectCode(db.put(long, 'x'), 'ERR_KEY_TOO_LARGE');
    expectCode(
      () => db.transactionSync((txn) => txn.put(long, 'x', { ttl: 10 })),
      'ERR_KEY_TOO_LARGE',
    );
    expect(root.stats().txnId).toBe(before);
    expect(db.count()).toBe(0);
  });
});

it('a sub-database without ttl keeps the whole maxKeySize', () => {
  const root = folder.open({ sync: 'none' });
  const plain = root.openDB<string, string>('p', {
    keyEncoding: 'string',
    valueEncoding: 'string',
  });
  const k = 'k'.repeat(root.stats().maxKeySize);
  plain.putSync(k, 'x');
  expect(plain.get(k)).toBe('x');
});

describe.each(['btree', 'hash'] as const)('purge limits on a %s sub-database', (kind) => {
  it('purgeExpired({ limit }) deletes the entries whose deadlines passed first, at most limit', async () => {
    const T0 = 1_800_000_000_000;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(T0);
      const root = folder.open({ sync: 'none' });
      const db = root.openDB<string, string>('c', {
        kind,
        ttl: 60_000,
        keyEncoding: 'string',
        valueEncoding: 'string',
      });
      // Deadlines T0 + 1..30 ms, in an order unrelated to the keys'.
      const keyOfDeadline = (i: number): string => `k${(i * 7) % 30}`;
      for (let i = 0; i < 30; i++) db.putSync(keyOfDeadline(i), 'v', { ttl: 1 + i });
      db.putSync('never', 'v', { ttl: Infinity });
      vi.setSystemTime(T0 + 100);
      expect([...db.keys()]).toEqual(['never']);
      expect(db.purgeExpiredSync({ limit: 0 })).toBe(0);
      expect(db.purgeExpiredSync({ limit: 10 })).toBe(10);
      expect(await db.purgeExpired({ limit: 15 })).toBe(15);
      // Back to T0: the records not purged are live again, and they are the five of the
      // latest deadlines.
      vi.setSystemTime(T0);
      const expected = ['never'];
      for (let i = 25; i < 30; i++) expected.push(keyOfDeadline(i));
      expect([...db.keys()].sort()).toEqual(expected.sort());
      vi.setSystemTime(T0 + 100);
      expect(db.purgeExpiredSync({ limit: undefined })).toBe(5);
      expect(db.purgeExpiredSync()).toBe(0);
      vi.setSystemTime(T0);
      expect([...db.keys()]).toEqual(['never']);
      expect(root.check().ok).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a bad limit is ERR_BAD_OPTION, and nothing is written', async () => {
    const root = folder.open({ sync: 'none' });
    const db = root.openDB('c', { kind, ttl: 60_000 });
    const before = root.stats().txnId;
    for (const bad of [-1, 1.5, NaN, '3', null]) {
      expectCode(() => db.purgeExpiredSync({ limit: bad as never }), 'ERR_BAD_OPTION');
      await expectRejectCode(db.purgeExpired({ limit: bad as never }), 'ERR_BAD_OPTION');
    }
    expectCode(() => db.purgeExpiredSync({ max: 3 } as never), 'ERR_BAD_OPTION');
    expect(root.stats().txnId).toBe(before);
  });
});

describe.each(['btree', 'hash'] as const)(
  'a large batch into an expiring %s sub-database',
  (kind) => {
    it('keeps the expiry index whole (a B+tree run of >= 64 puts is applied in key order)', async () => {
      const T0 = 1_800_000_000_000;
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(T0);
        const root = folder.open({ sync: 'none' });
        const db = root.openDB<string, number>('c', {
          kind,
          ttl: 1_000,
          keyEncoding: 'string',
          valueEncoding: 'json',
        });
        // 500 puts in one turn, keys out of order, deadlines 1..10 s, some keys put twice (the
        // second put's deadline wins), some with no deadline.
        const expected = new Map<string, number>();
        const puts: Promise<void>[] = [];
        for (let i = 0; i < 500; i++) {
          const k = `k${(i * 211) % 400}`;
          const ttl = i % 7 === 0 ? Infinity : 1_000 * (1 + (i % 10));
          puts.push(db.put(k, i, { ttl }));
          expected.set(k, ttl === Infinity ? 0 : T0 + ttl);
        }
        await Promise.all(puts);
        expect(root.check().ok).toBe(true);
        for (const [k, at] of expected) expect(db.expiresAt(k)).toBe(at === 0 ? Infinity : at);
        // At T0 + 5.5 s the deadlines up to T0 + 5 s have passed.
        vi.setSystemTime(T0 + 5_500);
        const due = [...expected.values()].filter((at) => at !== 0 && at <= T0 + 5_500).length;
        expect(await db.purgeExpired()).toBe(due);
        expect(db.count()).toBe(expected.size - due);
        expect(root.check().ok).toBe(true);
      } finally {
        vi.useRealTimers();
      }
    });
  },
);

describe.each(['btree', 'hash'] as const)(
  'rolled-back writes to an expiring %s sub-database',
  (kind) => {
    it('a queued transaction that throws leaves the expiry index as the batch before it left it', async () => {
      const T0 = 1_800_000_000_000;
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(T0);
        const root = folder.open({ sync: 'none' });
        const db = root.openDB<string, number>('c', { kind, ttl: 1_000, keyEncoding: 'string' });
        for (let i = 0; i < 50; i++) db.putSync(`old${i}`, i);
        // One batch: puts, a transaction that rewrites deadlines and throws (rolled back to the
        // savepoint before it), then more puts.
        const first = [db.put('a', 1, { ttl: 10 }), db.put('old0', 0, { ttl: 20 })];
        const failing = db.transaction((txn) => {
          for (let i = 0; i < 50; i++) txn.put(`old${i}`, i, { ttl: 5 });
          txn.remove('a');
          for (let i = 0; i < 200; i++) txn.put(`new${i}`, i, { ttl: 7 });
          throw new Error('no');
        });
        const last = db.put('b', 2, { ttl: 30 });
        await Promise.all(first);
        await expect(failing).rejects.toThrow('no');
        await last;
        expect(root.check().problems).toEqual([]);
        expect(db.expiresAt('old0')).toBe(T0 + 20);
        expect(db.expiresAt('old1')).toBe(T0 + 1_000);
        expect(db.expiresAt('new0')).toBeUndefined();
        vi.setSystemTime(T0 + 25);
        // Due: a (T0 + 10) and old0 (T0 + 20); not the rolled-back deadlines of T0 + 5 / T0 + 7.
        expect(db.purgeExpiredSync()).toBe(2);
        expect(db.count()).toBe(50);
        expect(root.check().problems).toEqual([]);
      } finally {
        vi.useRealTimers();
      }
    });
  },
);
