// backup(), stats(), check() and the package entry points (require and import of 'mapkv').
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

import { compactStep } from '../../src/backup';
import { systemError } from '../../src/errors';
import { Environment } from '../../src/txn/env';
import { open, type Database } from '../../src/index';
import {
  ApiFolder,
  REPO_ROOT,
  ensureDist,
  expectHealthy,
  key,
  nextTurn,
} from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

/** Every entry of the root and of the named sub-databases, as plain data. */
function dump(db: Database<any, any>, subs: string[]): Record<string, Array<[unknown, unknown]>> {
  const out: Record<string, Array<[unknown, unknown]>> = {
    '': [...db.range()].map((e) => [e.key, e.value]),
  };
  for (const name of subs) {
    const sub = db.openDB(name);
    out[name] = [...sub.range()].map((e): [unknown, unknown] => [e.key, e.value]);
  }
  return out;
}

/** A database with data in the root and in sub-databases 'users' and 'nums', with free pages. */
function populated(): Database<any, any> {
  const db = folder.open({ sync: 'none' });
  const users = db.openDB('users', { keyEncoding: 'string', valueEncoding: 'json' });
  const nums = db.openDB('nums', { keyEncoding: 'uint32', valueEncoding: 'binary' });
  db.transactionSync((txn) => {
    for (let i = 0; i < 2000; i++) txn.put(key(i), { i, pad: 'p'.repeat(i % 400) });
    for (let i = 0; i < 300; i++) txn.db(users).put(`user${i}`, { name: `n${i}`, tags: [i] });
    for (let i = 0; i < 100; i++) txn.db(nums).put(i, Buffer.alloc(i * 50, i));
    txn.put('big', Buffer.alloc(300_000, 9));
  });
  // Removals and rewrites leave free pages in the file.
  db.transactionSync((txn) => {
    for (let i = 0; i < 2000; i += 3) txn.remove(key(i));
    txn.remove('big');
    for (let i = 0; i < 300; i += 2) txn.db(users).put(`user${i}`, { name: `renamed${i}` });
  });
  return db;
}

describe('backup', () => {
  it('backup(path) and backup(path, {compact: true}) produce files that open with the same data, all sub-databases too', async () => {
    const subs = ['nums', 'users'];
    const db = populated();
    const expected = dump(db, subs);
    expect(db.stats().freePages).toBeGreaterThan(0);
    const plain = folder.file('backups/plain.mkv'); // the folder is created
    const compact = folder.file('backups/compact.mkv');
    await db.backup(plain);
    await db.backup(compact, { compact: true });
    // Sizes as the backups left them (the writes below grow the copies).
    const plainSize = fs.statSync(plain).size;
    const compactSize = fs.statSync(compact).size;
    for (const file of [plain, compact]) {
      const copy = folder.open({}, file);
      expect(dump(copy, subs)).toEqual(expected);
      expect(copy.openDB('users').keyEncoding).toBe('string');
      expect(copy.openDB('users').valueEncoding).toBe('json');
      expect(copy.openDB('nums').keyEncoding).toBe('uint32');
      expect(copy.stats().entries).toBe(db.stats().entries);
      expectHealthy(copy);
      // A copy is a normal database: it takes writes.
      copy.putSync('new', 1);
      expectHealthy(copy);
    }
    expect(compactSize).toBeLessThan(plainSize);
    expect(compactSize).toBeLessThan(db.stats().fileSize);
    expectHealthy(db);
  });

  it('a compact copy holds no free pages', async () => {
    const db = populated();
    const compact = folder.file('compact.mkv');
    await db.backup(compact, { compact: true });
    const copy = folder.open({ readOnly: true }, compact);
    expect(copy.stats().freePages).toBe(0);
    expect(copy.stats().pages).toBeLessThan(db.stats().pages);
  });

  it('a compact copy larger than a step is built in steps of bounded memory, and is the same data', async () => {
    const db = populated();
    const hash = db.openDB('hashed', { kind: 'hash', keyEncoding: 'string' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 3000; i++) txn.db(hash).put(`h${i}`, { i, pad: 'x'.repeat(i % 200) });
      txn.put('big2', Buffer.alloc(200_000, 7)); // an overflow run inside a step
    });
    const subs = ['hashed', 'nums', 'users'];
    const expected = dump(db, subs);
    const saved = compactStep.bytes;
    compactStep.bytes = 64 * 1024; // 16 pages: many steps, some inside each sub-database
    try {
      const file = folder.file('stepped.mkv');
      await db.backup(file, { compact: true });
      const copy = folder.open({ readOnly: true }, file);
      // A hash sub-database iterates in an order of its own hash key: compare as sets.
      const byKey = (d: Record<string, Array<[unknown, unknown]>>) => {
        d['hashed']!.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
        return d;
      };
      expect(byKey(dump(copy, subs))).toEqual(byKey(expected));
      expectHealthy(copy);
      // One commit per step: there were steps (one commit for the whole copy before).
      expect(copy.stats().txnId).toBeGreaterThan(10);
      // Each step costs a few free pages (the right edge the next step copies on write).
      expect(copy.stats().freePages).toBeLessThan(copy.stats().pages / 4);
    } finally {
      compactStep.bytes = saved;
    }
  });

  for (const pageSize of [16384, 65536]) {
    it(`keeps the page size ${pageSize} of the source, whatever the parity of the last txnId`, async () => {
      const db = folder.open({ pageSize });
      for (let commit = 0; commit < 2; commit++) {
        db.putSync('a', commit);
        const txnId = db.stats().txnId;
        for (const compact of [false, true]) {
          const file = folder.file(`copy-${txnId}-${compact}.mkv`);
          await db.backup(file, { compact });
          // Read-only first: a writable open of a misread copy could re-initialise it.
          const ro = open(file, { readOnly: true });
          try {
            expect(ro.stats().pageSize).toBe(pageSize);
            expect(ro.get('a')).toBe(commit);
          } finally {
            await ro.close();
          }
          const copy = folder.open({}, file);
          expect(copy.stats().pageSize).toBe(pageSize);
          expect(copy.get('a')).toBe(commit);
          await copy.close();
        }
      }
    });
  }

  it('a compact backup whose copy cannot be created closes the copy file (no fd leak)', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const backupFds = (): number =>
      fs.readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`).includes('.backup');
        } catch {
          return false; // the descriptor readdir itself used, closed by now
        }
      }).length;
    // A full disk fails the copy's first grow, inside Environment.open; the copy's file was
    // open by then and stayed open (one descriptor per failed backup, on a deleted file).
    const spy = vi.spyOn(Environment, 'open').mockImplementation(() => {
      throw systemError('ENOSPC', 'fallocate');
    });
    try {
      for (let i = 0; i < 3; i++) {
        await expect(db.backup(folder.file('copy.mkv'), { compact: true })).rejects.toThrow(
          expect.objectContaining({ code: 'ENOSPC' }),
        );
      }
    } finally {
      spy.mockRestore();
    }
    expect(backupFds()).toBe(0);
    expect(fs.readdirSync(folder.dir).filter((f) => f.endsWith('.backup'))).toEqual([]);
    await db.backup(folder.file('copy.mkv'), { compact: true });
    const copy = folder.open({ readOnly: true }, folder.file('copy.mkv'));
    expect(copy.get('a')).toBe(1);
  });

  it('overwrites an existing file at the target path', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const file = folder.file('copy.mkv');
    fs.writeFileSync(file, Buffer.alloc(1_000_000, 0xee));
    await db.backup(file);
    const copy = folder.open({}, file);
    expect([...copy.range()]).toEqual([{ key: 'a', value: 1 }]);
    expectHealthy(copy);
  });

  it('close() during a compact backup rejects it with ERR_CLOSED (not ERR_CORRUPT), leaving the file that was at the path', async () => {
    const db = folder.open();
    for (let i = 0; i < 10; i++) db.putSync(key(i), i);
    const file = folder.file('copy.mkv');
    fs.writeFileSync(file, 'an older copy');
    const backup = db.backup(file, { compact: true });
    const closing = db.close(); // lands while the backup awaits: the source goes away under it
    await expect(backup).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await closing;
    expect(fs.readFileSync(file, 'utf8')).toBe('an older copy');
    expect(fs.readdirSync(folder.dir).sort()).toEqual(['copy.mkv', 'db.mkv', 'db.mkv-lock']);
  });

  for (const compact of [false, true]) {
    it(`two backups${compact ? ' (compact)' : ''} to one path at once both resolve, and the path holds a whole copy`, async () => {
      // Both removed the path, then the loser of the exclusive create deleted the winner's
      // finished file on its way out: a backup resolved and no file was left.
      const db = folder.open({ sync: 'none' });
      db.transactionSync((txn) => {
        for (let i = 0; i < 3000; i++) txn.put(key(i), { i, pad: 'x'.repeat(i % 100) });
      });
      const file = folder.file('copy.mkv');
      const results = await Promise.allSettled([
        db.backup(file, { compact }),
        db.backup(file, { compact }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
      const copy = folder.open({ readOnly: true }, file);
      expect(copy.count()).toBe(3000);
      expect(copy.get(key(2999))).toEqual({ i: 2999, pad: 'x'.repeat(99) });
      expectHealthy(copy);
      await copy.close();
      expect(fs.readdirSync(folder.dir).filter((f) => f.includes('backup'))).toEqual([]);
    });
  }

  it('of an empty database opens as an empty database', async () => {
    const db = folder.open();
    for (const compact of [false, true]) {
      const file = folder.file(`empty-${compact}.mkv`);
      await db.backup(file, { compact });
      const copy = folder.open({}, file);
      expect(copy.count()).toBe(0);
      expectHealthy(copy);
    }
  });

  it('works on a read-only open', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    await db.close();
    const ro = folder.open({ readOnly: true });
    const file = folder.file('ro-copy.mkv');
    await ro.backup(file);
    const copy = folder.open({}, file);
    expect(copy.get('a')).toBe(1);
  });

  it("a backup to the database's own path is refused and loses no later write", async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const inode = fs.statSync(db.path).ino;
    let failure: unknown = null;
    await db.backup(db.path).catch((err: unknown) => {
      failure = err;
    });
    db.putSync('b', 2);
    await db.close();
    expect(fs.statSync(db.path).ino).toBe(inode);
    const again = folder.open();
    expect(again.get('a')).toBe(1);
    expect(again.get('b')).toBe(2);
    expect(failure).toMatchObject({ code: 'ERR_BAD_OPTION' });
  });

  for (const compact of [false, true]) {
    it(`a backup${compact ? ' (compact)' : ''} started while async puts continue equals the state at its start`, async () => {
      const db = folder.open<string, unknown>({ sync: 'none' });
      // Big enough that the copy takes many event-loop turns (1 MiB chunks / 10k entries).
      db.transactionSync((txn) => {
        for (let i = 0; i < 30_000; i++) txn.put(key(i, 6), { i, pad: 'x'.repeat(200) });
      });
      const atStart = [...db.range()];
      const file = folder.file(`live-${compact}.mkv`);
      const backup = db.backup(file, { compact });
      let done = false;
      void backup.then(
        () => (done = true),
        () => (done = true),
      );
      // Keep writing while the backup runs: overwrites, removes and inserts.
      let turn = 0;
      const writes: Promise<unknown>[] = [];
      while (!done && turn < 500) {
        for (let j = 0; j < 50; j++) {
          const i = (turn * 50 + j) % 30_000;
          writes.push(j % 5 === 0 ? db.remove(key(i, 6)) : db.put(key(i, 6), { i, turn }));
          writes.push(db.put(`new-${turn}-${j}`, turn));
        }
        turn++;
        await nextTurn();
      }
      await backup;
      await Promise.all(writes);
      expect(turn).toBeGreaterThan(0);
      const copy = folder.open<string, unknown>({ readOnly: true }, file);
      expect(copy.count()).toBe(atStart.length);
      expect([...copy.range()]).toEqual(atStart);
      expectHealthy(copy);
      expectHealthy(db);
      expect(db.stats().openSnapshots).toBe(0);
    });
  }
});

describe('stats', () => {
  it('reports numbers for every documented field, and the sync mode', () => {
    const db = folder.open();
    const s = db.stats();
    for (const field of [
      'pageSize',
      'fileSize',
      'pages',
      'freePages',
      'entries',
      'depth',
      'txnId',
      'openSnapshots',
      'maxKeySize',
      'segmentSize',
    ] as const) {
      expect(typeof s[field], field).toBe('number');
      expect(Number.isInteger(s[field]), field).toBe(true);
      expect(s[field], field).toBeGreaterThanOrEqual(0);
    }
    expect(s.sync).toBe('full');
    expect(s.pageSize).toBe(4096);
    expect(s.entries).toBe(0);
    expect(s.depth).toBe(0);
    expect(s.fileSize).toBe(fs.statSync(db.path).size);
    expect(s.pages * s.pageSize).toBeLessThanOrEqual(s.fileSize);
    expect(s.maxKeySize).toBeGreaterThan(100);
  });

  it('entries and txnId move as commits happen (and only then)', async () => {
    const db = folder.open();
    const t0 = db.stats().txnId;
    db.putSync('a', 1);
    expect(db.stats()).toMatchObject({ entries: 1, txnId: t0 + 1 });
    expect(db.stats().depth).toBeGreaterThanOrEqual(1);
    db.putSync('a', 2); // overwrite: same count
    expect(db.stats()).toMatchObject({ entries: 1, txnId: t0 + 2 });
    db.putSync('b', 2);
    expect(db.stats()).toMatchObject({ entries: 2, txnId: t0 + 3 });
    expect(db.removeSync('a')).toBe(true);
    expect(db.stats()).toMatchObject({ entries: 1, txnId: t0 + 4 });
    // Nothing changed: no commit.
    expect(db.removeSync('nope')).toBe(false);
    expect(db.stats().txnId).toBe(t0 + 4);
    db.transactionSync(() => undefined);
    expect(db.stats().txnId).toBe(t0 + 4);
    db.transactionSync((txn) => {
      for (let i = 0; i < 10; i++) txn.put(i, i);
    });
    expect(db.stats()).toMatchObject({ entries: 11, txnId: t0 + 5 });
    await Promise.all([db.put('c', 1), db.put('d', 1), db.remove('b')]);
    expect(db.stats()).toMatchObject({ entries: 12, txnId: t0 + 6 });
    // Sub-database entries are not the root's.
    db.openDB('s').putSync('x', 1);
    expect(db.stats().entries).toBe(12);
    const last = db.stats().txnId;
    expect(last).toBeGreaterThan(t0 + 6);
    await db.close();
    const again = folder.open();
    expect(again.stats()).toMatchObject({ entries: 12, txnId: last });
  });

  it('fileSize follows the file and depth grows with the tree', () => {
    const db = folder.open({ sync: 'none' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 20_000; i++) txn.put(key(i, 6), 'v'.repeat(40));
    });
    const s = db.stats();
    expect(s.entries).toBe(20_000);
    expect(s.depth).toBeGreaterThanOrEqual(2);
    expect(s.fileSize).toBe(fs.statSync(db.path).size);
    expect(s.pages * s.pageSize).toBeLessThanOrEqual(s.fileSize);
    expect(s.freePages).toBeLessThan(s.pages);
  });

  it('reports the page size of the file and the maxKeySize tied to it', () => {
    const small = folder.open({ pageSize: 4096 }, folder.file('a.mkv'));
    const large = folder.open({ pageSize: 65536 }, folder.file('b.mkv'));
    expect(small.stats().pageSize).toBe(4096);
    expect(large.stats().pageSize).toBe(65536);
    expect(large.stats().maxKeySize).toBeGreaterThan(small.stats().maxKeySize);
  });

  it("the README's Limits table: the largest key per page size, taken and one byte more refused", () => {
    const table: Array<[number, number]> = [
      [4096, 1003],
      [8192, 2027],
      [16384, 4075],
      [32768, 8171],
      [65536, 16363],
    ];
    for (const [pageSize, largest] of table) {
      const db = folder.open<Uint8Array, number>(
        { pageSize, keyEncoding: 'binary' },
        folder.file(`k${pageSize}.mkv`),
      );
      expect(db.stats().maxKeySize).toBe(largest);
      const hash = db.openDB<Uint8Array, number>('h', { kind: 'hash', keyEncoding: 'binary' });
      for (const target of [db, hash]) {
        target.putSync(new Uint8Array(largest).fill(7), 1);
        expect(target.get(new Uint8Array(largest).fill(7))).toBe(1);
        expect(() => target.putSync(new Uint8Array(largest + 1), 2)).toThrow(
          expect.objectContaining({ code: 'ERR_KEY_TOO_LARGE' }),
        );
      }
    }
  });
});

describe('check', () => {
  it('returns { ok: true, problems: [] } on a new file and after heavy use', async () => {
    const db = folder.open({ sync: 'none' });
    expect(db.check()).toEqual({ ok: true, problems: [] });
    const s = db.openDB('s');
    for (let round = 0; round < 5; round++) {
      db.transactionSync((txn) => {
        for (let i = 0; i < 2000; i++) {
          const k = key((i * 7 + round * 13) % 3000);
          if ((i + round) % 4 === 0) txn.remove(k);
          else txn.put(k, 'v'.repeat((i * round) % 700));
          txn.db(s).put(k, round);
        }
      });
      expect(db.check()).toEqual({ ok: true, problems: [] });
    }
    await db.close();
    const again = folder.open({ readOnly: true });
    expect(again.check()).toEqual({ ok: true, problems: [] });
  });
});

describe('package entry', () => {
  beforeAll(() => {
    ensureDist();
  });

  it("require('mapkv') exposes open and MapKVError", () => {
    const r = spawnSync(
      process.execPath,
      ['-e', "const m=require('mapkv'); console.log(typeof m.open, typeof m.MapKVError)"],
      { cwd: REPO_ROOT, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('function function');
  });

  it("import { open } from 'mapkv' works from an ES module", () => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import {open, MapKVError} from 'mapkv'; console.log(typeof open, typeof MapKVError)",
      ],
      { cwd: REPO_ROOT, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('function function');
  });

  it('cloning or posting a handle, snapshot, view, transaction or iterator throws; the process lives', () => {
    // structuredClone copied the mapping's ArrayBuffers byte by byte, read past the end of the
    // file and the process died of SIGBUS (exit 135). In a child, so that a crash is a result.
    const script = `
      const { open } = require('mapkv');
      const v8 = require('node:v8');
      const { MessageChannel } = require('node:worker_threads');
      const db = open(process.argv[1]);
      db.putSync('a', 1);
      const sub = db.openDB('s');
      const hash = db.openDB('h', { kind: 'hash' });
      const snap = db.snapshot();
      const objects = { db, sub, hash, snap, view: snap.db(sub), iterator: db.range()[Symbol.iterator]() };
      db.transactionSync((txn) => { objects.txn = txn; });
      const port = new MessageChannel().port1;
      const out = [];
      for (const [name, o] of Object.entries(objects)) {
        for (const [how, fn] of [['clone', structuredClone], ['serialize', v8.serialize], ['post', (x) => port.postMessage(x)]]) {
          try { fn(o); out.push(name + ' ' + how + ' copied'); } catch (e) { out.push(name + ' ' + how + ' ' + e.name); }
        }
      }
      console.log(out.join('\\n'));
      port.close();
    `;
    const r = spawnSync(process.execPath, ['-e', script, folder.file('clone.mkv')], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(r.signal).toBe(null);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(7 * 3);
    for (const line of lines) expect(line).toMatch(/ (DataCloneError|Error)$/);
  });

  it('the built package opens a file, writes, reads and throws MapKVError instances', () => {
    const file = folder.file('pkg.mkv');
    const script = `
      const { open, MapKVError } = require('mapkv');
      const db = open(process.argv[1]);
      db.putSync('a', { b: 1 });
      let code = null;
      try { db.putSync(undefined, 1); } catch (e) { code = e instanceof MapKVError && e.code; }
      console.log(JSON.stringify([db.get('a'), code]));
      db.close();
    `;
    const r = spawnSync(process.execPath, ['-e', script, file], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([{ b: 1 }, 'ERR_BAD_KEY']);
    const db = open(file, { readOnly: true });
    try {
      expect(db.get('a')).toEqual({ b: 1 });
    } finally {
      void db.close();
    }
  });
});
