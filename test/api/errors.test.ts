// Every MapKVError code the public API raises, each proved by a call that raises it, and each
// failing call proved to leave the file byte-for-byte as it was.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MapKVError, open, type Database } from '../../src/index';
import { crc32c } from '../../src/format/crc32c';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import {
  ApiFolder,
  bytesOf,
  expectCode,
  expectHealthy,
  expectRejectCode,
  expectUnchanged,
} from '../helpers/api-helpers';

let folder: ApiFolder;
let file: string;

beforeEach(() => {
  folder = new ApiFolder();
  file = folder.file();
});

afterEach(async () => {
  await folder.cleanup();
});

/** A database with a few entries in the root and in a sub-database, closed. */
async function seedFile(options: Parameters<ApiFolder['open']>[0] = {}): Promise<void> {
  const db = folder.open(options);
  db.putSync('a', 1);
  db.putSync('b', { two: 2 });
  db.openDB('sub').putSync('x', 'y');
  await db.close();
}

describe('MapKVError', () => {
  it('is a subclass of Error with name MapKVError and a string code', () => {
    const db = folder.open();
    const err = expectCode(() => db.putSync(undefined as never, 1), 'ERR_BAD_KEY');
    expect(err.name).toBe('MapKVError');
    expect(typeof err.message).toBe('string');
    expect(err.message.length).toBeGreaterThan(0);
  });
});

describe('ERR_CLOSED', () => {
  it('is thrown by every call on a closed database, and close() is idempotent', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const sub = db.openDB('sub');
    sub.putSync('s', 1);
    await db.close();
    await db.close(); // idempotent: resolves again
    const before = bytesOf(file);

    expectCode(() => db.get('a'), 'ERR_CLOSED');
    expectCode(() => db.getBinary('a'), 'ERR_CLOSED');
    expectCode(() => db.has('a'), 'ERR_CLOSED');
    expectCode(() => db.putSync('a', 2), 'ERR_CLOSED');
    expectCode(() => db.removeSync('a'), 'ERR_CLOSED');
    expectCode(() => db.transactionSync(() => 1), 'ERR_CLOSED');
    expectCode(() => db.snapshot(), 'ERR_CLOSED');
    expectCode(() => [...db.range()], 'ERR_CLOSED');
    expectCode(() => [...db.keys()], 'ERR_CLOSED');
    expectCode(() => [...db.values()], 'ERR_CLOSED');
    expectCode(() => db.count(), 'ERR_CLOSED');
    expectCode(() => db.count({ start: 'a' }), 'ERR_CLOSED');
    expectCode(() => db.openDB('sub'), 'ERR_CLOSED');
    expectCode(() => db.stats(), 'ERR_CLOSED');
    expectCode(() => db.check(), 'ERR_CLOSED');
    await expectRejectCode(db.put('a', 2), 'ERR_CLOSED');
    await expectRejectCode(db.remove('a'), 'ERR_CLOSED');
    await expectRejectCode(
      db.transaction(() => 1),
      'ERR_CLOSED',
    );
    await expectRejectCode(db.backup(folder.file('copy.mkv')), 'ERR_CLOSED');

    // A sub-database handle opened before the close is closed too.
    expectCode(() => sub.get('s'), 'ERR_CLOSED');
    expectCode(() => sub.putSync('s', 2), 'ERR_CLOSED');
    expectCode(() => [...sub.range()], 'ERR_CLOSED');
    await expectRejectCode(sub.put('s', 2), 'ERR_CLOSED');

    expectUnchanged(file, before);
    expect(fs.existsSync(folder.file('copy.mkv'))).toBe(false);
  });

  it('close() returns the same settled result to every caller and commits writes queued before it', async () => {
    const db = folder.open();
    const put = db.put('queued', 42);
    const c1 = db.close();
    const c2 = db.close();
    await Promise.all([put, c1, c2]);
    const again = open(file);
    try {
      expect(again.get('queued')).toBe(42);
    } finally {
      await again.close();
    }
  });

  it('is thrown by writes started after close() was called, before it resolves', async () => {
    const db = folder.open();
    const queued = db.put('queued', 1);
    const closing = db.close();
    // These used to commit while close() drained the queue: written after "closed".
    expectCode(() => db.putSync('late', 2), 'ERR_CLOSED');
    expectCode(() => db.transactionSync((txn) => txn.put('late', 3)), 'ERR_CLOSED');
    await expectRejectCode(db.put('late', 4), 'ERR_CLOSED');
    await expectRejectCode(
      db.transaction((txn) => txn.put('late', 5)),
      'ERR_CLOSED',
    );
    // openDB of a new name commits it: a write too (it used to commit here).
    expectCode(() => db.openDB('late-sub', { kind: 'hash' }), 'ERR_CLOSED');
    await Promise.all([queued, closing]);
    const again = open(file);
    try {
      expect(again.get('queued')).toBe(1);
      expect(again.has('late')).toBe(false);
      expect(again.openDB('late-sub').get('k')).toBeUndefined(); // a btree: never created
      expect(again.openDB('late-sub', { kind: 'btree' }).count()).toBe(0);
    } finally {
      await again.close();
    }
  });

  it('is thrown by a snapshot and by an iterator whose database was closed', async () => {
    const db = folder.open();
    for (let i = 0; i < 10; i++) db.putSync(i, i);
    const snap = db.snapshot();
    const it1 = db.range()[Symbol.iterator]();
    expect(it1.next().value).toEqual({ key: 0, value: 0 });
    await db.close();
    expectCode(() => snap.get(1), 'ERR_CLOSED');
    expectCode(() => it1.next(), 'ERR_CLOSED');
    snap.close(); // closing a snapshot of a closed database does not throw
  });

  it('rejects a backup in progress when the database closes under it and leaves no partial copy', async () => {
    const db = folder.open({ sync: 'none' });
    const big = Buffer.alloc(64 * 1024, 7);
    db.transactionSync((txn) => {
      for (let i = 0; i < 200; i++) txn.put(i, big);
    });
    const copy = folder.file('partial.mkv');
    const backup = db.backup(copy);
    const closing = db.close();
    let failure: unknown = null;
    await backup.catch((err: unknown) => {
      failure = err;
    });
    await closing;
    if (failure !== null) {
      expect(failure).toBeInstanceOf(MapKVError);
      expect((failure as MapKVError).code).toBe('ERR_CLOSED');
      expect(fs.existsSync(copy)).toBe(false);
    } else {
      // The copy finished before the close: then it must be a whole, valid file.
      const restored = open(copy, { readOnly: true });
      try {
        expect(restored.count()).toBe(200);
        expectHealthy(restored);
      } finally {
        await restored.close();
      }
    }
  });
});

describe('ERR_READ_ONLY', () => {
  it('is thrown by every write on a readOnly open, and the file is unchanged', async () => {
    await seedFile();
    const before = bytesOf(file);
    const db = folder.open({ readOnly: true });
    expect(db.get('a')).toBe(1);
    const sub = db.openDB('sub');
    expect(sub.get('x')).toBe('y');

    expectCode(() => db.putSync('a', 2), 'ERR_READ_ONLY');
    expectCode(() => db.removeSync('a'), 'ERR_READ_ONLY');
    expectCode(() => db.transactionSync((txn) => txn.put('a', 3)), 'ERR_READ_ONLY');
    expectCode(() => sub.putSync('x', 'z'), 'ERR_READ_ONLY');
    expectCode(() => sub.removeSync('x'), 'ERR_READ_ONLY');
    await expectRejectCode(db.put('a', 2), 'ERR_READ_ONLY');
    await expectRejectCode(db.remove('a'), 'ERR_READ_ONLY');
    await expectRejectCode(
      db.transaction((txn) => txn.put('a', 4)),
      'ERR_READ_ONLY',
    );
    await expectRejectCode(sub.put('x', 'w'), 'ERR_READ_ONLY');

    // A sub-database missing from the file opens empty, and writes to it are refused.
    const missing = db.openDB('missing');
    expect(missing.get('q')).toBeUndefined();
    expect(missing.count()).toBe(0);
    expectCode(() => missing.putSync('q', 1), 'ERR_READ_ONLY');

    expect(db.get('a')).toBe(1);
    expect(db.get('b')).toEqual({ two: 2 });
    expectHealthy(db);
    await db.close();
    expectUnchanged(file, before);
  });

  it('a readOnly open of a missing file throws a Node-shaped system error and creates nothing', () => {
    const missing = folder.file('nope/missing.mkv');
    const err = (() => {
      try {
        open(missing, { readOnly: true });
      } catch (e) {
        return e as NodeJS.ErrnoException;
      }
      throw new Error('open did not throw');
    })();
    expect(err.code).toBe('ENOENT');
    expect(typeof err.syscall).toBe('string');
    expect(err.path).toBe(missing);
    expect(fs.existsSync(missing)).toBe(false);
  });
});

describe('ERR_KEY_TOO_LARGE', () => {
  for (const pageSize of [4096, 65536]) {
    it(`refuses a key one byte over stats().maxKeySize at pageSize ${pageSize} and writes nothing`, async () => {
      const bin = folder.open(
        { pageSize, keyEncoding: 'binary' },
        folder.file(`bin-${pageSize}.mkv`),
      );
      const binFile = bin.path;
      const max = bin.stats().maxKeySize;
      expect(max).toBeGreaterThan(0);
      expect(max).toBeLessThan(pageSize);
      // The largest key is accepted and reads back.
      const ok = Buffer.alloc(max, 0xab);
      bin.putSync(ok, 'max');
      expect(bin.get(ok)).toBe('max');
      const before = bytesOf(binFile);
      const stats = bin.stats();

      const big = Buffer.alloc(max + 1, 0xcd);
      expectCode(() => bin.putSync(big, 'x'), 'ERR_KEY_TOO_LARGE');
      expectCode(() => bin.removeSync(big), 'ERR_KEY_TOO_LARGE');
      expectCode(() => bin.transactionSync((txn) => txn.put(big, 'x')), 'ERR_KEY_TOO_LARGE');
      await expectRejectCode(bin.put(big, 'x'), 'ERR_KEY_TOO_LARGE');
      await expectRejectCode(
        bin.transaction((txn) => txn.put(big, 'x')),
        'ERR_KEY_TOO_LARGE',
      );
      expectCode(() => bin.putSync(Buffer.alloc(max * 4, 1), 'x'), 'ERR_KEY_TOO_LARGE');
      expectUnchanged(binFile, before);
      expect(bin.stats().txnId).toBe(stats.txnId);
      expect(bin.count()).toBe(1);

      // Same limit through the default 'ordered' encoding: a string key's encoding is one
      // tag byte plus its UTF-8, so max - 1 characters fit and max do not.
      const ord = folder.open({ pageSize }, folder.file(`ord-${pageSize}.mkv`));
      expect(ord.stats().maxKeySize).toBe(max);
      ord.putSync('x'.repeat(max - 1), 1);
      const ordBefore = bytesOf(ord.path);
      expectCode(() => ord.putSync('x'.repeat(max), 2), 'ERR_KEY_TOO_LARGE');
      expectCode(() => ord.putSync(['x'.repeat(max)], 2), 'ERR_KEY_TOO_LARGE');
      await expectRejectCode(ord.put('é'.repeat(max), 2), 'ERR_KEY_TOO_LARGE');
      expectUnchanged(ord.path, ordBefore);
      expect(ord.get('x'.repeat(max - 1))).toBe(1);
      expectHealthy(ord);
      expectHealthy(bin);
    });
  }

  it('refuses a too-large key in a sub-database the same way', () => {
    const db = folder.open();
    const sub = db.openDB('s', { keyEncoding: 'string' });
    const max = db.stats().maxKeySize;
    sub.putSync('y'.repeat(max), 1);
    const before = bytesOf(file);
    expectCode(() => sub.putSync('y'.repeat(max + 1), 2), 'ERR_KEY_TOO_LARGE');
    expectUnchanged(file, before);
    expect(sub.count()).toBe(1);
  });
});

describe('ERR_BAD_KEY', () => {
  it("refuses undefined, symbols, functions, plain objects and NaN as 'ordered' keys", async () => {
    const db = folder.open();
    db.putSync('ok', 1);
    const before = bytesOf(file);
    const bad: unknown[] = [
      undefined,
      Symbol('s'),
      () => 1,
      { a: 1 },
      NaN,
      [1, undefined],
      [{}],
      '\ud800',
    ];
    for (const k of bad) {
      expectCode(() => db.putSync(k as never, 1), 'ERR_BAD_KEY');
      expectCode(() => db.get(k as never), 'ERR_BAD_KEY');
      expectCode(() => db.has(k as never), 'ERR_BAD_KEY');
      expectCode(() => db.removeSync(k as never), 'ERR_BAD_KEY');
      expectCode(() => db.transactionSync((txn) => txn.put(k as never, 1)), 'ERR_BAD_KEY');
      await expectRejectCode(db.put(k as never, 1), 'ERR_BAD_KEY');
      // (An undefined bound means "no bound", so only defined bad keys are refused there.)
      if (k !== undefined) expectCode(() => db.range({ start: k as never }), 'ERR_BAD_KEY');
    }
    expectUnchanged(file, before);
    expect(db.count()).toBe(1);
  });

  it("refuses a number as a 'string' key", async () => {
    const db = folder.open({ keyEncoding: 'string' });
    db.putSync('1', 1);
    const before = bytesOf(file);
    expectCode(() => db.putSync(1 as never, 1), 'ERR_BAD_KEY');
    expectCode(() => db.get(1 as never), 'ERR_BAD_KEY');
    expectCode(() => db.putSync(null as never, 1), 'ERR_BAD_KEY');
    expectCode(() => db.putSync(Buffer.from('x') as never, 1), 'ERR_BAD_KEY');
    await expectRejectCode(db.put(1 as never, 1), 'ERR_BAD_KEY');
    expectUnchanged(file, before);
  });

  it("refuses a string, -1, 2**32 and fractions as 'uint32' keys", async () => {
    const db = folder.open({ keyEncoding: 'uint32' });
    db.putSync(0, 'zero');
    db.putSync(2 ** 32 - 1, 'max');
    const before = bytesOf(file);
    for (const k of ['1', -1, 2 ** 32, 1.5, NaN, Infinity, 1n, null]) {
      expectCode(() => db.putSync(k as never, 1), 'ERR_BAD_KEY');
      expectCode(() => db.get(k as never), 'ERR_BAD_KEY');
      await expectRejectCode(db.put(k as never, 1), 'ERR_BAD_KEY');
    }
    expectUnchanged(file, before);
    expect(db.get(2 ** 32 - 1)).toBe('max');
  });

  it("refuses a string as a 'binary' key", () => {
    const db = folder.open({ keyEncoding: 'binary' });
    db.putSync(Buffer.from('k'), 1);
    const before = bytesOf(file);
    expectCode(() => db.putSync('k' as never, 1), 'ERR_BAD_KEY');
    expectCode(() => db.putSync([1, 2] as never, 1), 'ERR_BAD_KEY');
    expectUnchanged(file, before);
  });
});

describe('ERR_BAD_VALUE', () => {
  it('refuses undefined, a function and a symbol as msgpack values', async () => {
    const db = folder.open();
    db.putSync('k', 'v');
    const before = bytesOf(file);
    for (const v of [undefined, () => 1, Symbol('v')]) {
      expectCode(() => db.putSync('k', v), 'ERR_BAD_VALUE');
      expectCode(() => db.putSync('new', v), 'ERR_BAD_VALUE');
      expectCode(() => db.transactionSync((txn) => txn.put('k', v)), 'ERR_BAD_VALUE');
      await expectRejectCode(db.put('k', v), 'ERR_BAD_VALUE');
      await expectRejectCode(
        db.transaction((txn) => txn.put('k', v)),
        'ERR_BAD_VALUE',
      );
    }
    expectUnchanged(file, before);
    expect(db.get('k')).toBe('v');
    expect(db.has('new')).toBe(false);
  });

  it("refuses a number under valueEncoding 'string' and a string under 'binary'", async () => {
    const s = folder.open({ valueEncoding: 'string' }, folder.file('s.mkv'));
    s.putSync('k', 'text');
    const sBefore = bytesOf(s.path);
    expectCode(() => s.putSync('k', 1 as never), 'ERR_BAD_VALUE');
    expectCode(() => s.putSync('k', undefined as never), 'ERR_BAD_VALUE');
    expectCode(() => s.putSync('k', { a: 1 } as never), 'ERR_BAD_VALUE');
    await expectRejectCode(s.put('k', 1 as never), 'ERR_BAD_VALUE');
    expectUnchanged(s.path, sBefore);

    const b = folder.open({ valueEncoding: 'binary' }, folder.file('b.mkv'));
    b.putSync('k', Buffer.from([1, 2, 3]));
    const bBefore = bytesOf(b.path);
    expectCode(() => b.putSync('k', 'text' as never), 'ERR_BAD_VALUE');
    expectCode(() => b.putSync('k', [1, 2, 3] as never), 'ERR_BAD_VALUE');
    expectCode(() => b.putSync('k', undefined as never), 'ERR_BAD_VALUE');
    await expectRejectCode(b.put('k', 'text' as never), 'ERR_BAD_VALUE');
    expectUnchanged(b.path, bBefore);
  });

  it("refuses undefined and functions under valueEncoding 'json'", () => {
    const db = folder.open({ valueEncoding: 'json' });
    db.putSync('k', { a: 1 });
    const before = bytesOf(file);
    expectCode(() => db.putSync('k', undefined), 'ERR_BAD_VALUE');
    expectCode(() => db.putSync('k', () => 1), 'ERR_BAD_VALUE');
    expectCode(() => db.putSync('k', 1n), 'ERR_BAD_VALUE');
    expectUnchanged(file, before);
  });
});

describe('ERR_BAD_OPTION', () => {
  const badOpens: Array<[string, Record<string, unknown>]> = [
    ['an unknown option', { pageSzie: 4096 }],
    ['pageSize 1000', { pageSize: 1000 }],
    ['pageSize 3000', { pageSize: 3000 }],
    ['pageSize 131072', { pageSize: 131072 }],
    ['pageSize 2048', { pageSize: 2048 }],
    ["sync 'maybe'", { sync: 'maybe' }],
    ["keyEncoding 'nope'", { keyEncoding: 'nope' }],
    ["valueEncoding 'nope'", { valueEncoding: 'nope' }],
    ["readOnly 'yes'", { readOnly: 'yes' }],
  ];
  for (const [what, options] of badOpens) {
    it(`open() refuses ${what} and creates no file`, () => {
      const target = folder.file(`sub/${what.replace(/\W+/g, '_')}.mkv`);
      expectCode(() => open(target, options as never), 'ERR_BAD_OPTION');
      expect(fs.existsSync(target)).toBe(false);
    });
  }

  it('open() with a bad option leaves an existing file unchanged', async () => {
    await seedFile();
    const before = bytesOf(file);
    expectCode(() => open(file, { pageSize: 3000 }), 'ERR_BAD_OPTION');
    expectCode(() => open(file, { bogus: true } as never), 'ERR_BAD_OPTION');
    expectUnchanged(file, before);
  });

  it('range, keys, values and count refuse limit -1 and a non-boolean reverse', () => {
    const db = folder.open();
    db.putSync('a', 1);
    expectCode(() => db.range({ limit: -1 }), 'ERR_BAD_OPTION');
    expectCode(() => db.keys({ limit: -1 }), 'ERR_BAD_OPTION');
    expectCode(() => db.values({ limit: 1.5 }), 'ERR_BAD_OPTION');
    expectCode(() => db.count({ limit: -1 }), 'ERR_BAD_OPTION');
    expectCode(() => db.range({ reverse: 'yes' as never }), 'ERR_BAD_OPTION');
    const snap = db.snapshot();
    try {
      expectCode(() => snap.range({ limit: -1 }), 'ERR_BAD_OPTION');
    } finally {
      snap.close();
    }
    db.transactionSync((txn) => {
      expectCode(() => txn.range({ limit: -1 }), 'ERR_BAD_OPTION');
    });
  });

  it("openDB refuses kind 'x', an empty name and bad encodings, and writes nothing", () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(file);
    expectCode(() => db.openDB('s', { kind: 'x' as never }), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB(''), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB(1 as never), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB('n'.repeat(256)), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB('s', { keyEncoding: 'nope' as never }), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB('s', { valueEncoding: 'nope' as never }), 'ERR_BAD_OPTION');
    expectUnchanged(file, before);
  });

  it('range options start/end/reverse/prefix are refused on a hash sub-database', () => {
    const db = folder.open();
    const h = db.openDB('h', { kind: 'hash' });
    h.putSync('a', 1);
    // Typed as a hash database, these do not compile; JavaScript callers get the error.
    // @ts-expect-error start needs kind 'btree'
    expectCode(() => h.range({ start: 'a' }), 'ERR_BAD_OPTION');
    // @ts-expect-error end needs kind 'btree'
    expectCode(() => h.range({ end: 'a' }), 'ERR_BAD_OPTION');
    // @ts-expect-error prefix needs kind 'btree'
    expectCode(() => h.range({ prefix: 'a' }), 'ERR_BAD_OPTION');
    // @ts-expect-error reverse needs kind 'btree'
    expectCode(() => h.range({ reverse: true }), 'ERR_BAD_OPTION');
    // A handle opened without `kind` may be either kind: it compiles and fails at run time.
    const loose = db.openDB('h');
    expectCode(() => loose.range({ start: 'a' }), 'ERR_BAD_OPTION');
    expectCode(() => loose.count({ reverse: false }), 'ERR_BAD_OPTION');
    expect([...h.range({ limit: 1 })]).toEqual([{ key: 'a', value: 1 }]);
  });

  it('a transaction callback that returns a promise is refused and writes nothing', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(file);
    expectCode(
      () =>
        // @ts-expect-error an async callback: a compile error too
        db.transactionSync(async (txn) => {
          txn.put('a', 2);
        }),
      'ERR_BAD_OPTION',
    );
    await expectRejectCode(
      // @ts-expect-error an async callback: a compile error too
      db.transaction(async (txn) => {
        txn.put('a', 3);
      }),
      'ERR_BAD_OPTION',
    );
    expect(db.get('a')).toBe(1);
    expect(bytesOf(file).length).toBe(before.length);
    expectHealthy(db);
  });

  it('a callable thenable is a promise too; a `then` that cannot be read is not', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const callable = Object.assign(() => 1, { then: () => undefined });
    expectCode(
      () =>
        db.transactionSync((txn) => {
          txn.put('a', 2);
          return callable as never;
        }),
      'ERR_BAD_OPTION',
    );
    // Committed before, and then `await` adopted it: the promise never settled.
    await expectRejectCode(
      db.transaction((txn) => {
        txn.put('a', 3);
        return callable as never;
      }),
      'ERR_BAD_OPTION',
    );
    expect(db.get('a')).toBe(1);
    // A successful callback whose result has a throwing `then` getter commits and returns it.
    const odd = Object.defineProperty({}, 'then', {
      get() {
        throw new Error('no then here');
      },
    });
    expect(
      db.transactionSync((txn) => {
        txn.put('a', 4);
        return odd;
      }),
    ).toBe(odd);
    expect(db.get('a')).toBe(4);
  });

  it('an async callback that throws is refused, and its rejection is not left unhandled', async () => {
    const db = folder.open();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      expectCode(
        () =>
          // @ts-expect-error an async callback: a compile error too
          db.transactionSync(async (txn) => {
            txn.put('a', 1);
            throw new Error('inside an async callback');
          }),
        'ERR_BAD_OPTION',
      );
      await expectRejectCode(
        // @ts-expect-error an async callback: a compile error too
        db.transaction(async (txn) => {
          txn.put('b', 1);
          throw new Error('inside an async callback');
        }),
        'ERR_BAD_OPTION',
      );
      // Node reports an unhandled rejection once the microtask queue drains.
      for (let turn = 0; turn < 5; turn++) await new Promise((r) => setImmediate(r));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    expect(db.has('a') || db.has('b')).toBe(false);
  });
});

describe('ERR_TXN_DONE', () => {
  it('is thrown by a Transaction object used after transactionSync returned', () => {
    const db = folder.open();
    const sub = db.openDB('sub');
    let kept: Parameters<Parameters<typeof db.transactionSync>[0]>[0] | null = null;
    db.transactionSync((txn) => {
      txn.put('a', 1);
      kept = txn;
    });
    const txn = kept!;
    const before = bytesOf(file);
    expectCode(() => txn.get('a'), 'ERR_TXN_DONE');
    expectCode(() => txn.has('a'), 'ERR_TXN_DONE');
    expectCode(() => txn.put('b', 2), 'ERR_TXN_DONE');
    expectCode(() => txn.remove('a'), 'ERR_TXN_DONE');
    expectCode(() => txn.range(), 'ERR_TXN_DONE');
    expectCode(() => txn.count(), 'ERR_TXN_DONE');
    expectCode(() => txn.db(sub), 'ERR_TXN_DONE');
    expectCode(() => txn.abort(), 'ERR_TXN_DONE');
    expectUnchanged(file, before);
    expect(db.get('a')).toBe(1);
    expect(db.has('b')).toBe(false);
  });

  it('is thrown by a sub-database view and an iterator of a finished transaction', () => {
    const db = folder.open();
    const sub = db.openDB('sub');
    let view: { put(k: unknown, v: unknown): void } | null = null;
    let iter: Iterator<unknown> | null = null;
    db.transactionSync((txn) => {
      for (let i = 0; i < 5; i++) txn.put(i, i);
      view = txn.db(sub);
      iter = txn.range()[Symbol.iterator]();
      expect(iter.next().done).toBe(false);
    });
    expectCode(() => view!.put('x', 1), 'ERR_TXN_DONE');
    expectCode(() => iter!.next(), 'ERR_TXN_DONE');
    expect(sub.count()).toBe(0);
  });

  it('is thrown by a Transaction object of db.transaction() after its promise settled', async () => {
    const db = folder.open();
    let kept: { put(k: unknown, v: unknown): void; get(k: unknown): unknown } | null = null;
    await db.transaction((txn) => {
      kept = txn;
      txn.put('a', 1);
    });
    expectCode(() => kept!.put('b', 2), 'ERR_TXN_DONE');
    expectCode(() => kept!.get('a'), 'ERR_TXN_DONE');
  });

  it('is thrown by a Transaction used after txn.abort() inside its callback', () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(file);
    const out = db.transactionSync((txn) => {
      txn.abort();
      expectCode(() => txn.put('a', 2), 'ERR_TXN_DONE');
      expectCode(() => txn.get('a'), 'ERR_TXN_DONE');
      expectCode(() => txn.abort(), 'ERR_TXN_DONE');
      return 'done';
    });
    expect(out).toBe('done');
    expectUnchanged(file, before);
  });

  it('is thrown by every read of a closed snapshot; close() is idempotent', () => {
    const db = folder.open();
    const sub = db.openDB('sub');
    db.putSync('a', 1);
    const snap = db.snapshot();
    expect(db.stats().openSnapshots).toBe(1);
    snap.close();
    snap.close();
    expect(db.stats().openSnapshots).toBe(0);
    expectCode(() => snap.get('a'), 'ERR_TXN_DONE');
    expectCode(() => snap.getBinary('a'), 'ERR_TXN_DONE');
    expectCode(() => snap.has('a'), 'ERR_TXN_DONE');
    expectCode(() => snap.range(), 'ERR_TXN_DONE');
    expectCode(() => snap.keys(), 'ERR_TXN_DONE');
    expectCode(() => snap.values(), 'ERR_TXN_DONE');
    expectCode(() => snap.count(), 'ERR_TXN_DONE');
    expectCode(() => snap.db(sub), 'ERR_TXN_DONE');
  });

  it('is thrown by a sub-database view and a live iterator of a snapshot after it is closed', () => {
    const db = folder.open();
    const sub = db.openDB('sub');
    for (let i = 0; i < 10; i++) db.putSync(i, i);
    sub.putSync('s', 1);
    const snap = db.snapshot();
    const view = snap.db(sub);
    const iter = snap.range()[Symbol.iterator]();
    expect(iter.next().value).toEqual({ key: 0, value: 0 });
    snap.close();
    expectCode(() => view.get('s'), 'ERR_TXN_DONE');
    // The snapshot's pages may be reused from here on: its iterator must not go on reading.
    expectCode(() => iter.next(), 'ERR_TXN_DONE');
  });
});

describe('ERR_INCOMPATIBLE', () => {
  it('is thrown when a file is reopened with another pageSize, and the file is unchanged', async () => {
    await seedFile({ pageSize: 4096 });
    const before = bytesOf(file);
    expectCode(() => open(file, { pageSize: 8192 }), 'ERR_INCOMPATIBLE');
    expectCode(() => open(file, { pageSize: 65536, readOnly: true }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
    const db = folder.open({ pageSize: 4096 });
    expect(db.stats().pageSize).toBe(4096);
    await db.close();
    const adopted = folder.open();
    expect(adopted.stats().pageSize).toBe(4096);
  });

  it('is thrown when a file is reopened with another keyEncoding or valueEncoding', async () => {
    await seedFile({ keyEncoding: 'string', valueEncoding: 'json' });
    const before = bytesOf(file);
    expectCode(() => open(file, { keyEncoding: 'ordered' }), 'ERR_INCOMPATIBLE');
    expectCode(() => open(file, { keyEncoding: 'binary' }), 'ERR_INCOMPATIBLE');
    expectCode(() => open(file, { valueEncoding: 'msgpack' }), 'ERR_INCOMPATIBLE');
    expectCode(() => open(file, { keyEncoding: 'uint32', readOnly: true }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
    const db = folder.open({ keyEncoding: 'string', valueEncoding: 'json' });
    expect(db.get('a')).toBe(1);
  });

  it('keeps the encodings chosen at creation even when nothing was written before close', async () => {
    const db = folder.open({ keyEncoding: 'uint32', valueEncoding: 'string' });
    await db.close();
    const before = bytesOf(file);
    expectCode(() => open(file, { keyEncoding: 'string' }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
    const again = folder.open();
    expect(again.keyEncoding).toBe('uint32');
    expect(again.valueEncoding).toBe('string');
  });

  it('is thrown by openDB of an existing sub-database with another encoding', async () => {
    const db = folder.open();
    const users = db.openDB('users', {
      kind: 'btree',
      keyEncoding: 'string',
      valueEncoding: 'json',
    });
    users.putSync('u1', { n: 1 });
    const before = bytesOf(file);
    expectCode(() => db.openDB('users', { keyEncoding: 'ordered' }), 'ERR_INCOMPATIBLE');
    expectCode(() => db.openDB('users', { valueEncoding: 'msgpack' }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
    await db.close();

    // The same after a reopen, read-only included.
    const ro = folder.open({ readOnly: true });
    expectCode(() => ro.openDB('users', { keyEncoding: 'binary' }), 'ERR_INCOMPATIBLE');
    expectCode(() => ro.openDB('users', { valueEncoding: 'string' }), 'ERR_INCOMPATIBLE');
    expect(ro.openDB('users').get('u1')).toEqual({ n: 1 });
    await ro.close();
    expectUnchanged(file, before);
  });

  it('is thrown by openDB of an existing sub-database with another kind (btree vs hash)', async () => {
    const db = folder.open();
    db.openDB('users', { kind: 'btree' }).putSync('u1', 1);
    db.openDB('tags', { kind: 'hash' }).putSync('t', 1);
    const before = bytesOf(file);
    expectCode(() => db.openDB('users', { kind: 'hash' }), 'ERR_INCOMPATIBLE');
    expectCode(() => db.openDB('tags', { kind: 'btree' }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
    await db.close();
    const ro = folder.open({ readOnly: true });
    expectCode(() => ro.openDB('users', { kind: 'hash' }), 'ERR_INCOMPATIBLE');
    expectCode(() => ro.openDB('tags', { kind: 'btree' }), 'ERR_INCOMPATIBLE');
    expect(ro.openDB('tags').get('t')).toBe(1);
    await ro.close();
    expectUnchanged(file, before);
  });

  it('is thrown for a file whose metas say format version 3, and the file is unchanged', async () => {
    await seedFile();
    const image = bytesOf(file);
    const pageSize = 4096;
    for (const slot of [0, 1]) {
      const o = slot * pageSize;
      image.writeUInt32LE(3, o + 36); // version
      image.writeUInt32LE(crc32c(image, o + 4, o + pageSize), o); // checksum of [4, pageSize)
    }
    fs.writeFileSync(file, image);
    const before = bytesOf(file);
    expectCode(() => open(file), 'ERR_INCOMPATIBLE');
    expectCode(() => open(file, { readOnly: true }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
  });
});

describe('ERR_INCOMPATIBLE from a newer commit', () => {
  it('open refuses a file whose newest meta is of a newer format beside an older valid one', async () => {
    await seedFile();
    const image = bytesOf(file);
    const slot = image.readUInt32LE(48) > image.readUInt32LE(4096 + 48) ? 0 : 1;
    const o = slot * 4096;
    image.writeUInt32LE(3, o + 36);
    image.writeUInt32LE(crc32c(image, o + 4, o + 4096), o);
    fs.writeFileSync(file, image);
    const before = bytesOf(file);
    // Not the commit before it from the other slot, and no write into the newer one's slot.
    expectCode(() => folder.open(), 'ERR_INCOMPATIBLE');
    expectCode(() => folder.open({ readOnly: true }), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
  });

  it('a handle that meets a meta of a newer format version refuses reads and writes', async () => {
    await seedFile();
    const db = folder.open();
    expect(db.get('a')).toBe(1);
    await new Promise((r) => setImmediate(r));
    // As if a newer mapkv in another process committed: the newest meta says version 3.
    const image = bytesOf(file);
    const slot = image.readUInt32LE(48) > image.readUInt32LE(4096 + 48) ? 0 : 1;
    const o = slot * 4096;
    image.writeUInt32LE(3, o + 36);
    image.writeUInt32LE(crc32c(image, o + 4, o + 4096), o);
    const fd = fs.openSync(file, 'r+');
    try {
      fs.writeSync(fd, image, o, 4096, o);
    } finally {
      fs.closeSync(fd);
    }
    const before = bytesOf(file);
    // Not the older slot's stale commit, and no write over the newer one.
    expectCode(() => db.get('a'), 'ERR_INCOMPATIBLE');
    expectCode(() => db.putSync('c', 3), 'ERR_INCOMPATIBLE');
    expectUnchanged(file, before);
    await db.close();
  });
});

describe('ERR_CORRUPT', () => {
  it('is thrown for a file of random bytes, which stays unchanged', () => {
    const bytes = Buffer.alloc(64 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (Math.imul(i + 1, 2654435761) >>> 13) & 0xff;
    fs.writeFileSync(file, bytes);
    expectCode(() => open(file), 'ERR_CORRUPT');
    expectCode(() => open(file, { readOnly: true }), 'ERR_CORRUPT');
    expectUnchanged(file, bytes);
  });

  it('is thrown for a small non-database file (text), which stays unchanged', () => {
    const text = Buffer.from('hello, I am not a database\n'.repeat(10));
    fs.writeFileSync(file, text);
    expectCode(() => open(file), 'ERR_CORRUPT');
    expectUnchanged(file, text);
  });

  it('is thrown for a truncated database file, which stays unchanged', async () => {
    const db = folder.open();
    const value = Buffer.alloc(2000, 1);
    db.transactionSync((txn) => {
      for (let i = 0; i < 500; i++) txn.put(i, value);
    });
    await db.close();
    const whole = bytesOf(file);
    expect(whole.length).toBeGreaterThan(100 * 4096);
    for (const length of [Math.floor(whole.length / 2), 3 * 4096, 5000, 100]) {
      const cut = whole.subarray(0, length);
      fs.writeFileSync(file, cut);
      expectCode(() => open(file), 'ERR_CORRUPT');
      expectCode(() => open(file, { readOnly: true }), 'ERR_CORRUPT');
      expectUnchanged(file, Buffer.from(cut));
    }
  });

  it('is thrown by a readOnly open of an empty file', () => {
    fs.writeFileSync(file, Buffer.alloc(0));
    expectCode(() => open(file, { readOnly: true }), 'ERR_CORRUPT');
    expect(fs.statSync(file).size).toBe(0);
  });
});

describe('ERR_LOCKED', () => {
  it('is thrown by putSync inside a transactionSync callback, and nothing is written', () => {
    const db = folder.open();
    const sub = db.openDB('sub');
    db.putSync('a', 1);
    const before = bytesOf(file);
    const txnId = db.stats().txnId;
    expectCode(() => db.transactionSync(() => db.putSync('a', 2)), 'ERR_LOCKED');
    expectCode(() => db.transactionSync(() => db.removeSync('a')), 'ERR_LOCKED');
    expectCode(() => db.transactionSync(() => sub.putSync('s', 1)), 'ERR_LOCKED');
    expectCode(() => db.transactionSync(() => db.transactionSync(() => 1)), 'ERR_LOCKED');
    expectCode(() => sub.transactionSync(() => db.putSync('a', 3)), 'ERR_LOCKED');
    expectUnchanged(file, before);
    expect(db.stats().txnId).toBe(txnId);
    expect(db.get('a')).toBe(1);
    // The writer is free again afterwards.
    db.putSync('a', 4);
    expect(db.get('a')).toBe(4);
    expectHealthy(db);
  });

  it('a caught ERR_LOCKED leaves the outer transaction usable, and it commits', () => {
    const db = folder.open();
    db.transactionSync((txn) => {
      txn.put('outer', 1);
      expectCode(() => db.putSync('inner', 2), 'ERR_LOCKED');
      txn.put('after', 3);
    });
    expect(db.get('outer')).toBe(1);
    expect(db.get('after')).toBe(3);
    expect(db.has('inner')).toBe(false);
    expectHealthy(db);
  });

  it('putSync inside a db.transaction() callback rejects that transaction only', async () => {
    const db = folder.open();
    const p1 = db.put('x', 1);
    const p2 = db.transaction((txn) => {
      txn.put('y', 2);
      db.putSync('z', 3);
    });
    const p3 = db.put('w', 4);
    await p1;
    await expectRejectCode(p2, 'ERR_LOCKED');
    await p3;
    expect(db.get('x')).toBe(1);
    expect(db.has('y')).toBe(false);
    expect(db.has('z')).toBe(false);
    expect(db.get('w')).toBe(4);
    expectHealthy(db);
  });

  it('opening a file creates its lock file `${path}-lock` beside it', () => {
    const db = folder.open();
    db.putSync('a', 1);
    expect(fs.existsSync(`${file}-lock`)).toBe(true);
  });
});

describe('a failed call changes nothing on disk', () => {
  it('a transactionSync whose callback throws after writing leaves the file byte-for-byte unchanged', () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(file);
    expect(() =>
      db.transactionSync((txn) => {
        txn.put('b', 2);
        throw new Error('abort');
      }),
    ).toThrow('abort');
    expectUnchanged(file, before);
  });

  it('a transactionSync that fails with ERR_KEY_TOO_LARGE after other writes leaves the file unchanged', () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(file);
    const max = db.stats().maxKeySize;
    expectCode(
      () =>
        db.transactionSync((txn) => {
          for (let i = 0; i < 3000; i++) txn.put(`fill${i}`, 'x'.repeat(100));
          txn.put('k'.repeat(max), 1);
        }),
      'ERR_KEY_TOO_LARGE',
    );
    expect(db.count()).toBe(1);
    expectUnchanged(file, before);
  });
});

describe('system errors', () => {
  it('running out of space throws a Node-shaped ENOSPC error and the committed state stays intact', async () => {
    const storage = new MemoryStorage({ segmentSize: 65536, capacity: 256 * 1024 });
    const db = openOn<string, unknown>(storage, '', {});
    try {
      db.putSync('a', 1);
      const txnId = db.stats().txnId;
      let err: NodeJS.ErrnoException | null = null;
      try {
        db.putSync('big', Buffer.alloc(1024 * 1024, 1));
      } catch (e) {
        err = e as NodeJS.ErrnoException;
      }
      expect(err).not.toBeNull();
      expect(err).not.toBeInstanceOf(MapKVError);
      expect(err!.code).toBe('ENOSPC');
      expect(typeof err!.syscall).toBe('string');
      expect(db.stats().txnId).toBe(txnId);
      expect(db.get('a')).toBe(1);
      expect(db.has('big')).toBe(false);
      expectHealthy(db);
      await expect(db.put('big', Buffer.alloc(1024 * 1024, 1))).rejects.toMatchObject({
        code: 'ENOSPC',
      });
      // The writer is usable again for writes that fit.
      db.putSync('b', 2);
      expect(db.get('b')).toBe(2);
      expectHealthy(db);
    } finally {
      await db.close();
    }
  });
});

describe('a Database is typed', () => {
  it('open() returns a Database whose path is the absolute file path', () => {
    const db: Database = folder.open();
    expect(db.path).toBe(file);
  });
});

describe('ERR_CORRUPT from a write', () => {
  it('a write never copies a damaged page under a fresh checksum (verifyChecksums off)', async () => {
    // Found by the hostile-file soak: a flipped bit in a leaf was read (no verification), then a
    // write copied the leaf (copy-on-write), the copy got a valid checksum at commit, and
    // check() passed a file whose data was wrong.
    const db = folder.open<string, string>({ valueEncoding: 'string' });
    for (let i = 0; i < 10; i++) db.putSync(`k${i}`, 'v'.repeat(20));
    // Two later commits elsewhere: open checks the pages the last commits wrote, not this leaf.
    db.openDB('other').putSync('x', 'y');
    db.openDB('other').putSync('x', 'z');
    await db.close();
    const bytes = fs.readFileSync(file);
    // The txns of the two metas: pages they wrote may hold stale bytes of old leaves in their
    // free space, and damage there would fail the commit at open instead.
    const last = [0, 1].map((slot) => bytes.readUInt32LE(slot * 4096 + 48));
    let damaged = 0;
    for (let p = 2; p * 4096 < bytes.length; p++) {
      const page = bytes.subarray(p * 4096, (p + 1) * 4096);
      // Leaf pages of the root database (live or older copies): they hold key 'k9'.
      if (page[4] !== 3 || !page.includes(Buffer.from('k9vvvv'))) continue;
      if (last.includes(page.readUInt32LE(12))) continue;
      page[4000] ^= 0x01; // inside the record heap, not the checksum word
      damaged++;
    }
    expect(damaged).toBeGreaterThan(0);
    fs.writeFileSync(file, bytes);
    const again = folder.open<string, string>({ valueEncoding: 'string', verifyChecksums: false });
    expectCode(() => again.putSync('k1', 'new'), 'ERR_CORRUPT');
    expect(again.check().ok).toBe(false); // the damage is still there to be found
    await again.close();
    expectUnchanged(file, bytes);
  });
});

describe('arguments that are not what they seem', () => {
  const revoked = (): object => {
    const r = Proxy.revocable({}, {});
    r.revoke();
    return r.proxy;
  };

  it('misspelt options are refused with ERR_BAD_OPTION, not ignored', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const before = bytesOf(file);
    // Ignored, `kindd` made a B+tree for good, and `kind: 'hash'` was ERR_INCOMPATIBLE after.
    expectCode(() => db.openDB('s', { kindd: 'hash' } as never), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB('s', { kind: null } as never), 'ERR_BAD_OPTION');
    expectCode(() => [...db.keys({ strat: 'b' } as never)], 'ERR_BAD_OPTION');
    expectCode(() => db.count({ lmit: 1 } as never), 'ERR_BAD_OPTION');
    expectCode(() => db.range({ prefx: 'a' } as never), 'ERR_BAD_OPTION');
    const copy = folder.file('copy.mkv');
    await expectRejectCode(db.backup(copy, { compcat: true } as never), 'ERR_BAD_OPTION');
    expect(fs.existsSync(copy)).toBe(false);
    expectUnchanged(file, before);
    const s = db.openDB('s', { kind: 'hash' }); // still free to be a hash database
    s.putSync('x', 1);
    // @ts-expect-error hash: no key order
    expectCode(() => s.range({ start: 'a' }), 'ERR_BAD_OPTION');
  });

  it('txn.db() and snapshot.db() refuse anything but a database of the file', () => {
    const db = folder.open();
    const other = open(folder.file('other.mkv'));
    try {
      const fakes: unknown[] = [null, undefined, 'users', {}, { store: (db as never)['store'] }];
      for (const fake of fakes) {
        expectCode(() => db.transactionSync((txn) => txn.db(fake as never)), 'ERR_BAD_OPTION');
        const snap = db.snapshot();
        expectCode(() => snap.db(fake as never), 'ERR_BAD_OPTION');
        snap.close();
      }
      expectCode(() => db.transactionSync((txn) => txn.db(other)), 'ERR_BAD_OPTION');
    } finally {
      void other.close();
    }
  });

  it('a backup path with a NUL byte is ERR_BAD_OPTION, as for open()', async () => {
    const db = folder.open();
    await expectRejectCode(db.backup(folder.file('a\0b')), 'ERR_BAD_OPTION');
  });

  it('a backup onto a folder, a path ending in /, or a FIFO is ERR_BAD_OPTION before any copy', async () => {
    const db = folder.open();
    db.putSync('a', 1);
    const dir = folder.file('a-folder');
    fs.mkdirSync(dir);
    await expectRejectCode(db.backup(dir), 'ERR_BAD_OPTION'); // was EISDIR after the copy
    await expectRejectCode(db.backup(`${folder.file('copy.mkv')}/`), 'ERR_BAD_OPTION'); // ENOTDIR
    const fifo = folder.file('fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    await expectRejectCode(db.backup(fifo, { compact: true }), 'ERR_BAD_OPTION'); // was replaced
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    expect(fs.readdirSync(folder.file('')).filter((f) => f.endsWith('.backup'))).toEqual([]);
    await db.backup(folder.file('copy.mkv')); // a file path still works
  });

  it('a sub-database name with an unpaired surrogate is refused; it would alias U+FFFD', () => {
    const db = folder.open();
    db.openDB('user\uFFFD').putSync('k', 1);
    for (const name of ['user\uD800', 'user\uDBFF', '\uDC00x']) {
      expectCode(() => db.openDB(name), 'ERR_BAD_OPTION');
    }
    db.openDB('user\u{1F600}').putSync('k', 2); // a pair is fine
    expect(db.openDB('user\u{1F600}').get('k')).toBe(2);
    expect(db.openDB('user\uFFFD').get('k')).toBe(1);
  });

  it('proxies: of a Uint8Array as key or binary value, and revoked ones as keys or options', () => {
    const db = folder.open();
    const bin = db.openDB<Uint8Array, Uint8Array>('b', {
      keyEncoding: 'binary',
      valueEncoding: 'binary',
    });
    const str = db.openDB<string, unknown>('s', { keyEncoding: 'string' });
    const fakeBytes = new Proxy(new Uint8Array(2), {});
    expectCode(() => db.get(fakeBytes as never), 'ERR_BAD_KEY');
    expectCode(() => bin.putSync(fakeBytes, new Uint8Array(1)), 'ERR_BAD_KEY');
    expectCode(() => bin.putSync(new Uint8Array(1), fakeBytes), 'ERR_BAD_VALUE');
    expectCode(() => str.get(revoked() as never), 'ERR_BAD_KEY');
    expectCode(() => db.get([1, revoked()] as never), 'ERR_BAD_KEY');
    expectCode(() => db.range(revoked() as never), 'ERR_BAD_OPTION');
    expectCode(() => open(file, revoked() as never), 'ERR_BAD_OPTION');
    expect([...bin.keys()]).toEqual([]);
  });

  it('options are read once: a throwing getter is ERR_BAD_OPTION, a changing one cannot slip by', async () => {
    const db = folder.open();
    for (const k of ['a', 'b', 'c']) db.putSync(k, k);
    const throwing = (name: string): object =>
      Object.defineProperty({}, name, {
        enumerable: true,
        get() {
          throw new Error('getter says no');
        },
      });
    expectCode(() => db.range(throwing('limit') as never), 'ERR_BAD_OPTION');
    expectCode(() => db.count(throwing('start') as never), 'ERR_BAD_OPTION');
    expectCode(() => db.openDB('s', throwing('kind') as never), 'ERR_BAD_OPTION');
    await expectRejectCode(
      db.backup(folder.file('copy.mkv'), throwing('compact') as never),
      'ERR_BAD_OPTION',
    );
    const fresh = folder.file('fresh.mkv');
    expectCode(() => open(fresh, throwing('sync') as never), 'ERR_BAD_OPTION');
    expect(fs.existsSync(fresh)).toBe(false);
    expect(db.stats().openSnapshots).toBe(0);
    // A limit that is 1 when validated and -1 afterwards: the validated value is the one used.
    let reads = 0;
    const shifty = {
      get limit() {
        return reads++ === 0 ? 1 : -1;
      },
    };
    expect([...db.keys(shifty)]).toEqual(['a']);
    db.openDB('s', { kind: 'hash' }).putSync('x', 1); // the refused openDB created nothing
  });

  it('a Uint8Array from another realm (vm context) is bytes, as key and as binary value', () => {
    const db = folder.open();
    const foreign = vm.runInNewContext('new Uint8Array([1, 0, 2])') as Uint8Array;
    expect(foreign instanceof Uint8Array).toBe(false); // the point of the test
    const bin = db.openDB<Uint8Array, Uint8Array>('b', {
      keyEncoding: 'binary',
      valueEncoding: 'binary',
    });
    bin.putSync(foreign, foreign);
    expect([...bin.getBinary(Uint8Array.of(1, 0, 2))!]).toEqual([1, 0, 2]);
    expect([...bin.get(Uint8Array.of(1, 0, 2))!]).toEqual([1, 0, 2]);
    db.putSync(['k', foreign], 1);
    expect(db.get(['k', Uint8Array.of(1, 0, 2)])).toBe(1);
  });
});
