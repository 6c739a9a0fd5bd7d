/**
 * Expiring sub-databases in damaged or unexpected files: a value without a readable expiry
 * time is ERR_CORRUPT for the reads that reach it and a problem for check(), never a crash or
 * a wrong answer; a file whose unnamed database claims to expire, or whose sub-database has an
 * unknown encoding beside the expiry bit, is refused with ERR_INCOMPATIBLE.
 *
 * The damage is written through the engine's internals (the index's put, the descriptor), as a
 * bug or a hostile writer would leave it: the public API always stores a valid expiry.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { open, type Database, type DatabaseBase } from '../../src/index';
import { EXPIRING_FLAG, withExpiry } from '../../src/expiry';
import { ApiFolder, expectCode } from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

/** Stores `raw` as the stored value of `key`, bypassing the expiry the API would put in front. */
function putRaw(db: DatabaseBase<string, Uint8Array>, key: string, raw: Uint8Array): void {
  const kb = new Uint8Array(Buffer.from(key));
  db.store.runSync((txn) => {
    const ctx = db.writeContext(txn);
    ctx.index.put(txn, ctx.desc, kb, kb.length, raw, raw.length);
    ctx.touched();
  });
}

/** The folder's file, and in it an expiring sub-database 'c' of `kind` (binary values). */
function openExpiring(
  kind: 'btree' | 'hash',
): [Database<any, any>, DatabaseBase<string, Uint8Array>] {
  const root = open(folder.file(), { sync: 'none' });
  const db = root.openDB<string, Uint8Array>('c', {
    kind,
    ttl: 60_000,
    keyEncoding: 'string',
    valueEncoding: 'binary',
  });
  return [root, db];
}

describe.each(['btree', 'hash'] as const)('a damaged expiring %s database', (kind) => {
  let root: Database<any, any>;
  let db: DatabaseBase<string, Uint8Array>;

  beforeEach(() => {
    [root, db] = openExpiring(kind);
    db.putSync('good', new Uint8Array([1, 2, 3]));
  });

  afterEach(async () => {
    await root.close();
  });

  it.each([
    ['shorter than its expiry time', new Uint8Array([1, 2, 3])],
    // hi word 2^21: an expiry of 2^53 ms or more, which the API never writes.
    ['with an impossible expiry time', new Uint8Array([0, 0, 0, 0, 0, 0, 0x20, 0, 9])],
  ])('a value %s is ERR_CORRUPT to the reads that reach it', (_what, raw) => {
    putRaw(db, 'bad', raw);
    for (const read of [
      () => db.get('bad'),
      () => db.getBinary('bad'),
      () => db.has('bad'),
      () => db.expiresAt('bad'),
      () => [...db.range()],
      () => db.count({ limit: 100 }),
      () => db.removeSync('bad'),
    ]) {
      expectCode(read, 'ERR_CORRUPT');
    }
    // Reads that do not reach the damaged record still answer. A purge, and count() without
    // options, read the expiry index, which does not list it: count() counts it as live.
    expect([...db.get('good')!]).toEqual([1, 2, 3]);
    expect(db.purgeExpiredSync()).toBe(0);
    expect(db.count()).toBe(2);
    const result = root.check();
    expect(result.ok).toBe(false);
    expect(result.problems.join('\n')).toMatch(/database 'c': 1 values have no valid expiry/);
  });
});

describe.each(['btree', 'hash'] as const)(
  'an expiring %s database and its expiry index',
  (kind) => {
    let root: Database<any, any>;
    let db: DatabaseBase<string, Uint8Array>;
    const T = Date.now();

    beforeEach(() => {
      [root, db] = openExpiring(kind);
      for (let i = 0; i < 50; i++) db.putSync(`k${i}`, new Uint8Array([i]), { ttl: 1 + i });
    });

    afterEach(async () => {
      await root.close();
    });

    it('a record with a deadline the index does not list is a problem for check()', () => {
      // A deadline already past: written through the index's put, the expiry index never hears
      // of it.
      putRaw(db, 'unlisted', withExpiry(new Uint8Array([7]), T - 1));
      const result = root.check();
      expect(result.ok).toBe(false);
      expect(result.problems.join('\n')).toMatch(/1 deadlines are missing from its expiry index/);
      expect(result.problems.join('\n')).toMatch(/counts 50 entries, 51 records have a deadline/);
    });

    it('an index entry whose record is gone is a problem for check(), and ERR_CORRUPT to a purge', () => {
      const kb = new Uint8Array(Buffer.from('k0'));
      db.store.runSync((txn) => {
        const ctx = db.writeContext(txn);
        ctx.index.remove(txn, ctx.desc, kb, kb.length);
        ctx.touched();
      });
      const result = root.check();
      expect(result.ok).toBe(false);
      expect(result.problems.join('\n')).toMatch(/counts 50 entries, 49 records have a deadline/);
      // k0's deadline (1 ms after its put) is past once the clock has moved 1 ms.
      const until = Date.now() + 2;
      while (Date.now() < until);
      const before = root.stats().txnId;
      expectCode(() => db.purgeExpiredSync(), 'ERR_CORRUPT');
      expect(root.stats().txnId).toBe(before);
    });
  },
);

describe('files with an expiry bit where none may be', () => {
  it('an unnamed database that claims to expire is refused at open', async () => {
    const file = folder.file('main.mkv');
    const root = open(file, { sync: 'none' });
    root.putSync('a', 1);
    root.store.runSync((txn) => {
      txn.main.valueEncoding |= EXPIRING_FLAG;
      txn.metaChanged = true;
    });
    await root.close();
    expectCode(() => open(file), 'ERR_INCOMPATIBLE');
  });

  it('a sub-database of an unknown encoding is refused, expiry bit or not', async () => {
    const file = folder.file('sub.mkv');
    const root = open(file, { sync: 'none' });
    const sub = root.openDB('s', { ttl: 1000 });
    sub.putSync('a', 1);
    root.store.runSync((txn) => {
      const ctx = sub.writeContext(txn);
      ctx.desc.valueEncoding = EXPIRING_FLAG | 0x3f;
      ctx.touched();
    });
    await root.close();
    const again = open(file, { sync: 'none' });
    try {
      expectCode(() => again.openDB('s'), 'ERR_INCOMPATIBLE');
    } finally {
      await again.close();
    }
  });
});
