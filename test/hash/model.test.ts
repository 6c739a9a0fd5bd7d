/**
 * Model-based property test of the hash index: random sequences of puts, removes, reads,
 * unordered ranges, transactions (committed, aborted, thrown) across a hash and a B+tree
 * sub-database, batched async writes, iteration while writing, clears, snapshots and reopens,
 * run against plain Maps. After every step the database must equal the model, `check()` must be
 * clean, no two buddy buckets may be left mergeable, and an empty table must own no page.
 *
 * Some setups weaken the hash (setHashMaskForTests) so that keys collide on purpose: that
 * drives the table through deep directory chains, buckets that use all 32 bits, and collision
 * holders, which random keys under the real hash almost never reach.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database, DatabaseBase, Snapshot } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { hashShape } from '../../src/hash/check';
import { setHashMaskForTests } from '../../src/hash/hashkey';
import { patternBytes, patternBytesArb } from '../helpers/values';
import { type ClearHow, clearArb, clearBy } from '../helpers/clear';

const SOAK = process.env.MAPKV_SOAK === '1';

type Model = Map<string, Uint8Array>;
type Write = { k: string; v: Uint8Array | null };

type Op =
  | { t: 'put'; k: string; v: Uint8Array }
  | { t: 'remove'; k: string }
  | { t: 'get'; k: string }
  | { t: 'putMany'; from: number; n: number; size: number }
  | { t: 'removeMany'; from: number; n: number }
  | { t: 'range'; limit?: number }
  | { t: 'txn'; ops: Write[]; tree: Write[]; end: 'commit' | 'abort' | 'throw' }
  | { t: 'batch'; ops: Write[]; txnThrows: boolean }
  | { t: 'iterWrite'; seed: number; end: 'commit' | 'abort' }
  | { t: 'clear'; how: ClearHow }
  | { t: 'snapOpen' }
  | { t: 'snapCheck'; i: number }
  | { t: 'snapClose'; i: number }
  | { t: 'reopen' };

const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 400 }).map((i) => `k${String(i).padStart(4, '0')}`),
  fc.string({ minLength: 0, maxLength: 12, unit: fc.constantFrom('a', 'b', 'c', 'z', '0', '~') }),
);

const valueArb = patternBytesArb([0, 120], [900, 20_000], [8, 1]);

const writeArb = fc.record({ k: keyArb, v: fc.option(valueArb, { nil: null, freq: 4 }) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), k: keyArb, v: valueArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('remove' as const), k: keyArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('get' as const), k: keyArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('putMany' as const),
      from: fc.integer({ min: 0, max: 400 }),
      n: fc.integer({ min: 1, max: 300 }),
      size: fc.integer({ min: 0, max: 200 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('removeMany' as const),
      from: fc.integer({ min: 0, max: 400 }),
      n: fc.integer({ min: 1, max: 400 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      { t: fc.constant('range' as const), limit: fc.integer({ min: 0, max: 50 }) },
      { requiredKeys: ['t'] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      ops: fc.array(writeArb, { maxLength: 30 }),
      tree: fc.array(writeArb, { maxLength: 5 }),
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
      ops: fc.array(writeArb, { maxLength: 20 }),
      txnThrows: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('iterWrite' as const),
      seed: fc.nat(),
      end: fc.constantFrom('commit' as const, 'abort' as const),
    }),
  },
  { weight: 1, arbitrary: clearArb },
  { weight: 1, arbitrary: fc.constant({ t: 'snapOpen' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapCheck' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapClose' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
);

const hex = (v: Uint8Array): string => Buffer.from(v).toString('hex');

function entriesOf(m: Model): string[][] {
  return [...m.keys()].sort().map((k) => [k, hex(m.get(k)!)]);
}

interface Readable {
  range(): Iterable<{ key: string; value: Uint8Array }>;
  count(): number;
}

/** The same entries in any order, each once. */
function expectSame(db: Readable, m: Model): void {
  const got = [...db.range()].map((e) => [e.key, hex(e.value)]);
  got.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
  expect(got).toEqual(entriesOf(m));
  expect(db.count()).toBe(m.size);
}

/** Structure invariants beyond check(): merges never missed, an empty table owns no page. */
function expectTidy(h: DatabaseBase<string, Uint8Array>): void {
  const ctx = h.readLatest();
  const shape = hashShape(ctx.r, ctx.desc);
  expect(shape.mergeablePairs).toBe(0);
  expect(shape.halvable).toBe(0);
  if (ctx.desc.entries === 0) expect(ctx.desc.root).toBe(0);
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Setup {
  pageSize: number;
  segmentSize: number;
  /** Hash bits kept (setHashMaskForTests); -1 for the full hash. */
  mask: number;
}

async function runSequence(setup: Setup, ops: Op[]): Promise<void> {
  const options = {
    pageSize: setup.pageSize,
    keyEncoding: 'string' as const,
    valueEncoding: 'binary' as const,
  };
  const encodings = { keyEncoding: 'string', valueEncoding: 'binary' } as const;
  setHashMaskForTests(setup.mask);
  let storage = new MemoryStorage({ segmentSize: setup.segmentSize });
  let db: Database<string, Uint8Array> = openOn<string, Uint8Array>(storage, '', options);
  const subs = (): {
    h: DatabaseBase<string, Uint8Array>;
    t: DatabaseBase<string, Uint8Array>;
  } => ({
    h: db.openDB<string, Uint8Array>('h', { kind: 'hash', ...encodings }),
    t: db.openDB<string, Uint8Array>('t', { kind: 'btree', ...encodings }),
  });
  let { h, t } = subs();
  const model: Model = new Map();
  const treeModel: Model = new Map();
  let snaps: Array<{ snap: Snapshot<string, Uint8Array>; model: Model }> = [];
  try {
    for (const op of ops) {
      switch (op.t) {
        case 'put':
          h.putSync(op.k, op.v);
          model.set(op.k, op.v);
          break;
        case 'remove':
          expect(h.removeSync(op.k)).toBe(model.delete(op.k));
          break;
        case 'get': {
          const v = h.get(op.k);
          expect(v === undefined ? undefined : hex(v)).toBe(
            model.has(op.k) ? hex(model.get(op.k)!) : undefined,
          );
          expect(h.has(op.k)).toBe(model.has(op.k));
          const raw = h.getBinary(op.k);
          expect(raw === undefined ? undefined : hex(raw)).toBe(
            model.has(op.k) ? hex(model.get(op.k)!) : undefined,
          );
          break;
        }
        case 'putMany':
          h.transactionSync((txn) => {
            for (let i = op.from; i < op.from + op.n; i++) {
              const k = `k${String(i).padStart(4, '0')}`;
              const v = patternBytes(i, op.size);
              txn.put(k, v);
              model.set(k, v);
            }
          });
          break;
        case 'removeMany':
          h.transactionSync((txn) => {
            for (let i = op.from; i < op.from + op.n; i++) {
              const k = `k${String(i).padStart(4, '0')}`;
              expect(txn.remove(k)).toBe(model.delete(k));
            }
          });
          break;
        case 'clear':
          await clearBy(h, op.how);
          model.clear();
          break;
        case 'range': {
          const got = [...h.keys(op.limit === undefined ? {} : { limit: op.limit })];
          expect(new Set(got).size).toBe(got.length);
          expect(got.length).toBe(Math.min(op.limit ?? Infinity, model.size));
          for (const k of got) expect(model.has(k)).toBe(true);
          break;
        }
        case 'txn': {
          const scratch = new Map(model);
          const treeScratch = new Map(treeModel);
          const run = (): void =>
            h.transactionSync((txn) => {
              const tt = txn.db(t);
              for (const w of op.ops) {
                if (w.v === null) expect(txn.remove(w.k)).toBe(scratch.delete(w.k));
                else {
                  txn.put(w.k, w.v);
                  scratch.set(w.k, w.v);
                }
                // Read-your-writes inside the transaction.
                expect(txn.has(w.k)).toBe(w.v !== null);
              }
              for (const w of op.tree) {
                if (w.v === null) expect(tt.remove(w.k)).toBe(treeScratch.delete(w.k));
                else {
                  tt.put(w.k, w.v);
                  treeScratch.set(w.k, w.v);
                }
              }
              expect([...txn.keys()].sort()).toEqual([...scratch.keys()].sort());
              expect(txn.count()).toBe(scratch.size);
              if (op.end === 'abort') txn.abort();
              if (op.end === 'throw') throw new Error('boom');
            });
          if (op.end === 'throw') expect(run).toThrow('boom');
          else run();
          if (op.end === 'commit') {
            model.clear();
            for (const [k, v] of scratch) model.set(k, v);
            treeModel.clear();
            for (const [k, v] of treeScratch) treeModel.set(k, v);
          }
          expectSame(t, treeModel);
          break;
        }
        case 'batch': {
          const promises: Array<Promise<unknown>> = [];
          for (const w of op.ops) {
            if (w.v === null) {
              const existed = model.delete(w.k);
              promises.push(h.remove(w.k).then((r) => expect(r).toBe(existed)));
            } else {
              model.set(w.k, w.v);
              promises.push(h.put(w.k, w.v));
            }
          }
          const failing = h.transaction((txn) => {
            txn.put('zz-batch', new Uint8Array([1]));
            if (op.txnThrows) throw new Error('txn fails');
          });
          if (!op.txnThrows) model.set('zz-batch', new Uint8Array([1]));
          const results = await Promise.allSettled([...promises, failing]);
          expect(results.slice(0, -1).every((r) => r.status === 'fulfilled')).toBe(true);
          expect(results[results.length - 1]!.status).toBe(op.txnThrows ? 'rejected' : 'fulfilled');
          break;
        }
        case 'iterWrite': {
          // Writes during an iteration in the same transaction: every key present from the
          // start to the end of the walk comes out exactly once, and nothing comes out twice.
          const rand = mulberry(op.seed);
          const scratch = new Map(model);
          const before = new Set(model.keys());
          const touched = new Set<string>();
          h.transactionSync((txn) => {
            const seen = new Set<string>();
            for (const k of txn.keys()) {
              expect(seen.has(k)).toBe(false);
              seen.add(k);
              const roll = rand();
              if (roll < 0.3) {
                const nk = `n${Math.floor(rand() * 500)}`;
                const v = patternBytes(nk.length, Math.floor(rand() * 100));
                txn.put(nk, v);
                scratch.set(nk, v);
                touched.add(nk);
              } else if (roll < 0.5) {
                const victim = `k${String(Math.floor(rand() * 400)).padStart(4, '0')}`;
                txn.remove(victim);
                scratch.delete(victim);
                touched.add(victim);
              } else if (roll < 0.7) {
                const v = patternBytes(7, Math.floor(rand() * 300));
                txn.put(k, v);
                scratch.set(k, v);
              }
            }
            for (const k of before) if (!touched.has(k)) expect(seen.has(k)).toBe(true);
            if (op.end === 'abort') txn.abort();
          });
          if (op.end === 'commit') {
            model.clear();
            for (const [k, v] of scratch) model.set(k, v);
          }
          break;
        }
        case 'snapOpen':
          snaps.push({ snap: db.snapshot(), model: new Map(model) });
          break;
        case 'snapCheck': {
          const s = snaps[op.i % Math.max(1, snaps.length)];
          if (s) expectSame(s.snap.db<string, Uint8Array>(h), s.model);
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
          const image = storage.currentImage();
          await db.close();
          storage = MemoryStorage.fromImage(image, { segmentSize: setup.segmentSize });
          db = openOn<string, Uint8Array>(storage, '', options);
          ({ h, t } = subs());
          break;
        }
      }
      const c = db.check();
      expect(c.problems).toEqual([]);
      expect(h.count()).toBe(model.size);
      expectTidy(h);
    }
    expectSame(h, model);
    expectSame(t, treeModel);
    for (const s of snaps) expectSame(s.snap.db<string, Uint8Array>(h), s.model);
  } finally {
    for (const s of snaps) s.snap.close();
    await db.close();
    setHashMaskForTests(-1);
  }
}

describe('hash index against a model', () => {
  afterEach(() => setHashMaskForTests(-1));
  const setups: Array<Setup & { name: string; runs: number }> = [
    { name: 'full hash, page 4096', pageSize: 4096, segmentSize: 65536, mask: -1, runs: 70 },
    {
      name: 'four hash values (collision holders, deep directories), page 4096',
      pageSize: 4096,
      segmentSize: 65536,
      mask: 0x8000_0001,
      runs: 60,
    },
    {
      name: '16 hash values (full-depth buckets, ties broken by key), page 8192',
      pageSize: 8192,
      segmentSize: 65536,
      mask: 0xc000_0003,
      runs: 50,
    },
    { name: 'full hash, page 16384', pageSize: 16384, segmentSize: 1 << 20, mask: -1, runs: 40 },
  ];
  for (const setup of setups) {
    it(`random op sequences match a Map model (${setup.name})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }), (ops) =>
          runSequence(setup, ops),
        ),
        { numRuns: SOAK ? setup.runs * 40 : setup.runs },
      );
    }, 600_000);
  }
});
