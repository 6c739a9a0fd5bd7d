// Issue #4 part 4 - disk full and I/O errors. ENOSPC and EIO (systemError, as the native
// layer raises them) are injected through storage.setFaultHook at grow, write (pwritev of a commit's pages), flush and sync, on a
// real file (MappedStorage) and on MemoryStorage, under every write API. The n-th call of the
// operation fails, for n = 1, 2, ... until the API call no longer reaches an n-th call, so
// every grow/write/flush/sync of the commit protocol is hit whatever its shape.
// In each case:
// - the call throws (or its promise rejects) with the system error (code ENOSPC / EIO);
// - the database stays at its last commit: content, count, txnId, check() clean - through
//   this handle, through a second read-only handle (what other processes see), and on
//   MemoryStorage also in the durable image (what a power loss right then would leave);
// - once the fault is gone the same call succeeds on the same handle, no restart needed.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';

import { systemError } from '../../src/errors';
import { open, openOn } from '../../src/open';
import type { Database, DatabaseBase } from '../../src/database';
import { MappedStorage } from '../../src/storage/mapped';
import { MemoryStorage } from '../../src/storage/memory';
import type { FaultOp, Storage } from '../../src/storage/storage';
import { crashFolder } from '../helpers/crash-common';

const folder = crashFolder('faults');
afterAll(() => folder.remove());

type Content = Record<string, [unknown, unknown][]>;

function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) {
    // Large values are uniform fills: their length and a sample of 64 bytes identify them.
    const sample = new Uint8Array(64);
    for (let i = 0; i < 64; i++) sample[i] = v[Math.floor((i * v.length) / 64)] ?? 0;
    return `bin:${v.length}:${createHash('sha1').update(sample).digest('hex')}`;
  }
  return v;
}

/** Every entry of the main database and of each named one. */
function contentOf(db: Database<any, any>, subs: string[]): Content {
  const out: Content = { '': [...db.range()].map((e) => [plain(e.key), plain(e.value)]) };
  for (const name of subs) {
    out[name] = [...db.openDB(name).range()].map((e) => [plain(e.key), plain(e.value)]);
  }
  return out;
}

interface Harness {
  db: Database<any, any>;
  storage: Storage;
  /** What a second handle (another process) reads now. */
  otherView(subs: string[]): Promise<Content>;
  /** What a power loss now would leave (MemoryStorage only). */
  durableView?(subs: string[]): Promise<Content>;
  close(): Promise<void>;
}

let fileNo = 0;

function mappedHarness(sync: 'full' | 'none'): Harness {
  const path = folder.file(`f${fileNo++}.mkv`);
  const storage = MappedStorage.open(path);
  const db = openOn<any, any>(storage, path, { sync });
  return {
    db,
    storage,
    async otherView(subs) {
      const other = open<any, any>(path, { readOnly: true });
      try {
        return contentOf(other, subs);
      } finally {
        await other.close();
      }
    },
    close: () => db.close(),
  };
}

function memoryHarness(sync: 'full' | 'none'): Harness {
  const storage = new MemoryStorage();
  const db = openOn<any, any>(storage, '', { sync });
  const view = async (image: Uint8Array, subs: string[]): Promise<Content> => {
    const copy = openOn<any, any>(MemoryStorage.fromImage(image, { readOnly: true }), '', {});
    try {
      expect(copy.check().problems).toEqual([]);
      return contentOf(copy, subs);
    } finally {
      await copy.close();
    }
  };
  return {
    db,
    storage,
    otherView: (subs) => view(storage.currentImage(), subs),
    durableView: sync === 'full' ? (subs) => view(storage.durableImage(), subs) : undefined,
    close: () => db.close(),
  };
}

/** One write API, as a function that throws or rejects like the API does. */
interface Call {
  name: string;
  run(db: Database<any, any>, sub: DatabaseBase<any, any>, n: number): Promise<unknown>;
  /** Runs after a successful retry. */
  after?(db: Database<any, any>, n: number): void;
}

/** More than a freshly seeded database's file holds: a commit writing this must grow it. */
const GROWING = 2 * 1024 * 1024;

const calls: Call[] = [
  {
    name: 'putSync',
    run: async (db, _sub, n) => db.putSync(`p${n}`, { n }),
  },
  {
    name: 'putSync (grows the file)',
    run: async (db, _sub, n) => db.putSync(`big${n}`, Buffer.alloc(GROWING, n & 0xff)),
    // Keeps the live data small, so the checks of the following cases stay cheap.
    after: (db, n) => db.removeSync(`big${n}`),
  },
  {
    name: 'removeSync',
    run: async (db, _sub, n) => {
      db.removeSync(`seed${n % 40}`);
    },
  },
  {
    name: 'transactionSync (two databases)',
    run: async (db, sub, n) =>
      db.transactionSync((txn) => {
        txn.put(`t${n}`, n);
        txn.put(`u${n}`, Buffer.alloc(20_000, 1));
        txn.db(sub).put(`s${n}`, n);
        txn.remove(`seed${(n + 7) % 40}`);
      }),
  },
  {
    name: 'await put (two in one batch)',
    run: async (db, sub, n) => {
      // 40 KB: a commit large enough to write its pages on a thread (Storage.writeAsync).
      await Promise.all([db.put(`a${n}`, n), sub.put(`b${n}`, Buffer.alloc(40_000, 2))]);
    },
  },
  {
    name: 'await transaction',
    run: async (db, _sub, n) => {
      await db.transaction((txn) => txn.put(`x${n}`, n));
    },
  },
  {
    name: 'openDB (a new sub-database)',
    run: async (db, _sub, n) => db.openDB(`new${n}`),
  },
];

async function expectFails(p: Promise<unknown>, code: string, what: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `${what}: expected the ${code} to surface`).toBeInstanceOf(Error);
  expect((err as { code?: string }).code, `${what}: ${String(err)}`).toBe(code);
}

interface Tally {
  cases: number;
  positions: Set<string>;
}

/** Seeds a database with 40 entries and a sub-database; returns the sub-database. */
function seed(db: Database<any, any>): DatabaseBase<any, any> {
  const sub = db.openDB('side');
  db.transactionSync((txn) => {
    for (let i = 0; i < 40; i++) txn.put(`seed${i}`, { i, pad: 'x'.repeat(100) });
  });
  return sub;
}

/**
 * Runs `call` with `code` injected at the nth `op`; checks the failure, the state after it,
 * and the retry. Returns false when the call made fewer than nth such operations.
 */
async function runCase(
  h: Harness,
  sub: DatabaseBase<any, any>,
  subs: string[],
  call: Call,
  op: FaultOp,
  code: string,
  nth: number,
  n: number,
  what: string,
  tally: Tally,
): Promise<boolean> {
  const { db, storage } = h;
  const before = contentOf(db, subs);
  const txnBefore = db.stats().txnId;
  let seen = 0;
  let fired = false;
  storage.setFaultHook((o) => {
    if (o === op && ++seen === nth) {
      fired = true;
      throw systemError(code, SYSCALL[o]);
    }
  });
  let error: unknown;
  try {
    await call.run(db, sub, n);
  } catch (e) {
    error = e;
  }
  storage.setFaultHook(undefined);
  if (!fired) {
    expect(error, `${what}: unexpected failure`).toBeUndefined();
    return false;
  }
  tally.cases++;
  tally.positions.add(`${call.name}: ${op} #${nth}`);
  expect(error, `${what}: the call succeeded although its ${op} failed`).toBeDefined();
  expect((error as { code?: string }).code, `${what}: ${String(error)}`).toBe(code);
  // The database is still at its last commit, for everyone.
  expect(db.stats().txnId, `${what}: txnId`).toBe(txnBefore);
  expect(contentOf(db, subs), `${what}: content`).toEqual(before);
  expect(db.count(), `${what}: count`).toBe(before['']!.length);
  expect(db.check(), `${what}: check()`).toEqual({ ok: true, problems: [] });
  expect(await h.otherView(subs), `${what}: a second handle`).toEqual(before);
  if (h.durableView) expect(await h.durableView(subs), `${what}: durable image`).toEqual(before);
  // The fault is gone: the same call succeeds on the same handle.
  await call.run(db, sub, n);
  expect(db.stats().txnId, `${what}: retry committed`).toBeGreaterThan(txnBefore);
  expect(db.check(), `${what}: check() after the retry`).toEqual({ ok: true, problems: [] });
  call.after?.(db, n);
  if (call.name.startsWith('openDB')) subs.push(`new${n}`);
  return true;
}

/** The system call behind each storage operation a fault can fail. */
const SYSCALL = { grow: 'fallocate', write: 'pwritev', flush: 'msync', sync: 'fdatasync' };

async function faultMatrix(
  make: (sync: 'full' | 'none') => Harness,
  sync: 'full' | 'none',
  tally: Tally,
): Promise<void> {
  let n = 0;
  // flush and sync: one database goes through every case.
  if (sync === 'full') {
    const h = make(sync);
    try {
      const sub = seed(h.db);
      const subs = ['side'];
      for (const call of calls) {
        for (const op of ['write', 'flush', 'sync'] as const) {
          for (const code of ['ENOSPC', 'EIO']) {
            for (let nth = 1; nth < 20; nth++) {
              n++;
              const what = `${call.name}, ${code} at the ${nth}. ${op} (sync '${sync}', call #${n})`;
              if (!(await runCase(h, sub, subs, call, op, code, nth, n, what, tally))) break;
            }
          }
        }
      }
    } finally {
      await h.close();
    }
  }
  // grow: a fresh database per case, so that a write of GROWING bytes must grow the file.
  for (const call of calls) {
    for (const code of ['ENOSPC', 'EIO']) {
      for (let nth = 1; nth < 20; nth++) {
        n++;
        const what = `${call.name}, ${code} at the ${nth}. grow (sync '${sync}', call #${n})`;
        const h = make(sync);
        try {
          const sub = seed(h.db);
          if (!(await runCase(h, sub, ['side'], call, 'grow', code, nth, n, what, tally))) break;
        } finally {
          await h.close();
        }
      }
    }
  }
  // Async paths: a failing commit rejects every write batched into it.
  const h = make(sync);
  const { db, storage } = h;
  try {
    seed(db);
    storage.setFaultHook((o) => {
      if (o === 'grow') throw systemError('EIO', 'fallocate');
    });
    const batch = [db.put('q1', 1), db.put('q2', Buffer.alloc(GROWING, 3)), db.remove('seed1')];
    for (const [i, p] of batch.entries()) await expectFails(p, 'EIO', `batched write ${i}`);
    storage.setFaultHook(undefined);
    expect(db.get('q1')).toBeUndefined();
    expect(db.get('seed1')).toBeDefined();
    expect(db.check().ok).toBe(true);
    await db.put('q1', 1);
    expect(db.get('q1')).toBe(1);
    expect(await h.otherView(['side'])).toEqual(contentOf(db, ['side']));
  } finally {
    storage.setFaultHook(undefined);
    await h.close();
  }
}

describe('disk full and I/O errors (fault injection)', () => {
  const tally: Tally = { cases: 0, positions: new Set() };

  for (const [name, make] of [
    ['MappedStorage (real file)', mappedHarness],
    ['MemoryStorage', memoryHarness],
  ] as const) {
    for (const sync of ['full', 'none'] as const) {
      it(`${name}, sync '${sync}': the failing call throws the system error, the db stays at its last commit, later commits succeed`, async () => {
        await faultMatrix(make, sync, tally);
      }, 300_000);
    }
  }

  it('MemoryStorage with a real capacity: ENOSPC from grow; writes that fit still succeed', async () => {
    const storage = new MemoryStorage({ capacity: 4 * 1024 * 1024 });
    const db = openOn<string, unknown>(storage, '', {});
    try {
      let i = 0;
      let error: unknown;
      try {
        for (; i < 100; i++) db.putSync(`v${i}`, Buffer.alloc(300_000, i));
      } catch (e) {
        error = e;
      }
      expect((error as { code?: string }).code).toBe('ENOSPC');
      expect(db.count()).toBe(i);
      expect(db.check().ok).toBe(true);
      // Space freed by removals is reused: later commits fit without growing.
      db.removeSync('v0');
      db.removeSync('v1');
      db.putSync('after', Buffer.alloc(200_000, 9));
      expect(db.count()).toBe(i - 1);
      expect(db.check()).toEqual({ ok: true, problems: [] });
      const copy = openOn<string, unknown>(MemoryStorage.fromImage(storage.durableImage()), '', {});
      expect(copy.count()).toBe(i - 1);
      await copy.close();
    } finally {
      await db.close();
    }
    console.log(
      `[faults] ${tally.cases} injected failures at ${tally.positions.size} positions: ${[...tally.positions].join('; ')}`,
    );
  });
});

describe("a failed flush punches the failed commit's pages out of the file", () => {
  // On ext4 a page whose first write-back into fallocated, never-written blocks failed could
  // be written again and flushed "successfully" while its blocks stayed marked unwritten: after
  // a remount it read as zeros, so commits acknowledged after the error were lost (found with
  // a loop-mounted ext4 whose backing store filled up). The pages of a commit whose flush
  // failed belong to no commit, so they are punched out: their next writes get fresh blocks.
  // Here the flush fails by injection; what is checked is the punch (bytes of the file without
  // blocks: every byte of it is allocated by fallocate otherwise) and that writing goes on.
  const VALUE = 200_000; // an overflow run of 49 pages: a commit listed in its meta
  const BIG = 3 << 20; // past what a meta lists: pages flushed before the meta is written

  function unallocated(file: string): number {
    const st = fs.statSync(file);
    return st.size - st.blocks * 512;
  }

  function failSync(storage: Storage, nth: number): void {
    let n = 0;
    storage.setFaultHook((op) => {
      if (op === 'sync' && ++n === nth) throw systemError('EIO', 'fdatasync');
    });
  }

  async function withDb(
    run: (db: Database<string, unknown>, storage: Storage, file: string) => Promise<void>,
  ): Promise<void> {
    const file = folder.file(`punch${fileNo++}.mkv`);
    const storage = MappedStorage.open(file);
    const db = openOn<string, unknown>(storage, file, { sync: 'full' });
    try {
      db.putSync('seed', 1);
      // Room for the commits below, so that their pages are fallocated blocks of the file.
      db.putSync('room', Buffer.alloc(BIG + VALUE, 1));
      db.removeSync('room');
      db.putSync('seed', 2);
      expect(unallocated(file)).toBeLessThanOrEqual(0);
      await run(db, storage, file);
      storage.setFaultHook(undefined);
      db.putSync('after', Buffer.alloc(VALUE, 9));
      expect(db.get('after')).toEqual(Buffer.alloc(VALUE, 9));
      expect(db.check()).toEqual({ ok: true, problems: [] });
      const other = open<string, unknown>(file, { readOnly: true });
      try {
        expect(other.get('seed')).toBe(2);
        expect(other.get('after')).toEqual(Buffer.alloc(VALUE, 9));
        expect(other.check()).toEqual({ ok: true, problems: [] });
      } finally {
        await other.close();
      }
    } finally {
      storage.setFaultHook(undefined);
      await db.close();
    }
  }

  it('putSync: the one flush of a listed commit fails', async () => {
    await withDb(async (db, storage, file) => {
      failSync(storage, 1);
      expect(() => db.putSync('v', Buffer.alloc(VALUE, 7))).toThrow(
        expect.objectContaining({ code: 'EIO' }),
      );
      expect(unallocated(file)).toBeGreaterThanOrEqual(49 * 4096);
      expect(db.get('v')).toBeUndefined();
    });
  });

  it('put (async commit): the flush fails', async () => {
    await withDb(async (db, storage, file) => {
      failSync(storage, 1);
      await expectFails(db.put('v', Buffer.alloc(VALUE, 7)), 'EIO', 'put');
      expect(unallocated(file)).toBeGreaterThanOrEqual(49 * 4096);
    });
  });

  it('a large commit: punched when its data flush fails, kept when only its meta flush fails', async () => {
    await withDb(async (db, storage, file) => {
      failSync(storage, 1);
      expect(() => db.putSync('v', Buffer.alloc(BIG, 7))).toThrow(
        expect.objectContaining({ code: 'EIO' }),
      );
      expect(unallocated(file)).toBeGreaterThanOrEqual(BIG);
    });
    await withDb(async (db, storage, file) => {
      // The data pages were flushed, and the meta may have reached the disk with them: a
      // crash now would open this commit, so its pages must stay.
      failSync(storage, 2);
      expect(() => db.putSync('v', Buffer.alloc(BIG, 7))).toThrow(
        expect.objectContaining({ code: 'EIO' }),
      );
      expect(unallocated(file)).toBeLessThanOrEqual(0);
    });
  });
});
