// Named sub-databases: creation, separation from the root, atomic multi-database
// transactions (txn.db(sub)), snapshots across them, persistence and adopted encodings.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  ApiFolder,
  bytesOf,
  expectCode,
  expectHealthy,
  expectUnchanged,
  key,
} from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

describe('openDB', () => {
  it('creates a named sub-database with the whole data API', async () => {
    const db = folder.open();
    const users = db.openDB<string, { name: string }>('users', { kind: 'btree' });
    expect(users.name).toBe('users');
    expect(db.name).toBeNull();
    expect(users.keyEncoding).toBe('ordered');
    expect(users.valueEncoding).toBe('msgpack');
    users.putSync('u1', { name: 'Ann' });
    await users.put('u2', { name: 'Bob' });
    expect(users.get('u1')).toEqual({ name: 'Ann' });
    expect(users.has('u2')).toBe(true);
    expect(users.getBinary('u2')).toBeInstanceOf(Uint8Array);
    expect(users.count()).toBe(2);
    expect([...users.keys()]).toEqual(['u1', 'u2']);
    expect(users.transactionSync((txn) => txn.get('u1'))).toEqual({ name: 'Ann' });
    expect(await users.transaction((txn) => txn.remove('u1'))).toBe(true);
    expect(users.removeSync('u2')).toBe(true);
    expect(await users.remove('u2')).toBe(false);
    expect(users.count()).toBe(0);
    const snap = users.snapshot();
    expect(snap.count()).toBe(0);
    snap.close();
    expectHealthy(db);
  });

  it('keeps its data separate from the root database and from other sub-databases', () => {
    const db = folder.open();
    const a = db.openDB('a');
    const b = db.openDB('b');
    db.putSync('k', 'root');
    a.putSync('k', 'a');
    b.putSync('k', 'b');
    a.putSync('only-a', 1);
    expect(db.get('k')).toBe('root');
    expect(a.get('k')).toBe('a');
    expect(b.get('k')).toBe('b');
    expect(db.has('only-a')).toBe(false);
    expect(b.has('only-a')).toBe(false);
    expect(db.count()).toBe(1);
    expect(a.count()).toBe(2);
    expect([...db.keys()]).toEqual(['k']);
    expect(db.stats().entries).toBe(1);
    a.removeSync('k');
    expect(db.get('k')).toBe('root');
    expect(b.get('k')).toBe('b');
    expectHealthy(db);
  });

  it('returns a working handle when called again with the same name, before or after writes', () => {
    const db = folder.open();
    const s1 = db.openDB('s');
    s1.putSync('x', 1);
    const s2 = db.openDB('s');
    expect(s2.get('x')).toBe(1);
    s2.putSync('y', 2);
    expect(s1.get('y')).toBe(2);
  });

  it('holds many sub-databases, with names up to 255 bytes', async () => {
    const db = folder.open({ sync: 'none' });
    const names = Array.from({ length: 60 }, (_, i) => `db-${i}-${'n'.repeat(i * 3)}`);
    names.push('é'.repeat(127)); // 254 bytes
    names.push('x'.repeat(255));
    for (const [i, n] of names.entries()) db.openDB(n).putSync('i', i);
    await db.close();
    const again = folder.open();
    for (const [i, n] of names.entries()) expect(again.openDB(n).get('i')).toBe(i);
    expect(again.count()).toBe(0);
    expectHealthy(again);
  });

  it('a sub-database never written reads as empty', () => {
    const db = folder.open();
    const s = db.openDB('empty');
    expect(s.get('x')).toBeUndefined();
    expect([...s.range()]).toEqual([]);
    expect(s.count()).toBe(0);
    expectHealthy(db);
  });

  it('sub-database writes and removes of many entries keep the file healthy', () => {
    const db = folder.open({ sync: 'none' });
    const s = db.openDB('big');
    s.transactionSync((txn) => {
      for (let i = 0; i < 3000; i++) txn.put(key(i), 'v'.repeat(50 + (i % 200)));
    });
    s.transactionSync((txn) => {
      for (let i = 0; i < 3000; i += 2) txn.remove(key(i));
    });
    expect(s.count()).toBe(1500);
    expect([...s.keys({ limit: 3 })]).toEqual([key(1), key(3), key(5)]);
    expectHealthy(db);
  });
});

describe('transactions over several databases', () => {
  it('one transactionSync writes the root and two sub-databases atomically via txn.db(sub)', () => {
    const db = folder.open();
    const users = db.openDB('users');
    const posts = db.openDB('posts', { keyEncoding: 'uint32' });
    const txnId = db.stats().txnId;
    const out = db.transactionSync((txn) => {
      txn.put('lastUser', 'u1');
      txn.db(users).put('u1', { name: 'Ann' });
      txn.db(posts).put(1, { by: 'u1' });
      txn.db(posts).put(2, { by: 'u1' });
      // Reads through each view see that view's writes.
      expect(txn.db(users).get('u1')).toEqual({ name: 'Ann' });
      expect(txn.db(posts).count()).toBe(2);
      expect([...txn.db(posts).keys()]).toEqual([1, 2]);
      expect(users.has('u1')).toBe(false); // not committed yet
      return 'done';
    });
    expect(out).toBe('done');
    expect(db.stats().txnId).toBe(txnId + 1);
    expect(db.get('lastUser')).toBe('u1');
    expect(users.get('u1')).toEqual({ name: 'Ann' });
    expect(posts.count()).toBe(2);
    expectHealthy(db);
  });

  it('a throw aborts the writes of every database in the transaction', () => {
    const db = folder.open();
    const users = db.openDB('users');
    const posts = db.openDB('posts');
    users.putSync('u0', 'kept');
    const txnId = db.stats().txnId;
    const before = bytesOf(db.path);
    expect(() =>
      db.transactionSync((txn) => {
        txn.put('root', 1);
        txn.db(users).put('u1', 'x');
        txn.db(users).remove('u0');
        txn.db(posts).put('p1', 'y');
        throw new Error('abort all');
      }),
    ).toThrow('abort all');
    expect(db.has('root')).toBe(false);
    expect(users.get('u0')).toBe('kept');
    expect(users.has('u1')).toBe(false);
    expect(posts.count()).toBe(0);
    expect(db.stats().txnId).toBe(txnId);
    expectHealthy(db);
    // txn.abort() through a sub-database view aborts the whole transaction.
    db.transactionSync((txn) => {
      txn.put('root', 2);
      txn.db(posts).put('p2', 'z');
      txn.db(users).abort();
    });
    expect(db.has('root')).toBe(false);
    expect(posts.has('p2')).toBe(false);
    expect(db.stats().txnId).toBe(txnId);
    expect(bytesOf(db.path).length).toBe(before.length);
  });

  it('a transaction started on a sub-database can write the root through txn.db(db)', () => {
    const db = folder.open();
    const s = db.openDB('s');
    s.transactionSync((txn) => {
      txn.put('sk', 1);
      txn.db(db).put('rk', 2);
    });
    expect(s.get('sk')).toBe(1);
    expect(db.get('rk')).toBe(2);
    expect(s.has('rk')).toBe(false);
  });

  it('batched async writes to several databases share one commit; a failing db.transaction rolls back its sub-database writes only', async () => {
    const db = folder.open();
    const a = db.openDB('a');
    const b = db.openDB('b');
    const txnId = db.stats().txnId;
    const p1 = a.put('x', 1);
    const p2 = b.put('y', 2);
    const p3 = db.put('z', 3);
    const bad = db.transaction((txn) => {
      txn.db(a).put('bad-a', 1);
      txn.db(b).remove('y');
      txn.put('bad-root', 1);
      throw new Error('no');
    });
    const good = b.transaction((txn) => {
      txn.put('good-b', txn.get('y'));
      txn.db(a).put('good-a', 1);
    });
    await Promise.all([p1, p2, p3, good]);
    await expect(bad).rejects.toThrow('no');
    expect(db.stats().txnId).toBe(txnId + 1);
    expect(a.get('x')).toBe(1);
    expect(b.get('y')).toBe(2);
    expect(db.get('z')).toBe(3);
    expect(a.has('bad-a')).toBe(false);
    expect(db.has('bad-root')).toBe(false);
    expect(b.get('good-b')).toBe(2);
    expect(a.get('good-a')).toBe(1);
    expectHealthy(db);
  });

  it('txn.db() refuses a database of another file', () => {
    const db = folder.open();
    const other = folder.open({}, folder.file('other.mkv'));
    const otherSub = other.openDB('s');
    db.transactionSync((txn) => {
      expectCode(() => txn.db(otherSub), 'ERR_BAD_OPTION');
      expectCode(() => txn.db(other), 'ERR_BAD_OPTION');
    });
  });

  it('openDB of a new name inside a write transaction is a nested write; an existing name is not', () => {
    const db = folder.open();
    db.openDB('old');
    db.transactionSync((txn) => {
      expectCode(() => db.openDB('new'), 'ERR_LOCKED');
      txn.db(db.openDB('old')).put('k', 1);
    });
    expect(db.openDB('old').get('k')).toBe(1);
    expect(db.openDB('new').get('k')).toBeUndefined();
  });
});

describe('snapshots across databases', () => {
  it('snapshot.db(sub) reads a sub-database in the same snapshot', () => {
    const db = folder.open();
    const users = db.openDB('users');
    db.transactionSync((txn) => {
      txn.put('count', 2);
      txn.db(users).put('u1', 'Ann');
      txn.db(users).put('u2', 'Bob');
    });
    const snap = db.snapshot();
    try {
      db.transactionSync((txn) => {
        txn.put('count', 3);
        txn.db(users).put('u3', 'Cy');
        txn.db(users).put('u1', 'Ann2');
      });
      users.removeSync('u2');
      const su = snap.db(users);
      expect(snap.get('count')).toBe(2);
      expect(su.get('u1')).toBe('Ann');
      expect(su.has('u2')).toBe(true);
      expect(su.has('u3')).toBe(false);
      expect(su.count()).toBe(2);
      expect([...su.range()]).toEqual([
        { key: 'u1', value: 'Ann' },
        { key: 'u2', value: 'Bob' },
      ]);
      expect(su.count({ start: 'u2' })).toBe(1);
      expect(users.count()).toBe(2);
      expect(users.get('u1')).toBe('Ann2');
    } finally {
      snap.close();
    }
  });

  it('a snapshot taken before a sub-database got data shows it empty', () => {
    const db = folder.open();
    const late = db.openDB('late');
    const snap = db.snapshot();
    late.putSync('x', 1);
    expect(snap.db(late).get('x')).toBeUndefined();
    expect(snap.db(late).count()).toBe(0);
    expect([...snap.db(late).keys()]).toEqual([]);
    snap.close();
  });

  it('a snapshot of a sub-database reads the root through snap.db(db)', () => {
    const db = folder.open();
    const s = db.openDB('s');
    s.putSync('a', 1);
    db.putSync('r', 1);
    const snap = s.snapshot();
    s.putSync('a', 2);
    db.putSync('r', 2);
    expect(snap.get('a')).toBe(1);
    expect(snap.db(db).get('r')).toBe(1);
    snap.close();
    expect(db.stats().openSnapshots).toBe(0);
  });
});

describe('persistence', () => {
  it('sub-databases and their data survive close and reopen', async () => {
    const db = folder.open();
    const users = db.openDB('users');
    const nums = db.openDB('nums', { keyEncoding: 'uint32', valueEncoding: 'string' });
    db.putSync('root', true);
    users.putSync('u1', { n: 1 });
    nums.transactionSync((txn) => {
      for (let i = 0; i < 500; i++) txn.put(i * 3, `n${i}`);
    });
    await db.close();
    const again = folder.open();
    expect(again.get('root')).toBe(true);
    expect(again.openDB('users').get('u1')).toEqual({ n: 1 });
    const n2 = again.openDB('nums');
    expect(n2.count()).toBe(500);
    expect(n2.get(3 * 499)).toBe('n499');
    expect([...n2.keys({ limit: 3 })]).toEqual([0, 3, 6]);
    expectHealthy(again);
  });

  it('openDB without options on reopen adopts the stored encodings', async () => {
    const db = folder.open();
    const s = db.openDB('s', { keyEncoding: 'string', valueEncoding: 'json' });
    s.putSync('k', { a: [1, 2] });
    const b = db.openDB('b', { keyEncoding: 'binary', valueEncoding: 'binary' });
    b.putSync(Buffer.from([1, 2]), Buffer.from([3, 4]));
    await db.close();
    const again = folder.open();
    const s2 = again.openDB('s');
    expect(s2.keyEncoding).toBe('string');
    expect(s2.valueEncoding).toBe('json');
    expect(s2.get('k')).toEqual({ a: [1, 2] });
    expect(s2.getBinary('k')).toEqual(Buffer.from('{"a":[1,2]}'));
    expectCode(() => s2.putSync(1 as never, 'x'), 'ERR_BAD_KEY');
    const b2 = again.openDB('b');
    expect(b2.keyEncoding).toBe('binary');
    expect(b2.valueEncoding).toBe('binary');
    expect([...(b2.get(Buffer.from([1, 2])) as Uint8Array)]).toEqual([3, 4]);
  });

  it('a sub-database created but never written keeps its encodings after reopen', async () => {
    const db = folder.open();
    db.openDB('e', { keyEncoding: 'uint32', valueEncoding: 'string' });
    await db.close();
    const again = folder.open();
    const e = again.openDB('e');
    expect(e.keyEncoding).toBe('uint32');
    expect(e.valueEncoding).toBe('string');
    expectHealthy(again);
  });

  it('openDB of a missing name on a read-only open writes nothing', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    await db.close();
    const before = bytesOf(folder.file());
    const ro = folder.open({ readOnly: true });
    const ghost = ro.openDB('ghost', { keyEncoding: 'string' });
    expect(ghost.get('x')).toBeUndefined();
    await ro.close();
    expectUnchanged(folder.file(), before);
  });
});

describe("kind 'hash'", () => {
  it('stores, reads, overwrites and removes entries; range yields every entry', async () => {
    const db = folder.open({ sync: 'none' });
    const h = db.openDB<string, number>('h', { kind: 'hash' });
    const n = 5000;
    h.transactionSync((txn) => {
      for (let i = 0; i < n; i++) txn.put(key(i), i);
    });
    expect(h.count()).toBe(n);
    for (let i = 0; i < n; i += 97) expect(h.get(key(i))).toBe(i);
    expect(h.get('missing')).toBeUndefined();
    h.putSync(key(1), -1);
    expect(h.get(key(1))).toBe(-1);
    expect(h.removeSync(key(2))).toBe(true);
    expect(h.removeSync(key(2))).toBe(false);
    expect(h.count()).toBe(n - 1);
    const all = [...h.range()];
    expect(all.length).toBe(n - 1);
    expect(new Set(all.map((e) => e.key)).size).toBe(n - 1);
    expect([...h.keys({ limit: 10 })].length).toBe(10);
    expectHealthy(db);
    await db.close();
    const again = folder.open();
    const h2 = again.openDB<string, number>('h');
    expect(h2.get(key(4999))).toBe(4999);
    expect(h2.count()).toBe(n - 1);
    expectHealthy(again);
  });

  it('joins multi-database transactions and snapshots', () => {
    const db = folder.open();
    const h = db.openDB('h', { kind: 'hash' });
    h.putSync('a', 1);
    const snap = db.snapshot();
    db.transactionSync((txn) => {
      txn.db(h).put('a', 2);
      txn.db(h).put('b', 3);
      txn.put('root', 1);
    });
    expect(snap.db(h).get('a')).toBe(1);
    expect(snap.db(h).has('b')).toBe(false);
    snap.close();
    expect(h.get('a')).toBe(2);
    expect(() =>
      db.transactionSync((txn) => {
        txn.db(h).put('c', 4);
        throw new Error('x');
      }),
    ).toThrow('x');
    expect(h.has('c')).toBe(false);
    expectHealthy(db);
  });
});
