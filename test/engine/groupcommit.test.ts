/**
 * Async commits write their pages and flush on I/O threads, and group the writes that
 * arrive meanwhile into the next commit; a synchronous writer arriving mid-commit completes
 * the in-flight commit first. A storage whose async writes and flushes are held open by the
 * test makes each interleaving deterministic.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemError } from '../../src/errors';
import { open } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { native } from '../../src/storage/native';
import type { PageWrite, PendingWrites } from '../../src/storage/storage';

/** A MemoryStorage whose syncAsync waits until the test opens the gate. */
class GatedStorage extends MemoryStorage {
  private waiting: Array<() => void> = [];
  failNext: Error | null = null;
  /** The durable image at close (the storage refuses reads after it). */
  closedImage: Uint8Array | null = null;

  override close(): void {
    if (this.closedImage === null) this.closedImage = this.durableImage();
    super.close();
  }

  override async syncAsync(): Promise<void> {
    this.sync();
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    const err = this.failNext;
    this.failNext = null;
    if (err !== null) throw err;
  }

  get pending(): number {
    return this.waiting.length;
  }

  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) r();
  }
}

/**
 * A MemoryStorage whose async page writes wait until the test lets them run, as on a busy
 * thread pool. A write let run after a stop makes no change; one not stopped puts in the bytes
 * its buffers held when it was queued, as a late thread would.
 */
class HeldWritesStorage extends MemoryStorage {
  private held: Array<() => void> = [];
  stops = 0;
  /** Set to make the next held writes fail on their thread, writing nothing. */
  failNext: Error | null = null;

  override writeAsync(writes: readonly PageWrite[]): PendingWrites {
    const copies = writes.map((w) => ({
      offset: w.offset,
      buffers: w.buffers.map((b) => b.slice()),
    }));
    let state: 'waiting' | 'stopped' | 'made' = 'waiting';
    const fail = this.failNext;
    this.failNext = null;
    let settle!: (err: Error | null) => void;
    const done = new Promise<void>(
      (resolve, reject) => (settle = (err) => (err === null ? resolve() : reject(err))),
    );
    this.held.push(() => {
      if (state === 'waiting' && fail === null) {
        for (const c of copies) this.writeAt(c.offset, c.buffers);
        state = 'made';
      }
      settle(state === 'waiting' ? fail : null);
    });
    return {
      done,
      stop: () => {
        this.stops++;
        if (state === 'waiting') state = 'stopped';
        return state === 'made';
      },
    };
  }

  get heldWrites(): number {
    return this.held.length;
  }

  runWrites(): void {
    const h = this.held;
    this.held = [];
    for (const run of h) run();
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A value of some 10 pages. */
const BLOB = 'b'.repeat(40_000);

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await turn();
  expect(cond()).toBe(true);
}

/**
 * Opens the gate for each flush of a commit until `done` settles: one flush for a commit whose
 * meta lists its pages, two (data, then meta) for a larger one.
 */
async function releaseUntil(storage: GatedStorage, done: Promise<unknown>): Promise<void> {
  let settled = false;
  done.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    await until(() => settled || storage.pending === 1);
    storage.release();
    await turn();
  }
}

function setup(): { storage: GatedStorage; db: ReturnType<typeof openOn<string, number>> } {
  const storage = new GatedStorage({ segmentSize: 65536 });
  const db = openOn<string, number>(storage, '', { keyEncoding: 'string', valueEncoding: 'json' });
  return { storage, db };
}

describe('group commit', () => {
  it('writes queued while a commit flushes go into the next commit, each keeping its own value', async () => {
    const { storage, db } = setup();
    const before = db.stats().txnId;
    const first = db.put('a', 1);
    await until(() => storage.pending === 1); // the first commit is flushing (meta written)
    const later = [db.put('b', 2), db.put('c', 3)];
    await turn();
    const more = db.put('d', 4);
    // Nothing of the first commit is visible before it is durable.
    expect(db.get('a')).toBeUndefined();
    await releaseUntil(storage, first);
    expect(db.get('a')).toBe(1);
    // b, c and d waited for the first commit and now commit together.
    const rest = Promise.all([...later, more]);
    await releaseUntil(storage, rest);
    await rest;
    expect(db.stats().txnId).toBe(before + 2);
    expect([db.get('b'), db.get('c'), db.get('d')]).toEqual([2, 3, 4]);
    expect(db.check().ok).toBe(true);
    await db.close();
  });

  it('a putSync during an in-flight async commit finishes that commit first, then commits its own', async () => {
    const { storage, db } = setup();
    const before = db.stats().txnId;
    const pending = db.put('async', 1);
    await until(() => storage.pending === 1);
    db.putSync('sync', 2); // must not throw ERR_LOCKED
    expect(db.get('async')).toBe(1);
    expect(db.get('sync')).toBe(2);
    expect(db.stats().txnId).toBe(before + 2);
    storage.release(); // the stale async flush completes; nothing more happens
    await pending;
    expect(db.stats().txnId).toBe(before + 2);
    expect(db.check().ok).toBe(true);
    await db.close();
  });

  it('a failed async flush rejects the batch, keeps the last commit, and later commits succeed', async () => {
    const { storage, db } = setup();
    db.putSync('kept', 1);
    const before = db.stats().txnId;
    storage.failNext = systemError('EIO', 'fdatasync');
    const p1 = db.put('lost', 1);
    const p2 = db.remove('kept');
    await until(() => storage.pending === 1);
    // Readers see the last commit while the flush runs, and after it failed.
    expect(db.get('kept')).toBe(1);
    storage.release();
    await expect(p1).rejects.toMatchObject({ code: 'EIO' });
    await expect(p2).rejects.toMatchObject({ code: 'EIO' });
    expect(db.stats().txnId).toBe(before);
    expect(db.get('lost')).toBeUndefined();
    expect(db.get('kept')).toBe(1);
    const p3 = db.put('after', 3);
    await releaseUntil(storage, p3);
    await p3;
    expect(db.get('after')).toBe(3);
    expect(db.check().ok).toBe(true);
    await db.close();
  });

  it('close() waits for the in-flight commit', async () => {
    const { storage, db } = setup();
    const p = db.put('x', 1);
    await until(() => storage.pending === 1);
    const closing = db.close();
    await releaseUntil(storage, p);
    await p;
    await closing;
    const reopened = openOn<string, number>(MemoryStorage.fromImage(storage.closedImage!), '', {});
    expect(reopened.get('x')).toBe(1);
    await reopened.close();
  });

  it('a putSync while an async commit waits for its page writes makes them itself; the held writes never land', async () => {
    const storage = new HeldWritesStorage({ segmentSize: 65536 });
    const db = openOn<string, number | string>(storage, '', {
      keyEncoding: 'string',
      valueEncoding: 'json',
    });
    const before = db.stats().txnId;
    // With a value of 10 pages the commit is large enough to write on a thread (small ones
    // write at once: test/engine/pagewrites.test.ts).
    const pending = Promise.all([db.put('async', 1), db.put('blob', BLOB)]);
    await until(() => storage.heldWrites === 1);
    db.putSync('sync', 2);
    expect(storage.stops).toBe(1);
    // Later commits free the async commit's pages and reuse them: a late write of that
    // commit's pages would put its old leaf back over theirs.
    for (let i = 0; i < 30; i++) db.putSync(`k${i % 3}`, i);
    storage.runWrites();
    await pending;
    expect(db.stats().txnId).toBe(before + 32);
    expect([db.get('async'), db.get('sync'), db.get('k0'), db.get('k1'), db.get('k2')]).toEqual([
      1, 2, 27, 28, 29,
    ]);
    expect(db.check().ok).toBe(true);
    const image = storage.durableImage();
    await db.close();
    const reopened = openOn<string, number | string>(MemoryStorage.fromImage(image), '', {});
    expect(reopened.get('async')).toBe(1);
    expect(reopened.get('blob')).toBe(BLOB);
    expect(reopened.get('k2')).toBe(29);
    await reopened.close();
  });

  it("under sync 'none', puts of the turns while a commit's page writes wait go into one next commit", async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'mapkv-groupcommit-'));
    try {
      const db = open<string, number | string>(join(dir, 'db.mkv'), {
        sync: 'none',
        keyEncoding: 'string',
        valueEncoding: 'json',
      });
      db.putSync('k0', -1);
      const base = db.stats().txnId;
      // The first commit's page writes (BLOB: more than enough pages to go to a thread) wait
      // behind the busy I/O threads; meanwhile ten turns each put a key.
      const busy = Array.from({ length: native.ioThreads }, () => native.ioSleep(300));
      const puts: Array<Promise<void>> = [db.put('blob', BLOB), db.put('a', 1)];
      await turn();
      for (let i = 0; i < 10; i++) {
        puts.push(db.put(`t${i}`, i));
        // Reads see the commit before until the one in flight is written.
        expect(db.get('a')).toBeUndefined();
        await turn();
      }
      await Promise.all(busy);
      await Promise.all(puts);
      // One commit for the first batch, one for all ten turns (one per turn when a commit
      // under 'none' was written on the event loop).
      expect(db.stats().txnId - base).toBe(2);
      expect(db.get('blob')).toBe(BLOB);
      expect([db.get('a'), db.get('t0'), db.get('t9'), db.get('k0')]).toEqual([1, 0, 9, -1]);
      expect(db.check().ok).toBe(true);
      await db.close();
      const again = open<string, number | string>(join(dir, 'db.mkv'), {
        keyEncoding: 'string',
        valueEncoding: 'json',
      });
      expect([again.get('a'), again.get('t0'), again.get('t9'), again.get('blob')]).toEqual([
        1,
        0,
        9,
        BLOB,
      ]);
      expect(again.check().ok).toBe(true);
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(['full', 'none'] as const)(
    'on a real file, a putSync stops async page writes that busy I/O threads have not taken up (sync %s)',
    async (sync) => {
      const dir = fs.mkdtempSync(join(tmpdir(), 'mapkv-groupcommit-'));
      try {
        const db = open<string, number | string>(join(dir, 'db.mkv'), {
          sync,
          keyEncoding: 'string',
          valueEncoding: 'json',
        });
        db.putSync('k0', -1);
        // Every I/O thread of the addon waits a while: the async commit's writes wait behind
        // them.
        const busy = Array.from({ length: native.ioThreads }, () => native.ioSleep(300));
        const pending = Promise.all([db.put('async', 1), db.put('blob', BLOB)]);
        await new Promise((r) => setImmediate(r)); // the batch commits: its writes are queued
        const stopWrites = native.stopWrites;
        const stops: boolean[] = [];
        native.stopWrites = (job) => {
          const made = stopWrites(job);
          stops.push(made);
          return made;
        };
        try {
          db.putSync('sync', 2);
        } finally {
          native.stopWrites = stopWrites;
        }
        // The putSync stopped the writes before a thread took them up (and so made them itself).
        expect(stops).toEqual([false]);
        for (let i = 0; i < 30; i++) db.putSync(`k${i % 3}`, i);
        // No commit comes after this: a write of the async commit that a thread made late would
        // change the file's bytes (its pages were freed and reused since; its leaf differs from
        // every later one).
        const bytes = fs.readFileSync(join(dir, 'db.mkv'));
        await Promise.all(busy);
        await pending;
        expect(fs.readFileSync(join(dir, 'db.mkv')).equals(bytes)).toBe(true);
        expect([db.get('async'), db.get('sync'), db.get('k0'), db.get('k2')]).toEqual([
          1, 2, 27, 29,
        ]);
        expect(db.check().ok).toBe(true);
        expect(db.get('blob')).toBe(BLOB);
        await db.close();
        const again = open<string, number | string>(join(dir, 'db.mkv'), {
          keyEncoding: 'string',
          valueEncoding: 'json',
        });
        expect([again.get('async'), again.get('sync'), again.get('k0'), again.get('k2')]).toEqual([
          1, 2, 27, 29,
        ]);
        expect(again.check().ok).toBe(true);
        await again.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('page writes that fail on their thread reject the batch, keep the last commit, and later commits succeed', async () => {
    const storage = new HeldWritesStorage({ segmentSize: 65536 });
    const db = openOn<string, number | string>(storage, '', {
      keyEncoding: 'string',
      valueEncoding: 'json',
    });
    db.putSync('kept', 1);
    const before = db.stats().txnId;
    storage.failNext = systemError('EIO', 'pwritev');
    const batch = [db.put('lost', 1), db.put('blob', BLOB), db.remove('kept')];
    await until(() => storage.heldWrites === 1);
    storage.runWrites();
    for (const p of batch) await expect(p).rejects.toMatchObject({ code: 'EIO' });
    expect(db.stats().txnId).toBe(before);
    expect([db.get('lost'), db.get('blob'), db.get('kept')]).toEqual([undefined, undefined, 1]);
    const next = db.put('blob', BLOB);
    await until(() => storage.heldWrites === 1);
    storage.runWrites();
    await next;
    expect(db.get('blob')).toBe(BLOB);
    expect(db.check().ok).toBe(true);
    const image = storage.durableImage();
    await db.close();
    const reopened = openOn<string, number | string>(MemoryStorage.fromImage(image), '', {});
    expect([reopened.get('blob'), reopened.get('kept'), reopened.get('lost')]).toEqual([
      BLOB,
      1,
      undefined,
    ]);
    await reopened.close();
  });
});
