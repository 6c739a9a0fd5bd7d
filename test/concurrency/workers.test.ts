// worker_threads of one process on one file: each worker opens its own handle (own mapping,
// own lock-file descriptor, own reader slot). Closing one worker's database, or ending the
// worker - even inside a write transaction, or while it holds a snapshot - never breaks the
// others.
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MapKVError, open } from '../../src/index';
import { MP_WORKER, readerSlots } from '../helpers/mp-spawn';
import { tempFolder } from '../helpers/temp-files';

let folder: ReturnType<typeof tempFolder>;
const workers: Worker[] = [];
beforeEach(() => {
  folder = tempFolder();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
  folder.remove();
});

function startWorker(data: Record<string, unknown>): Worker {
  const w = new Worker(MP_WORKER, { workerData: data });
  workers.push(w);
  return w;
}

function message<T>(w: Worker): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

const linux = fs.existsSync('/proc/thread-self');

describe('workers on one file', () => {
  it('each with its own handle: ending or closing one never breaks the others', async () => {
    const file = folder.file('workers.mkv');
    const db = open<string, unknown>(file, { sync: 'none', lockTimeout: 200 });
    const overwrite = (n: number): void => {
      for (let i = 0; i < n; i++) db.putSync(`key${i % 40}`, 'v'.repeat(400 + (i % 5)));
    };
    overwrite(100);

    // A worker holding a snapshot: its pin grows the file under overwrites. Once it is
    // terminated (without closing), its slot is reclaimed - its thread is gone - and the
    // file stops growing: six times the overwrites grow it less than the pinned ones did
    // (see readers.test.ts for why not a strict 'no growth at all').
    const holder = startWorker({ file, mode: 'hold-snapshot' });
    const { tid } = await message<{ tid: number }>(holder);
    const before = fs.statSync(file).size;
    overwrite(2000);
    const pinnedGrowth = fs.statSync(file).size - before;
    expect(pinnedGrowth).toBeGreaterThan(0);
    await holder.terminate();
    if (linux) {
      const held = (): boolean => readerSlots(file).some((s) => s.tid === tid);
      for (let i = 0; held(); i++) {
        if (i > 2_000) throw new Error("the ended worker's slot was never reclaimed");
        overwrite(20);
        await new Promise((r) => setTimeout(r, 5));
      }
      const reclaimedSize = fs.statSync(file).size;
      for (let round = 0; round < 6; round++) overwrite(2000);
      expect(fs.statSync(file).size - reclaimedSize).toBeLessThan(pinnedGrowth);
    }

    // A worker spinning inside a write transaction.
    const locker = startWorker({ file, mode: 'hold-lock', id: 'L' });
    await message(locker);
    expect(() => db.putSync('x', 1)).toThrow(expect.objectContaining({ code: 'ERR_LOCKED' }));

    // Ending the worker inside its write transaction frees the lock (Node closes a worker's
    // files, and with them its flock) and commits nothing of it.
    await locker.terminate();
    db.putSync('x', 1);
    expect(db.get('held')).toBeUndefined();

    // Workers that read and write alongside the main thread, and one that opens and closes.
    const busy = [1, 2].map((id) => startWorker({ file, mode: 'work', ms: 1500, id: `w${id}` }));
    const results = busy.map((w) =>
      message<{ writes: number; checks: number; violations: string[] }>(w),
    );
    const closer = startWorker({ file, mode: 'open-close' });
    await message(closer);
    await closer.terminate();
    for (let i = 0; i < 200; i++) {
      db.transactionSync((txn) => txn.put('total', ((txn.get('total') as number) ?? 0) + 1));
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    const done = await Promise.all(results);
    let writes = 200;
    for (const r of done) {
      expect(r.violations).toEqual([]);
      expect(r.writes).toBeGreaterThan(0);
      writes += r.writes;
    }
    expect(db.get('total')).toBe(writes);

    expect(db.check()).toEqual({ ok: true, problems: [] });
    await db.close();
  });

  it('ending a worker while its async commit flushes leaves the process and the lock alone', async () => {
    // The flush's completion ran while the worker's environment was being torn down, and
    // node-addon-api turned the promise it could no longer settle into a fatal error: the
    // whole process aborted (SIGABRT), in the first rounds of every run.
    const file = folder.file('flushing.mkv');
    const db = open<string, number>(file, { lockTimeout: 5_000 });
    for (let round = 0; round < 20; round++) {
      const w = startWorker({ file, mode: 'async-puts', id: `r${round}` });
      await message(w);
      await new Promise((r) => setTimeout(r, 2 + (round % 7) * 3));
      await w.terminate();
      db.putSync('main', round); // the ended worker's lock is free
    }
    expect(db.get('main')).toBe(19);
    expect(db.check()).toEqual({ ok: true, problems: [] });
    await db.close();
  });

  it('a closed handle gives its slot back at once', async () => {
    const file = folder.file('slots.mkv');
    const db = open(file, { maxReaders: 2 });
    const w = startWorker({ file, mode: 'open-close', maxReaders: 2 });
    await message(w);
    const second = open(file, { maxReaders: 2 });
    let error: unknown;
    try {
      open(file, { maxReaders: 2 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(MapKVError);
    expect((error as MapKVError).code).toBe('ERR_READERS_FULL');
    await Promise.all([db.close(), second.close()]);
    expect(readerSlots(file)).toEqual([]);
  });
});
