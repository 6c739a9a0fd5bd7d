/**
 * Another handle adopts a commit only once its writer's commit call made it durable (src/txn/
 * env.ts, "Visibility"). The meta goes into the file before its flush, so without the rule a
 * handle reading then would see a commit that may still fail: its snapshot would then read
 * the retry's values from reused pages.
 *
 * The writer here runs a hook after its meta went into the file and before the flush; a hook
 * that throws fails the commit as a failed flush does (the old meta is put back).
 */
import * as fs from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import type { Database } from '../../src/index';
import { openOn } from '../../src/open';
import { MappedStorage } from '../../src/storage/mapped';
import { LockFile } from '../../src/txn/lockfile';
import { H_DURABLE, H_PUBLISHED, H_WRITER } from '../../src/txn/readers';
import { ApiFolder } from '../helpers/api-helpers';

type Bytes = Uint8Array;
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;
const N = 2_000;

function val(i: number, tag: string): Bytes {
  return Buffer.from(`${tag}:${i}:`.padEnd(100, 'x'));
}

function tagOf(v: Bytes | undefined): string {
  return v === undefined ? 'none' : Buffer.from(v).toString().split(':')[0]!;
}

interface Hooked {
  w: Database<string, Bytes>;
  /** Runs `fn` inside the next commit, after its meta write; `fail` then fails that commit. */
  during: (fn: () => void, fail: boolean) => void;
}

function hookedWriter(file: string): Hooked {
  let next: { fn: () => void; fail: boolean } | null = null;
  const w = openOn<string, Bytes>(MappedStorage.open(file), file, enc, {
    afterMetaWrite: () => {
      const h = next;
      if (h === null) return;
      next = null;
      h.fn();
      if (h.fail) throw new Error('the flush failed');
    },
  });
  return { w, during: (fn, fail) => (next = { fn, fail }) };
}

/** Runs `fn` with a folder and a hooked writer on its file; checks and removes the folder. */
async function withWriter(
  fn: (t: Hooked & { folder: ApiFolder; file: string }) => void | Promise<void>,
): Promise<void> {
  const folder = new ApiFolder();
  try {
    const file = folder.file();
    const hooked = hookedWriter(file);
    await fn({ ...hooked, folder, file });
    await hooked.w.close();
  } finally {
    await folder.cleanup();
  }
}

function putAll(db: Database<string, Bytes>, tag: string): void {
  db.transactionSync((txn) => {
    for (let i = 0; i < N; i++) txn.put(`k${i}`, val(i, tag));
  });
}

/** The tags read for every key, counted: { base: 2000 } when all read 'base'. */
function tags(read: (key: string) => Bytes | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < N; i++) {
    const v = read(`k${i}`);
    const t = tagOf(v);
    // A value of the right tag but another key's would hide a wrong page: count it apart.
    const k =
      v !== undefined && !Buffer.from(v).toString().startsWith(`${t}:${i}:`) ? 'misplaced' : t;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Stores a 64-bit word of the lock file, as a writer of another process would. */
function writeLockWord(file: string, offset: number, value: number, bytes: 4 | 8): void {
  const b = Buffer.alloc(bytes);
  if (bytes === 8) b.writeBigUInt64LE(BigInt(value));
  else b.writeUInt32LE(value);
  const fd = fs.openSync(`${file}-lock`, 'r+');
  try {
    fs.writeSync(fd, b, 0, bytes, offset);
  } finally {
    fs.closeSync(fd);
  }
}

function readLockWord(file: string, offset: number): number {
  return Number(fs.readFileSync(`${file}-lock`).readBigUInt64LE(offset));
}

/**
 * Handle R reads while W's commit A (key 'a') flushes, so it passes A over; A's flush
 * succeeds, then the published word is put back one commit and a writer left recorded, as a
 * writer process killed between its flush and that store leaves them.
 */
function diedAfterFlush(t: Hooked & { folder: ApiFolder; file: string }): {
  r: Database<string, Bytes>;
  txnA: number;
} {
  const { w, during, folder, file } = t;
  w.putSync('base', val(0, 'base'));
  const r = folder.open<string, Bytes>(enc, file);
  let inFlush = '';
  during(() => (inFlush = tagOf(r.getBinary('a'))), false);
  w.putSync('a', val(0, 'A'));
  expect(inFlush).toBe('none');
  const txnA = readLockWord(file, H_PUBLISHED);
  writeLockWord(file, H_PUBLISHED, txnA - 1, 8);
  writeLockWord(file, H_WRITER, 999_999_999, 4);
  return { r, txnA };
}

/**
 * R (its storage given, for a fault hook) is at the commit before A (key 'a') when A's writer
 * let go of the lock with A in the file but neither flushed nor published, as a writer process
 * killed between its meta write and its flush leaves it: both words are put back one commit.
 */
function diedBeforeFlush(
  t: Hooked & { folder: ApiFolder; file: string },
  options: { readOnly?: boolean } = {},
): { r: Database<string, Bytes>; storage: MappedStorage; txnA: number } {
  const { w, file } = t;
  w.putSync('base', val(0, 'base'));
  const storage = MappedStorage.open(file, options);
  const r = openOn<string, Bytes>(storage, file, { ...enc, ...options });
  expect(tagOf(r.getBinary('base'))).toBe('base');
  w.putSync('a', val(0, 'A'));
  const txnA = readLockWord(file, H_PUBLISHED);
  expect(readLockWord(file, H_DURABLE)).toBe(txnA);
  writeLockWord(file, H_PUBLISHED, txnA - 1, 8);
  writeLockWord(file, H_DURABLE, txnA - 1, 8);
  return { r, storage, txnA };
}

describe('visibility of a commit to other handles', () => {
  it('is the commit before while the commit flushes, and the new one once it returned', async () => {
    await withWriter(async ({ w, during, folder, file }) => {
      putAll(w, 'base');
      const r = folder.open<string, Bytes>(enc, file);
      expect(tagOf(r.getBinary('k1'))).toBe('base');
      const seen: Record<string, Record<string, number>> = {};
      let snap: ReturnType<typeof r.snapshot> | null = null;
      let opened: Database<string, Bytes> | null = null;
      during(() => {
        seen.latest = tags((k) => r.getBinary(k));
        snap = r.snapshot();
        seen.snapshot = tags((k) => snap!.getBinary(k));
        opened = folder.open<string, Bytes>(enc, file);
        seen.opened = tags((k) => opened!.getBinary(k));
      }, false);
      putAll(w, 'A');
      expect(seen).toEqual({ latest: { base: N }, snapshot: { base: N }, opened: { base: N } });
      expect(tags((k) => r.getBinary(k))).toEqual({ A: N });
      expect(tags((k) => opened!.getBinary(k))).toEqual({ A: N });
      expect(tags((k) => snap!.getBinary(k))).toEqual({ base: N });
      snap!.close();
    });
  });

  it('is the commit before the flushing one, for a handle that missed a commit', async () => {
    // R last read commit 1; commit 2 is published; R reads during commit 3's flush. It must
    // read 2: the first version of the rule took R's own commit 1 from the slot commit 3 had
    // just taken (it judged that slot by the words of 3, seen a moment before), and read
    // pages that commits after 2 reuse (test/concurrency/accounts.test.ts found it).
    await withWriter(async ({ w, during, folder, file }) => {
      putAll(w, 'one');
      const r = folder.open<string, Bytes>(enc, file);
      expect(tags((k) => r.getBinary(k))).toEqual({ one: N });
      putAll(w, 'two');
      let inFlush: Record<string, number> = {};
      during(() => (inFlush = tags((k) => r.getBinary(k))), false);
      putAll(w, 'three');
      expect(inFlush).toEqual({ two: N });
      expect(tags((k) => r.getBinary(k))).toEqual({ three: N });
    });
  });

  it('never reaches a commit whose flush fails: a snapshot taken meanwhile keeps its values', async () => {
    // Before the rule: the snapshot saw A, and after the writer's retry B (A's commit id, A's
    // free pages) and C, read B's or C's values for all 2,000 keys.
    await withWriter(async ({ w, during, folder, file }) => {
      putAll(w, 'base');
      const r = folder.open<string, Bytes>(enc, file);
      let snap: ReturnType<typeof r.snapshot> | null = null;
      let inFlush: Record<string, number> = {};
      during(() => {
        snap = r.snapshot();
        inFlush = tags((k) => snap!.getBinary(k));
      }, true);
      expect(() => putAll(w, 'A')).toThrow('the flush failed');
      expect(inFlush).toEqual({ base: N });
      putAll(w, 'B');
      putAll(w, 'C');
      expect(tags((k) => snap!.getBinary(k))).toEqual({ base: N });
      expect(tags((k) => r.getBinary(k))).toEqual({ C: N });
      snap!.close();
    });
  });

  it('is the commit before while an async commit of another handle of the thread flushes', async () => {
    await withWriter(async ({ w, during, folder, file }) => {
      w.putSync('k', val(0, 'base'));
      const r = folder.open<string, Bytes>(enc, file);
      expect(tagOf(r.getBinary('k'))).toBe('base');
      let metaWritten!: () => void;
      const written = new Promise<void>((resolve) => (metaWritten = resolve));
      during(() => metaWritten(), false);
      const put = w.put('k', val(0, 'A'));
      await written;
      // The flush runs on the thread pool; the commit is published only after it.
      expect(tagOf(r.getBinary('k'))).toBe('base');
      const snap = r.snapshot();
      await put;
      expect(tagOf(r.getBinary('k'))).toBe('A');
      expect(tagOf(snap.getBinary('k'))).toBe('base');
      snap.close();
    });
  });

  it('is the newest commit when the writer lock is free, whatever the published word says', async () => {
    // A build before the word never stores it (it stays 0), and a writer that died after its
    // flush leaves it one commit behind: with no writer holding the lock, the meta is final.
    await withWriter(({ w, folder, file }) => {
      const r = folder.open<string, Bytes>(enc, file);
      w.putSync('k', val(0, 'base'));
      expect(tagOf(r.getBinary('k'))).toBe('base');
      w.putSync('k', val(0, 'A'));
      const txn = readLockWord(file, H_PUBLISHED);
      writeLockWord(file, H_PUBLISHED, 0, 8);
      expect(tagOf(r.getBinary('k'))).toBe('A');
      // The reader let the other handles know.
      expect(readLockWord(file, H_PUBLISHED)).toBe(txn);
      const fresh = folder.open<string, Bytes>(enc, file);
      writeLockWord(file, H_PUBLISHED, txn - 1, 8);
      expect(tagOf(fresh.getBinary('k'))).toBe('A');
    });
  });

  it("reaches a commit published since, when a read's pin finds the metas' words unchanged", async () => {
    // A failed commit's retry can leave in the file the very words of a meta a handle saw,
    // so after a read pins its commit (the slot lowered from none), the re-check also asks
    // the published word: a commit above the pinned one means a writer may have started
    // without seeing the pin, and the read must move to that commit. Here the words are made
    // to look unchanged; only the published word tells.
    await withWriter(async ({ w, folder, file }) => {
      const r = folder.open<string, Bytes>(enc, file);
      w.putSync('k', val(0, 'base'));
      expect(tagOf(r.getBinary('k'))).toBe('base');
      await new Promise((resolve) => setImmediate(resolve)); // the turn's pin is let go
      w.putSync('k', val(0, 'A'));
      const env = (r as unknown as { store: { env: object } }).store.env;
      const moved = vi.spyOn(env as { metaMoved: () => boolean }, 'metaMoved');
      moved.mockReturnValue(false);
      try {
        expect(tagOf(r.getBinary('k'))).toBe('A');
        expect(moved).toHaveBeenCalled();
      } finally {
        moved.mockRestore();
      }
    });
  });

  it('comes to the next writer: it builds on a commit it passed over, if that commit was left unpublished', async () => {
    // R's reads may stay at the commit before A (diedAfterFlush); R's own commit must build
    // on A, not overwrite it.
    await withWriter(async (t) => {
      const { w, file } = t;
      const { r, txnA } = diedAfterFlush(t);
      r.putSync('r', val(0, 'R'));
      expect(tagOf(r.getBinary('a'))).toBe('A');
      expect(tagOf(r.getBinary('r'))).toBe('R');
      expect(tagOf(w.getBinary('a'))).toBe('A');
      expect(readLockWord(file, H_PUBLISHED)).toBe(txnA + 1);
      writeLockWord(file, H_WRITER, 0, 4);
    });
  });

  it('is, for a handle waiting for it, the commit of a writer that died in its commit, from the next turn', async () => {
    // R passed A over (diedAfterFlush). With the lock free, R's next event-loop turn probes it
    // and reads A.
    await withWriter(async (t) => {
      const { file } = t;
      const { r, txnA } = diedAfterFlush(t);
      expect(tagOf(r.getBinary('a'))).toBe('none');
      await new Promise((resolve) => setImmediate(resolve));
      expect(tagOf(r.getBinary('a'))).toBe('A');
      expect(readLockWord(file, H_PUBLISHED)).toBe(txnA);
      writeLockWord(file, H_WRITER, 0, 4);
    });
  });

  it("is, for the handle that finds a dead writer's commit unflushed, the commit once that handle flushed it", async () => {
    await withWriter(async (t) => {
      const { file } = t;
      const { r, storage, txnA } = diedBeforeFlush(t);
      const ops: string[] = [];
      storage.setFaultHook((op) => ops.push(op));
      expect(tagOf(r.getBinary('a'))).toBe('A');
      expect(ops).toEqual(['sync']);
      expect(readLockWord(file, H_DURABLE)).toBe(txnA);
      expect(readLockWord(file, H_PUBLISHED)).toBe(txnA);
      // Made durable once: nobody flushes it again.
      const fresh = t.folder.open<string, Bytes>(enc, file);
      expect(tagOf(fresh.getBinary('a'))).toBe('A');
      expect(tagOf(r.getBinary('a'))).toBe('A');
      expect(ops).toEqual(['sync']);
      await r.close();
    });
  });

  it("is never, for a handle whose flush of a dead writer's commit failed, that commit", async () => {
    await withWriter(async (t) => {
      const { w, file } = t;
      const { r, storage, txnA } = diedBeforeFlush(t);
      const ops: string[] = [];
      storage.setFaultHook((op) => {
        ops.push(op);
        if (op === 'sync') throw new Error('EIO (injected)');
      });
      // The flush fails: R reads the commit before, and neither word moves.
      expect(tagOf(r.getBinary('a'))).toBe('none');
      expect(readLockWord(file, H_PUBLISHED)).toBe(txnA - 1);
      expect(readLockWord(file, H_DURABLE)).toBe(txnA - 1);
      // A later fdatasync may succeed without the pages the failed one dropped: R flushes
      // again neither at its next reads nor at its next turn, with the disk well again.
      for (let i = 0; i < 2_000; i++) expect(tagOf(r.getBinary('a'))).toBe('none');
      storage.setFaultHook((op) => ops.push(op));
      await new Promise((resolve) => setImmediate(resolve));
      expect(tagOf(r.getBinary('a'))).toBe('none');
      expect(ops).toEqual(['sync']);
      // A writer that builds on it (and flushes it: ensureDurableBase) publishes past it.
      w.putSync('b', val(0, 'B'));
      expect(tagOf(r.getBinary('a'))).toBe('A');
      expect(tagOf(r.getBinary('b'))).toBe('B');
      await r.close();
    });
  });

  it("is, for a read-only handle, a dead writer's unflushed commit as it is, which stays unpublished", async () => {
    await withWriter(async (t) => {
      const { file } = t;
      const { r, storage, txnA } = diedBeforeFlush(t, { readOnly: true });
      const ops: string[] = [];
      storage.setFaultHook((op) => ops.push(op));
      expect(tagOf(r.getBinary('a'))).toBe('A');
      expect(ops).toEqual([]);
      expect(readLockWord(file, H_DURABLE)).toBe(txnA - 1);
      expect(readLockWord(file, H_PUBLISHED)).toBe(txnA - 1);
      // So a handle that can flush still does, before it reads the commit.
      const rwStorage = MappedStorage.open(file);
      const rw = openOn<string, Bytes>(rwStorage, file, enc);
      const rwOps: string[] = [];
      rwStorage.setFaultHook((op) => rwOps.push(op));
      expect(tagOf(rw.getBinary('a'))).toBe('A');
      expect(rwOps).toEqual(['sync']);
      expect(readLockWord(file, H_DURABLE)).toBe(txnA);
      await rw.close();
      await r.close();
    });
  });

  it("is the commit before while a commit flushes, though the published word is above the file's", async () => {
    // A lock file kept while its data file was replaced (by a rename) holds a word above every
    // commit of the new file until its first writer resets it; a handle that read the word
    // before that reset once took a commit in its flush for published. The word is stored
    // here during the flush, as that handle saw it.
    await withWriter(async ({ w, during, folder, file }) => {
      putAll(w, 'base');
      const r = folder.open<string, Bytes>(enc, file);
      let inFlush: Record<string, number> = {};
      during(() => {
        writeLockWord(file, H_PUBLISHED, 1_000_000, 8);
        inFlush = tags((k) => r.getBinary(k));
      }, true);
      expect(() => putAll(w, 'A')).toThrow('the flush failed');
      expect(inFlush).toEqual({ base: N });
      putAll(w, 'B');
      expect(tags((k) => r.getBinary(k))).toEqual({ B: N });
    });
  });

  it('rests on a lock probe that never waits, and a word read whole or in halves alike', async () => {
    const folder = new ApiFolder();
    const file = folder.file();
    const a = LockFile.open(file, { maxReaders: 4 });
    const b = LockFile.open(file, { maxReaders: 4 });
    try {
      expect(a.tryLock()).toBe(true);
      let ran = false;
      expect(b.whileFree(() => (ran = true))).toBeUndefined();
      expect(ran).toBe(false);
      a.unlock();
      expect(b.whileFree(() => (a.tryLock() ? 'taken' : 'held'))).toBe('held');
      // The probe let go, and marked no writer.
      expect(b.writerRecorded()).toBe(false);
      expect(a.tryLock()).toBe(true);
      for (const id of [0, 7, 2 ** 32 - 1, 2 ** 32 + 5, 2 ** 50 + 3]) {
        a.setPublished(id);
        expect([b.publishedTxn(), b.publishedHint()]).toEqual([id, id]);
      }
      a.unlock();
    } finally {
      a.close();
      b.close();
      await folder.cleanup();
    }
  });
});
