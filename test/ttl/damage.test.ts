/**
 * Expiring databases (sub-databases, and the unnamed database of a file created with ttl) in
 * damaged or unexpected files: a value without a readable expiry time is ERR_CORRUPT for the
 * reads that reach it and a problem for check(), never a crash or a wrong answer; a
 * sub-database with an unknown encoding beside the expiry bit is refused with ERR_INCOMPATIBLE.
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

type Where = 'btree' | 'hash' | 'main';
const WHERE: readonly Where[] = ['btree', 'hash', 'main'];

/**
 * The folder's file, and in it an expiring database with string keys and binary values: a
 * sub-database 'c' of kind `where`, or ('main') the file's unnamed database, created with ttl.
 */
function openExpiring(where: Where): [Database<any, any>, DatabaseBase<string, Uint8Array>] {
  const enc = { keyEncoding: 'string', valueEncoding: 'binary', ttl: 60_000 } as const;
  if (where === 'main') {
    const root = open<string, Uint8Array>(folder.file(), { sync: 'none', ...enc });
    return [root, root];
  }
  const root = open(folder.file(), { sync: 'none' });
  return [root, root.openDB<string, Uint8Array>('c', { kind: where, ...enc })];
}

/** How check() names the database openExpiring made, as a pattern. */
const label = (where: Where): string => (where === 'main' ? 'main database' : "database 'c'");

describe.each(WHERE)('a damaged expiring database (%s)', (where) => {
  let root: Database<any, any>;
  let db: DatabaseBase<string, Uint8Array>;

  beforeEach(() => {
    [root, db] = openExpiring(where);
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
    expect(result.problems.join('\n')).toContain(`${label(where)}: 1 values have no valid expiry`);
  });
});

describe.each(WHERE)('an expiring database (%s) and its expiry index', (where) => {
  let root: Database<any, any>;
  let db: DatabaseBase<string, Uint8Array>;
  const T = Date.now();

  beforeEach(() => {
    [root, db] = openExpiring(where);
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
});

describe('files with an unexpected expiry bit', () => {
  it('an unnamed database given the expiry bit over values without deadlines reads as damage', async () => {
    const file = folder.file('main.mkv');
    const root = open(file, { sync: 'none' });
    root.putSync('a', 1);
    root.store.runSync((txn) => {
      txn.main.valueEncoding |= EXPIRING_FLAG;
      txn.metaChanged = true;
    });
    await root.close();
    // The file now says its values carry deadlines: the one-byte value of 'a' cannot.
    const again = open(file, { sync: 'none' });
    try {
      expect(again.expiring).toBe(true);
      expectCode(() => again.get('a'), 'ERR_CORRUPT');
      const result = again.check();
      expect(result.ok).toBe(false);
      expect(result.problems.join('\n')).toContain('main database: 1 values have no valid expiry');
    } finally {
      await again.close();
    }
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
