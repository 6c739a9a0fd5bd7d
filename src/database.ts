/**
 * The public database objects: Database (the file and its unnamed database), sub-databases,
 * snapshots and transactions. Everything here validates its arguments and turns user keys and
 * values into bytes; the indexes and the transaction layer below see bytes only.
 */
import { type Index, type IndexCursor, indexFor } from './indexes';
import { MapKVError, checkOptionKeys, corrupt } from './errors';
import { copyBytes } from './encoding/owned';
import { PutLog } from './putlog';
import {
  EXPIRING_FLAG,
  EXPIRY_BYTES,
  checkTtl,
  expiryAt,
  expiryIndexOf,
  expiryOfStored,
  indexKeyExpiry,
  liveValue,
  noteExpiry,
  resolveExpiry,
  storedExpiry,
  withExpiry,
} from './expiry';
import { describeType, isWellFormed } from './encoding/keys';
import { maxKeySize } from './format/layout';
import {
  DbKind,
  type DbDescriptor,
  DESCRIPTOR_SIZE,
  emptyDescriptor,
  readDescriptor,
  writeDescriptor,
} from './format/meta';
import { statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Options as MsgpackOptions } from 'msgpackr';
import type { ValueRef } from './btree/btree';
import { treeGet, treePut, treeRemove } from './btree/btree';
import { TreeCursor } from './btree/cursor';
import {
  KEY_ENCODING_NAMES,
  VALUE_ENCODING_NAMES,
  createKeyEncoder,
  createValueEncoder,
  type KeyEncoder,
  type KeyEncodingName,
  type ValueEncoder,
  type ValueEncodingName,
} from './encoding/index';
import {
  type Environment,
  KEY_ENCODING_IDS,
  MSGPACK_PLAIN_ID,
  VALUE_ENCODING_IDS,
  checkDescriptor,
} from './txn/env';
import type { SnapshotReader } from './txn/snapshot';
import type { WriteTxn } from './txn/write';
import type { PageReader } from './txn/pages';
import { checkEnvironment, type CheckResult } from './check';
import { backupEnvironment, type BackupOptions } from './backup';
import type { EncodingsFor, KeyPrefix, KeyTypeOf, NotPromise, ValueTypeOf } from './types';
import { ensureHashKey, hashAt } from './hash/hashkey';

/**
 * Options of `openDB`. An option left out (or `undefined`) takes the sub-database's recorded
 * value when it exists, else the default.
 */
export interface DBOptions {
  /** 'btree' (ordered, the default) or 'hash' (point lookups, unordered iteration). */
  kind?: 'btree' | 'hash' | undefined;
  /**
   * How keys are stored: 'ordered' (default), 'string', 'binary' or 'uint32'. Without type
   * arguments it also sets the key type (see {@link KeyTypeOf}).
   */
  keyEncoding?: KeyEncodingName | undefined;
  /**
   * How values are stored: 'msgpack' (default), 'json', 'string' or 'binary'. Without type
   * arguments it also sets the value type (see {@link ValueTypeOf}).
   */
  valueEncoding?: ValueEncodingName | undefined;
  /**
   * Makes the sub-database an expiring one (when it is created; an existing one must have
   * been created so) and sets how long, in milliseconds, entries put through this handle live
   * when the put gives no `ttl`: a number > 0, or Infinity for never. Reads treat expired
   * entries as absent; `purgeExpired()` deletes them. An existing expiring sub-database
   * opened without it still expires entries: its puts then never expire unless they say so.
   */
  ttl?: number | undefined;
}

/** Options of `purgeExpired` and `purgeExpiredSync`. */
export interface PurgeOptions {
  /**
   * Deletes at most this many expired entries (a non-negative integer), those whose deadlines
   * passed first: a large purge can be spread over several commits. Left out: all of them.
   */
  limit?: number | undefined;
}

/** Options of `put`, `putSync` and `txn.put`. */
export interface PutOptions {
  /**
   * The entry's lifetime in milliseconds (> 0, or Infinity for never), counted from the call;
   * only in a database created with `ttl`. Left out: the handle's `ttl`.
   */
  ttl?: number | undefined;
}

/**
 * Options of `range`, `keys`, `values` and `count`. Bounds compare in the order of the encoded
 * keys. An option that is `undefined` counts as left out.
 *
 * @typeParam K - The key type of the database iterated.
 */
export interface RangeOptions<K = unknown> {
  /** First key to include (inclusive). */
  start?: K | undefined;
  /** Key to stop before (exclusive). */
  end?: K | undefined;
  /** Iterate from the high end of [start, end) downwards. */
  reverse?: boolean | undefined;
  /** At most this many entries. */
  limit?: number | undefined;
  /**
   * Only keys that begin with this key: for strings and binary, a byte prefix; for `ordered`
   * tuples, keys whose leading elements equal the prefix's elements (so a leading part of a
   * tuple key type is accepted: `{ prefix: ['user'] }` for keys `[string, number]`).
   */
  prefix?: KeyPrefix<K> | undefined;
}

/** A sub-database's kind as a type parameter: 'btree', 'hash', or both when not known. */
export type DbKindName = 'btree' | 'hash';

/**
 * Options of `range`, `keys`, `values` and `count` on a database opened with
 * `{ kind: 'hash' }`: it has no key order, so `limit` is the only one (`start`, `end`,
 * `reverse` and `prefix` do not compile; at run time they are ERR_BAD_OPTION).
 */
export interface HashRangeOptions {
  /** At most this many entries. */
  limit?: number | undefined;
}

/**
 * The range options a database of kind `Kind` takes: {@link HashRangeOptions} when it is known
 * to be a hash, else {@link RangeOptions}. `openDB(name)` without `kind` may open either, so
 * it takes RangeOptions and a hash database refuses ordered options at run time.
 */
export type RangeOptionsFor<K, Kind extends DbKindName> = [Kind] extends ['hash']
  ? HashRangeOptions
  : RangeOptions<K>;

const DB_OPTIONS: ReadonlySet<string> = new Set(['kind', 'keyEncoding', 'valueEncoding', 'ttl']);
const PUT_OPTIONS: ReadonlySet<string> = new Set(['ttl']);
const PURGE_OPTIONS: ReadonlySet<string> = new Set(['limit']);

/** The `limit` of purge options `opts` (Infinity when left out); checks them. */
function purgeLimit(opts: PurgeOptions | undefined, where: string): number {
  if (opts === undefined) return Infinity;
  const { limit } = checkOptionKeys(opts, PURGE_OPTIONS, where);
  if (limit === undefined) return Infinity;
  if (!(Number.isInteger(limit) && limit >= 0)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `${where}: limit must be a non-negative integer, got ${String(limit)}`,
    );
  }
  return limit;
}
const RANGE_OPTIONS: ReadonlySet<string> = new Set(['start', 'end', 'reverse', 'limit', 'prefix']);
const BACKUP_OPTIONS: ReadonlySet<string> = new Set(['compact']);

/**
 * One entry of a range.
 *
 * @typeParam K - The key type.
 * @typeParam V - The value type.
 */
export interface Entry<K, V> {
  /** The entry's key, decoded. */
  key: K;
  /** The entry's value, decoded. */
  value: V;
}

/** What `stats()` reports. */
export interface DatabaseStats {
  /** Bytes per page of the file (fixed when it was created). */
  pageSize: number;
  /** Bytes of the file on disk. */
  fileSize: number;
  /** Pages in use by the latest commit (including free ones). */
  pages: number;
  /** Pages listed free, ready or waiting for old snapshots to close. */
  freePages: number;
  /** Entries of the database `stats()` was called on. */
  entries: number;
  /** Levels of its B+tree (0 when empty). */
  depth: number;
  /** Id of the latest commit. */
  txnId: number;
  /**
   * Snapshots open on this handle: snapshot() objects not yet closed, running iterators and
   * backups (each pins one). Other handles of the same file, in this process or others, count
   * their own.
   */
  openSnapshots: number;
  /** Largest key in bytes (after encoding) for this page size. */
  maxKeySize: number;
  /** Bytes of address space mapped at a time (the `segmentSize` open option). */
  segmentSize: number;
  /** The `sync` mode this handle commits with. */
  sync: 'full' | 'none';
}

const VALUE_REF: ValueRef = { buf: new Uint8Array(0), start: 0, end: 0 };

/** State shared by every handle of one open file. */
export class Store {
  closed = false;
  /** Set by close(): new writes are refused while the queued ones commit. */
  closing = false;
  /**
   * Every key is encoded into this one buffer and used from it before any user code runs
   * again: value encoders (getters, toJSON) run before a key is encoded, and a key whose own
   * encoding re-enters the store is refused (encodingKey).
   */
  readonly keyScratch: Uint8Array;
  /** True while a key is being encoded into keyScratch. */
  encodingKey = false;
  readonly maxKey: number;
  private batch: BatchOp[] | null = null;
  /** The key and value bytes of the queued batch's puts (its 'puts' ops index into it). */
  private log = new PutLog<DatabaseBase<unknown, unknown>>();
  /** Where a batch's puts are copied to for the index: keys, and values up to 64 bytes. */
  private readonly applyKey: Uint8Array;
  private readonly applyValue = new Uint8Array(64);
  private batchDone: Promise<void> | null = null;
  /** The promise the puts of the queued batch share (created with the batch's first put). */
  private shared: SharedCommit | null = null;
  private readonly sharedOf = new WeakMap<BatchOp[], SharedCommit>();
  /** The batch being committed (its flushes may still run), or null. */
  private committing: Promise<void> | null = null;
  /**
   * Descriptors of named databases in the latest commit, by name, for the meta they were read
   * under. The meta object, not its commit id: a commit id can come again on another commit (a
   * commit whose flush failed after other handles read it, then the writer's next commit).
   */
  private catalogCache = new Map<string, DbDescriptor | null>();
  private catalogCacheMeta: object | null = null;

  constructor(
    readonly env: Environment,
    readonly path: string,
    /** msgpackr options of every msgpack database of this file (open option `msgpack`). */
    readonly msgpack: MsgpackOptions | undefined = undefined,
  ) {
    this.maxKey = maxKeySize(env.pageSize);
    this.keyScratch = new Uint8Array(this.maxKey);
    this.applyKey = new Uint8Array(this.maxKey);
  }

  assertOpen(): void {
    if (this.closed) throw new MapKVError('ERR_CLOSED', 'the database is closed');
  }

  /** The group of the iterators over the latest commit; a WeakRef, see pinForIterator. */
  private iteratorGroup: WeakRef<IteratorGroup> | null = null;

  /**
   * Pins the latest commit for a range iterator, which calls unpinIterator when it finishes.
   *
   * The pin is counted like a snapshot's (stats().openSnapshots), but the FinalizationRegistry
   * entry that frees the pins of iterators dropped unfinished is one per group of iterators
   * over the same commit, not one per iterator: registering costs about as much as a short
   * range. The group is alive while an iterator of it is, and the store's WeakRef keeps it
   * until the current job ends at least, so the ranges of one turn share it. Once no iterator
   * refers to it, it is collected and the pins its leaked iterators still held are released.
   */
  pinForIterator(): IteratorGroup {
    const reader = this.env.pin();
    let group = this.iteratorGroup?.deref();
    if (group === undefined || group.pins.reader !== reader) {
      const pins: IteratorPins = { env: this.env, reader, open: 0 };
      group = new IteratorGroup(pins);
      iteratorRegistry.register(group, pins);
      this.iteratorGroup = new WeakRef(group);
    }
    group.pins.open++;
    return group;
  }

  /** Releases the pin pinForIterator took. */
  unpinIterator(group: IteratorGroup): void {
    group.pins.open--;
    this.env.unpin(group.pins.reader);
  }

  /** Descriptor of `name` in the snapshot `r` reads (null: no such database). */
  lookupNamed(
    r: PageReader & { meta?: { txnId: number; catalog: DbDescriptor } },
    catalog: DbDescriptor,
    name: string,
    latestMeta: object | null,
  ): DbDescriptor | null {
    if (latestMeta !== null) {
      if (this.catalogCacheMeta !== latestMeta) {
        this.catalogCache = new Map();
        this.catalogCacheMeta = latestMeta;
      }
      const hit = this.catalogCache.get(name);
      if (hit !== undefined) return hit;
    }
    const kb = encodeName(name);
    const found = treeGet(r, catalog, kb, kb.length, VALUE_REF)
      ? readCatalogValue(VALUE_REF)
      : null;
    if (found !== null) {
      checkDescriptor(found, r.pageCountLimit());
    }
    if (latestMeta !== null) this.catalogCache.set(name, found);
    return found;
  }

  // --- batched async writes ---

  /**
   * Holds a put's key (`keyScratch[0, kl)`) while its value is encoded; returns the place to
   * give enqueuePut.
   */
  holdKey(kl: number): number {
    return this.log.reserveKey(this.keyScratch, kl);
  }

  /** Gives back a key holdKey held for a put whose value failed to encode. */
  releaseKey(held: number, kl: number): void {
    this.log.releaseKey(held, kl);
  }

  /**
   * Queues a put whose key holdKey holds. Puts cannot fail on their own (they were validated
   * when called), so every put of a batch shares one promise: the batch's commit. No promise
   * per put, and no object: the bytes go into the batch's log, consecutive puts into one op.
   */
  enqueuePut(
    db: DatabaseBase<unknown, unknown>,
    held: number,
    kl: number,
    value: Uint8Array,
  ): Promise<void> {
    const log = this.log;
    const i = log.length;
    log.append(db, held, kl, value);
    const last = this.batch?.[this.batch.length - 1];
    if (last?.type === 'puts' && last.to === i) last.to = i + 1;
    else this.enqueue({ type: 'puts', from: i, to: i + 1 });
    let shared = this.shared;
    if (shared === null) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      shared = { promise, resolve, reject };
      this.shared = shared;
      this.sharedOf.set(this.batch!, shared);
    }
    return shared.promise;
  }

  enqueue(op: BatchOp): void {
    if (this.batch === null) {
      this.shared = null;
      this.batch = [];
      const ops = this.batch;
      const previous = this.committing;
      this.batchDone = new Promise<void>((resolve) => {
        // Group commit: while the previous batch's flush runs, this batch keeps collecting
        // writes; it starts once that commit is over, on the next turn.
        const go = (): void => void setImmediate(() => this.startBatch(ops, resolve, 0, 0));
        if (previous === null) go();
        else void previous.then(go, go);
      });
    }
    this.batch.push(op);
  }

  /**
   * Takes the writer lock for a batch without blocking the event loop: while another process,
   * worker or handle holds it, retries after a growing setTimeout (writes queued meanwhile
   * join this batch, keeping their order), and fails the batch with ERR_LOCKED once
   * `lockTimeout` has passed.
   */
  private startBatch(ops: BatchOp[], resolve: () => void, since: number, pause: number): void {
    let txn: WriteTxn | null = null;
    let failure: unknown = undefined;
    if (!this.closed) {
      try {
        txn = this.env.tryBeginWrite();
        if (txn === null) {
          const first = since === 0 ? Date.now() : since;
          if (Date.now() - first < this.env.lockTimeout) {
            const next = Math.min(Math.max(pause * 2, 1), 25);
            setTimeout(() => this.startBatch(ops, resolve, first, next), next);
            return;
          }
          failure = this.env.lockedError();
        }
      } catch (err) {
        failure = err;
      }
    }
    this.batch = null;
    // The batch's puts are all in this log: the next batch collects into a new one.
    const log = this.log;
    this.log = new PutLog();
    const committing = this.runBatch(ops, log, txn, failure);
    this.committing = committing;
    void committing.then(() => {
      if (this.committing === committing) this.committing = null;
      if (this.batchDone !== null && this.batch === null) this.batchDone = null;
      resolve();
    });
  }

  /** Resolves when the writes queued so far are committed (or failed). */
  async drain(): Promise<void> {
    while (this.batchDone !== null || this.committing !== null) {
      await (this.batchDone ?? this.committing);
    }
  }

  /** Applies a batch and commits it; settles every op's promise. Never rejects. */
  private async runBatch(
    ops: BatchOp[],
    log: PutLog<DatabaseBase<unknown, unknown>>,
    txn: WriteTxn | null,
    failure: unknown,
  ): Promise<void> {
    const shared = this.sharedOf.get(ops);
    const rejectAll = (err: unknown): void => {
      shared?.reject(err);
      for (const op of ops) if (op.type !== 'puts') op.reject(err);
    };
    if (this.closed) {
      const err = new MapKVError(
        'ERR_CLOSED',
        'the database was closed before the write committed',
      );
      rejectAll(err);
      return;
    }
    if (txn === null) {
      rejectAll(failure);
      return;
    }
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      for (const op of ops) {
        if (op.type === 'txn') {
          txn.savepoint();
          const view = new Transaction(op.db, txn);
          try {
            const value = op.fn(view);
            if (isThenable(value)) refuseAsyncCallback(value);
            view.finish();
            if (view.aborted) {
              txn.rollback();
            } else txn.release();
            results.push({ ok: true, value });
          } catch (error) {
            view.finish();
            txn.rollback();
            results.push({ ok: false, error });
          }
        } else if (op.type === 'puts') {
          this.applyPuts(txn, log, op.from, op.to);
          results.push(PUTS_DONE);
        } else {
          const ctx = op.db.writeContext(txn);
          results.push({
            ok: true,
            value: op.db.removeIn(txn, ctx, op.key, op.key.length),
          });
        }
      }
      this.writeCatalog(txn);
    } catch (error) {
      this.env.abort(txn);
      rejectAll(error);
      return;
    } finally {
      log.recycle();
    }
    try {
      await this.env.commitAsync(txn);
    } catch (error) {
      rejectAll(error);
      return;
    }
    for (let i = 0; i < ops.length; i++) {
      const r = results[i]!;
      const op = ops[i]!;
      if (op.type === 'puts') continue;
      if (r.ok) op.resolve(r.value);
      else op.reject(r.error);
    }
    shared?.resolve();
  }

  /**
   * Applies puts `[from, to)` of `log` to `txn`. Where they go to one database and are many, in
   * the order of their keys in a B+tree (PutLog.keyOrder), of their keys' hashes in a hash table
   * (PutLog.hashOrder): within one commit the order of puts of different keys is not
   * observable, and puts of one key keep theirs.
   */
  private applyPuts(
    txn: WriteTxn,
    log: PutLog<DatabaseBase<unknown, unknown>>,
    from: number,
    to: number,
  ): void {
    const first = log.db(from);
    let oneDb = to - from >= SORTED_APPLY_MIN;
    for (let i = from + 1; oneDb && i < to; i++) oneDb = log.db(i) === first;
    if (oneDb) {
      const ctx = first.writeContext(txn);
      ctx.touched();
      let order: Int32Array;
      if (first.kind === DbKind.BTree) order = log.keyOrder(from, to);
      else {
        // The table's hash key is drawn before its first record, as hashPut would.
        const desc = ctx.desc;
        ensureHashKey(desc);
        order = log.hashOrder(from, to, (chunk, at, kl) => hashAt(desc, chunk, at, kl));
      }
      for (const i of order) this.applyPut(txn, first, ctx, log, i);
      return;
    }
    let db: DatabaseBase<unknown, unknown> | null = null;
    let ctx: WriteContext | null = null;
    for (let i = from; i < to; i++) {
      const d = log.db(i);
      if (d !== db || ctx === null) {
        // One context per run of puts to one database: the descriptor it hands out is the
        // one the transaction keeps for that database until a savepoint, and a run holds none.
        db = d;
        ctx = d.writeContext(txn);
        ctx.touched();
      }
      this.applyPut(txn, d, ctx, log, i);
    }
  }

  /** Applies put `i` of `log`, a put to `db`, through `ctx`. */
  private applyPut(
    txn: WriteTxn,
    db: DatabaseBase<unknown, unknown>,
    ctx: WriteContext,
    log: PutLog<DatabaseBase<unknown, unknown>>,
    i: number,
  ): void {
    const k = this.applyKey;
    const small = this.applyValue;
    const chunk = log.chunk(i);
    const at = log.at(i);
    const kl = log.keyLength(i);
    const vl = log.valueLength(i);
    for (let j = 0; j < kl; j++) k[j] = chunk[at + j]!;
    const v0 = at + kl;
    let v: Uint8Array;
    if (vl <= small.length) {
      v = small;
      for (let j = 0; j < vl; j++) small[j] = chunk[v0 + j]!;
    } else v = chunk.subarray(v0, v0 + vl);
    db.putIn(txn, ctx, k, kl, v, vl);
  }

  /** Writes changed named descriptors into the catalog, then commits. */
  commit(txn: WriteTxn): void {
    this.writeCatalog(txn);
    this.env.commit(txn);
  }

  /** Writes the descriptors of the named databases this transaction changed. */
  private writeCatalog(txn: WriteTxn): void {
    for (const [name, desc] of txn.named) {
      if (!txn.namedDirty.has(name)) continue;
      const kb = encodeName(name);
      const vb = new Uint8Array(DESCRIPTOR_SIZE);
      writeDescriptor(vb, 0, desc);
      treePut(txn, txn.catalog, kb, kb.length, vb, vb.length);
    }
  }

  /** Runs `fn` in its own write transaction and commits it. */
  runSync<T>(fn: (txn: WriteTxn) => T): T {
    this.assertOpen();
    const txn = this.env.beginWrite();
    try {
      const out = fn(txn);
      this.commit(txn);
      return out;
    } catch (err) {
      this.env.abort(txn);
      throw err;
    }
  }
}

type BatchOp =
  /** Puts `[from, to)` of the batch's PutLog, in order. */
  | { type: 'puts'; from: number; to: number }
  | {
      type: 'remove';
      db: DatabaseBase<unknown, unknown>;
      key: Uint8Array;
      resolve: (v: unknown) => void;
      reject: (e: unknown) => void;
    }
  | {
      type: 'txn';
      db: DatabaseBase<unknown, unknown>;
      fn: (txn: Transaction<unknown, unknown>) => unknown;
      resolve: (v: unknown) => void;
      reject: (e: unknown) => void;
    };

/** What a write needs of its database inside a transaction (DatabaseBase.writeContext). */
interface WriteContext {
  desc: DbDescriptor;
  index: Index;
  /** Marks the database written, so that its descriptor goes to the catalog. */
  touched: () => void;
}

/** Puts to one B+tree in a batch from which on they are applied in key order. */
const SORTED_APPLY_MIN = 64;

/** Keys clearIn reads before it removes them (a chunk's keys are held in memory). */
const CLEAR_CHUNK = 4096;

/** The result of a run of puts: they settle through the batch's shared promise. */
const PUTS_DONE = { ok: true, value: undefined } as const;

/** One promise for all the puts of a batch. */
interface SharedCommit {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Checks the argument of txn.db() / snapshot.db(): an open database of the file of `store`. */
function checkSameFile(db: unknown, store: Store, call: string): void {
  if (!(db instanceof DatabaseBase)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `${call} takes a database of this file (db or db.openDB(...)), got ${describeType(db)}`,
    );
  }
  db.store.assertOpen();
  if (db.store !== store)
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `${call} takes a database opened through the same handle (the same open() call); ` +
        'that one belongs to another handle, of this file or another',
    );
}

/**
 * The value of the first field of every object a user can hold that leads to a mapping
 * (handles, snapshots, views, transactions, iterators). structuredClone, v8.serialize and
 * postMessage copy an object's fields in order and copy ArrayBuffers byte by byte: reaching a
 * mapped segment, which extends past the end of the file, they read unbacked pages and the
 * process died of SIGBUS. A function cannot be cloned, so the clone throws a DataCloneError at
 * this field, before anything else is read. (Never called.)
 */
function refuseClone(): never {
  throw new MapKVError(
    'ERR_BAD_OPTION',
    'a mapkv handle cannot be cloned or sent to another thread: open the file in that thread',
  );
}

/**
 * Whether `v` is what `await` would treat as a promise: an object or a function with a `then`
 * method (a callable thenable made db.transaction's promise adopt it and never settle). A
 * `then` that cannot be read (a throwing getter, a revoked proxy) counts as none: the callback
 * succeeded, and its odd return value is the caller's to handle.
 */
function isThenable(v: unknown): v is PromiseLike<unknown> {
  if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return false;
  try {
    return typeof (v as { then?: unknown }).then === 'function';
  } catch {
    return false;
  }
}

/**
 * Refuses a transaction callback's promise. The caller gets ERR_BAD_OPTION and never sees the
 * promise, so its rejection (an async callback that threw) is handled here: left alone it
 * would be an unhandled rejection, which ends a Node process by default.
 */
function refuseAsyncCallback(result: PromiseLike<unknown>): never {
  try {
    result.then(undefined, () => undefined);
  } catch {
    // A thenable whose then() throws: nothing is pending, nothing to handle.
  }
  throw new MapKVError(
    'ERR_BAD_OPTION',
    'a transaction callback must be synchronous (it returned a promise)',
  );
}

const utf8 = new TextEncoder();
function encodeName(name: string): Uint8Array {
  return utf8.encode(name);
}

function readCatalogValue(ref: ValueRef): DbDescriptor {
  if (ref.end - ref.start !== DESCRIPTOR_SIZE) {
    throw new MapKVError(
      'ERR_CORRUPT',
      'database file is damaged: a catalog entry has the wrong size',
    );
  }
  return readDescriptor(ref.buf, ref.start);
}

/** Everything a read needs about one database in one snapshot. */
interface ReadContext {
  r: PageReader;
  desc: DbDescriptor;
  index: Index;
}

/**
 * The data API shared by the root database and sub-databases: point reads and writes, ranges,
 * transactions and snapshots.
 *
 * @typeParam K - The key type: what `get`, `put` and the range bounds take, and what `keys()`
 * yields. Set by `keyEncoding` or by an explicit type argument.
 * @typeParam V - The value type: what `put` takes and `get` returns. Set by `valueEncoding` or
 * by an explicit type argument.
 * @typeParam Kind - 'hash' when opened with `{ kind: 'hash' }`: its range options are then
 * {@link HashRangeOptions}. 'btree' for the root database; both when not known.
 */
export class DatabaseBase<K = unknown, V = unknown, Kind extends DbKindName = DbKindName> {
  /** @internal See {@link refuseClone}. The first field, so a clone stops here. */
  readonly cloneGuard = refuseClone;
  /** @internal */
  readonly store: Store;
  /** The sub-database's name; null for the unnamed (root) database. */
  readonly name: string | null;
  /** @internal */
  readonly keys_: KeyEncoder;
  /** @internal */
  readonly values_: ValueEncoder;
  /** @internal */
  readonly kind: DbKind;
  /** @internal */
  readonly index: Index;
  /** @internal The value-encoding id recorded in the file for this database. */
  readonly valueId: number;
  /**
   * Whether this database's entries carry expiry times (created with `openDB(name, { ttl })`,
   * or for the unnamed database with `open(path, { ttl })`): reads treat an expired entry as
   * absent.
   */
  readonly expiring: boolean;
  /**
   * How long, in milliseconds, an entry put through this handle lives when the put gives no
   * `ttl`: the `ttl` option of openDB (of open, for the unnamed database), Infinity without one.
   */
  readonly ttl: number;

  /**
   * @internal `plainMsgpack`: msgpack values without records, whatever the open option says
   * (see resolvePlainMsgpack).
   */
  constructor(
    store: Store,
    name: string | null,
    kind: DbKind,
    keyEncoding: KeyEncodingName,
    valueEncoding: ValueEncodingName,
    plainMsgpack = false,
    expiring = false,
    ttl = Infinity,
  ) {
    this.store = store;
    this.name = name;
    this.kind = kind;
    this.keys_ = createKeyEncoder(keyEncoding);
    this.values_ = createValueEncoder(
      valueEncoding,
      plainMsgpack ? { ...store.msgpack, useRecords: false } : store.msgpack,
    );
    this.valueId =
      (plainMsgpack ? MSGPACK_PLAIN_ID : VALUE_ENCODING_IDS[valueEncoding]) |
      (expiring ? EXPIRING_FLAG : 0);
    this.expiring = expiring;
    this.ttl = ttl;
    this.index = indexFor(kind);
  }

  /** The key encoding in use. */
  get keyEncoding(): KeyEncodingName {
    return this.keys_.name;
  }

  /** The value encoding in use. */
  get valueEncoding(): ValueEncodingName {
    return this.values_.name;
  }

  // --- reads of the latest commit ---

  /** The value stored under `key`, decoded; undefined when absent. */
  get(key: K): V | undefined {
    const ctx = this.readLatest();
    const kl = this.encodeKey(key);
    if (!ctx.index.get(ctx.r, ctx.desc, this.store.keyScratch, kl, VALUE_REF)) return undefined;
    if (this.expiring && !liveValue(VALUE_REF, Date.now())) return undefined;
    return this.values_.decode(VALUE_REF.buf, VALUE_REF.start, VALUE_REF.end) as V;
  }

  /** The stored bytes of `key`'s value (a copy the caller owns); undefined when absent. */
  getBinary(key: K): Uint8Array | undefined {
    const ctx = this.readLatest();
    const kl = this.encodeKey(key);
    if (!ctx.index.get(ctx.r, ctx.desc, this.store.keyScratch, kl, VALUE_REF)) return undefined;
    if (this.expiring && !liveValue(VALUE_REF, Date.now())) return undefined;
    return copyOut(VALUE_REF);
  }

  /** Whether `key` is present. */
  has(key: K): boolean {
    const ctx = this.readLatest();
    const kl = this.encodeKey(key);
    if (!ctx.index.get(ctx.r, ctx.desc, this.store.keyScratch, kl, VALUE_REF)) return false;
    return !this.expiring || liveValue(VALUE_REF, Date.now());
  }

  /**
   * When `key`'s entry expires, in milliseconds since the epoch: Infinity when it never does
   * (always, in a database opened without `ttl`), undefined when it is absent or expired.
   */
  expiresAt(key: K): number | undefined {
    const ctx = this.readLatest();
    return deadlineOf(this, ctx.r, ctx.desc, this.encodeKey(key), Date.now());
  }

  // --- writes ---

  /**
   * Stores `value` under `key`. Writes of one event-loop turn are batched into one commit;
   * the promise resolves when that commit is done (durable under sync 'full').
   */
  put(key: K, value: V, opts?: PutOptions): Promise<void> {
    try {
      this.assertWritable();
      // The options first: reading them may run code (a getter) that uses the database.
      const expires = this.expiryOf(opts, 'put');
      const kb = this.encodeKey(key);
      if (this.expiring) this.checkExpiringKey(kb);
      const held = this.store.holdKey(kb);
      let encoded: Uint8Array;
      try {
        // The log copies the encoded bytes: the encoder may return a view of a buffer it reuses.
        encoded = this.values_.encode(value);
        if (this.expiring) encoded = withExpiry(encoded, expires);
      } catch (err) {
        this.store.releaseKey(held, kb);
        throw err;
      }
      return this.store.enqueuePut(this as DatabaseBase<unknown, unknown>, held, kb, encoded);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Removes `key` in the next batched commit; resolves to whether it existed. */
  remove(key: K): Promise<boolean> {
    try {
      this.assertWritable();
      const kb = this.encodeKey(key);
      const keyBytes = this.store.keyScratch.slice(0, kb);
      return new Promise<boolean>((resolve, reject) => {
        this.store.enqueue({
          type: 'remove',
          db: this as DatabaseBase<unknown, unknown>,
          key: keyBytes,
          resolve: resolve as (v: unknown) => void,
          reject,
        });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Stores `value` under `key` in one commit, done (durable under sync 'full') on return. */
  putSync(key: K, value: V, opts?: PutOptions): void {
    this.assertWritable();
    const expires = this.expiryOf(opts, 'putSync');
    // The value first: its encoding may run user code that reads the database, which reuses
    // the key scratch.
    let vb = this.values_.encode(value);
    if (this.expiring) vb = withExpiry(vb, expires);
    const kl = this.encodeKey(key);
    if (this.expiring) this.checkExpiringKey(kl);
    this.store.runSync((txn) => {
      const ctx = this.writeContext(txn);
      this.putIn(txn, ctx, this.store.keyScratch, kl, vb, vb.length);
      ctx.touched();
    });
  }

  /** Removes `key` in one commit; returns whether it existed. */
  removeSync(key: K): boolean {
    this.assertWritable();
    const kl = this.encodeKey(key);
    return this.store.runSync((txn) =>
      this.removeIn(txn, this.writeContext(txn), this.store.keyScratch, kl),
    );
  }

  /**
   * Deletes the expired entries of this database (all, or the `limit` whose deadlines passed
   * first) in one commit, done (durable under sync 'full') on return; returns how many: 0 (and
   * no commit) in a database that does not expire. It reads them from the database's expiry
   * index: O(expired entries), not O(entries).
   */
  purgeExpiredSync(opts?: PurgeOptions): number {
    this.assertWritable();
    const limit = purgeLimit(opts, 'purgeExpiredSync');
    if (!this.expiring) return 0;
    return this.store.runSync((txn) => this.purgeIn(txn, limit));
  }

  /**
   * Like purgeExpiredSync, queued with the batched writes of this event-loop turn and
   * committed with them; resolves to how many entries it deleted.
   */
  purgeExpired(opts?: PurgeOptions): Promise<number> {
    try {
      this.assertWritable();
      const limit = purgeLimit(opts, 'purgeExpired');
      if (!this.expiring) return Promise.resolve(0);
      return this.transaction((t) => this.purgeIn(t.writeTxn(), limit) as number);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Deletes every entry of this database (expired or not) in one commit, done (durable under
   * sync 'full') on return. The file's other databases are untouched; the pages go back to the
   * file's free space. O(entries): the entries are removed one by one, as `removeSync` does.
   */
  clearSync(): void {
    refuseClearArguments(arguments.length, 'clearSync');
    this.assertWritable();
    this.store.runSync((txn) => this.clearIn(txn));
  }

  /**
   * Like clearSync, queued with the batched writes of this event-loop turn and committed with
   * them, in order: a write queued before it is cleared, one queued after it stays.
   */
  clear(): Promise<void> {
    try {
      refuseClearArguments(arguments.length, 'clear');
      this.assertWritable();
      return this.transaction((t) => {
        this.clearIn(t.writeTxn());
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * @internal Removes every entry of this database in `txn`, a chunk of keys at a time: the
   * keys are read through a cursor over the transaction's own state, then removed through
   * removeIn (which keeps the expiry index), so no removal moves records under a live cursor
   * and no more than a chunk of keys is held. Each chunk must lower the descriptor's count by
   * its size: a damaged index that lists a key it cannot remove stops the clear
   * (ERR_CORRUPT) instead of looping.
   */
  clearIn(txn: WriteTxn): void {
    const ctx = this.writeContext(txn);
    const keys: Uint8Array[] = [];
    while (ctx.desc.root !== 0) {
      const r = new SnapshotReaderCopy(txn);
      const c = ctx.index.cursor(r, ctx.desc, r.pageCountLimit());
      for (let ok = c.seek(null, 0); ok && keys.length < CLEAR_CHUNK; ok = c.next()) {
        const ks = c.keyStart();
        keys.push(c.keyBuf().slice(ks, ks + c.keyLength()));
      }
      if (keys.length === 0) break;
      // Iterators open in this transaction re-seek after the removals.
      txn.version++;
      const before = ctx.desc.entries;
      for (const k of keys) this.removeIn(txn, ctx, k, k.length);
      if (ctx.desc.entries !== before - keys.length) {
        corrupt('a database lists entries its index cannot remove');
      }
      keys.length = 0;
    }
    if (ctx.desc.entries !== 0) corrupt('an emptied database still counts entries');
  }

  /**
   * Runs `fn` in one atomic write transaction and commits it; returns what `fn` returns.
   * Reads inside see the transaction's own writes. A throw aborts (nothing is written) and is
   * rethrown; `txn.abort()` aborts without throwing. `fn` must be synchronous: a callback that
   * returns a promise is a compile error, and ERR_BAD_OPTION at run time.
   */
  transactionSync<T>(fn: (txn: Transaction<K, V, Kind>) => NotPromise<T>): T {
    this.assertWritable();
    if (typeof fn !== 'function')
      throw new MapKVError('ERR_BAD_OPTION', 'transactionSync needs a callback');
    const store = this.store;
    const txn = store.env.beginWrite();
    const view = new Transaction<K, V, Kind>(this, txn);
    try {
      const out = fn(view);
      if (isThenable(out)) refuseAsyncCallback(out);
      view.finish();
      if (view.aborted) store.env.abort(txn);
      else store.commit(txn);
      return out;
    } catch (err) {
      view.finish();
      store.env.abort(txn);
      throw err;
    }
  }

  /**
   * Like transactionSync, but queued with the batched writes of this event-loop turn and
   * committed with them. A throw in `fn` aborts only `fn`'s writes and rejects its promise.
   * `fn` must be synchronous, as in transactionSync.
   */
  transaction<T>(fn: (txn: Transaction<K, V, Kind>) => NotPromise<T>): Promise<T> {
    try {
      this.assertWritable();
      if (typeof fn !== 'function')
        throw new MapKVError('ERR_BAD_OPTION', 'transaction needs a callback');
      return new Promise<T>((resolve, reject) => {
        this.store.enqueue({
          type: 'txn',
          db: this as DatabaseBase<unknown, unknown>,
          fn: fn as unknown as (txn: Transaction<unknown, unknown>) => unknown,
          resolve: resolve as (v: unknown) => void,
          reject,
        });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // --- snapshots and ranges ---

  /** A read transaction: sees the latest commit, and only it, until closed. */
  snapshot(): Snapshot<K, V, Kind> {
    this.store.assertOpen();
    return new Snapshot<K, V, Kind>(this, this.store.env.pin());
  }

  /** Entries in key order over one snapshot, taken when iteration starts. */
  range(opts: RangeOptionsFor<K, Kind> = {}): Iterable<Entry<K, V>> {
    return this.iterable(opts, 'entries') as Iterable<Entry<K, V>>;
  }

  /** Keys in order (see range). */
  keys(opts: RangeOptionsFor<K, Kind> = {}): Iterable<K> {
    return this.iterable(opts, 'keys') as Iterable<K>;
  }

  /** Values in key order (see range). */
  values(opts: RangeOptionsFor<K, Kind> = {}): Iterable<V> {
    return this.iterable(opts, 'values') as Iterable<V>;
  }

  /**
   * Number of entries, or of entries in a range: O(1) without options (O(expired entries) in
   * an expiring sub-database, whose expired entries are left out).
   */
  count(opts: RangeOptionsFor<K, Kind> = {}): number {
    this.store.assertOpen();
    if (isWholeRange(this.planRange(opts))) {
      const ctx = this.readLatest();
      return liveCount(this, ctx.r, ctx.desc, Date.now());
    }
    let n = 0;
    for (const _ of this.iterable(opts, 'count')) n++;
    return n;
  }

  private iterable(opts: RangeOptions<K>, mode: IterMode): Iterable<unknown> {
    this.store.assertOpen();
    const plan = this.planRange(opts);
    return new RangeIterable(() => this.iterateLatest(plan, mode));
  }

  /** An iterator over the latest commit, which it pins until it finishes. */
  private iterateLatest(plan: RangePlan, mode: IterMode): RangeIterator<K, V> {
    const store = this.store;
    store.assertOpen();
    const group = store.pinForIterator();
    const r = group.pins.reader;
    try {
      // The reader is the latest commit's, so the per-commit context of point reads serves.
      let ctx = this.latestContext;
      if (ctx === null || ctx.r !== r) {
        ctx = this.readContextOf(r, true);
        this.latestContext = ctx;
      }
      return new RangeIterator(this, r, ctx.desc, plan, mode, group, null, null, Date.now());
    } catch (err) {
      // A damaged catalog or descriptor: no iterator holds the pin, so nothing would free it.
      store.unpinIterator(group);
      throw err;
    }
  }

  /**
   * @internal A cursor of this database's index positioned nowhere, reused from a finished
   * iterator when there is one (making one allocates its path arrays).
   */
  cursorFor(r: PageReader, desc: DbDescriptor): IndexCursor {
    const spare = this.spareCursor;
    if (spare === null) return this.index.cursor(r, desc, r.pageCountLimit());
    this.spareCursor = null;
    spare.reset(r, desc);
    return spare;
  }

  /**
   * @internal Takes back the cursor of an iterator that finished and will not touch it again.
   * Only cursors of one index kind ever come here: a database has one index.
   */
  recycleCursor(c: IndexCursor): void {
    this.spareCursor = c;
  }

  private spareCursor: IndexCursor | null = null;

  // --- internals ---

  /**
   * @internal Encodes `key` (or a range prefix, a leading part of a tuple key) into the store's
   * scratch buffer; returns its length.
   */
  encodeKey(key: K | KeyPrefix<K>): number {
    const store = this.store;
    store.assertOpen();
    // A key can run code while it is encoded (a getter on a tuple element, a proxy); if that
    // code used the database, its key would overwrite this one's bytes half-way.
    if (store.encodingKey) {
      throw new MapKVError(
        'ERR_BAD_KEY',
        'a key used the database while it was being encoded (a getter or proxy inside the key)',
      );
    }
    store.encodingKey = true;
    try {
      return this.keys_.encode(key, store.keyScratch);
    } catch (err) {
      if (err instanceof MapKVError) throw err;
      // Reading the key itself threw: a revoked proxy, a getter on a tuple element.
      throw new MapKVError('ERR_BAD_KEY', `the key could not be read: ${String(err)}`, {
        cause: err,
      });
    } finally {
      store.encodingKey = false;
    }
  }

  /**
   * @internal The expiry time, as stored (0: never), of an entry put now with options `opts`
   * through this handle; 0 in a database that does not expire. Checks the options.
   */
  expiryOf(opts: PutOptions | undefined, where: string): number {
    let ttl = this.ttl;
    if (opts !== undefined) {
      const o = checkOptionKeys(opts, PUT_OPTIONS, where);
      if (o.ttl !== undefined) {
        if (!this.expiring) {
          throw new MapKVError(
            'ERR_BAD_OPTION',
            `${where}: ttl needs a database created with ttl (openDB(name, { ttl }), or ` +
              'open(path, { ttl }) for the unnamed database)',
          );
        }
        ttl = checkTtl(o.ttl, where);
      }
    }
    return this.expiring ? expiryAt(Date.now(), ttl) : 0;
  }

  /**
   * @internal Removes `k[0, kl)` in `txn`; returns whether it was there for reads: an expired
   * entry is deleted, and counts as absent.
   */
  removeIn(
    txn: WriteTxn,
    ctx: { desc: DbDescriptor; index: Index; touched: () => void },
    k: Uint8Array,
    kl: number,
  ): boolean {
    let before = 0;
    if (this.expiring && ctx.index.get(txn, ctx.desc, k, kl, VALUE_REF)) {
      before = storedExpiry(VALUE_REF);
    }
    const existed = ctx.index.remove(txn, ctx.desc, k, kl);
    if (!existed) return false;
    ctx.touched();
    if (before === 0) return true;
    noteExpiry(txn, ctx.desc, k, kl, before, 0);
    return Date.now() < before;
  }

  /**
   * @internal Puts `v[0, vl)`, a value as this database stores it (behind its deadline when
   * it expires), under `k[0, kl)` in `txn`, keeping the expiry index.
   */
  putIn(
    txn: WriteTxn,
    ctx: { desc: DbDescriptor; index: Index },
    k: Uint8Array,
    kl: number,
    v: Uint8Array,
    vl: number,
  ): void {
    if (!this.expiring) {
      ctx.index.put(txn, ctx.desc, k, kl, v, vl);
      return;
    }
    const after = expiryOfStored(v);
    const before = ctx.index.get(txn, ctx.desc, k, kl, VALUE_REF) ? storedExpiry(VALUE_REF) : 0;
    ctx.index.put(txn, ctx.desc, k, kl, v, vl);
    noteExpiry(txn, ctx.desc, k, kl, before, after);
  }

  /**
   * @internal Throws ERR_KEY_TOO_LARGE for a key of `kl` bytes in this expiring database:
   * its expiry index keys are the key behind an 8-byte deadline, and must fit a page too.
   */
  checkExpiringKey(kl: number): void {
    const max = this.store.maxKey - EXPIRY_BYTES;
    if (kl > max) {
      throw new MapKVError(
        'ERR_KEY_TOO_LARGE',
        `a key of an expiring sub-database takes at most ${max} bytes (8 less than ` +
          `maxKeySize, for its deadline in the expiry index); this one takes ${kl}`,
      );
    }
  }

  /**
   * @internal Deletes the entries of this (expiring) database that are expired now, at most
   * `limit` of them, earliest deadlines first, in `txn`; returns how many. They are the first
   * entries of the expiry index; their keys are collected before any is removed, since a
   * removal moves records under the cursor.
   */
  purgeIn(txn: WriteTxn, limit: number): number {
    if (!this.expiring) return 0;
    const ctx = this.writeContext(txn);
    const x = expiryIndexOf(ctx.desc);
    if (x.root === 0) return 0;
    const now = Date.now();
    // The expiry index lists the records by deadline: the expired ones are its first entries.
    const r = new SnapshotReaderCopy(txn);
    const c = new TreeCursor(r, x, r.pageCountLimit());
    const dead: Uint8Array[] = [];
    for (let ok = c.seek(null, 0); ok && dead.length < limit; ok = c.next()) {
      const ks = c.keyStart();
      const kl = c.keyLength();
      if (kl < EXPIRY_BYTES) corrupt('an expiry index key is shorter than its deadline');
      if (indexKeyExpiry(c.keyBuf(), ks) > now) break;
      dead.push(c.keyBuf().slice(ks, ks + kl));
    }
    if (dead.length === 0) return 0;
    // Iterators open in this transaction re-seek after the removals.
    txn.version++;
    for (const ik of dead) {
      const k = ik.subarray(EXPIRY_BYTES);
      if (!ctx.index.get(txn, ctx.desc, k, k.length, VALUE_REF)) {
        corrupt('the expiry index lists a record that is not there');
      }
      const at = indexKeyExpiry(ik, 0);
      if (storedExpiry(VALUE_REF) !== at) corrupt('the expiry index has a stale deadline');
      ctx.index.remove(txn, ctx.desc, k, k.length);
      noteExpiry(txn, ctx.desc, k, k.length, at, 0);
    }
    ctx.touched();
    return dead.length;
  }

  /** @internal */
  assertWritable(): void {
    this.store.assertOpen();
    // close() commits what was queued before it; a write started after it would land in a
    // file its caller was told is closing.
    if (this.store.closing)
      throw new MapKVError('ERR_CLOSED', 'the database is closing: close() was called');
    if (this.store.env.storage.readOnly)
      throw new MapKVError('ERR_READ_ONLY', 'the database was opened read-only');
  }

  /** @internal */
  planRange(opts: RangeOptions<K>): RangePlan {
    opts = checkOptionKeys(opts, RANGE_OPTIONS, 'range');
    const { start, end, reverse, limit, prefix } = opts;
    if (
      this.kind === DbKind.Hash &&
      (start !== undefined || end !== undefined || reverse !== undefined || prefix !== undefined)
    ) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        "a 'hash' database has no key order: start, end, reverse and prefix need kind 'btree'",
      );
    }
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `limit must be a non-negative integer, got ${String(limit)}`,
      );
    }
    if (reverse !== undefined && typeof reverse !== 'boolean') {
      throw new MapKVError('ERR_BAD_OPTION', 'reverse must be a boolean');
    }
    let lo: Uint8Array | null = start === undefined ? null : this.keyBytes(start);
    let hi: Uint8Array | null = end === undefined ? null : this.keyBytes(end);
    if (prefix !== undefined) {
      let p = this.keyBytes(prefix);
      // An ordered tuple ends with its terminator byte; without it, longer tuples match too.
      if (this.keys_.name === 'ordered' && Array.isArray(prefix)) p = p.subarray(0, p.length - 1);
      if (lo === null || compareArrays(p, lo) > 0) lo = p;
      const after = prefixEnd(p);
      if (after !== null && (hi === null || compareArrays(after, hi) < 0)) hi = after;
    }
    return { lo, hi, reverse: reverse === true, limit: limit ?? Infinity };
  }

  private keyBytes(key: K | KeyPrefix<K>): Uint8Array {
    const n = this.encodeKey(key);
    return this.store.keyScratch.slice(0, n);
  }

  /** @internal The descriptor and reader for the latest commit. */
  readLatest(): ReadContext {
    this.store.assertOpen();
    const r = this.store.env.latest();
    // The context of a snapshot never changes: reuse it until the latest commit moves, so a
    // read allocates nothing and looks the sub-database up once per commit.
    const cached = this.latestContext;
    if (cached !== null && cached.r === r) return cached;
    const ctx = this.readContextOf(r, true);
    this.latestContext = ctx;
    return ctx;
  }

  private latestContext: ReadContext | null = null;

  /** @internal */
  readContextOf(r: SnapshotReader, latest = false): ReadContext {
    const meta = r.meta;
    if (this.name === null) {
      this.checkSameShape(meta.main);
      return { r, desc: meta.main, index: this.index };
    }
    const desc = this.store.lookupNamed(r, meta.catalog, this.name, latest ? meta : null);
    if (desc !== null) this.checkSameShape(desc);
    return { r, desc: desc ?? emptyDescriptor(this.kind, 0, 0), index: this.index };
  }

  /**
   * Throws ERR_INCOMPATIBLE unless the file's descriptor of this database has this handle's
   * kind and encodings. openDB (open, for the unnamed database) checked them, but a name
   * missing then may have been created since by another handle or process with other
   * options, and a file whose first commit had not yet recorded the unnamed database's
   * encodings (its creator still opening it, or stopped before) may have had them recorded
   * since by another; reading its pages with this handle's index and codecs would return
   * wrong data, and writing them would mix two encodings in one database.
   */
  private checkSameShape(desc: DbDescriptor): void {
    const keyId = KEY_ENCODING_IDS[this.keys_.name];
    if (
      desc.kind !== this.kind ||
      (desc.keyEncoding !== 0 && desc.keyEncoding !== keyId) ||
      (desc.valueEncoding !== 0 && desc.valueEncoding !== this.valueId)
    ) {
      throw new MapKVError(
        'ERR_INCOMPATIBLE',
        this.name === null
          ? 'the unnamed database was given its encodings by another handle, other than the ' +
              'ones this handle took when the file had none yet; open the file again'
          : `sub-database '${this.name}' was created by another handle with another kind or ` +
              'other encodings than this handle assumed; call openDB again to get a handle for it',
      );
    }
  }

  /** @internal The descriptor of this database inside write transaction `txn`. */
  writeContext(txn: WriteTxn): WriteContext {
    const name = this.name;
    if (name !== null) txn.noteNamed(name);
    if (txn.contextOwner === this) {
      // The context made last time still stands while the transaction holds the same
      // descriptor object for this database: a rollback or a first open puts another one in
      // its place, and changes made in place are seen through the shared object anyway.
      const c = txn.context as WriteContext;
      if (
        name === null
          ? c.desc === txn.main && c.desc.keyEncoding !== 0
          : c.desc === txn.named.get(name)
      ) {
        return c;
      }
    }
    const ctx = this.newWriteContext(txn);
    txn.contextOwner = this;
    txn.context = ctx;
    return ctx;
  }

  private newWriteContext(txn: WriteTxn): WriteContext {
    if (this.name === null) {
      const desc = txn.main;
      if (desc.keyEncoding === 0) {
        desc.keyEncoding = KEY_ENCODING_IDS[this.keys_.name];
        desc.valueEncoding = this.valueId;
        txn.metaChanged = true;
      } else {
        this.checkSameShape(desc);
      }
      return { desc, index: this.index, touched: () => undefined };
    }
    const name = this.name;
    let desc = txn.named.get(name);
    if (desc === undefined) {
      const kb = encodeName(name);
      const found = treeGet(txn, txn.catalog, kb, kb.length, VALUE_REF)
        ? readCatalogValue(VALUE_REF)
        : null;
      if (found !== null) checkDescriptor(found, txn.pageCount);
      desc = found ?? emptyDescriptor(this.kind, KEY_ENCODING_IDS[this.keys_.name], this.valueId);
      txn.named.set(name, desc);
    }
    // Checked whether the transaction found the descriptor in the file or holds it already:
    // another handle of the same name may have put it there (reading it, or creating the
    // database with its own kind and encodings), and this handle's index and codecs must not
    // touch a database of another shape.
    this.checkSameShape(desc);
    const d = desc;
    return { desc: d, index: this.index, touched: () => txn.namedDirty.add(name) };
  }
}

/**
 * The clear calls take no argument. One given from JavaScript (a key, a prefix, range
 * options) would be ignored, and the call that looks like it deletes some entries would delete
 * them all: refused instead, before anything is written. They have no options, so even an
 * `undefined` is refused: no call with an argument can mean "everything".
 */
function refuseClearArguments(count: number, where: string): void {
  if (count > 0) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `${where}() takes no arguments: it deletes every entry of the database; to delete ` +
        'some, remove them (in one transaction for one commit)',
    );
  }
}

/** What an iterator yields; 'count' yields `true` per entry, decoding nothing (count()). */
type IterMode = 'entries' | 'keys' | 'values' | 'count';

/** @internal A range's bounds as bytes: [lo, hi). */
export interface RangePlan {
  lo: Uint8Array | null;
  hi: Uint8Array | null;
  reverse: boolean;
  limit: number;
}

/**
 * expiresAt of the key in the store's key scratch (`kl` bytes) in `desc` (of database `db`,
 * read through `r`) at time `now`.
 */
function deadlineOf(
  db: DatabaseBase<unknown, unknown>,
  r: PageReader,
  desc: DbDescriptor,
  kl: number,
  now: number,
): number | undefined {
  if (!db.index.get(r, desc, db.store.keyScratch, kl, VALUE_REF)) return undefined;
  if (!db.expiring) return Infinity;
  const at = storedExpiry(VALUE_REF);
  if (at === 0) return Infinity;
  return now < at ? at : undefined;
}

/**
 * The entries of `desc` (of database `db`, read through `r`) that are live at `now`: the
 * descriptor's count, less, in an expiring database, the expired ones, which are the first
 * entries of its expiry index (O(expired)).
 */
function liveCount(
  db: DatabaseBase<unknown, unknown>,
  r: PageReader,
  desc: DbDescriptor,
  now: number,
): number {
  if (!db.expiring) return desc.entries;
  const x = expiryIndexOf(desc);
  if (x.root === 0) return desc.entries;
  let expired = 0;
  const c = new TreeCursor(new SnapshotReaderCopy(r), x, r.pageCountLimit());
  for (let ok = c.seek(null, 0); ok; ok = c.next()) {
    if (c.keyLength() < EXPIRY_BYTES) corrupt('an expiry index key is shorter than its deadline');
    if (indexKeyExpiry(c.keyBuf(), c.keyStart()) > now) break;
    expired++;
  }
  if (expired > desc.entries) corrupt('the expiry index lists more entries than its database');
  return desc.entries - expired;
}

/** A plan with no bounds and no limit: its count is the descriptor's entry count. */
function isWholeRange(plan: RangePlan): boolean {
  return plan.lo === null && plan.hi === null && plan.limit === Infinity;
}

function compareArrays(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The smallest byte string greater than every string starting with `p` (null: none). */
function prefixEnd(p: Uint8Array): Uint8Array | null {
  const out = p.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 0xff) {
      out[i]!++;
      return out.subarray(0, i + 1);
    }
  }
  return null;
}

function copyOut(ref: ValueRef): Uint8Array {
  return copyBytes(ref.buf, ref.start, ref.end);
}

/** Ends leaked snapshots' pins when they are garbage collected. */
const pinRegistry = new FinalizationRegistry<() => void>((release) => release());

/** The pins held by the unfinished iterators of one IteratorGroup. */
interface IteratorPins {
  readonly env: Environment;
  readonly reader: SnapshotReader;
  /** Iterators of the group that took a pin and have not finished. */
  open: number;
}

/**
 * What the iterators over one commit share: the target of one FinalizationRegistry entry,
 * whose held value (the pins) must not refer back to it, or it could never be collected.
 */
class IteratorGroup {
  constructor(readonly pins: IteratorPins) {}
}

/** Once a group is garbage no iterator of it will finish: their pins are released here. */
const iteratorRegistry = new FinalizationRegistry<IteratorPins>((pins) => {
  for (; pins.open > 0; pins.open--) pins.env.unpin(pins.reader);
});

/** What `range()`, `keys()` and `values()` return: each iteration starts a new iterator. */
class RangeIterable implements Iterable<unknown> {
  constructor(private readonly start: () => Iterator<unknown>) {}

  [Symbol.iterator](): Iterator<unknown> {
    return this.start();
  }
}

/** What RangeIterator.current returns past the range's end: no key or value is this symbol. */
const PAST_END: unique symbol = Symbol('past the end');
/** What RangeIterator.current returns for an expired entry, which the iteration passes over. */
const EXPIRED: unique symbol = Symbol('expired');

const enum Stage {
  /** Not positioned yet: the first next() seeks. */
  Start,
  /** Positioned on the entry last returned: next() steps. */
  Step,
  Done,
}

/**
 * Iterates one index over one snapshot (or a write transaction, re-seeking after the
 * transaction changes under it).
 */
class RangeIterator<K, V> implements IterableIterator<unknown> {
  /** See {@link refuseClone}. */
  readonly cloneGuard = refuseClone;
  private stage = Stage.Start;
  /** Entries the limit still allows. */
  private left: number;
  private readonly cursor: IndexCursor;
  private readonly lo: Uint8Array | null;
  private readonly hi: Uint8Array | null;
  private readonly reverse: boolean;
  private readonly keys: KeyEncoder;
  private readonly values: ValueEncoder;
  private readonly store: Store;
  /** Inside a write transaction: the last key returned, to find the place again. */
  private lastKey: Uint8Array | null = null;
  private version: number;
  /** The time expiry is judged at; -1 in a database that does not expire. */
  private readonly now: number;

  /**
   * `group`: holds the pin on the latest commit this iterator releases when it finishes (null
   * for a snapshot's or a transaction's iterator). `txn`: the write transaction iterated, whose
   * writes make the iterator re-seek. `assertLive`: throws once the snapshot or transaction
   * is finished.
   */
  constructor(
    private readonly db: DatabaseBase<K, V>,
    private readonly r: PageReader,
    desc: DbDescriptor,
    plan: RangePlan,
    private readonly mode: IterMode,
    private group: IteratorGroup | null,
    private readonly txn: WriteTxn | null,
    private readonly assertLive: (() => void) | null,
    now: number,
  ) {
    this.now = db.expiring ? now : -1;
    this.cursor = db.cursorFor(r, desc);
    this.lo = plan.lo;
    this.hi = plan.hi;
    this.reverse = plan.reverse;
    this.left = plan.limit;
    this.keys = db.keys_;
    this.values = db.values_;
    this.store = db.store;
    this.version = txn === null ? 0 : txn.version;
  }

  [Symbol.iterator](): this {
    return this;
  }

  next(): IteratorResult<unknown> {
    // Kept small so that V8 inlines it into the caller's loop, where the result object then
    // need not be allocated; the decoding is in current().
    if (this.stage !== Stage.Step) return this.first();
    try {
      this.store.assertOpen();
      if (this.assertLive !== null) this.assertLive();
      if (this.left <= 0) return this.finish();
      const c = this.cursor;
      let ok: boolean;
      if (this.txn !== null && this.txn.version !== this.version) ok = this.reseek();
      else ok = this.reverse ? c.prev() : c.next();
      let value = ok ? this.current() : PAST_END;
      while (value === EXPIRED)
        value = (this.reverse ? c.prev() : c.next()) ? this.current() : PAST_END;
      if (value === PAST_END) return this.finish();
      return { done: false, value };
    } catch (err) {
      // A for..of does not call return() when next() throws: an iterator that threw is done,
      // and must give back its pin now, not when the GC finds it.
      this.finish();
      throw err;
    }
  }

  return(): IteratorResult<unknown> {
    return this.finish();
  }

  /** next() before the first entry (seeks) and after the last. */
  private first(): IteratorResult<unknown> {
    if (this.stage === Stage.Done) return { done: true, value: undefined };
    try {
      return this.seekFirst();
    } catch (err) {
      this.finish(); // as in next()
      throw err;
    }
  }

  private seekFirst(): IteratorResult<unknown> {
    this.store.assertOpen();
    if (this.assertLive !== null) this.assertLive();
    if (this.left <= 0) return this.finish();
    this.stage = Stage.Step;
    const c = this.cursor;
    const txn = this.txn;
    if (txn !== null && txn.version !== this.version) {
      // The transaction wrote since the iterator was made: the tree may have a new root or
      // depth, and iteration starts from the transaction's state now.
      this.version = txn.version;
      c.reset(this.r, this.db.writeContext(txn).desc);
    }
    const lo = this.lo;
    const hi = this.hi;
    const ok = this.reverse
      ? c.seekBefore(hi, hi === null ? 0 : hi.length)
      : c.seek(lo, lo === null ? 0 : lo.length);
    let value = ok ? this.current() : PAST_END;
    while (value === EXPIRED)
      value = (this.reverse ? c.prev() : c.next()) ? this.current() : PAST_END;
    if (value === PAST_END) return this.finish();
    return { done: false, value };
  }

  /** The transaction changed the tree: finds the place after the last key returned again. */
  private reseek(): boolean {
    const txn = this.txn!;
    this.version = txn.version;
    const c = this.cursor;
    c.reset(this.r, this.db.writeContext(txn).desc);
    const k = this.lastKey!;
    if (this.reverse) return c.seekBefore(k, k.length);
    if (!c.seek(k, k.length)) return false;
    if (compareSpan(c.keyBuf(), c.keyStart(), c.keyLength(), k) === 0) return c.next();
    return true;
  }

  /**
   * What the iteration yields for the entry the cursor is on (an entry, a key or a value),
   * PAST_END when the entry is past the range's bounds, or EXPIRED when it has expired.
   */
  private current(): unknown {
    const c = this.cursor;
    const kb = c.keyBuf();
    const ks = c.keyStart();
    const kl = c.keyLength();
    if (this.reverse) {
      if (this.lo !== null && compareSpan(kb, ks, kl, this.lo) < 0) return PAST_END;
    } else if (this.hi !== null && compareSpan(kb, ks, kl, this.hi) >= 0) return PAST_END;
    const expiring = this.now >= 0;
    // An expired entry is not part of the range: it takes nothing from the limit.
    if (expiring) {
      c.value(VALUE_REF);
      if (!liveValue(VALUE_REF, this.now)) return EXPIRED;
    }
    this.left--;
    if (this.txn !== null) this.lastKey = kb.slice(ks, ks + kl);
    const mode = this.mode;
    if (mode === 'count') return true;
    if (mode === 'keys') return this.keys.decode(kb, ks, ks + kl);
    // liveValue left VALUE_REF on the value's own bytes.
    if (!expiring) c.value(VALUE_REF);
    const value = this.values.decode(VALUE_REF.buf, VALUE_REF.start, VALUE_REF.end);
    if (mode === 'values') return value;
    return { key: this.keys.decode(kb, ks, ks + kl), value };
  }

  private finish(): IteratorResult<unknown> {
    if (this.stage !== Stage.Done) {
      this.stage = Stage.Done;
      // Nothing reads the cursor once the stage is Done. A transaction's cursor is not kept:
      // its reader would keep the finished transaction reachable.
      if (this.txn === null) this.db.recycleCursor(this.cursor);
      if (this.group !== null) {
        this.store.unpinIterator(this.group);
        // A finished iterator kept by its caller must not keep the group, and with it the
        // pins of the group's leaked iterators, alive.
        this.group = null;
      }
    }
    return { done: true, value: undefined };
  }
}

function compareSpan(b: Uint8Array, s: number, l: number, k: Uint8Array): number {
  const n = l < k.length ? l : k.length;
  for (let i = 0; i < n; i++) {
    const d = b[s + i]! - k[i]!;
    if (d !== 0) return d;
  }
  return l - k.length;
}

/**
 * A read transaction over one commit. It sees that commit, whatever commits follow, until
 * `close()` (or `using snap = db.snapshot()`).
 *
 * @typeParam K - The key type of the database the snapshot was taken on.
 * @typeParam V - Its value type.
 * @typeParam Kind - That database's kind ({@link DatabaseBase}).
 */
export class Snapshot<K = unknown, V = unknown, Kind extends DbKindName = DbKindName> {
  /** @internal See {@link refuseClone}. */
  readonly cloneGuard = refuseClone;
  private closed = false;
  /**
   * The time the snapshot was taken: expiring databases are read as of then, so that the
   * snapshot keeps seeing one state.
   */
  private readonly now = Date.now();

  /** @internal */
  constructor(
    private readonly base: DatabaseBase<K, V, Kind>,
    private readonly reader: SnapshotReader,
  ) {
    pinRegistry.register(this, () => base.store.env.unpin(reader), this);
  }

  /** Id of the commit this snapshot reads. */
  get txnId(): number {
    return this.reader.meta.txnId;
  }

  /** The value stored under `key` in this snapshot, decoded; undefined when absent. */
  get(key: K): V | undefined {
    return this.on(this.base).get(key);
  }

  /** The stored bytes of `key`'s value in this snapshot (a copy); undefined when absent. */
  getBinary(key: K): Uint8Array | undefined {
    return this.on(this.base).getBinary(key);
  }

  /** Whether `key` is present in this snapshot. */
  has(key: K): boolean {
    return this.on(this.base).has(key);
  }

  /** When `key`'s entry expires, as of this snapshot (see {@link DatabaseBase.expiresAt}). */
  expiresAt(key: K): number | undefined {
    return this.on(this.base).expiresAt(key);
  }

  /** Entries in key order, as this snapshot sees them (see {@link RangeOptions}). */
  range(opts: RangeOptionsFor<K, Kind> = {}): Iterable<Entry<K, V>> {
    return this.on(this.base).range(opts);
  }

  /** Keys in order, as this snapshot sees them (see range). */
  keys(opts: RangeOptionsFor<K, Kind> = {}): Iterable<K> {
    return this.on(this.base).keys(opts);
  }

  /** Values in key order, as this snapshot sees them (see range). */
  values(opts: RangeOptionsFor<K, Kind> = {}): Iterable<V> {
    return this.on(this.base).values(opts);
  }

  /**
   * Number of entries in this snapshot, or of entries in a range: O(1) without options
   * (O(expired entries) in an expiring sub-database, whose expired entries are left out).
   */
  count(opts: RangeOptionsFor<K, Kind> = {}): number {
    return this.on(this.base).count(opts);
  }

  /** The same snapshot, read through another database of the same file. */
  db<K2, V2, Kind2 extends DbKindName = DbKindName>(
    other: DatabaseBase<K2, V2, Kind2>,
  ): SnapshotView<K2, V2, Kind2> {
    return this.on(other);
  }

  /** Releases the snapshot; later reads throw ERR_TXN_DONE. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    pinRegistry.unregister(this);
    this.base.store.env.unpin(this.reader);
  }

  /** Closes the snapshot: what `using snap = db.snapshot()` calls at the end of the block. */
  [Symbol.dispose](): void {
    this.close();
  }

  private on<K2, V2, Kind2 extends DbKindName>(
    db: DatabaseBase<K2, V2, Kind2>,
  ): SnapshotView<K2, V2, Kind2> {
    if (this.closed) throw new MapKVError('ERR_TXN_DONE', 'the snapshot is closed');
    checkSameFile(db, this.base.store, 'snapshot.db()');
    return new SnapshotView(db, this.reader, () => this.closed, this.now);
  }
}

/**
 * Reads of one database through a snapshot: what `snap.db(other)` returns. Its reads throw
 * ERR_TXN_DONE once the snapshot is closed.
 *
 * @typeParam K - The key type of that database.
 * @typeParam V - Its value type.
 * @typeParam Kind - That database's kind ({@link DatabaseBase}).
 */
export class SnapshotView<K, V, Kind extends DbKindName = DbKindName> {
  /** @internal See {@link refuseClone}. */
  readonly cloneGuard = refuseClone;
  /** @internal */
  constructor(
    private readonly db: DatabaseBase<K, V, Kind>,
    private readonly reader: SnapshotReader,
    private readonly isClosed: () => boolean,
    private readonly now: number,
  ) {}

  private ctx(): ReadContext {
    if (this.isClosed()) throw new MapKVError('ERR_TXN_DONE', 'the snapshot is closed');
    this.db.store.assertOpen();
    return this.db.readContextOf(this.reader);
  }

  /** The value stored under `key` in the snapshot, decoded; undefined when absent. */
  get(key: K): V | undefined {
    const ctx = this.ctx();
    const kl = this.db.encodeKey(key);
    if (!ctx.index.get(ctx.r, ctx.desc, this.db.store.keyScratch, kl, VALUE_REF)) return undefined;
    if (this.db.expiring && !liveValue(VALUE_REF, this.now)) return undefined;
    return this.db.values_.decode(VALUE_REF.buf, VALUE_REF.start, VALUE_REF.end) as V;
  }

  /** The stored bytes of `key`'s value in the snapshot (a copy); undefined when absent. */
  getBinary(key: K): Uint8Array | undefined {
    const ctx = this.ctx();
    const kl = this.db.encodeKey(key);
    if (!ctx.index.get(ctx.r, ctx.desc, this.db.store.keyScratch, kl, VALUE_REF)) return undefined;
    if (this.db.expiring && !liveValue(VALUE_REF, this.now)) return undefined;
    return copyOut(VALUE_REF);
  }

  /** Whether `key` is present in the snapshot. */
  has(key: K): boolean {
    const ctx = this.ctx();
    const kl = this.db.encodeKey(key);
    if (!ctx.index.get(ctx.r, ctx.desc, this.db.store.keyScratch, kl, VALUE_REF)) return false;
    return !this.db.expiring || liveValue(VALUE_REF, this.now);
  }

  /**
   * When `key`'s entry expires, as of the snapshot (its clock is the time it was taken; see
   * {@link DatabaseBase.expiresAt}).
   */
  expiresAt(key: K): number | undefined {
    const ctx = this.ctx();
    return deadlineOf(this.db, ctx.r, ctx.desc, this.db.encodeKey(key), this.now);
  }

  /** Entries in key order, as the snapshot sees them (see {@link RangeOptions}). */
  range(opts: RangeOptionsFor<K, Kind> = {}): Iterable<Entry<K, V>> {
    return this.iter(opts, 'entries') as Iterable<Entry<K, V>>;
  }

  /** Keys in order, as the snapshot sees them (see range). */
  keys(opts: RangeOptionsFor<K, Kind> = {}): Iterable<K> {
    return this.iter(opts, 'keys') as Iterable<K>;
  }

  /** Values in key order, as the snapshot sees them (see range). */
  values(opts: RangeOptionsFor<K, Kind> = {}): Iterable<V> {
    return this.iter(opts, 'values') as Iterable<V>;
  }

  /**
   * Number of entries in the snapshot, or of entries in a range: O(1) without options
   * (O(expired entries) in an expiring sub-database, whose expired entries are left out).
   */
  count(opts: RangeOptionsFor<K, Kind> = {}): number {
    if (isWholeRange(this.db.planRange(opts))) {
      const ctx = this.ctx();
      return liveCount(this.db, ctx.r, ctx.desc, this.now);
    }
    let n = 0;
    for (const _ of this.iter(opts, 'count')) n++;
    return n;
  }

  private iter(opts: RangeOptions<K>, mode: IterMode): Iterable<unknown> {
    const plan = this.db.planRange(opts);
    this.ctx();
    return new RangeIterable(() => {
      const ctx = this.ctx();
      const own = new SnapshotReaderCopy(ctx.r);
      return new RangeIterator(
        this.db,
        own,
        ctx.desc,
        plan,
        mode,
        null,
        null,
        () => {
          if (this.isClosed()) throw new MapKVError('ERR_TXN_DONE', 'the snapshot is closed');
        },
        this.now,
      );
    });
  }
}

/**
 * A private reader over the same snapshot: iterators keep `at` state in their reader, so two
 * live iterators must not share one.
 */
class SnapshotReaderCopy implements PageReader {
  readonly pageSize: number;
  readonly verifyChecksums: boolean;
  at = 0;
  constructor(private readonly inner: PageReader) {
    this.pageSize = inner.pageSize;
    this.verifyChecksums = inner.verifyChecksums;
  }
  page(pgno: number): Uint8Array {
    const b = this.inner.page(pgno);
    this.at = this.inner.at;
    return b;
  }
  runBytes(
    first: number,
    pages: number,
    from: number,
    length: number,
  ): { buf: Uint8Array; start: number } {
    return this.inner.runBytes(first, pages, from, length);
  }
  pageCountLimit(): number {
    return this.inner.pageCountLimit();
  }
}

/**
 * A write transaction seen through one database. `txn.db(other)` gives the same transaction
 * on another database of the file, so one commit can change several atomically. It is valid
 * only while its callback runs: later calls throw ERR_TXN_DONE.
 *
 * @typeParam K - The key type of the database it is seen through.
 * @typeParam V - Its value type.
 * @typeParam Kind - That database's kind ({@link DatabaseBase}).
 */
export class Transaction<K = unknown, V = unknown, Kind extends DbKindName = DbKindName> {
  /** @internal See {@link refuseClone}. */
  readonly cloneGuard = refuseClone;
  /** @internal */
  aborted = false;
  private done = false;

  /** @internal */
  constructor(
    private readonly database: DatabaseBase<K, V, Kind>,
    private readonly txn: WriteTxn,
    private readonly root: Transaction<unknown, unknown> | null = null,
  ) {}

  private live(): void {
    const r = this.root ?? (this as Transaction<unknown, unknown>);
    if (r.done) throw new MapKVError('ERR_TXN_DONE', 'the transaction is already finished');
    this.database.store.assertOpen();
  }

  /** The value stored under `key` (own writes included), decoded; undefined when absent. */
  get(key: K): V | undefined {
    this.live();
    const ctx = this.database.writeContext(this.txn);
    const kl = this.database.encodeKey(key);
    if (!ctx.index.get(this.txn, ctx.desc, this.database.store.keyScratch, kl, VALUE_REF))
      return undefined;
    if (this.database.expiring && !liveValue(VALUE_REF, Date.now())) return undefined;
    return this.database.values_.decode(VALUE_REF.buf, VALUE_REF.start, VALUE_REF.end) as V;
  }

  /** The stored bytes of `key`'s value (a copy), own writes included; undefined when absent. */
  getBinary(key: K): Uint8Array | undefined {
    this.live();
    const ctx = this.database.writeContext(this.txn);
    const kl = this.database.encodeKey(key);
    if (!ctx.index.get(this.txn, ctx.desc, this.database.store.keyScratch, kl, VALUE_REF))
      return undefined;
    if (this.database.expiring && !liveValue(VALUE_REF, Date.now())) return undefined;
    return copyOut(VALUE_REF);
  }

  /** Whether `key` is present, this transaction's own writes included. */
  has(key: K): boolean {
    this.live();
    const ctx = this.database.writeContext(this.txn);
    const kl = this.database.encodeKey(key);
    if (!ctx.index.get(this.txn, ctx.desc, this.database.store.keyScratch, kl, VALUE_REF))
      return false;
    return !this.database.expiring || liveValue(VALUE_REF, Date.now());
  }

  /**
   * When `key`'s entry expires, this transaction's own writes included (see
   * {@link DatabaseBase.expiresAt}).
   */
  expiresAt(key: K): number | undefined {
    this.live();
    const ctx = this.database.writeContext(this.txn);
    return deadlineOf(this.database, this.txn, ctx.desc, this.database.encodeKey(key), Date.now());
  }

  /**
   * Stores `value` under `key` when the transaction commits; later reads in it see it now.
   * `opts.ttl` (a database created with `ttl` only): the entry's lifetime in milliseconds.
   */
  put(key: K, value: V, opts?: PutOptions): void {
    this.live();
    const db = this.database;
    const expires = db.expiryOf(opts, 'txn.put');
    // The value first, as in putSync: its encoding may run code that reads the database.
    let vb = db.values_.encode(value);
    if (db.expiring) vb = withExpiry(vb, expires);
    const kl = db.encodeKey(key);
    if (db.expiring) db.checkExpiringKey(kl);
    const ctx = db.writeContext(this.txn);
    // A write may move records inside a page this transaction already owns: iterators over
    // the transaction see the version change and re-seek.
    this.txn.version++;
    db.putIn(this.txn, ctx, db.store.keyScratch, kl, vb, vb.length);
    ctx.touched();
  }

  /** Removes `key` when the transaction commits; returns whether it existed. */
  remove(key: K): boolean {
    this.live();
    const kl = this.database.encodeKey(key);
    const ctx = this.database.writeContext(this.txn);
    this.txn.version++;
    return this.database.removeIn(this.txn, ctx, this.database.store.keyScratch, kl);
  }

  /**
   * Deletes every entry of the database when the transaction commits; later reads in it see
   * the database empty, and later writes in it stay.
   */
  clear(): void {
    refuseClearArguments(arguments.length, 'txn.clear');
    this.live();
    this.database.clearIn(this.txn);
  }

  /**
   * Entries in key order as the transaction sees them (see {@link RangeOptions}). An iteration
   * keeps working when the transaction writes meanwhile: it goes on after the last key returned.
   */
  range(opts: RangeOptionsFor<K, Kind> = {}): Iterable<Entry<K, V>> {
    return this.iter(opts, 'entries') as Iterable<Entry<K, V>>;
  }

  /** Keys in order as the transaction sees them (see range). */
  keys(opts: RangeOptionsFor<K, Kind> = {}): Iterable<K> {
    return this.iter(opts, 'keys') as Iterable<K>;
  }

  /** Values in key order as the transaction sees them (see range). */
  values(opts: RangeOptionsFor<K, Kind> = {}): Iterable<V> {
    return this.iter(opts, 'values') as Iterable<V>;
  }

  /** Number of entries as the transaction sees them, or of entries in a range. */
  count(opts: RangeOptionsFor<K, Kind> = {}): number {
    this.live();
    if (isWholeRange(this.database.planRange(opts))) {
      return liveCount(
        this.database,
        this.txn,
        this.database.writeContext(this.txn).desc,
        Date.now(),
      );
    }
    let n = 0;
    for (const _ of this.iter(opts, 'count')) n++;
    return n;
  }

  /** This transaction on another database of the same file. */
  db<K2, V2, Kind2 extends DbKindName = DbKindName>(
    other: DatabaseBase<K2, V2, Kind2>,
  ): Transaction<K2, V2, Kind2> {
    this.live();
    checkSameFile(other, this.database.store, 'txn.db()');
    return new Transaction<K2, V2, Kind2>(
      other,
      this.txn,
      this.root ?? (this as Transaction<unknown, unknown>),
    );
  }

  /** Aborts: nothing this transaction wrote is committed. The callback's return still returns. */
  abort(): void {
    this.live();
    const r = this.root ?? (this as Transaction<unknown, unknown>);
    r.aborted = true;
    r.done = true;
  }

  /** @internal */
  finish(): void {
    this.done = true;
  }

  /** @internal The write transaction, for the library's own queued work (purgeExpired). */
  writeTxn(): WriteTxn {
    this.live();
    return this.txn;
  }

  private iter(opts: RangeOptions<K>, mode: IterMode): Iterable<unknown> {
    this.live();
    const plan = this.database.planRange(opts);
    return new RangeIterable(() => {
      this.live();
      const ctx = this.database.writeContext(this.txn);
      const r = new SnapshotReaderCopy(this.txn);
      return new RangeIterator(
        this.database,
        r,
        ctx.desc,
        plan,
        mode,
        null,
        this.txn,
        () => this.live(),
        Date.now(),
      );
    });
  }
}

/** Options of `open`. An option left out or `undefined` takes its default. */
export interface OpenOptions {
  /** Open an existing file for reads only. */
  readOnly?: boolean | undefined;
  /** 'full' (default): a commit is durable when it returns. 'none': no flush. */
  sync?: 'full' | 'none' | undefined;
  /** Page size of a new file: a power of two from 4096 to 65536 (default 4096). */
  pageSize?: number | undefined;
  /**
   * How keys are stored: 'ordered' (default for a new file), 'string', 'binary' or 'uint32'.
   * Left out, an existing file's encoding is used. Without type arguments it also sets the key
   * type (see {@link KeyTypeOf}).
   */
  keyEncoding?: KeyEncodingName | undefined;
  /**
   * How values are stored: 'msgpack' (default for a new file), 'json', 'string' or 'binary'.
   * Left out, an existing file's encoding is used. Without type arguments it also sets the
   * value type (see {@link ValueTypeOf}).
   */
  valueEncoding?: ValueEncodingName | undefined;
  /** Verify the checksum of every page read (see README for the cost). Default false. */
  verifyChecksums?: boolean | undefined;
  /** Address space mapped at a time, a power of two from 64 KiB to 1 GiB (default 1 GiB). */
  segmentSize?: number | undefined;
  /** Pre-fault the whole file into memory at open (MAP_POPULATE): a warm start. */
  populate?: boolean | undefined;
  /**
   * Makes the unnamed database an expiring one (when the file is created; an existing file's
   * must have been created so) and sets how long, in milliseconds, entries put through this
   * handle live when the put gives no `ttl`: a number > 0, or Infinity for never. As
   * `openDB`'s `ttl` for a sub-database: reads treat expired entries as absent,
   * `purgeExpired()` deletes them, and a file created with it still expires entries when
   * opened without it (its puts then never expire unless they say so).
   */
  ttl?: number | undefined;
  /**
   * msgpackr options for 'msgpack' values, merged over the defaults (records inline in each
   * value, moreTypes, copyBuffers). `{ useRecords: false }` stores plain msgpack, smaller and
   * faster to decode, but then Maps and plain objects both decode as objects. Each database
   * records the choice when it is created; a later `useRecords` that contradicts it is
   * ERR_INCOMPATIBLE, and leaving it out reads the database as it was written. Shared record
   * structures (`maxSharedStructures` > 0) are refused: they would not be stored in the file;
   * so is `copyBuffers: false`: binary in a value read would be a view of reused bytes.
   */
  msgpack?: MsgpackOptions | undefined;
  /**
   * Milliseconds a write waits for the writer lock (held by a write in another process,
   * worker or handle of the file) before failing with ERR_LOCKED. putSync and
   * transactionSync block meanwhile; put, remove and transaction retry with timers and never
   * block the event loop. Default 10000; Infinity waits forever.
   */
  lockTimeout?: number | undefined;
  /**
   * Size of the reader table in the lock file: how many handles (in all processes and
   * workers) may have the file open at once; an open past it fails with ERR_READERS_FULL.
   * The table keeps the largest size any open asked for. Default 126.
   */
  maxReaders?: number | undefined;
}

/**
 * The root handle of an open file: the unnamed database plus file-wide operations.
 *
 * @typeParam K - The key type of the unnamed database (see {@link DatabaseBase}).
 * @typeParam V - Its value type.
 */
export class Database<K = unknown, V = unknown> extends DatabaseBase<K, V, 'btree'> {
  private readonly subs = new Map<string, DatabaseBase<unknown, unknown>>();
  private closing: Promise<void> | null = null;

  /** @internal */
  constructor(
    store: Store,
    keyEncoding: KeyEncodingName,
    valueEncoding: ValueEncodingName,
    plainMsgpack = false,
    expiring = false,
    ttl = Infinity,
  ) {
    super(store, null, DbKind.BTree, keyEncoding, valueEncoding, plainMsgpack, expiring, ttl);
  }

  /** The data file's path. */
  get path(): string {
    return this.store.path;
  }

  /**
   * Opens (creating when missing and writable) the named sub-database `name` in this file.
   * Options left out are taken from the file; given options that contradict it throw
   * ERR_INCOMPATIBLE.
   *
   * Without type arguments, the key and value types follow `keyEncoding` and `valueEncoding`
   * ({@link KeyTypeOf}, {@link ValueTypeOf}): `openDB('n', { keyEncoding: 'uint32' })` has
   * `number` keys and `any` values. With `kind: 'hash'` the handle's range options are
   * {@link HashRangeOptions} (only `limit`).
   *
   * @typeParam KE - Inferred from `keyEncoding`; not meant to be written.
   * @typeParam VE - Inferred from `valueEncoding`; not meant to be written.
   * @typeParam KD - Inferred from `kind`; not meant to be written.
   */
  openDB<
    KE extends KeyEncodingName | undefined = undefined,
    VE extends ValueEncodingName | undefined = undefined,
    KD extends DbKindName | undefined = undefined,
  >(
    name: string,
    opts?: DBOptions & { kind?: KD; keyEncoding?: KE; valueEncoding?: VE },
  ): DatabaseBase<KeyTypeOf<KE>, ValueTypeOf<VE>, KD extends DbKindName ? KD : DbKindName>;
  /**
   * Opens the sub-database `name` with the key and value types given as type arguments:
   * `db.openDB<string, User>('users', { keyEncoding: 'string' })`. An encoding option that
   * cannot store them (`keyEncoding: 'uint32'` with `string` keys) is a compile error.
   *
   * @typeParam K2 - The key type.
   * @typeParam V2 - The value type. Both are required: `openDB<User>(name)` does not compile,
   *   since a lone type argument would be taken for the key type.
   */
  openDB<K2, V2>(name: string, opts?: DBOptions & EncodingsFor<K2, V2>): DatabaseBase<K2, V2>;
  openDB<K2 = unknown, V2 = unknown>(name: string, opts: DBOptions = {}): DatabaseBase<K2, V2> {
    this.store.assertOpen();
    checkDbName(name);
    opts = checkOptionKeys(opts, DB_OPTIONS, 'openDB');
    const kindName = opts.kind;
    if (kindName !== undefined && kindName !== 'btree' && kindName !== 'hash') {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `kind must be 'btree' or 'hash', got ${String(kindName)}`,
      );
    }
    checkEncodingNames(opts.keyEncoding, opts.valueEncoding);
    const ttl = opts.ttl === undefined ? undefined : checkTtl(opts.ttl, 'openDB');
    const env = this.store.env;
    const latest = env.latest();
    const existing = this.store.lookupNamed(latest, latest.meta.catalog, name, latest.meta);
    const { valueId: fileValueId, expiring } = resolveExpiry(
      existing?.valueEncoding ?? 0,
      existing !== null,
      ttl,
      `sub-database '${name}' was created without ttl: its entries cannot expire`,
    );
    let kind: DbKind = kindName === 'hash' ? DbKind.Hash : DbKind.BTree;
    let keyEncoding: KeyEncodingName = opts.keyEncoding ?? 'ordered';
    let valueEncoding: ValueEncodingName = opts.valueEncoding ?? 'msgpack';
    if (existing !== null) {
      const fileKind = existing.kind === DbKind.Hash ? 'hash' : 'btree';
      if (kindName !== undefined && kindName !== fileKind) {
        throw new MapKVError(
          'ERR_INCOMPATIBLE',
          `sub-database '${name}' is of kind '${fileKind}', not '${kindName}'`,
        );
      }
      kind = existing.kind;
      keyEncoding = resolveEncoding(
        'key',
        KEY_ENCODING_NAMES,
        existing.keyEncoding,
        opts.keyEncoding,
        name,
      );
      valueEncoding = resolveEncoding(
        'value',
        VALUE_ENCODING_NAMES,
        fileValueId,
        opts.valueEncoding,
        name,
      );
    }
    const plain = resolvePlainMsgpack(fileValueId, valueEncoding, this.store.msgpack, name);
    const cached = this.subs.get(name);
    const sub =
      cached !== undefined &&
      cached.kind === kind &&
      cached.keyEncoding === keyEncoding &&
      cached.valueEncoding === valueEncoding &&
      cached.expiring === expiring &&
      cached.ttl === (ttl ?? Infinity)
        ? (cached as DatabaseBase<K2, V2>)
        : new DatabaseBase<K2, V2>(
            this.store,
            name,
            kind,
            keyEncoding,
            valueEncoding,
            plain,
            expiring,
            ttl,
          );
    // Even for a handle made before: the name may have been dropped since, by another handle
    // of the file (this one's dropDB forgets its handle), and openDB of a missing name creates it.
    if (existing === null && !env.storage.readOnly) {
      // Creating it is a commit: like any write, refused once close() was called.
      this.assertWritable();
      // Record it in the catalog now, so its kind and encodings are fixed from here on.
      this.store.runSync((txn) => {
        sub.writeContext(txn).touched();
      });
    }
    this.subs.set(name, sub as DatabaseBase<unknown, unknown>);
    return sub;
  }

  /**
   * Deletes the sub-database `name` from the file in one commit, done (durable under sync
   * 'full') on return: its entries, its pages (back to the file's free space) and its name.
   * Returns whether it existed. Handles of it keep working: they read it as empty, and a write
   * through one creates it again with that handle's kind and encodings. O(entries), as
   * clearSync. Like openDB of a new name it commits at once, so inside a write transaction of
   * the same handle it is a nested write (ERR_LOCKED).
   */
  dropDB(name: string): boolean {
    this.assertWritable();
    checkDbName(name);
    const latest = this.store.env.latest();
    if (this.store.lookupNamed(latest, latest.meta.catalog, name, latest.meta) === null) {
      return false;
    }
    // A handle with the file's kind and encodings: clearIn reads and removes with them.
    const sub = this.openDB(name);
    const dropped = this.store.runSync((txn) => {
      sub.clearIn(txn);
      // Out of the transaction's named databases, so that the commit does not write its
      // descriptor back into the catalog.
      txn.named.delete(name);
      const kb = encodeName(name);
      return treeRemove(txn, txn.catalog, kb, kb.length);
    });
    this.subs.delete(name);
    return dropped;
  }

  /** Figures about the file and this database. */
  stats(): DatabaseStats {
    this.store.assertOpen();
    const env = this.store.env;
    const m = env.latest().meta;
    return {
      pageSize: env.pageSize,
      fileSize: env.storage.size,
      pages: m.pageCount,
      freePages: m.freePages,
      entries: m.main.entries,
      depth: m.main.depth,
      txnId: m.txnId,
      openSnapshots: env.pinnedSnapshots,
      maxKeySize: this.store.maxKey,
      segmentSize: env.storage.segmentSize,
      sync: env.sync,
    };
  }

  /**
   * Walks every page of the latest commit: each page reachable exactly once or free, keys in
   * order, counts right, overflow runs intact, checksums valid. Never throws for damage: it
   * reports it in `problems`.
   */
  check(): CheckResult {
    this.store.assertOpen();
    const env = this.store.env;
    const r = env.pin();
    try {
      return checkEnvironment(env, r);
    } finally {
      env.unpin(r);
    }
  }

  /**
   * Writes a consistent copy of the latest commit to `path` while writes go on. With
   * `compact: true` the copy is rebuilt densely (a few free pages at most: it is built in
   * steps of 16 MiB to bound its memory).
   */
  async backup(path: string, opts: BackupOptions = {}): Promise<void> {
    this.store.assertOpen();
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0'))
      throw new MapKVError('ERR_BAD_OPTION', 'backup needs a file path (a non-empty string)');
    opts = checkOptionKeys(opts, BACKUP_OPTIONS, 'backup');
    const target = resolvePath(path);
    const lockPath = this.store.env.lock?.path ?? `${this.store.path}-lock`;
    // By path, and by device and inode: a symlink or a hard link to the database (or its lock
    // file) names the same file under another path, and the backup's rename would replace it.
    if (
      target === resolvePath(this.store.path) ||
      target === resolvePath(lockPath) ||
      sameFile(target, this.store.path) ||
      sameFile(target, lockPath)
    ) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        'a backup cannot overwrite the database itself or its lock file',
      );
    }
    // Refused before any copying: the rename at the end would fail on a folder (EISDIR) or a
    // path ending in a separator (ENOTDIR), and would replace a FIFO or socket.
    const existing = statSync(target, { throwIfNoEntry: false });
    if (path.endsWith('/') || (existing !== undefined && !existing.isFile())) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `backup needs a file path; ${path} is ${existing?.isDirectory() === true ? 'a folder' : 'not a regular file'}`,
      );
    }
    const env = this.store.env;
    const r = env.pin();
    try {
      await backupEnvironment(env, r, path, opts, () => this.store.assertOpen());
    } finally {
      if (!this.store.closed) env.unpin(r);
    }
  }

  /**
   * Commits queued writes, then closes the file. Idempotent; later calls throw ERR_CLOSED.
   *
   * The file is closed in a microtask, never inside the call: close() may be called from code
   * that runs in the middle of one of this handle's operations (a transaction callback, a key's
   * getter, a msgpackr extension), which would go on reading unmapped views. So a synchronous
   * script that reopens the file must await close(), or the old handle's reader slot keeps
   * holding back the pages freed after its last read until the script yields.
   */
  close(): Promise<void> {
    if (this.closing === null) {
      this.store.closing = true;
      this.closing = (async () => {
        await this.store.drain();
        this.store.closed = true;
        this.store.env.close();
      })();
    }
    return this.closing;
  }

  /**
   * Closes the database (as `close()`): what `await using db = open(path)` calls at the end of
   * the block.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function checkEncodingNames(k: unknown, v: unknown): void {
  if (k !== undefined && !(KEY_ENCODING_NAMES as readonly unknown[]).includes(k)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `keyEncoding must be one of ${KEY_ENCODING_NAMES.join(', ')}, got ${String(k)}`,
    );
  }
  if (v !== undefined && !(VALUE_ENCODING_NAMES as readonly unknown[]).includes(v)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `valueEncoding must be one of ${VALUE_ENCODING_NAMES.join(', ')}, got ${String(v)}`,
    );
  }
}

/** Throws ERR_BAD_OPTION unless `name` can name a sub-database. */
function checkDbName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || utf8.encode(name).length > 255) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      'a sub-database name must be a non-empty string of at most 255 bytes',
    );
  }
  // An unpaired surrogate has no UTF-8 form: TextEncoder writes U+FFFD for it, and 'a\uD800'
  // would open the database named 'a\uFFFD'.
  if (!isWellFormed(name)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      'a sub-database name must be well-formed Unicode (it has an unpaired surrogate)',
    );
  }
}

/** The encoding to use given the file's id (0: none recorded) and the caller's choice. */
export function resolveEncoding<N extends string>(
  what: 'key' | 'value',
  names: readonly N[],
  fileId: number,
  asked: N | undefined,
  dbName: string,
): N {
  const ids: Record<string, number> = what === 'key' ? KEY_ENCODING_IDS : VALUE_ENCODING_IDS;
  const fallback = (what === 'key' ? 'ordered' : 'msgpack') as N;
  if (fileId === 0) return asked ?? fallback;
  const id = what === 'value' && fileId === MSGPACK_PLAIN_ID ? VALUE_ENCODING_IDS.msgpack : fileId;
  const fileName = names.find((n) => ids[n] === id);
  if (fileName === undefined) {
    throw new MapKVError(
      'ERR_INCOMPATIBLE',
      `database '${dbName}' uses an unknown ${what} encoding (${fileId})`,
    );
  }
  if (asked !== undefined && asked !== fileName) {
    throw new MapKVError(
      'ERR_INCOMPATIBLE',
      `database '${dbName}' was created with ${what}Encoding '${fileName}', not '${asked}'`,
    );
  }
  return fileName;
}

/**
 * Whether a database's msgpack values are plain (no records), from the value-encoding id in
 * the file (0: being created) and the open option `msgpack.useRecords`. A new database takes
 * the option; an existing one keeps what it was created with, and an option that contradicts
 * it is refused: plain objects written into a database of records would read back as Maps
 * there, and records written into a plain one would be the only values of their kind.
 */
export function resolvePlainMsgpack(
  fileId: number,
  valueEncoding: ValueEncodingName,
  msgpack: MsgpackOptions | undefined,
  dbName: string,
): boolean {
  if (valueEncoding !== 'msgpack') return false;
  const asked = msgpack?.useRecords;
  if (fileId === 0) return asked === false;
  const plain = fileId === MSGPACK_PLAIN_ID;
  if (plain ? asked === true : asked === false) {
    throw new MapKVError(
      'ERR_INCOMPATIBLE',
      `database '${dbName}' was created with msgpack ${plain ? 'without' : 'with'} records; ` +
        `open it without msgpack.useRecords: ${String(asked)}`,
    );
  }
  return plain;
}

/** Whether paths `a` and `b` both exist and are one file (same device and inode). */
function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}
