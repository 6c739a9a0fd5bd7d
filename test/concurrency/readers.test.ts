// The reader table across processes: a snapshot in another process holds while the writer
// commits, a SIGKILLed reader's slot is reclaimed (and stops pinning space), and a full table
// is a clear ERR_READERS_FULL.
import * as fs from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MapKVError, open } from '../../src/index';
import { Child, readerPids } from '../helpers/mp-spawn';
import { tempFolder } from '../helpers/temp-files';

let folder: ReturnType<typeof tempFolder>;
const children: Child[] = [];
beforeEach(() => {
  folder = tempFolder();
});
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
  folder.remove();
});

function start(...args: Array<string | number>): Child {
  const c = Child.start(...args);
  children.push(c);
  return c;
}

describe('a reader in another process', () => {
  it('keeps its snapshot, and checks it, while the writer commits 10,000 times', async () => {
    const file = folder.file('long.mkv');
    const db = open<string, unknown>(file, { sync: 'none' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 200; i++) txn.put(`key${i}`, { i, text: `first ${i}`.repeat(20) });
    });
    const reader = start('long-reader', file);
    const ready = (await reader.line('READY ')).split(' ');
    expect(Number(ready[1])).toBe(db.stats().txnId);
    expect(Number(ready[2])).toBe(200);

    for (let round = 1; round <= 10_000; round++) {
      if (round % 2 === 0) {
        db.putSync(`key${round % 200}`, { round, text: `round ${round}`.repeat(20) });
      } else {
        db.transactionSync((txn) => {
          txn.put('round', round);
          txn.remove(`key${(round * 7) % 200}`);
          txn.put(`key${(round * 7) % 200}`, { round });
        });
      }
      // Let the reader's checks interleave with the commits.
      if (round % 500 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    reader.endInput();
    const result = await reader.result<{ checks: number; violations: string[]; latest: number }>();
    expect(result.violations).toEqual([]);
    expect(result.checks).toBeGreaterThan(1);
    // After closing its snapshot, the reader's next read saw the writer's last commit.
    expect(result.latest).toBe(9_999);
    expect(db.check()).toEqual({ ok: true, problems: [] });
    await db.close();
  });
});

describe('a reader killed with SIGKILL while it holds a snapshot', () => {
  it('has its slot reclaimed, and the file then stops growing under overwrites', async () => {
    const file = folder.file('killed.mkv');
    const db = open<string, string>(file, { sync: 'none' });
    const overwrite = (n: number): void => {
      for (let i = 0; i < n; i++) db.putSync(`key${i % 50}`, 'v'.repeat(300 + (i % 7)));
    };
    overwrite(200);
    const reader = start('hold-snapshot', file);
    const pid = Number((await reader.line('READY ')).split(' ')[2]);
    expect(readerPids(file)).toContain(pid);

    // The pinned snapshot keeps every page it reaches: overwrites must grow the file.
    const pinnedSize = fs.statSync(file).size;
    overwrite(2000);
    const pinnedGrowth = fs.statSync(file).size - pinnedSize;
    expect(pinnedGrowth).toBeGreaterThan(0);

    await reader.kill('SIGKILL');
    // Writers reclaim the dead slot when it holds reuse back (liveness is re-checked at most
    // every 100 ms per slot), so write until it is gone.
    for (let i = 0; readerPids(file).includes(pid); i++) {
      if (i > 2_000) throw new Error('the dead reader slot was never reclaimed');
      overwrite(20);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Pages freed meanwhile become reusable, and the file stops growing: six times the
    // overwrites grow it less than the pinned ones did (a surviving pin would grow it about
    // six times as much). Not a strict 'no growth at all': after a long pin the allocator may
    // still take a last growth step while it works through the big freelist.
    const reclaimedSize = fs.statSync(file).size;
    for (let round = 0; round < 6; round++) overwrite(2000);
    expect(fs.statSync(file).size - reclaimedSize).toBeLessThan(pinnedGrowth);
    expect(db.check()).toEqual({ ok: true, problems: [] });
    await db.close();
  });

  it('has its slot reclaimed by the next open', async () => {
    const file = folder.file('reopen.mkv');
    await open(file, { maxReaders: 1 }).close();
    const reader = start('hold-snapshot', file);
    const pid = Number((await reader.line('READY ')).split(' ')[2]);
    await reader.kill('SIGKILL');
    expect(readerPids(file)).toEqual([pid]);
    // The table has one slot: this open succeeds only by reclaiming the dead reader's.
    const db = open(file);
    expect(readerPids(file)).toEqual([process.pid]);
    await db.close();
  });
});

describe('maxReaders', () => {
  it('a full table fails open with ERR_READERS_FULL, naming the option', async () => {
    const file = folder.file('full.mkv');
    const a = open(file, { maxReaders: 2 });
    const holder = start('open-hold', file, 2);
    await holder.line('READY ');
    let error: unknown;
    try {
      open(file, { maxReaders: 2 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(MapKVError);
    expect((error as MapKVError).code).toBe('ERR_READERS_FULL');
    expect((error as MapKVError).message).toContain('maxReaders');
    // Closing a handle frees its slot...
    await a.close();
    const b = open(file, { maxReaders: 2 });
    // ...and asking for more slots grows the table for everyone.
    const c = open(file, { maxReaders: 3 });
    expect(() => open(file, { maxReaders: 3 })).toThrow(
      expect.objectContaining({ code: 'ERR_READERS_FULL' }),
    );
    await Promise.all([b.close(), c.close()]);
  });

  it('a handle dropped without close() is collected, and frees its slot and descriptors', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const file = folder.file('dropped.mkv');
    const kept = open<string, number>(file, { maxReaders: 2 });
    kept.putSync('x', 1);
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    let probe: WeakRef<object> | undefined;
    const dropSome = (): void => {
      for (let i = 0; i < 20; i++) {
        const db = open<string, number>(file, { maxReaders: 2 });
        expect(db.get('x')).toBe(1);
        // A put commits through this handle's writer lock (its in-flight hook included).
        db.putSync(`d${i}`, i);
        probe ??= new WeakRef(db);
      }
    };
    // Each dropped handle must go before the next can open: 2 slots, one of them kept.
    expect(() => dropSome()).toThrow(expect.objectContaining({ code: 'ERR_READERS_FULL' }));
    // (No deref() in this loop: a WeakRef keeps its target alive for the rest of the job.)
    for (let round = 0; round < 20 && fds() > before; round++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(fds()).toBe(before); // the lock file's and the data file's descriptors
    expect(probe?.deref()).toBeUndefined();
    const again = open<string, number>(file, { maxReaders: 2 }); // its slot was freed
    expect(again.get('d0')).toBe(0);
    await Promise.all([again.close(), kept.close()]);
  });

  it('defaults: a 126-slot reader table (a 4 KiB lock file) and a 10 s lockTimeout', async () => {
    const file = folder.file('defaults.mkv');
    const db = open(file);
    expect(fs.statSync(`${file}-lock`).size).toBe(64 + 126 * 32);
    expect(db.store.env.lockTimeout).toBe(10_000);
    await db.close();
  });

  it('a snapshot dropped without close() is collected and unpins its commit', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const db = open<string, number>(folder.file('snap.mkv'));
    db.putSync('x', 1);
    const take = (): void => {
      expect(db.snapshot().get('x')).toBe(1);
    };
    take();
    expect(db.stats().openSnapshots).toBe(1);
    for (let round = 0; round < 20 && db.stats().openSnapshots > 0; round++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(db.stats().openSnapshots).toBe(0);
    await db.close();
  });

  it('rejects a bad maxReaders or lockTimeout with ERR_BAD_OPTION', () => {
    const file = folder.file('bad.mkv');
    for (const maxReaders of [0, 1.5, -1, 1e9, '3']) {
      expect(() => open(file, { maxReaders } as never)).toThrow(
        expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
      );
    }
    for (const lockTimeout of [-1, NaN, '10']) {
      expect(() => open(file, { lockTimeout } as never)).toThrow(
        expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
      );
    }
  });
});
