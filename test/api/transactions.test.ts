// transactionSync and the batched async writes (put/remove/transaction of one event-loop
// turn committed together).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MapKVError, open } from '../../src/index';
import {
  ApiFolder,
  bytesOf,
  expectHealthy,
  expectRejectCode,
  expectUnchanged,
  nextTurn,
} from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

describe('transactionSync', () => {
  it("returns the callback's value and commits once", () => {
    const db = folder.open();
    const before = db.stats().txnId;
    const out = db.transactionSync((txn) => {
      txn.put('a', 1);
      txn.put('b', 2);
      return { sum: 3 };
    });
    expect(out).toEqual({ sum: 3 });
    expect(db.stats().txnId).toBe(before + 1);
    expect(db.get('a')).toBe(1);
    expect(db.get('b')).toBe(2);
    expect(db.transactionSync(() => undefined)).toBeUndefined();
    expect(db.transactionSync(() => 'read only')).toBe('read only');
    expectHealthy(db);
  });

  it("reads see the transaction's own writes while the database still shows the last commit", () => {
    const db = folder.open();
    db.putSync('n', 1);
    db.putSync('old', 'x');
    const n = db.transactionSync((txn) => {
      const cur = txn.get('n') as number;
      txn.put('n', cur + 1);
      expect(txn.get('n')).toBe(2);
      expect(txn.has('new')).toBe(false);
      txn.put('new', 'y');
      expect(txn.has('new')).toBe(true);
      expect(txn.getBinary('new')).toBeInstanceOf(Uint8Array);
      expect(txn.remove('old')).toBe(true);
      expect(txn.remove('old')).toBe(false);
      expect(txn.remove('never')).toBe(false);
      expect(txn.get('old')).toBeUndefined();
      expect(txn.count()).toBe(2);
      // Outside the transaction: the committed state.
      expect(db.get('n')).toBe(1);
      expect(db.get('old')).toBe('x');
      expect(db.has('new')).toBe(false);
      return txn.get('n');
    });
    expect(n).toBe(2);
    expect(db.get('n')).toBe(2);
    expect(db.get('new')).toBe('y');
    expect(db.has('old')).toBe(false);
    expect(db.count()).toBe(2);
  });

  it('a throw aborts (nothing is written) and rethrows the same error', () => {
    const db = folder.open();
    db.putSync('a', 1);
    const txnId = db.stats().txnId;
    const boom = new Error('boom');
    let caught: unknown;
    try {
      db.transactionSync((txn) => {
        txn.put('a', 2);
        txn.put('b', 3);
        txn.remove('a');
        for (let i = 0; i < 500; i++) txn.put(`bulk${i}`, 'x'.repeat(200));
        throw boom;
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBe(boom);
    expect(db.get('a')).toBe(1);
    expect(db.has('b')).toBe(false);
    expect(db.count()).toBe(1);
    expect(db.stats().txnId).toBe(txnId);
    expectHealthy(db);
    // The writer is free: the next transaction commits normally.
    db.transactionSync((txn) => txn.put('c', 4));
    expect(db.get('c')).toBe(4);
    expectHealthy(db);
  });

  it('a throw that wrote nothing leaves the file byte-for-byte unchanged', () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(db.path);
    expect(() =>
      db.transactionSync((txn) => {
        expect(txn.get('a')).toBe(1);
        throw new TypeError('nope');
      }),
    ).toThrow(TypeError);
    expectUnchanged(db.path, before);
  });

  it('a throwing transaction that wrote leaves the committed data intact after a reopen', async () => {
    const db = folder.open();
    db.putSync('keep', 1);
    expect(() =>
      db.transactionSync((txn) => {
        for (let i = 0; i < 2000; i++) txn.put(`junk${i}`, 'j'.repeat(100));
        throw new Error('abort');
      }),
    ).toThrow('abort');
    await db.close();
    const again = folder.open();
    expect(again.get('keep')).toBe(1);
    expect(again.count()).toBe(1);
    expectHealthy(again);
  });

  it('txn.abort() aborts without throwing and the callback value is still returned', () => {
    const db = folder.open();
    db.putSync('a', 1);
    const txnId = db.stats().txnId;
    const before = bytesOf(db.path);
    const out = db.transactionSync((txn) => {
      txn.abort();
      return 'aborted';
    });
    expect(out).toBe('aborted');
    expectUnchanged(db.path, before);
    const out2 = db.transactionSync((txn) => {
      txn.put('a', 2);
      txn.put('z', 26);
      txn.abort();
      return 7;
    });
    expect(out2).toBe(7);
    expect(db.get('a')).toBe(1);
    expect(db.has('z')).toBe(false);
    expect(db.stats().txnId).toBe(txnId);
    expectHealthy(db);
  });

  it('runs the callback exactly once, synchronously', () => {
    const db = folder.open();
    let calls = 0;
    let inside = false;
    db.transactionSync(() => {
      calls++;
      inside = true;
    });
    expect(inside).toBe(true);
    expect(calls).toBe(1);
  });

  it('1000 increments in 1000 transactions give 1000', () => {
    const db = folder.open({ sync: 'none' });
    for (let i = 0; i < 1000; i++) {
      db.transactionSync((txn) => {
        txn.put('n', ((txn.get('n') as number | undefined) ?? 0) + 1);
      });
    }
    expect(db.get('n')).toBe(1000);
    expectHealthy(db);
  });
});

describe('batched async writes', () => {
  it('put, remove and transaction of one turn share one commit, and each promise resolves', async () => {
    const db = folder.open();
    db.putSync('gone', 1);
    db.putSync('counter', 10);
    const txnId = db.stats().txnId;
    const p1 = db.put('a', 1);
    const p2 = db.put('b', 2);
    const r1 = db.remove('gone');
    const r2 = db.remove('missing');
    const t1 = db.transaction((txn) => {
      const c = txn.get('counter') as number;
      txn.put('counter', c + 1);
      return c + 1;
    });
    const p3 = db.put('a', 'last write wins');
    // Nothing is committed before the turn ends.
    expect(db.has('a')).toBe(false);
    await expect(p1).resolves.toBeUndefined();
    await expect(p2).resolves.toBeUndefined();
    await expect(r1).resolves.toBe(true);
    await expect(r2).resolves.toBe(false);
    await expect(t1).resolves.toBe(11);
    await expect(p3).resolves.toBeUndefined();
    expect(db.stats().txnId).toBe(txnId + 1);
    expect(db.get('a')).toBe('last write wins');
    expect(db.get('b')).toBe(2);
    expect(db.has('gone')).toBe(false);
    expect(db.get('counter')).toBe(11);
    expectHealthy(db);
  });

  it('a queued transaction sees the writes queued before it in the same turn', async () => {
    const db = folder.open();
    const p = db.put('x', 5);
    const r = db.remove('x');
    const q = db.put('y', 6);
    const t = db.transaction((txn) => [txn.get('x'), txn.get('y')]);
    await Promise.all([p, r, q]);
    await expect(t).resolves.toEqual([undefined, 6]);
  });

  it('remove resolves to whether the key existed at its point in the batch', async () => {
    const db = folder.open();
    const results = await Promise.all([
      db.remove('k'),
      db.put('k', 1),
      db.remove('k'),
      db.remove('k'),
    ]);
    expect(results).toEqual([false, undefined, true, false]);
    expect(db.has('k')).toBe(false);
  });

  it('writes of different turns are different commits', async () => {
    const db = folder.open();
    const txnId = db.stats().txnId;
    await db.put('a', 1);
    await db.put('b', 2);
    expect(db.stats().txnId).toBe(txnId + 2);
    const p = db.put('c', 3);
    await nextTurn();
    await p;
    expect(db.get('c')).toBe(3);
  });

  it('a throwing db.transaction() rejects only its own promise; its writes are absent, the others commit', async () => {
    const db = folder.open();
    db.putSync('a', 'orig');
    const txnId = db.stats().txnId;
    const boom = new Error('boom');
    const before = db.put('before', 1);
    const good1 = db.transaction((txn) => {
      txn.put('good1', 1);
      return 'g1';
    });
    const bad = db.transaction((txn) => {
      txn.put('a', 'from bad');
      txn.put('bad', 1);
      txn.remove('before');
      for (let i = 0; i < 300; i++) txn.put(`badbulk${i}`, 'b'.repeat(100));
      throw boom;
    });
    const good2 = db.transaction((txn) => {
      // Runs after the failed one: sees the state without its writes.
      return [txn.get('a'), txn.has('bad'), txn.get('before')];
    });
    const after = db.put('after', 2);
    await expect(before).resolves.toBeUndefined();
    await expect(good1).resolves.toBe('g1');
    await expect(bad).rejects.toBe(boom);
    await expect(good2).resolves.toEqual(['orig', false, 1]);
    await expect(after).resolves.toBeUndefined();
    expect(db.stats().txnId).toBe(txnId + 1);
    expect(db.get('a')).toBe('orig');
    expect(db.has('bad')).toBe(false);
    expect(db.has('badbulk0')).toBe(false);
    expect(db.get('before')).toBe(1);
    expect(db.get('good1')).toBe(1);
    expect(db.get('after')).toBe(2);
    expect(db.count()).toBe(4);
    expectHealthy(db);
  });

  it('txn.abort() in a db.transaction() resolves its promise with the value and drops its writes', async () => {
    const db = folder.open();
    const p = db.put('kept', 1);
    const t = db.transaction((txn) => {
      txn.put('dropped', 1);
      txn.abort();
      return 'ok';
    });
    await p;
    await expect(t).resolves.toBe('ok');
    expect(db.get('kept')).toBe(1);
    expect(db.has('dropped')).toBe(false);
    expectHealthy(db);
  });

  it('a batch of transactions over many sub-databases keeps exactly the ones that returned', async () => {
    // A savepoint used to copy the descriptor of every sub-database the batch had touched,
    // and its release walked every page the batch had dirtied: a batch of N transactions was
    // O(N^2). Now each level keeps only what it wrote; this checks that rollback still
    // restores every sub-database a failed transaction wrote or created, and only those.
    const db = folder.open<string, number>();
    const subs = Array.from({ length: 60 }, (_, i) =>
      db.openDB<string, number>(`s${i}`, i % 3 === 0 ? { kind: 'hash' } : {}),
    );
    const model = new Map<string, Map<string, number>>(subs.map((_, i) => [`s${i}`, new Map()]));
    model.set('', new Map());
    let a = 12345;
    const rnd = (n: number): number => {
      a = (Math.imul(a, 1103515245) + 12345) >>> 0;
      return (a >>> 8) % n;
    };
    for (let round = 0; round < 4; round++) {
      const pending: Promise<unknown>[] = [];
      for (let t = 0; t < 300; t++) {
        const touched = Array.from({ length: 1 + rnd(4) }, () => rnd(subs.length));
        const fate = rnd(10); // 0: throws, 1: aborts, else commits
        const writes: Array<[number, string, number | null]> = touched.map((s) => [
          s,
          `k${rnd(40)}`,
          rnd(5) === 0 ? null : round * 1000 + t,
        ]);
        if (rnd(3) === 0) writes.push([-1, `m${rnd(20)}`, t]);
        const p = db.transaction((txn) => {
          for (const [s, k, v] of writes) {
            const view = s < 0 ? txn : txn.db(subs[s]!);
            if (v === null) view.remove(k);
            else view.put(k, v);
          }
          if (fate === 1) txn.abort();
          if (fate === 0) throw new Error('no');
          return t;
        });
        pending.push(
          p.then(
            () => undefined,
            () => undefined,
          ),
        );
        if (fate >= 2) {
          for (const [s, k, v] of writes) {
            const m = model.get(s < 0 ? '' : `s${s}`)!;
            if (v === null) m.delete(k);
            else m.set(k, v);
          }
        }
      }
      await Promise.all(pending);
      const read = (view: { range(): Iterable<{ key: string; value: number }> }): unknown =>
        [...view.range()].map((e) => [e.key, e.value]).sort();
      expect(read(db)).toEqual([...model.get('')!].sort());
      for (let i = 0; i < subs.length; i++) {
        expect(read(subs[i]!), `s${i}`).toEqual([...model.get(`s${i}`)!].sort());
      }
    }
    expectHealthy(db);
  });

  it('a batch whose every operation fails commits nothing', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const txnId = db.stats().txnId;
    const before = bytesOf(db.path);
    const t = db.transaction(() => {
      throw new RangeError('x');
    });
    await expect(t).rejects.toBeInstanceOf(RangeError);
    await expectRejectCode(db.put(undefined as never, 1), 'ERR_BAD_KEY');
    expect(db.stats().txnId).toBe(txnId);
    expectUnchanged(db.path, before);
  });

  it('many concurrent puts over several turns all land', async () => {
    const db = folder.open();
    const promises: Promise<void>[] = [];
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 200; i++) promises.push(db.put(`t${turn}-${i}`, { turn, i }));
      await nextTurn();
    }
    await Promise.all(promises);
    expect(db.count()).toBe(1000);
    expect(db.get('t3-150')).toEqual({ turn: 3, i: 150 });
    expectHealthy(db);
  });

  it('a put queued before close() is committed by close()', async () => {
    const db = folder.open();
    const p = db.put('k', 'v');
    const r = db.remove('nothing');
    await db.close();
    await expect(p).resolves.toBeUndefined();
    await expect(r).resolves.toBe(false);
    const again = open(folder.file());
    try {
      expect(again.get('k')).toBe('v');
    } finally {
      await again.close();
    }
  });
});

describe("sync: 'none'", () => {
  it('putSync, put, transactionSync and transaction work and persist across a reopen', async () => {
    const db = folder.open({ sync: 'none' });
    expect(db.stats().sync).toBe('none');
    db.putSync('a', 1);
    db.transactionSync((txn) => txn.put('b', 2));
    await db.put('c', 3);
    await db.transaction((txn) => txn.put('d', 4));
    expect(await db.remove('a')).toBe(true);
    expect(db.removeSync('b')).toBe(true);
    await db.close();
    const again = folder.open({ sync: 'none' });
    expect([...again.range()]).toEqual([
      { key: 'c', value: 3 },
      { key: 'd', value: 4 },
    ]);
    expectHealthy(again);
    await again.close();
    // The sync mode is a property of the open, not of the file.
    const full = folder.open();
    expect(full.stats().sync).toBe('full');
    expect(full.count()).toBe(2);
  });
});

describe('errors thrown by a callback', () => {
  it('non-Error throws are rethrown as they are', () => {
    const db = folder.open();
    let caught: unknown;
    try {
      db.transactionSync(() => {
        throw 'a string';
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBe('a string');
    expect(caught).not.toBeInstanceOf(MapKVError);
  });
});

describe('sync writes and queued batches', () => {
  it('putSync and transactionSync commit at once, before a batch still queued', async () => {
    const db = folder.open<string, string>();
    const queued = db.put('order', 'async');
    db.putSync('order', 'sync');
    // Committed: the queued batch has not run yet.
    expect(db.get('order')).toBe('sync');
    const queued2 = db.put('other', 'async');
    db.transactionSync((txn) => txn.put('other', 'sync'));
    expect(db.get('other')).toBe('sync');
    await Promise.all([queued, queued2]);
    // The batch committed after them, so its writes are the last ones.
    expect([db.get('order'), db.get('other')]).toEqual(['async', 'async']);
  });
});
