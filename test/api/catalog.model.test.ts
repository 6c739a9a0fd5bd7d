/**
 * Model-based property test of the catalog: named sub-databases of every kind (B+tree, hash,
 * expiring or not, two key and two value encodings) opened, written, cleared, dropped and created again
 * under the same names, through many handles at once, some of them stale (a handle of a name
 * that was dropped and created again with another kind, encodings or expiry by another handle).
 * Transactions across several databases (committed, aborted, thrown), batched writes (with a
 * drop made while they are queued), snapshots, backups and reopens run against a model of the
 * file: a Map from name to the database's shape and its entries. After every step, through
 * every open() of the file, the catalog must hold the model's names with their shapes and
 * counts, `check()` must be clean and every hash table tidy; at the end, once every name is
 * dropped, the file's pages must be free again. The file is in memory with one open(), or on
 * disk opened three times in this process (two writers and one read-only).
 *
 * The rules the model follows are the README's (Sub-databases and multi-database transactions):
 * a handle whose shape differs from the file's database of its name gets ERR_INCOMPATIBLE from
 * every read and write and changes nothing; a handle of a dropped name reads it as empty and a
 * write through it creates it again with the handle's shape; a snapshot keeps reading what its
 * commit held.
 */
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Database, DatabaseBase, Snapshot } from '../../src/index';
import { MapKVError, open } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { hashShape } from '../../src/hash/check';
import { EXPIRING_FLAG } from '../../src/expiry';
import type { DbDescriptor } from '../../src/format/meta';
import { KEY_ENCODING_IDS, VALUE_ENCODING_IDS } from '../../src/txn/env';
import { expectCode } from '../helpers/api-helpers';
import { tempFolder } from '../helpers/temp-files';

const SOAK = process.env.MAPKV_SOAK === '1';

type Kind = 'btree' | 'hash';
type ValueEncoding = 'msgpack' | 'string';
/** Both take string keys (and give them back), with other bytes on disk. */
type KeyEncoding = 'string' | 'ordered';
/** What a database is fixed to at its creation; a handle assumes one. */
interface Shape {
  kind: Kind;
  keyEncoding: KeyEncoding;
  valueEncoding: ValueEncoding;
  expiring: boolean;
}
interface Db {
  shape: Shape;
  entries: Map<string, string>;
}
/** The file: '' is the unnamed database, the others its named ones. */
type FileModel = Map<string, Db>;

type Sub = DatabaseBase<string, string>;
interface Handle {
  /** Which open() of the file it came from (an index into the sequence's handles of it). */
  root: number;
  name: string;
  shape: Shape;
  db: Sub;
}

type Write = { h: number; k: string; v: string | null } | { h: number; clear: true };

type Op =
  | {
      t: 'openDB';
      root: number;
      name: number;
      kind: Kind | null;
      keyEncoding: KeyEncoding | null;
      valueEncoding: ValueEncoding | null;
      ttl: boolean;
    }
  | { t: 'openAgain'; root: number; h: number }
  | { t: 'put'; h: number; k: string; v: string }
  | { t: 'remove'; h: number; k: string }
  | { t: 'read'; h: number; k: string }
  | { t: 'clear'; h: number }
  | { t: 'drop'; root: number; name: number }
  | { t: 'txn'; root: number; writes: Write[]; end: 'commit' | 'abort' | 'throw' }
  | {
      t: 'batch';
      root: number;
      writes: Array<{ h: number; k: string; v: string | null }>;
      drop: number | null;
    }
  | { t: 'backup'; compact: boolean }
  | { t: 'snapOpen'; root: number }
  | { t: 'snapCheck'; i: number; h: number }
  | { t: 'snapClose'; i: number }
  | { t: 'reopen' };

const NAMES = ['a', 'b'];
const ROOT_SHAPE: Shape = {
  kind: 'btree',
  keyEncoding: 'string',
  valueEncoding: 'msgpack',
  expiring: false,
};

const keyArb = fc.integer({ min: 0, max: 60 }).map((i) => `k${i}`);
// Mostly short values, some that need overflow pages (their pages must come back too).
const valueArb = fc.oneof(
  { weight: 8, arbitrary: fc.nat(1_000_000).map((n) => `v${n}`) },
  { weight: 1, arbitrary: fc.nat(9).map((n) => String(n).repeat(5_000 + n * 700)) },
);
const handleArb = fc.nat(40);
const writeArb: fc.Arbitrary<Write> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      h: handleArb,
      k: keyArb,
      v: fc.option(valueArb, { nil: null, freq: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ h: handleArb, clear: fc.constant(true as const) }) },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('openDB' as const),
      root: fc.nat(2),
      name: fc.nat(NAMES.length - 1),
      kind: fc.constantFrom<Kind | null>('btree', 'hash', null),
      keyEncoding: fc.constantFrom<KeyEncoding | null>('string', 'ordered', null),
      valueEncoding: fc.constantFrom<ValueEncoding | null>('msgpack', 'string', null),
      ttl: fc.boolean(),
    }),
  },
  // openDB with every option of a handle made before, as an application that opens its
  // databases with the same constant options each time: the handle openDB kept may be returned.
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant('openAgain' as const), root: fc.nat(2), h: handleArb }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ t: fc.constant('put' as const), h: handleArb, k: keyArb, v: valueArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('remove' as const), h: handleArb, k: keyArb }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('read' as const), h: handleArb, k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('clear' as const), h: handleArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('drop' as const),
      root: fc.nat(2),
      name: fc.nat(NAMES.length - 1),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      root: fc.nat(2),
      writes: fc.array(writeArb, { maxLength: 12 }),
      end: fc.constantFrom(
        'commit' as const,
        'commit' as const,
        'abort' as const,
        'throw' as const,
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('batch' as const),
      root: fc.nat(2),
      writes: fc.array(
        fc.record({ h: handleArb, k: keyArb, v: fc.option(valueArb, { nil: null, freq: 4 }) }),
        { maxLength: 10 },
      ),
      drop: fc.option(fc.nat(NAMES.length - 1), { nil: null, freq: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('backup' as const), compact: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapOpen' as const), root: fc.nat(2) }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('snapCheck' as const), i: fc.nat(5), h: handleArb }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapClose' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
);

/** A catalog descriptor as the model describes a database (DbKind: 1 B+tree, 2 hash). */
function shapeOf(desc: DbDescriptor): Shape & { entries: number } {
  const valueId = desc.valueEncoding & ~EXPIRING_FLAG;
  return {
    kind: desc.kind === 2 ? 'hash' : 'btree',
    keyEncoding: desc.keyEncoding === KEY_ENCODING_IDS.string ? 'string' : 'ordered',
    valueEncoding: valueId === VALUE_ENCODING_IDS.string ? 'string' : 'msgpack',
    expiring: (desc.valueEncoding & EXPIRING_FLAG) !== 0,
    entries: desc.entries,
  };
}

const sameShape = (a: Shape, b: Shape): boolean =>
  a.kind === b.kind &&
  a.keyEncoding === b.keyEncoding &&
  a.valueEncoding === b.valueEncoding &&
  a.expiring === b.expiring;

function copyFile(file: FileModel): FileModel {
  const out: FileModel = new Map();
  for (const [name, db] of file) out.set(name, { shape: db.shape, entries: new Map(db.entries) });
  return out;
}

/** Whether `h` may read and write `file`'s database of its name: absent, or of its shape. */
function fits(file: FileModel, h: Handle): boolean {
  const db = file.get(h.name);
  return db === undefined || sameShape(db.shape, h.shape);
}

/**
 * `file` after `writes` made in one transaction (or one batch, which is one transaction), or
 * null if the transaction fails because a handle does not fit. A put creates a missing
 * database with its handle's shape; a remove or clear of one creates nothing. Any use of a
 * missing name fixes its shape for the rest of the transaction: the transaction holds the
 * handle's empty database for it, and a handle of another shape after it is refused.
 */
function applyWrites(
  file: FileModel,
  writes: ReadonlyArray<Write>,
  handleOf: (i: number) => Handle,
): FileModel | null {
  const next = copyFile(file);
  const held = new Map<string, Shape>();
  for (const w of writes) {
    const h = handleOf(w.h);
    const db = next.get(h.name);
    const shape = db?.shape ?? held.get(h.name);
    if (shape !== undefined && !sameShape(shape, h.shape)) return null;
    held.set(h.name, h.shape);
    if ('clear' in w) db?.entries.clear();
    else if (w.v === null) db?.entries.delete(w.k);
    else dbFor(next, h).entries.set(w.k, w.v);
  }
  return next;
}

/** An openDB step on root `root` with every option of handle `h` (its name, or the first). */
function sameOptions(h: Handle, root: number): Op {
  return {
    t: 'openDB',
    root,
    name: Math.max(0, NAMES.indexOf(h.name)),
    kind: h.shape.kind,
    keyEncoding: h.shape.keyEncoding,
    valueEncoding: h.shape.valueEncoding,
    ttl: h.shape.expiring,
  };
}

/** The database `h` writes to in `file`, created with h's shape when absent. */
function dbFor(file: FileModel, h: Handle): Db {
  let db = file.get(h.name);
  if (db === undefined) {
    db = { shape: h.shape, entries: new Map() };
    file.set(h.name, db);
  }
  return db;
}

interface Readable {
  range(): Iterable<{ key: string; value: string }>;
  count(): number;
  get(key: string): string | undefined;
}

/** `db` holds exactly `entries` (in any order: hash databases have none). */
function expectEntries(db: Readable, entries: Map<string, string> | undefined): void {
  const got = [...db.range()].map((e) => [e.key, e.value] as const);
  got.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const want = [...(entries ?? new Map<string, string>())].sort((x, y) =>
    x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0,
  );
  expect(got).toEqual(want);
  expect(db.count()).toBe(want.length);
}

function optionsOf(shape: Shape): {
  kind: Kind;
  keyEncoding: KeyEncoding;
  valueEncoding: ValueEncoding;
  ttl?: number;
} {
  return {
    kind: shape.kind,
    keyEncoding: shape.keyEncoding,
    valueEncoding: shape.valueEncoding,
    // Entries never expire within a sequence: the ttl only makes the database an expiring one.
    ...(shape.expiring ? { ttl: 3_600_000 } : {}),
  };
}

interface Setup {
  pageSize: number;
  /**
   * 'memory': one handle of a file in memory. 'files': a file on disk opened three times in
   * this process, twice to write and once read-only, each open() with its own handles, caches
   * and snapshots: what one commits, the others must see at their next read, a name one drops
   * included. The read-only one refuses every write (ERR_READ_ONLY) and creates nothing.
   */
  where: 'memory' | 'files';
}

async function runSequence(setup: Setup, ops: Op[]): Promise<void> {
  const { pageSize } = setup;
  const rootOptions = { pageSize, keyEncoding: 'string' as const, sync: 'none' as const };
  const backups = tempFolder();
  const dataPath = path.join(backups.dir, 'data.mkv');
  let storage = new MemoryStorage({ segmentSize: 65536 });
  const openRoots = (): Array<Database<string, string>> =>
    setup.where === 'memory'
      ? [openOn<string, string>(storage, '', rootOptions) as Database<string, string>]
      : [
          open<string, string>(dataPath, rootOptions),
          open<string, string>(dataPath, rootOptions),
          open<string, string>(dataPath, { ...rootOptions, readOnly: true }),
        ];
  let roots = openRoots();
  let root = roots[0]!;
  let file: FileModel = new Map([['', { shape: ROOT_SHAPE, entries: new Map() }]]);
  const rootHandles = (): Handle[] =>
    roots.map((db, r) => ({ root: r, name: '', shape: ROOT_SHAPE, db }));
  let handles: Handle[] = rootHandles();
  let snaps: Array<{ snap: Snapshot<string, string>; root: number; file: FileModel }> = [];
  let backupCount = 0;
  const handleOf = (i: number): Handle => handles[i % handles.length]!;
  const rootOf = (i: number): number => i % roots.length;
  /** The read-only open() of the file: the third one. */
  const readOnly = (r: number): boolean => r === 2;
  /** Handle `i` of those of roots[r] (txn.db and snapshot.db take only those). */
  const handleIn = (r: number, i: number): Handle => {
    const own = handles.filter((h) => h.root === r);
    return own[i % own.length]!;
  };

  try {
    for (const step of ops) {
      const op: Op = step.t === 'openAgain' ? sameOptions(handleOf(step.h), step.root) : step;
      switch (op.t) {
        case 'openDB': {
          const name = NAMES[op.name]!;
          const r = rootOf(op.root);
          const at = roots[r]!;
          const db = file.get(name);
          const opts = {
            ...(op.keyEncoding === null ? {} : { keyEncoding: op.keyEncoding }),
            ...(op.kind === null ? {} : { kind: op.kind }),
            ...(op.valueEncoding === null ? {} : { valueEncoding: op.valueEncoding }),
            ...(op.ttl ? { ttl: 3_600_000 } : {}),
          };
          const txnId = at.stats().txnId;
          if (
            db !== undefined &&
            ((op.kind !== null && op.kind !== db.shape.kind) ||
              (op.keyEncoding !== null && op.keyEncoding !== db.shape.keyEncoding) ||
              (op.valueEncoding !== null && op.valueEncoding !== db.shape.valueEncoding) ||
              (op.ttl && !db.shape.expiring))
          ) {
            expectCode(() => at.openDB(name, opts), 'ERR_INCOMPATIBLE');
            expect(at.stats().txnId).toBe(txnId);
            break;
          }
          const sub = at.openDB<string, string>(name, opts) as Sub;
          // An existing database is adopted as it is; a new name is created (one commit),
          // except through a read-only handle, which reads it as empty under these options.
          const shape = db?.shape ?? {
            kind: op.kind ?? 'btree',
            keyEncoding: op.keyEncoding ?? 'ordered',
            valueEncoding: op.valueEncoding ?? 'msgpack',
            expiring: op.ttl,
          };
          expect(sub.expiring).toBe(shape.expiring);
          const creates = db === undefined && !readOnly(r);
          expect(at.stats().txnId).toBe(creates ? txnId + 1 : txnId);
          if (creates) file.set(name, { shape, entries: new Map() });
          handles.push({ root: r, name, shape, db: sub });
          break;
        }
        case 'put': {
          const h = handleOf(op.h);
          if (readOnly(h.root)) {
            expectCode(() => h.db.putSync(op.k, op.v), 'ERR_READ_ONLY');
            break;
          }
          if (!fits(file, h)) {
            expectCode(() => h.db.putSync(op.k, op.v), 'ERR_INCOMPATIBLE');
            break;
          }
          h.db.putSync(op.k, op.v);
          dbFor(file, h).entries.set(op.k, op.v);
          break;
        }
        case 'remove': {
          const h = handleOf(op.h);
          if (readOnly(h.root)) {
            expectCode(() => h.db.removeSync(op.k), 'ERR_READ_ONLY');
            break;
          }
          if (!fits(file, h)) {
            expectCode(() => h.db.removeSync(op.k), 'ERR_INCOMPATIBLE');
            break;
          }
          expect(h.db.removeSync(op.k)).toBe(file.get(h.name)?.entries.delete(op.k) ?? false);
          break;
        }
        case 'read': {
          const h = handleOf(op.h);
          if (!fits(file, h)) {
            expectCode(() => h.db.get(op.k), 'ERR_INCOMPATIBLE');
            expectCode(() => h.db.count(), 'ERR_INCOMPATIBLE');
            break;
          }
          const entries = file.get(h.name)?.entries;
          expect(h.db.get(op.k)).toBe(entries?.get(op.k));
          expect(h.db.has(op.k)).toBe(entries?.has(op.k) ?? false);
          expectEntries(h.db, entries);
          break;
        }
        case 'clear': {
          const h = handleOf(op.h);
          if (readOnly(h.root)) {
            expectCode(() => h.db.clearSync(), 'ERR_READ_ONLY');
            break;
          }
          if (!fits(file, h)) {
            expectCode(() => h.db.clearSync(), 'ERR_INCOMPATIBLE');
            break;
          }
          h.db.clearSync();
          file.get(h.name)?.entries.clear();
          break;
        }
        case 'drop': {
          const name = NAMES[op.name]!;
          const r = rootOf(op.root);
          if (readOnly(r)) expectCode(() => roots[r]!.dropDB(name), 'ERR_READ_ONLY');
          else expect(roots[r]!.dropDB(name)).toBe(file.delete(name));
          break;
        }
        case 'txn': {
          // The model applies the writes to a copy, and keeps it only if the transaction
          // commits: a write through a handle that does not fit throws inside the callback,
          // which aborts the whole transaction.
          const r = rootOf(op.root);
          const pick = (i: number): Handle => handleIn(r, i);
          if (readOnly(r)) {
            expectCode(() => roots[r]!.transactionSync(() => 1), 'ERR_READ_ONLY');
            break;
          }
          const next = applyWrites(file, op.writes, pick);
          const refused = next === null;
          let thrown: unknown = null;
          try {
            roots[r]!.transactionSync((txn) => {
              for (const w of op.writes) {
                const t = txn.db<string, string>(pick(w.h).db);
                if ('clear' in w) t.clear();
                else if (w.v === null) t.remove(w.k);
                else t.put(w.k, w.v);
              }
              if (op.end === 'abort') txn.abort();
              if (op.end === 'throw') throw new Error('rolled back');
            });
          } catch (err) {
            thrown = err;
          }
          if (refused) {
            expect((thrown as MapKVError).code).toBe('ERR_INCOMPATIBLE');
          } else if (op.end === 'throw') {
            expect((thrown as Error).message).toBe('rolled back');
          } else {
            expect(thrown).toBeNull();
            if (op.end === 'commit') file = next!;
          }
          break;
        }
        case 'batch': {
          // One event-loop turn of async writes is one commit: if any of them does not fit,
          // the commit fails and every promise of it rejects, with nothing written. A dropDB
          // made while the batch is queued commits first, so the batch meets the file
          // without that name (and its writes create it again). The batch's writes go through
          // one open() of the file (each has its own queue); the drop through the other.
          const r = rootOf(op.root);
          const pick = (i: number): Handle => handleIn(r, i);
          const pending = op.writes.map((w) => {
            const db = pick(w.h).db;
            return w.v === null ? db.remove(w.k) : db.put(w.k, w.v);
          });
          if (op.drop !== null) {
            const name = NAMES[op.drop]!;
            expect(roots[r === 0 ? rootOf(1) : 0]!.dropDB(name)).toBe(file.delete(name));
          }
          const next = readOnly(r) ? null : applyWrites(file, op.writes, pick);
          const refused = next === null;
          const results = await Promise.allSettled(pending);
          for (const r of results) {
            if (readOnly(op.root % roots.length)) {
              expect(r.status).toBe('rejected');
              expect(((r as PromiseRejectedResult).reason as MapKVError).code).toBe(
                'ERR_READ_ONLY',
              );
            } else if (refused) {
              expect(r.status).toBe('rejected');
              expect(((r as PromiseRejectedResult).reason as MapKVError).code).toBe(
                'ERR_INCOMPATIBLE',
              );
            } else {
              expect(r.status).toBe('fulfilled');
            }
          }
          if (next !== null) file = next;
          break;
        }
        case 'backup': {
          // A copy of the latest commit, page by page or rebuilt (compact: new hash tables and
          // expiry indexes): the same names with the same shapes and entries, and no others.
          const target = path.join(backups.dir, `copy-${backupCount++}.mkv`);
          await root.backup(target, { compact: op.compact });
          const copy = open<string, string>(target, { readOnly: true, keyEncoding: 'string' });
          try {
            expect(copy.check().problems).toEqual([]);
            expectEntries(copy, file.get('')!.entries);
            for (const name of NAMES) {
              const db = file.get(name);
              if (db === undefined) {
                // Read-only, a missing name opens as empty under either kind; a present one
                // would refuse one of the two.
                expect(copy.openDB<string, string>(name, { kind: 'btree' }).count()).toBe(0);
                expect(copy.openDB<string, string>(name, { kind: 'hash' }).count()).toBe(0);
                continue;
              }
              const sub = copy.openDB<string, string>(name, optionsOf(db.shape)) as Sub;
              expect(sub.expiring).toBe(db.shape.expiring);
              expectEntries(sub, db.entries);
            }
          } finally {
            await copy.close();
          }
          break;
        }
        case 'snapOpen':
          snaps.push({
            snap: roots[rootOf(op.root)]!.snapshot(),
            root: rootOf(op.root),
            file: copyFile(file),
          });
          break;
        case 'snapCheck': {
          const s = snaps[op.i % Math.max(1, snaps.length)];
          if (s === undefined) break;
          const h = handleIn(s.root, op.h);
          const view = s.snap.db<string, string>(h.db);
          if (!fits(s.file, h)) {
            expectCode(() => view.count(), 'ERR_INCOMPATIBLE');
            break;
          }
          expectEntries(view, s.file.get(h.name)?.entries);
          break;
        }
        case 'snapClose': {
          if (snaps.length > 0) {
            const [s] = snaps.splice(op.i % snaps.length, 1);
            s!.snap.close();
          }
          break;
        }
        case 'reopen': {
          for (const s of snaps) s.snap.close();
          snaps = [];
          const image = setup.where === 'memory' ? storage.currentImage() : null;
          for (const db of roots) await db.close();
          if (image !== null) storage = MemoryStorage.fromImage(image, { segmentSize: 65536 });
          roots = openRoots();
          root = roots[0]!;
          // Handles die with their handle of the file: one per name again, adopting its shape.
          handles = rootHandles();
          for (const [r, at] of roots.entries()) {
            for (const [name, db] of file) {
              if (name === '') continue;
              const sub = at.openDB<string, string>(name) as Sub;
              expect(sub.expiring).toBe(db.shape.expiring);
              handles.push({ root: r, name, shape: db.shape, db: sub });
            }
          }
          break;
        }
      }
      expect(root.check().problems).toEqual([]);
      // Through every open() of the file: each sees the last commit, whichever made it.
      for (const at of roots) {
        // The catalog holds the model's names, each with its shape and count, and no other.
        const latest = at.store.env.latest();
        for (const name of NAMES) {
          const desc = at.store.lookupNamed(latest, latest.meta.catalog, name, null);
          const db = file.get(name);
          expect(desc === null ? null : shapeOf(desc)).toEqual(
            db === undefined ? null : { ...db.shape, entries: db.entries.size },
          );
        }
        // Every database as the model has it, through a handle of the file's shape (present
        // names only: openDB would create a missing one).
        for (const [name, db] of file) {
          if (name === '') continue;
          const sub = at.openDB<string, string>(name, optionsOf(db.shape)) as Sub;
          expect(sub.count()).toBe(db.entries.size);
          if (db.shape.kind === 'hash') {
            const ctx = sub.readLatest();
            const shape = hashShape(ctx.r, ctx.desc);
            expect(shape.mergeablePairs).toBe(0);
            if (ctx.desc.entries === 0) expect(ctx.desc.root).toBe(0);
          }
        }
        expect(at.count()).toBe(file.get('')!.entries.size);
      }
    }

    for (const name of NAMES) {
      const db = file.get(name);
      if (db !== undefined) expectEntries(root.openDB<string, string>(name) as Sub, db.entries);
    }
    expectEntries(root, file.get('')!.entries);
    // Each snapshot through every handle (openDB here would create the names it lacks).
    for (const s of snaps) {
      for (const h of handles.filter((x) => x.root === s.root)) {
        const view = s.snap.db<string, string>(h.db);
        if (fits(s.file, h)) expectEntries(view, s.file.get(h.name)?.entries);
        else expectCode(() => view.count(), 'ERR_INCOMPATIBLE');
      }
    }

    // Every name dropped and the unnamed database cleared: the file's pages are free again,
    // beyond those a file that never held anything has in use.
    for (const s of snaps) s.snap.close();
    snaps = [];
    for (const db of roots.slice(1)) await db.close();
    for (const name of NAMES) expect(root.dropDB(name)).toBe(file.has(name));
    root.clearSync();
    // Pages freed by a commit are reusable once a later commit is durable.
    root.putSync('x', 'y');
    root.removeSync('x');
    expect(root.check().problems).toEqual([]);
    const stats = root.stats();
    expect(stats.pages - stats.freePages).toBeLessThanOrEqual(emptyInUse(pageSize) + 1);
  } finally {
    for (const s of snaps) s.snap.close();
    for (const db of roots) await db.close();
    backups.remove();
  }
}

const emptyInUseOf = new Map<number, number>();
/** The pages in use in a file that has held nothing, after the same final commits. */
function emptyInUse(pageSize: number): number {
  let n = emptyInUseOf.get(pageSize);
  if (n === undefined) {
    const root = openOn<string, string>(new MemoryStorage({ segmentSize: 65536 }), '', {
      pageSize,
      keyEncoding: 'string',
      sync: 'none',
    });
    root.putSync('x', 'y');
    root.removeSync('x');
    root.putSync('x', 'y');
    root.removeSync('x');
    const stats = root.stats();
    n = stats.pages - stats.freePages;
    void root.close();
    emptyInUseOf.set(pageSize, n);
  }
  return n;
}

describe('the catalog against a model', () => {
  const setups: Array<Setup & { runs: number }> = [
    { pageSize: 4096, where: 'memory', runs: 150 },
    { pageSize: 8192, where: 'memory', runs: 60 },
    { pageSize: 4096, where: 'files', runs: 150 },
  ];
  for (const setup of setups) {
    const what =
      setup.where === 'memory'
        ? 'one handle of a file'
        : 'three handles of one file, one read-only';
    it(`openDB, writes, clears and drops through fresh and stale handles match a model (${what}, page ${setup.pageSize})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }), (ops) =>
          runSequence(setup, ops),
        ),
        { numRuns: SOAK ? setup.runs * 40 : setup.runs },
      );
    }, 600_000);
  }
});
