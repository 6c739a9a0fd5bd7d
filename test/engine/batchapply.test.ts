/**
 * Batched async writes: what one event-loop turn (and the turns while a commit flushes) queues
 * is applied as one commit. Puts are queued as bytes in a log (src/putlog.ts) and a long run of
 * puts to one B+tree is applied in key order, to one hash table in the order of the keys'
 * hashes; whatever the order of application, the result must be that of the writes in the
 * order they were made: the last put of a key wins, a remove in between removes what came
 * before it, a transaction sees the writes queued before it. Checked against a Map model per
 * database, over the unnamed database, a named B+tree and a hash sub-database, and check()
 * clean once the writes are committed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';

type Write =
  | { t: 'put'; db: number; k: string; v: Uint8Array }
  | { t: 'remove'; db: number; k: string }
  | { t: 'txn'; db: number; writes: Array<{ k: string; v: Uint8Array | null }>; fails: boolean };

function valueOf(seed: number, size: number): Uint8Array {
  const v = new Uint8Array(size);
  for (let i = 0; i < size; i++) v[i] = (seed + i * 7) & 0xff;
  return v;
}

// Few keys, so a batch puts most of them more than once.
const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 60 }).map((i) => `k${String(i).padStart(3, '0')}`),
  // Keys sharing their first 12 bytes and more, some a prefix of others.
  fc.integer({ min: 0, max: 8 }).map((i) => 'p'.repeat(12) + 'q'.repeat(i)),
);
const valueArb = fc
  .tuple(
    fc.nat(255),
    fc.oneof(
      { weight: 10, arbitrary: fc.integer({ min: 0, max: 100 }) },
      { weight: 1, arbitrary: fc.integer({ min: 2_000, max: 9_000 }) },
    ),
  )
  .map(([seed, size]) => valueOf(seed, size));
const dbArb = fc.nat(2);

const writeArb: fc.Arbitrary<Write> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({ t: fc.constant('put' as const), db: dbArb, k: keyArb, v: valueArb }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('remove' as const), db: dbArb, k: keyArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      db: dbArb,
      writes: fc.array(fc.record({ k: keyArb, v: fc.option(valueArb, { nil: null, freq: 3 }) }), {
        maxLength: 5,
      }),
      fails: fc.boolean(),
    }),
  },
);

/** A run of 64 to 150 puts to one database: long enough for the in-key-order apply. */
const runArb: fc.Arbitrary<Write[]> = fc
  .tuple(dbArb, fc.array(fc.tuple(keyArb, valueArb), { minLength: 64, maxLength: 150 }))
  .map(([db, puts]) => puts.map(([k, v]) => ({ t: 'put' as const, db, k, v })));

/** One turn's writes: single writes and long runs, mixed. */
const turnArb = fc
  .array(
    fc.oneof({ weight: 3, arbitrary: writeArb }, { weight: 1, arbitrary: runArb.map((r) => r) }),
    {
      maxLength: 6,
    },
  )
  .map((parts) => parts.flatMap((p) => (Array.isArray(p) ? p : [p])));

type Model = Map<string, Uint8Array>;

function expectSame(db: Database<string, Uint8Array>, model: Model): void {
  const got = new Map<string, string>();
  for (const { key, value } of db.range()) got.set(key, Buffer.from(value).toString('hex'));
  const want = new Map<string, string>();
  for (const [k, v] of model) want.set(k, Buffer.from(v).toString('hex'));
  expect(got).toEqual(want);
  expect(db.count()).toBe(model.size);
}

async function runTurns(turns: Write[][], pageSize: number): Promise<void> {
  const storage = new MemoryStorage({ segmentSize: 1 << 20 });
  const root = openOn<string, Uint8Array>(storage, '', {
    pageSize,
    keyEncoding: 'string',
    valueEncoding: 'binary',
    sync: 'none',
  });
  try {
    const dbs: Array<Database<string, Uint8Array>> = [
      root,
      root.openDB('tree', { keyEncoding: 'string', valueEncoding: 'binary' }) as Database<
        string,
        Uint8Array
      >,
      root.openDB('hash', {
        kind: 'hash',
        keyEncoding: 'string',
        valueEncoding: 'binary',
      }) as unknown as Database<string, Uint8Array>,
    ];
    const models: Model[] = [new Map(), new Map(), new Map()];
    // Each turn's writes are made in one go, without awaiting; the next turn starts while
    // the previous commit may still run, so its writes queue for the commit after.
    const all: Array<Promise<void>> = [];
    for (const writes of turns) {
      for (const w of writes) {
        const db = dbs[w.db]!;
        const model = models[w.db]!;
        if (w.t === 'put') {
          model.set(w.k, w.v);
          all.push(db.put(w.k, w.v));
        } else if (w.t === 'remove') {
          const existed = model.has(w.k);
          model.delete(w.k);
          all.push(db.remove(w.k).then((r) => expect(r).toBe(existed)));
        } else {
          // The transaction sees what was queued before it: what has() answers at each
          // step is worked out now, from the model, and checked when the callback runs.
          const seen = new Map(model);
          const present: boolean[] = [];
          for (const x of w.writes) {
            present.push(seen.has(x.k));
            if (x.v === null) seen.delete(x.k);
            else seen.set(x.k, x.v);
          }
          const p = db.transaction((txn) => {
            w.writes.forEach((x, i) => {
              expect(txn.has(x.k)).toBe(present[i]);
              if (x.v === null) txn.remove(x.k);
              else txn.put(x.k, x.v);
            });
            if (w.fails) throw new Error('this transaction fails');
          });
          if (w.fails) {
            all.push(
              p.then(
                () => {
                  throw new Error('a failing transaction resolved');
                },
                (e: unknown) => expect(String(e)).toContain('this transaction fails'),
              ),
            );
          } else {
            model.clear();
            for (const [k, v] of seen) model.set(k, v);
            all.push(p);
          }
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(all);
    for (let i = 0; i < dbs.length; i++) expectSame(dbs[i]!, models[i]!);
    const c = root.check();
    expect(c.problems).toEqual([]);
  } finally {
    await root.close();
  }
}

describe('batched async writes', () => {
  it('commit what the writes made in order, whatever order a batch applies them in', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(turnArb, { minLength: 1, maxLength: 4 }),
        fc.constantFrom(4096, 8192),
        runTurns,
      ),
      { numRuns: 60 },
    );
  });

  it('a run of 5,000 puts of 300 keys keeps the last value of each key', async () => {
    const run: Write[] = [];
    const hashRun: Write[] = [];
    const mixed: Write[] = [];
    for (let i = 0; i < 5_000; i++) {
      const k = `key${(i * 7919) % 300}`;
      run.push({ t: 'put', db: 1, k, v: valueOf(i, i % 90) });
      hashRun.push({ t: 'put', db: 2, k, v: valueOf(i + 2, i % 80) });
      mixed.push({ t: 'put', db: i % 3, k, v: valueOf(i + 1, i % 70) });
    }
    await runTurns([run, hashRun, mixed, run.slice(0, 100), hashRun.slice(0, 100)], 4096);
  });
});
