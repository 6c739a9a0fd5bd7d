// Snapshots: a read transaction sees exactly the committed state it was opened on, whatever
// commits follow (in this process or another), until it is closed or disposed.
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Database, DatabaseBase, Snapshot, SnapshotView } from '../../src/index';
import {
  ApiFolder,
  expectHealthy,
  freshBuildIndex,
  key,
  nextTurn,
  prng,
  removeFreshBuild,
} from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

afterAll(() => {
  removeFreshBuild();
});

type Model = Map<string, unknown>;

/** A value of `size` bytes of JSON-ish payload (sizes above ~1 KiB go to overflow pages). */
function valueOf(i: number, size: number): { i: number; pad: string } {
  return { i, pad: String.fromCharCode(97 + (i % 26)).repeat(size) };
}

/** Asserts that `view` (a snapshot or a view of one) holds exactly `model`. */
function expectMatches(
  view: Snapshot<string, unknown> | SnapshotView<string, unknown>,
  model: Model,
  universe: Iterable<string>,
): void {
  const sorted = [...model.keys()].sort();
  for (const k of universe) {
    expect(view.has(k), `has(${k})`).toBe(model.has(k));
    expect(view.get(k), `get(${k})`).toEqual(model.get(k));
  }
  expect([...view.range()]).toEqual(sorted.map((k) => ({ key: k, value: model.get(k) })));
  expect([...view.keys({ reverse: true })]).toEqual(sorted.slice().reverse());
  expect(view.count()).toBe(model.size);
  const lo = key(100);
  const hi = key(250);
  const inRange = sorted.filter((k) => k >= lo && k < hi);
  expect([...view.keys({ start: lo, end: hi })]).toEqual(inRange);
  expect([...view.values({ start: lo, end: hi, reverse: true, limit: 7 })]).toEqual(
    inRange
      .slice()
      .reverse()
      .slice(0, 7)
      .map((k) => model.get(k)),
  );
  expect(view.count({ start: lo, end: hi })).toBe(inRange.length);
  expect(view.count({ prefix: 'k01' })).toBe(sorted.filter((k) => k.startsWith('k01')).length);
}

/** Applies commit number `c` (a deterministic mix of puts and removes) to `target` and `model`. */
function applyCommit(
  db: Database<string, unknown>,
  target: DatabaseBase<string, unknown>,
  model: Model,
  universe: Set<string>,
  c: number,
): void {
  const rnd = prng(1000 + c);
  const ops: Array<['put', string, unknown] | ['remove', string]> = [];
  const n = 1 + rnd.int(40);
  for (let j = 0; j < n; j++) {
    const k = key(rnd.int(500));
    universe.add(k);
    // The first op is a put, so every commit changes something (and is one commit).
    if (j > 0 && rnd.next() < 0.35) ops.push(['remove', k]);
    else {
      const size = rnd.next() < 0.1 ? 1500 + rnd.int(9000) : rnd.int(300);
      ops.push(['put', k, valueOf(c * 1000 + j, size)]);
    }
  }
  const first = ops[0]!;
  if (ops.length === 1 && first[0] === 'put') {
    target.putSync(first[1], first[2]);
  } else if (c % 2 === 0) {
    db.transactionSync((txn) => {
      const t = txn.db(target);
      for (const op of ops)
        if (op[0] === 'put') t.put(op[1], op[2]);
        else t.remove(op[1]);
    });
  } else {
    target.transactionSync((txn) => {
      for (const op of ops)
        if (op[0] === 'put') txn.put(op[1], op[2]);
        else txn.remove(op[1]);
    });
  }
  for (const op of ops)
    if (op[0] === 'put') model.set(op[1], op[2]);
    else model.delete(op[1]);
}

/** Fills `target` with 400 of the keys k0000..k0499 (some with overflow values); returns the model. */
function seed(target: DatabaseBase<string, unknown>, universe: Set<string>): Model {
  const model: Model = new Map();
  target.transactionSync((txn) => {
    for (let i = 0; i < 500; i++) {
      if (i % 5 === 4) continue;
      const v = valueOf(i, i % 37 === 0 ? 3000 : 20 + (i % 200));
      txn.put(key(i), v);
      model.set(key(i), v);
    }
  });
  for (let i = 0; i < 500; i++) universe.add(key(i));
  return model;
}

describe('a snapshot', () => {
  it('opened before 50 commits of mixed puts and removes sees exactly its own state after them', () => {
    const db = folder.open<string, unknown>({ sync: 'none' });
    const universe = new Set<string>();
    const model = seed(db, universe);
    const atSnap = new Map(model);
    const snap = db.snapshot();
    const txnAtSnap = db.stats().txnId;
    expect(snap.txnId).toBe(txnAtSnap);
    let mid: Snapshot<string, unknown> | null = null;
    let atMid: Model | null = null;
    for (let c = 0; c < 50; c++) {
      applyCommit(db, db, model, universe, c);
      if (c === 24) {
        mid = db.snapshot();
        atMid = new Map(model);
      }
    }
    expect(db.stats().txnId).toBe(txnAtSnap + 50);
    expect(db.stats().openSnapshots).toBe(2);
    expectMatches(snap, atSnap, universe);
    expectMatches(mid!, atMid!, universe);
    // The latest state is the model with every commit applied.
    const latest = db.snapshot();
    expectMatches(latest, model, universe);
    latest.close();
    snap.close();
    mid!.close();
    expect(db.stats().openSnapshots).toBe(0);
    // Pages the snapshots held are reusable now; the file stays healthy through more commits.
    for (let c = 50; c < 70; c++) applyCommit(db, db, model, universe, c);
    const end = db.snapshot();
    expectMatches(end, model, universe);
    end.close();
    expectHealthy(db);
  });

  it('of a sub-database sees its own state after 50 commits to it, and snap.db(sub) agrees', () => {
    const db = folder.open<string, unknown>({ sync: 'none' });
    const sub = db.openDB<string, unknown>('sub');
    const universe = new Set<string>();
    const model = seed(sub, universe);
    const atSnap = new Map(model);
    const snap = sub.snapshot();
    const rootSnap = db.snapshot();
    for (let c = 0; c < 50; c++) applyCommit(db, sub, model, universe, c);
    expectMatches(snap, atSnap, universe);
    expectMatches(rootSnap.db(sub), atSnap, universe);
    expect(rootSnap.count()).toBe(0);
    snap.close();
    rootSnap.close();
    const latest = sub.snapshot();
    expectMatches(latest, model, universe);
    latest.close();
    expectHealthy(db);
  });

  it('sees its state while async batched writes commit', async () => {
    const db = folder.open<string, unknown>({ sync: 'none' });
    for (let i = 0; i < 100; i++) db.putSync(key(i), i);
    const snap = db.snapshot();
    for (let turn = 0; turn < 10; turn++) {
      const ps: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) ps.push(i % 2 ? db.put(key(i), turn) : db.remove(key(i)));
      await nextTurn();
      await Promise.all(ps);
    }
    expect([...snap.values()]).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(db.count()).toBe(50);
    snap.close();
  });

  it('is unaffected by a removal of every key and a refill', () => {
    const db = folder.open<string, unknown>();
    db.transactionSync((txn) => {
      for (let i = 0; i < 1000; i++) txn.put(key(i), 'x'.repeat(i % 300));
    });
    const snap = db.snapshot();
    db.transactionSync((txn) => {
      for (let i = 0; i < 1000; i++) txn.remove(key(i));
    });
    expect(db.count()).toBe(0);
    db.transactionSync((txn) => {
      for (let i = 0; i < 1000; i++) txn.put(key(i), 'y'.repeat(300 - (i % 300)));
    });
    expect(snap.count()).toBe(1000);
    let i = 0;
    for (const { key: k, value } of snap.range()) {
      expect(k).toBe(key(i));
      expect(value).toBe('x'.repeat(i % 300));
      i++;
    }
    expect(i).toBe(1000);
    snap.close();
    expectHealthy(db);
  });

  it('counts in stats().openSnapshots until closed', () => {
    const db = folder.open();
    const a = db.snapshot();
    const b = db.snapshot();
    db.putSync('x', 1);
    const c = db.snapshot();
    expect(db.stats().openSnapshots).toBe(3);
    b.close();
    expect(db.stats().openSnapshots).toBe(2);
    a.close();
    c.close();
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('is closed by `using` disposal (Symbol.dispose) at the end of its block', () => {
    const db = folder.open();
    db.putSync('a', 1);
    let outer: Snapshot | null = null;
    {
      using snap = db.snapshot();
      outer = snap;
      db.putSync('a', 2);
      expect(snap.get('a')).toBe(1);
      expect(db.stats().openSnapshots).toBe(1);
    }
    expect(db.stats().openSnapshots).toBe(0);
    expect(() => outer!.get('a')).toThrow(expect.objectContaining({ code: 'ERR_TXN_DONE' }));
    expect(typeof (outer as unknown as { [Symbol.dispose]: unknown })[Symbol.dispose]).toBe(
      'function',
    );
  });

  it('is closed by `using` even when its block throws', () => {
    const db = folder.open();
    expect(() => {
      using snap = db.snapshot();
      expect(db.stats().openSnapshots).toBe(1);
      snap.get('x');
      throw new Error('inside');
    }).toThrow('inside');
    expect(db.stats().openSnapshots).toBe(0);
  });

  it('keeps its state while another process commits 50 times to the same file', async () => {
    const db = folder.open<string, unknown>();
    const universe = new Set<string>();
    const model = seed(db, universe);
    const snap = db.snapshot();
    // The other process rewrites and removes every key many times, so that any page it may
    // reuse would be one this snapshot reads.
    const script = `
      const { open } = require(${JSON.stringify(freshBuildIndex())});
      const db = open(process.argv[1], { sync: 'none' });
      for (let c = 0; c < 50; c++) {
        db.transactionSync((txn) => {
          for (let i = 0; i < 500; i++) {
            const k = 'k' + String(i).padStart(4, '0');
            if ((i + c) % 3 === 0) txn.remove(k);
            else txn.put(k, { c, pad: 'z'.repeat((i * 7 + c * 13) % 400) });
          }
        });
      }
      db.close().then(() => process.stdout.write('ok'));
    `;
    const child = spawnSync(process.execPath, ['-e', script, db.path], { encoding: 'utf8' });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('ok');
    try {
      expectMatches(snap, model, universe);
    } finally {
      snap.close();
    }
  });
});

describe('close() called in the middle of an operation of the same handle', () => {
  it('lets a transaction callback, or a key getter, finish first: no damage, no stray error', async () => {
    const db = folder.open<any, any>({ sync: 'none' });
    const sub = db.openDB('s');
    const h = db.openDB('h', { kind: 'hash' });
    db.snapshot(); // held, so that the commit below must also write free lists
    for (let i = 0; i < 300; i++) db.putSync(`f${i % 40}`, 'x'.repeat(2000));
    // close() inside the callback: the transaction commits, then the handle closes. Closing at
    // once (a change of this session, never released) unmapped the views under the commit:
    // RangeError from crc32c, or ERR_CORRUPT "should be a free chunk".
    const out = db.transactionSync((txn) => {
      for (let i = 0; i < 200; i++) txn.put(`g${i}`, 'y'.repeat(3000));
      txn.db(sub).put('a', 1);
      txn.db(h).put('b', 2);
      void db.close();
      return 'done';
    });
    expect(out).toBe('done');
    await db.close();
    const again = folder.open<any, any>({ sync: 'none' });
    expect(again.get('g199')).toBe('y'.repeat(3000));
    expect(again.openDB('s').get('a')).toBe(1);
    expect(again.openDB('h').get('b')).toBe(2);
    // A key whose getter closes the handle: the read completes.
    const key = ['k', 5];
    Object.defineProperty(key, 1, {
      get() {
        void again.close();
        return 5;
      },
    });
    again.putSync(['k', 5], 'v');
    expect(again.get(key as never)).toBe('v');
    await again.close();
    expectHealthy(folder.open({ readOnly: true }));
  });
});

describe('commits of another process', () => {
  it('are seen by the next read of this process, and this process writes on top of them', async () => {
    const db = folder.open<string, unknown>();
    db.transactionSync((txn) => {
      for (let i = 0; i < 300; i++) txn.put(key(i), { mine: i });
    });
    expect(db.get(key(0))).toEqual({ mine: 0 });
    const script = `
      const { open } = require(${JSON.stringify(freshBuildIndex())});
      const db = open(process.argv[1]);
      for (let c = 0; c < 20; c++) {
        db.transactionSync((txn) => {
          for (let i = 0; i < 300; i++) {
            const k = 'k' + String(i).padStart(4, '0');
            if (i % 10 === 9) txn.remove(k);
            else txn.put(k, { child: c, pad: 'c'.repeat((i * 11 + c) % 500) });
          }
        });
      }
      db.putSync('from-child', true);
      db.close().then(() => process.stdout.write('ok'));
    `;
    const child = spawnSync(process.execPath, ['-e', script, db.path], { encoding: 'utf8' });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('ok');
    expect(db.get('from-child')).toBe(true);
    expect(db.get(key(0))).toEqual({ child: 19, pad: 'c'.repeat(19) });
    expect(db.has(key(9))).toBe(false);
    expect(db.count()).toBe(271);
    db.putSync('from-parent', true);
    db.transactionSync((txn) => {
      for (let i = 0; i < 300; i += 2) txn.put(key(i), { parent: i });
    });
    expect(db.get('from-child')).toBe(true);
    expectHealthy(db);
    await db.close();
    const again = folder.open<string, unknown>();
    expect(again.get('from-child')).toBe(true);
    expect(again.get('from-parent')).toBe(true);
    expect(again.get(key(2))).toEqual({ parent: 2 });
    expect(again.get(key(1))).toEqual({ child: 19, pad: 'c'.repeat(30) });
    expectHealthy(again);
  });
});
