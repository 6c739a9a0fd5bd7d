/**
 * Model-based property test of expiring databases: random sequences of putSync and put (with
 * and without a per-put ttl, the clock moving between the calls of one batch), removes,
 * transactions (committed and aborted, the clock moving inside them), clock advances, reads,
 * snapshots, purges, clears and reopens, run against a Map of value + expiry time and a fake
 * clock. After every step the database must equal the model as of Date.now(),
 * purgeExpiredSync() must have deleted exactly the expired entries the model still holds, and
 * check() must be clean. Both kinds ('btree' and 'hash'), and the unnamed database of a file created with ttl
 * ('main').
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Database, DatabaseBase, Snapshot, Transaction } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { patternBytesArb } from '../helpers/values';
import { type ClearHow, clearArb, clearBy } from '../helpers/clear';

const SOAK = process.env.MAPKV_SOAK === '1';

const T0 = 1_700_000_000_000;
const SEGMENT = 65536;

type Bytes = Uint8Array;
type Kind = 'btree' | 'hash';
/** One stored entry: its value and when it expires (Infinity: never). */
type Entry = { v: Bytes; exp: number };
type Model = Map<string, Entry>;

type Ttl = number | null; // null: the put gives no ttl (the handle's default applies)
type Write = { k: string; v: Bytes | null; ttl: Ttl; adv: number };

type Op =
  | { t: 'putSync'; k: string; v: Bytes; ttl: Ttl }
  | { t: 'put'; writes: Array<{ k: string; v: Bytes; ttl: Ttl; adv: number }> }
  | { t: 'removeSync'; k: string }
  | { t: 'remove'; k: string }
  | { t: 'txn'; writes: Write[]; end: 'commit' | 'abort'; async: boolean }
  | { t: 'advance'; ms: number }
  | { t: 'read'; k: string }
  | { t: 'purgeSync' }
  | { t: 'purge' }
  | { t: 'clear'; how: ClearHow }
  | { t: 'snapOpen' }
  | { t: 'snapCheck'; i: number }
  | { t: 'reopen'; keepTtl: boolean };

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'k01', 'k02', 'k10', 'zz'];
const keyArb = fc.constantFrom(...KEYS);

const valueArb = patternBytesArb([0, 40], [3000, 9_000], [10, 1]);

const ttlArb: fc.Arbitrary<Ttl> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant(1) },
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 2, arbitrary: fc.integer({ min: 300, max: 5000 }) },
  { weight: 1, arbitrary: fc.constant(Infinity) },
);

/** A clock step: often none, sometimes one millisecond, sometimes a lot. */
const advArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.constant(1) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 100 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 6000 }) },
);

const writeArb: fc.Arbitrary<Write> = fc.record({
  k: keyArb,
  v: fc.option(valueArb, { nil: null, freq: 4 }),
  ttl: ttlArb,
  adv: advArb,
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('putSync' as const),
      k: keyArb,
      v: valueArb,
      ttl: ttlArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('put' as const),
      writes: fc.array(fc.record({ k: keyArb, v: valueArb, ttl: ttlArb, adv: advArb }), {
        minLength: 1,
        maxLength: 6,
      }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('removeSync' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('remove' as const), k: keyArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      writes: fc.array(writeArb, { maxLength: 8 }),
      end: fc.constantFrom('commit' as const, 'commit' as const, 'abort' as const),
      async: fc.boolean(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: advArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('read' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.constant({ t: 'purgeSync' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'purge' as const }) },
  { weight: 1, arbitrary: clearArb },
  { weight: 1, arbitrary: fc.constant({ t: 'snapOpen' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapCheck' as const), i: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reopen' as const), keepTtl: fc.boolean() }) },
);

const hex = (v: Bytes | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v).toString('hex');

const live = (e: Entry | undefined, now: number): boolean => e !== undefined && now < e.exp;

/** The model's live entries at `now`, sorted by key, as [key, hex(value)]. */
function liveEntries(m: Model, now: number): string[][] {
  return [...m.keys()]
    .sort()
    .filter((k) => live(m.get(k), now))
    .map((k) => [k, hex(m.get(k)!.v)!]);
}

interface Reader {
  get(k: string): Bytes | undefined;
  getBinary(k: string): Bytes | undefined;
  has(k: string): boolean;
  range(): Iterable<{ key: string; value: Bytes }>;
  keys(): Iterable<string>;
  values(): Iterable<Bytes>;
  count(): number;
}

/** `r` shows exactly the entries of `m` live at `now`. */
function expectSame(kind: Kind, r: Reader, m: Model, now: number, where: string): void {
  const want = liveEntries(m, now);
  for (const k of KEYS) {
    const e = m.get(k);
    const on = live(e, now);
    expect(r.has(k), `${where}: has(${k})`).toBe(on);
    expect(hex(r.get(k)), `${where}: get(${k})`).toBe(on ? hex(e!.v) : undefined);
    expect(hex(r.getBinary(k)), `${where}: getBinary(${k})`).toBe(on ? hex(e!.v) : undefined);
  }
  const got = [...r.range()].map((e) => [e.key, hex(e.value)!]);
  if (kind === 'hash') got.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
  expect(got, `${where}: range`).toEqual(want);
  const keys = [...r.keys()];
  if (kind === 'hash') keys.sort();
  expect(keys, `${where}: keys`).toEqual(want.map((e) => e[0]));
  expect([...r.values()].map((v) => hex(v)!).sort(), `${where}: values`).toEqual(
    want.map((e) => e[1]!).sort(),
  );
  expect(r.count(), `${where}: count`).toBe(want.length);
}

function expiredIn(m: Model, now: number): string[] {
  return [...m.keys()].filter((k) => !live(m.get(k), now));
}

interface Setup {
  /** A sub-database of this kind, or ('main') the file's unnamed database. */
  where: Kind | 'main';
  /** The ttl the database is created with (the handle's default). */
  ttl: number;
}

async function runSequence(setup: Setup, ops: Op[]): Promise<void> {
  const { where: which } = setup;
  // The order of iterations: a B+tree's for the unnamed database.
  const kind: Kind = which === 'hash' ? 'hash' : 'btree';
  vi.setSystemTime(T0);
  const options = { pageSize: 4096, keyEncoding: 'string', valueEncoding: 'binary' } as const;
  const ttlOf = (ttl: number | null): { ttl?: number } => (ttl === null ? {} : { ttl });
  let storage = new MemoryStorage({ segmentSize: SEGMENT });
  /** Opens the file (with `ttl` for the unnamed database) and the database under test. */
  const openAll = (ttl: number | null): [Database<string, Bytes>, DatabaseBase<string, Bytes>] => {
    if (which === 'main') {
      const root = openOn<string, Bytes>(storage, '', { ...options, ...ttlOf(ttl) });
      return [root, root];
    }
    const root = openOn<string, Bytes>(storage, '', options);
    const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;
    return [root, root.openDB<string, Bytes>('x', { kind: which, ...enc, ...ttlOf(ttl) })];
  };
  let [db, x] = openAll(setup.ttl);
  /** The default ttl of the current handle. */
  let handleTtl = setup.ttl;
  const model: Model = new Map();
  let snaps: Array<{ snap: Snapshot<string, Bytes>; model: Model; at: number }> = [];
  const now = (): number => Date.now();
  const expOf = (ttl: Ttl): number => now() + (ttl ?? handleTtl);
  const optsOf = (ttl: Ttl): { ttl: number } | undefined => (ttl === null ? undefined : { ttl });
  const advance = (ms: number): void => {
    if (ms > 0) vi.setSystemTime(now() + ms);
  };
  try {
    expect(x.expiring).toBe(true);
    expect(x.ttl).toBe(setup.ttl);
    for (const [step, op] of ops.entries()) {
      const where = `step ${step} (${op.t})`;
      switch (op.t) {
        case 'putSync': {
          const o = optsOf(op.ttl);
          if (o === undefined) x.putSync(op.k, op.v);
          else x.putSync(op.k, op.v, o);
          model.set(op.k, { v: op.v, exp: expOf(op.ttl) });
          break;
        }
        case 'put': {
          // One batch; the clock moves between the calls: each put takes the time of its call.
          const pending: Array<Promise<void>> = [];
          for (const w of op.writes) {
            const o = optsOf(w.ttl);
            pending.push(o === undefined ? x.put(w.k, w.v) : x.put(w.k, w.v, o));
            model.set(w.k, { v: w.v, exp: expOf(w.ttl) });
            advance(w.adv);
          }
          await Promise.all(pending);
          break;
        }
        case 'removeSync':
          expect(x.removeSync(op.k), where).toBe(live(model.get(op.k), now()));
          model.delete(op.k);
          break;
        case 'remove': {
          const was = live(model.get(op.k), now());
          expect(await x.remove(op.k), where).toBe(was);
          model.delete(op.k);
          break;
        }
        case 'txn': {
          const scratch: Model = new Map(model);
          const body = (txn: Transaction<string, Bytes>): void => {
            for (const w of op.writes) {
              if (w.v === null) {
                expect(txn.remove(w.k), `${where}: txn.remove(${w.k})`).toBe(
                  live(scratch.get(w.k), now()),
                );
                scratch.delete(w.k);
              } else {
                const o = optsOf(w.ttl);
                if (o === undefined) txn.put(w.k, w.v);
                else txn.put(w.k, w.v, o);
                scratch.set(w.k, { v: w.v, exp: expOf(w.ttl) });
              }
              advance(w.adv);
              // Reads of the transaction: its own writes, at the clock of the call.
              expect(txn.has(w.k), `${where}: txn.has(${w.k})`).toBe(live(scratch.get(w.k), now()));
            }
            expectSame(kind, txn, scratch, now(), `${where}: in the transaction`);
            if (op.end === 'abort') txn.abort();
          };
          if (op.async) await x.transaction(body);
          else x.transactionSync(body);
          if (op.end === 'commit') {
            model.clear();
            for (const [k, e] of scratch) model.set(k, e);
          }
          break;
        }
        case 'advance':
          advance(op.ms);
          break;
        case 'read': {
          const e = model.get(op.k);
          const on = live(e, now());
          expect(hex(x.get(op.k)), where).toBe(on ? hex(e!.v) : undefined);
          expect(x.expiresAt(op.k), where).toBe(on ? e!.exp : undefined);
          break;
        }
        case 'purgeSync': {
          const expired = expiredIn(model, now());
          expect(x.purgeExpiredSync(), where).toBe(expired.length);
          for (const k of expired) model.delete(k);
          break;
        }
        case 'purge': {
          const expired = expiredIn(model, now());
          expect(await x.purgeExpired(), where).toBe(expired.length);
          for (const k of expired) model.delete(k);
          break;
        }
        case 'clear':
          await clearBy(x, op.how);
          model.clear();
          break;
        case 'snapOpen':
          if (snaps.length < 4)
            snaps.push({ snap: x.snapshot(), model: new Map(model), at: now() });
          break;
        case 'snapCheck': {
          const s = snaps[op.i % Math.max(1, snaps.length)];
          if (s) expectSame(kind, s.snap, s.model, s.at, `${where}: snapshot`);
          break;
        }
        case 'reopen': {
          for (const s of snaps) s.snap.close();
          snaps = [];
          const image = storage.currentImage();
          await db.close();
          storage = MemoryStorage.fromImage(image, { segmentSize: SEGMENT });
          [db, x] = openAll(op.keepTtl ? setup.ttl : null);
          handleTtl = op.keepTtl ? setup.ttl : Infinity;
          expect(x.expiring).toBe(true);
          expect(x.ttl).toBe(handleTtl);
          break;
        }
      }
      // Everything, as of now.
      const t = now();
      expectSame(kind, x, model, t, where);
      for (const k of KEYS) {
        const e = model.get(k);
        expect(x.expiresAt(k), `${where}: expiresAt(${k})`).toBe(live(e, t) ? e!.exp : undefined);
      }
      expect(db.check().problems, where).toEqual([]);
    }
    // At the end: the snapshots still see their state, and a purge deletes exactly the
    // expired entries the model holds (removes and overwrites of expired entries deleted theirs).
    for (const [i, s] of snaps.entries()) expectSame(kind, s.snap, s.model, s.at, `snapshot ${i}`);
    const expired = expiredIn(model, now());
    expect(x.purgeExpiredSync()).toBe(expired.length);
    for (const k of expired) model.delete(k);
    expect(x.purgeExpiredSync()).toBe(0);
    expectSame(kind, x, model, now(), 'after the final purge');
    expect(db.check().problems).toEqual([]);
  } finally {
    for (const s of snaps) s.snap.close();
    await db.close();
  }
}

describe('expiring databases against a model with a fake clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  for (const where of ['btree', 'hash', 'main'] as const) {
    it(`random op sequences match the model (${where})`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(1, 50, 500, 4000, Infinity),
          fc.array(opArb, { minLength: 1, maxLength: 25 }),
          (ttl, ops) => runSequence({ where, ttl }, ops),
        ),
        { numRuns: SOAK ? 4_000 : 100 },
      );
    }, 1_800_000);
  }
});
