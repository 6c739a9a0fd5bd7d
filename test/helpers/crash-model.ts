// The random workload and model of the power-loss harness (test/crash/powerloss.test.ts):
// commits of every shape (putSync, removeSync, multi-database transactions, aborted ones,
// batched async writes, overflow values, new sub-databases, removal waves, clears, dropped
// sub-databases) applied to a database and to a copy-on-write model, so any commit's exact
// content is known.
import { Buffer } from 'node:buffer';

import type { Database, DatabaseBase } from '../../src/index';
import type { Rng } from './crash-common';

/** What the model stores for a key: enough to rebuild the value. */
export type ModelValue = { big: false; v: number } | { big: true; v: number; size: number };

/** Database name ('' = the unnamed one) -> key -> value. Never mutated once published. */
export type ModelState = ReadonlyMap<string, ReadonlyMap<string, ModelValue>>;

export function emptyModel(): ModelState {
  return new Map([['', new Map()]]);
}

/** The value stored for `key` at version `m`. */
export function valueOf(key: string, m: ModelValue): unknown {
  if (!m.big) return { k: key, v: m.v, pad: 'x'.repeat(m.v % 61) };
  const b = Buffer.alloc(m.size, (m.v * 31 + key.length) & 0xff);
  b.writeUInt32LE(m.v >>> 0, 0);
  b.write(key, 4, 'latin1');
  return b;
}

export function sameValue(key: string, m: ModelValue, got: unknown): boolean {
  const want = valueOf(key, m);
  if (Buffer.isBuffer(want)) return got instanceof Uint8Array && want.equals(got);
  const w = want as { k: string; v: number; pad: string };
  const g = got as { k?: unknown; v?: unknown; pad?: unknown } | null;
  return (
    typeof g === 'object' &&
    g !== null &&
    g.k === w.k &&
    g.v === w.v &&
    g.pad === w.pad &&
    Object.keys(g).length === 3
  );
}

/** Differences between one database's entries and the model's (empty when equal). */
export function diffDb(
  name: string,
  entries: { key: unknown; value: unknown }[],
  want: ReadonlyMap<string, ModelValue> | undefined,
): string[] {
  const out: string[] = [];
  const expected = want ?? new Map<string, ModelValue>();
  const seen = new Set<string>();
  for (const { key, value } of entries) {
    const k = String(key);
    seen.add(k);
    const m = expected.get(k);
    if (m === undefined) out.push(`db '${name}': unexpected key ${k}`);
    else if (!sameValue(k, m, value)) out.push(`db '${name}': wrong value of ${k}`);
    if (out.length > 5) return out;
  }
  for (const k of expected.keys()) {
    if (!seen.has(k)) out.push(`db '${name}': missing ${k}`);
    if (out.length > 5) return out;
  }
  return out;
}

/** A mutable draft of the next model state. */
class Draft {
  private readonly dbs: Map<string, Map<string, ModelValue>>;
  constructor(base: ModelState) {
    this.dbs = new Map([...base].map(([k, v]) => [k, new Map(v)]));
  }
  db(name: string): Map<string, ModelValue> {
    let d = this.dbs.get(name);
    if (d === undefined) this.dbs.set(name, (d = new Map()));
    return d;
  }
  publish(): ModelState {
    return this.dbs;
  }
}

/** Options of one workload run. */
export interface WorkloadOptions {
  /** Largest "big" value in bytes (values above pageSize / 4 go to overflow pages). */
  maxBig: number;
  /** Keys per database. */
  keySpace: number;
  /** Sub-databases the run may create. */
  maxSubs: number;
}

/**
 * Drives one database and its model. `step()` runs one random operation; `state` is the
 * model of the last commit that returned, and `pending` (during a step) the state the
 * operation in flight will commit, or null when it commits nothing.
 */
export class Workload {
  state: ModelState = emptyModel();
  pending: ModelState | null = null;
  private version = 0;
  private readonly handles = new Map<string, DatabaseBase<string, unknown>>();

  constructor(
    private readonly db: Database<string, unknown>,
    private readonly r: Rng,
    private readonly opts: WorkloadOptions,
  ) {
    this.handles.set('', db);
  }

  private names(): string[] {
    return [...this.handles.keys()];
  }

  private randomValue(): ModelValue {
    const v = ++this.version;
    const x = this.r.next();
    if (x < 0.7) return { big: false, v };
    // Mostly a few pages; now and then large enough to grow the file.
    const size =
      x < 0.95
        ? 1100 + this.r.int(30_000)
        : this.opts.maxBig / 2 + this.r.int(this.opts.maxBig / 2);
    return { big: true, v, size };
  }

  private randomKey(): string {
    return `k${String(this.r.int(this.opts.keySpace)).padStart(4, '0')}`;
  }

  private existingKey(d: ReadonlyMap<string, ModelValue> | undefined): string | null {
    if (d === undefined || d.size === 0) return null;
    const keys = [...d.keys()];
    return keys[this.r.int(keys.length)]!;
  }

  /** Runs one random operation; resolves when it returned (or its promise settled). */
  async step(): Promise<string> {
    const r = this.r;
    const x = r.next();
    const draft = new Draft(this.state);
    const name = r.pick(this.names());
    const h = this.handles.get(name)!;
    if (x < 0.25) {
      const k = this.randomKey();
      const m = this.randomValue();
      draft.db(name).set(k, m);
      this.pending = draft.publish();
      h.putSync(k, valueOf(k, m));
      return this.done('putSync');
    }
    if (x < 0.35) {
      const k = r.chance(0.8) ? this.existingKey(this.state.get(name)) : this.randomKey();
      if (k === null) return 'noop';
      const existed = draft.db(name).delete(k);
      this.pending = existed ? draft.publish() : null;
      h.removeSync(k);
      return this.done('removeSync');
    }
    if (x < 0.6) {
      // A multi-database transaction: puts and removes, perhaps aborted or thrown.
      const ops: { db: string; k: string; m: ModelValue | null }[] = [];
      const n = 1 + r.int(12);
      for (let i = 0; i < n; i++) {
        const db = r.pick(this.names());
        const k = r.chance(0.3)
          ? (this.existingKey(draft.db(db)) ?? this.randomKey())
          : this.randomKey();
        const m = r.chance(0.25) ? null : this.randomValue();
        ops.push({ db, k, m });
        if (m === null) draft.db(db).delete(k);
        else draft.db(db).set(k, m);
      }
      const ending = r.pick(['commit', 'commit', 'commit', 'commit', 'abort', 'throw'] as const);
      this.pending = ending === 'commit' ? draft.publish() : null;
      try {
        this.db.transactionSync((txn) => {
          for (const op of ops) {
            const t = txn.db(this.handles.get(op.db)!);
            if (op.m === null) t.remove(op.k);
            else t.put(op.k, valueOf(op.k, op.m));
          }
          if (ending === 'abort') txn.abort();
          if (ending === 'throw') throw new Error('rollback');
        });
      } catch (err) {
        if (ending !== 'throw' || (err as Error).message !== 'rollback') throw err;
      }
      return this.done(`transactionSync/${ending}`);
    }
    if (x < 0.75) {
      // Batched async writes of one event-loop turn: one commit.
      const writes: Promise<unknown>[] = [];
      const n = 1 + r.int(8);
      for (let i = 0; i < n; i++) {
        const db = r.pick(this.names());
        const hd = this.handles.get(db)!;
        if (r.chance(0.2)) {
          const k = this.existingKey(draft.db(db)) ?? this.randomKey();
          draft.db(db).delete(k);
          writes.push(hd.remove(k));
        } else {
          const k = this.randomKey();
          const m = this.randomValue();
          draft.db(db).set(k, m);
          writes.push(hd.put(k, valueOf(k, m)));
        }
      }
      this.pending = draft.publish();
      await Promise.all(writes);
      return this.done('batch');
    }
    if (x < 0.85) {
      const k = this.randomKey();
      const m = this.randomValue();
      draft.db(name).set(k, m);
      this.pending = draft.publish();
      await h.transaction((txn) => {
        txn.put(k, valueOf(k, m));
      });
      return this.done('transaction');
    }
    if (x < 0.9 && this.handles.size <= this.opts.maxSubs) {
      const sub = `sub${this.handles.size}`;
      draft.db(sub);
      this.pending = draft.publish();
      // Every other sub-database expires (an hour: nothing expires while the test runs), so
      // its expiry index is written, and checked after every crash, with its records.
      const opts = this.handles.size % 2 === 0 ? { ttl: 3_600_000 } : {};
      this.handles.set(sub, this.db.openDB<string, unknown>(sub, opts));
      return this.done('openDB');
    }
    // A removal wave frees many pages in one commit; now and then the whole database goes, by
    // a clear (sync or batched) or, for a sub-database, by dropDB. A dropped one's handle
    // writes it back later with its own options, so the model only empties it.
    const d = this.state.get(name);
    const y = r.next();
    if (y < 0.3 && d !== undefined && d.size > 0) {
      draft.db(name).clear();
      this.pending = draft.publish();
      if (name !== '' && y < 0.1) {
        if (!this.db.dropDB(name)) throw new Error(`dropDB found no sub-database '${name}'`);
        return this.done('dropDB');
      }
      if (y < 0.2) h.clearSync();
      else await h.clear();
      return this.done('clear');
    }
    const victims = d === undefined ? [] : [...d.keys()].filter(() => r.chance(0.5));
    if (victims.length === 0) return 'noop';
    for (const k of victims) draft.db(name).delete(k);
    this.pending = draft.publish();
    h.transactionSync((txn) => {
      for (const k of victims) txn.remove(k);
    });
    return this.done('removeWave');
  }

  private done(what: string): string {
    if (this.pending !== null) this.state = this.pending;
    this.pending = null;
    return what;
  }
}
