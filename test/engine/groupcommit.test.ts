/**
 * Async commits flush on the thread pool and group the writes that arrive meanwhile into the
 * next commit; a synchronous writer arriving mid-flush completes the in-flight commit first.
 * A storage whose async flush is held open by the test makes each interleaving deterministic.
 */
import { describe, expect, it } from 'vitest';
import { systemError } from '../../src/errors';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';

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

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

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
});
