/**
 * Model-based property test of the engine: random sequences of puts, removes, reads, ranges,
 * transactions (committed, aborted, thrown), batched async writes, clears, snapshots and
 * reopens, run against both the database and a plain sorted Map. After every step the database must equal
 * the model and `check()` must be clean.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Snapshot } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { patternBytes, patternBytesArb } from '../helpers/values';
import { type ClearHow, clearArb, clearBy } from '../helpers/clear';

const SOAK = process.env.MAPKV_SOAK === '1';

type Model = Map<string, Uint8Array>;

type Op =
  | { t: 'put'; k: string; v: Uint8Array }
  | { t: 'remove'; k: string }
  | { t: 'get'; k: string }
  | { t: 'putMany'; from: number; n: number; size: number }
  | { t: 'removeMany'; from: number; n: number }
  | { t: 'range'; start?: string; end?: string; reverse: boolean; limit?: number; prefix?: string }
  | { t: 'txn'; ops: Array<{ k: string; v: Uint8Array | null }>; end: 'commit' | 'abort' | 'throw' }
  | { t: 'batch'; ops: Array<{ k: string; v: Uint8Array | null }>; txnThrows: boolean }
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
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('removeMany' as const),
      from: fc.integer({ min: 0, max: 400 }),
      n: fc.integer({ min: 1, max: 300 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        t: fc.constant('range' as const),
        start: keyArb,
        end: keyArb,
        reverse: fc.boolean(),
        limit: fc.integer({ min: 0, max: 50 }),
        prefix: fc.constantFrom('k', 'k00', 'k01', 'a', 'b', ''),
      },
      { requiredKeys: ['t', 'reverse'] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      ops: fc.array(writeArb, { maxLength: 30 }),
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
  { weight: 1, arbitrary: clearArb },
  { weight: 1, arbitrary: fc.constant({ t: 'snapOpen' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapCheck' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapClose' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
);

function sortedKeys(m: Model): string[] {
  // ASCII keys: code-unit order equals UTF-8 byte order, which is the 'string' encoding's order.
  return [...m.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function expectedRange(m: Model, op: Extract<Op, { t: 'range' }>): string[] {
  let keys = sortedKeys(m).filter(
    (k) =>
      (op.start === undefined || k >= op.start) &&
      (op.end === undefined || k < op.end) &&
      (op.prefix === undefined || k.startsWith(op.prefix)),
  );
  if (op.reverse) keys = keys.reverse();
  if (op.limit !== undefined) keys = keys.slice(0, op.limit);
  return keys;
}

interface Readable {
  range(): Iterable<{ key: string; value: Uint8Array }>;
  count(): number;
}

function expectSame(db: Readable, m: Model): void {
  const got = [...db.range()].map((e) => [e.key, Buffer.from(e.value).toString('hex')]);
  const want = sortedKeys(m).map((k) => [k, Buffer.from(m.get(k)!).toString('hex')]);
  expect(got).toEqual(want);
  expect(db.count()).toBe(m.size);
}

interface Setup {
  pageSize: number;
  segmentSize: number;
}

async function runSequence(setup: Setup, ops: Op[]): Promise<void> {
  const options = {
    pageSize: setup.pageSize,
    keyEncoding: 'string' as const,
    valueEncoding: 'binary' as const,
  };
  let storage = new MemoryStorage({ segmentSize: setup.segmentSize });
  let db = openOn<string, Uint8Array>(storage, '', options);
  const model: Model = new Map();
  let snaps: Array<{ snap: Snapshot<string, Uint8Array>; model: Model }> = [];
  try {
    for (const op of ops) {
      switch (op.t) {
        case 'put':
          db.putSync(op.k, op.v);
          model.set(op.k, op.v);
          break;
        case 'remove':
          expect(db.removeSync(op.k)).toBe(model.delete(op.k));
          break;
        case 'get': {
          const v = db.get(op.k);
          expect(v === undefined ? undefined : Buffer.from(v).toString('hex')).toBe(
            model.has(op.k) ? Buffer.from(model.get(op.k)!).toString('hex') : undefined,
          );
          expect(db.has(op.k)).toBe(model.has(op.k));
          break;
        }
        case 'putMany':
          db.transactionSync((txn) => {
            for (let i = op.from; i < op.from + op.n; i++) {
              const k = `k${String(i).padStart(4, '0')}`;
              const v = patternBytes(i, op.size);
              txn.put(k, v);
              model.set(k, v);
            }
          });
          break;
        case 'removeMany':
          db.transactionSync((txn) => {
            for (let i = op.from; i < op.from + op.n; i++) {
              const k = `k${String(i).padStart(4, '0')}`;
              expect(txn.remove(k)).toBe(model.delete(k));
            }
          });
          break;
        case 'clear':
          await clearBy(db, op.how);
          model.clear();
          break;
        case 'range': {
          const opts = { ...op } as Record<string, unknown>;
          delete opts.t;
          const got = [...db.keys(opts)];
          expect(got).toEqual(expectedRange(model, op));
          break;
        }
        case 'txn': {
          const scratch = new Map(model);
          const run = (): void =>
            db.transactionSync((txn) => {
              for (const w of op.ops) {
                if (w.v === null) expect(txn.remove(w.k)).toBe(scratch.delete(w.k));
                else {
                  txn.put(w.k, w.v);
                  scratch.set(w.k, w.v);
                }
                // Read-your-writes inside the transaction.
                expect(txn.has(w.k)).toBe(w.v !== null);
              }
              expect([...txn.keys()]).toEqual(sortedKeys(scratch));
              if (op.end === 'abort') txn.abort();
              if (op.end === 'throw') throw new Error('boom');
            });
          if (op.end === 'throw') expect(run).toThrow('boom');
          else run();
          if (op.end === 'commit') {
            model.clear();
            for (const [k, v] of scratch) model.set(k, v);
          }
          break;
        }
        case 'batch': {
          const promises: Array<Promise<unknown>> = [];
          for (const w of op.ops) {
            if (w.v === null) {
              const existed = model.delete(w.k);
              promises.push(db.remove(w.k).then((r) => expect(r).toBe(existed)));
            } else {
              model.set(w.k, w.v);
              promises.push(db.put(w.k, w.v));
            }
          }
          const failing = db.transaction((txn) => {
            txn.put('zz-batch', new Uint8Array([1]));
            if (op.txnThrows) throw new Error('txn fails');
          });
          if (!op.txnThrows) model.set('zz-batch', new Uint8Array([1]));
          const results = await Promise.allSettled([...promises, failing]);
          expect(results.slice(0, -1).every((r) => r.status === 'fulfilled')).toBe(true);
          expect(results[results.length - 1]!.status).toBe(op.txnThrows ? 'rejected' : 'fulfilled');
          break;
        }
        case 'snapOpen':
          snaps.push({ snap: db.snapshot(), model: new Map(model) });
          break;
        case 'snapCheck': {
          const s = snaps[op.i % Math.max(1, snaps.length)];
          if (s) expectSame(s.snap.db<string, Uint8Array>(db), s.model);
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
          break;
        }
      }
      const c = db.check();
      expect(c.problems).toEqual([]);
      expect(db.count()).toBe(model.size);
    }
    expectSame(db, model);
    for (const s of snaps) expectSame(s.snap.db<string, Uint8Array>(db), s.model);
  } finally {
    for (const s of snaps) s.snap.close();
    await db.close();
  }
}

describe('engine against a model', () => {
  const setups: Setup[] = [
    { pageSize: 4096, segmentSize: 65536 },
    { pageSize: 8192, segmentSize: 65536 },
    { pageSize: 16384, segmentSize: 1 << 20 },
  ];
  for (const setup of setups) {
    it(`random op sequences match a sorted-map model (page ${setup.pageSize}, segment ${setup.segmentSize})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) =>
          runSequence(setup, ops),
        ),
        { numRuns: SOAK ? 3000 : 70 },
      );
    }, 600_000);
  }
});
