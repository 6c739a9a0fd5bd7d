/**
 * expiresAt through a snapshot (as of the time it was taken), through a transaction (its own
 * writes included) and through txn.db / snap.db, on both kinds; Infinity for entries that
 * never expire and for every entry of a database without ttl.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiFolder } from '../helpers/api-helpers';

const T0 = 1_800_000_000_000;
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

describe.each(['btree', 'hash'] as const)('expiresAt on a %s sub-database', (kind) => {
  it('through a snapshot, as of the time it was taken', () => {
    const root = folder.open({ sync: 'none' });
    const db = root.openDB<string, number>('c', { kind, ttl: 1_000, keyEncoding: 'string' });
    db.putSync('a', 1);
    db.putSync('b', 2, { ttl: Infinity });
    const snap = db.snapshot();
    vi.setSystemTime(T0 + 5_000);
    // The database's clock has passed a's deadline; the snapshot's has not.
    expect(db.expiresAt('a')).toBeUndefined();
    expect(snap.expiresAt('a')).toBe(T0 + 1_000);
    expect(snap.db(db).expiresAt('a')).toBe(T0 + 1_000);
    expect(snap.expiresAt('b')).toBe(Infinity);
    expect(snap.expiresAt('missing')).toBeUndefined();
    // A later put is not in the snapshot.
    db.putSync('c', 3);
    expect(db.expiresAt('c')).toBe(T0 + 6_000);
    expect(snap.expiresAt('c')).toBeUndefined();
    snap.close();
  });

  it('through a transaction, its own writes included', () => {
    const root = folder.open({ sync: 'none' });
    const db = root.openDB<string, number>('c', { kind, ttl: 1_000, keyEncoding: 'string' });
    const plain = root.openDB<string, number>('p', { kind, keyEncoding: 'string' });
    db.putSync('a', 1);
    plain.putSync('x', 1);
    db.transactionSync((txn) => {
      expect(txn.expiresAt('a')).toBe(T0 + 1_000);
      txn.put('a', 2, { ttl: 50 });
      expect(txn.expiresAt('a')).toBe(T0 + 50);
      vi.setSystemTime(T0 + 60);
      expect(txn.expiresAt('a')).toBeUndefined();
      txn.put('n', 3, { ttl: Infinity });
      expect(txn.expiresAt('n')).toBe(Infinity);
      expect(txn.db(plain).expiresAt('x')).toBe(Infinity);
      expect(txn.db(plain).expiresAt('y')).toBeUndefined();
    });
    expect(db.expiresAt('n')).toBe(Infinity);
    expect(root.check().ok).toBe(true);
  });
});
