// Issue #4 part 5 - bad arguments. A table of bad inputs is fed to every public function - of
// the database, of sub-databases of every key encoding, of snapshots and their views, of
// transactions (live and finished), of a read-only and of a closed handle - and each call must
// fail with its MapKVError code: synchronously for synchronous calls, as a rejected promise
// (never a synchronous throw) for the ones that return promises. Afterwards the data file must
// be byte-for-byte what it was before (the lock file is separate and not compared).
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  MapKVError,
  open,
  type Database,
  type DatabaseBase,
  type Snapshot,
  type Transaction,
} from '../../src/index';
import { crashFolder } from '../helpers/crash-common';

const folder = crashFolder('badargs');
const file = folder.file('data.mkv');
const otherFile = folder.file('other.mkv');
afterAll(() => folder.remove());

type Code =
  | 'ERR_BAD_KEY'
  | 'ERR_BAD_OPTION'
  | 'ERR_KEY_TOO_LARGE'
  | 'ERR_CLOSED'
  | 'ERR_TXN_DONE'
  | 'ERR_READ_ONLY'
  | 'ERR_BAD_VALUE'
  | 'ERR_INCOMPATIBLE';

/** One bad call: `async` ones must reject, never throw synchronously. */
interface Case {
  what: string;
  call: () => unknown;
  code: Code;
  async?: boolean;
}

const cases: Case[] = [];
const add = (what: string, code: Code, call: () => unknown, async = false): void => {
  cases.push({ what, call, code, async });
};

/** What a call did: its error (or none), and whether it threw synchronously. */
async function outcome(c: Case): Promise<{ err: unknown; sync: boolean; returned: boolean }> {
  let value: unknown;
  try {
    value = c.call();
  } catch (err) {
    return { err, sync: true, returned: false };
  }
  if (value instanceof Promise) {
    try {
      await value;
    } catch (err) {
      return { err, sync: false, returned: false };
    }
  } else if (value !== null && typeof value === 'object' && Symbol.iterator in value) {
    // A lazy iterable: its errors surface when iterated.
    try {
      Array.from(value as Iterable<unknown>);
    } catch (err) {
      return { err, sync: true, returned: false };
    }
  }
  return { err: undefined, sync: false, returned: true };
}

// --- the bad inputs ---

const symbol = Symbol('k');
const fn = (): number => 1;
const circular: Record<string, unknown> = { a: 1 };
circular.self = circular;

/** Not keys of the 'ordered' encoding. */
const badOrderedKeys: [string, unknown][] = [
  ['undefined', undefined],
  ['a symbol', symbol],
  ['a function', fn],
  ['a plain object', { a: 1 }],
  ['an empty object', {}],
  ['a Map', new Map()],
  ['a Date', new Date(0)],
  ['NaN', NaN],
  ['a bigint', 10n],
  ['an array holding undefined', [1, undefined]],
  ['an array holding a symbol', ['a', symbol]],
  ['an array holding an object', [{}]],
  ['a string with an unpaired surrogate', 'a\uD800b'],
  ['a Promise', Promise.resolve(1)],
];
const tooLargeOrderedKeys: [string, unknown][] = [
  ['a 5000-character string', 'x'.repeat(5000)],
  ['a 2000-byte Buffer', Buffer.alloc(2000, 1)],
  ['a tuple of two 600-character strings', ['a'.repeat(600), 'b'.repeat(600)]],
  ['a tuple of 200 numbers', Array.from({ length: 200 }, (_, i) => i)],
];
const badStringKeys: [string, unknown][] = [
  ['undefined', undefined],
  ['a number', 1],
  ['null', null],
  ['a Buffer', Buffer.from('a')],
  ['an array', ['a']],
  ['a symbol', symbol],
  ['an unpaired surrogate', '\uDC00'],
];
const badUint32Keys: [string, unknown][] = [
  ['-1', -1],
  ['1.5', 1.5],
  ['2^32', 2 ** 32],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ["'1'", '1'],
  ['undefined', undefined],
  ['a bigint', 1n],
];
const badBinaryKeys: [string, unknown][] = [
  ['a string', 'a'],
  ['a number', 1],
  ['undefined', undefined],
  ['an ArrayBuffer', new ArrayBuffer(4)],
];

const badMsgpackValues: [string, unknown][] = [
  ['undefined', undefined],
  ['a symbol', symbol],
  ['a function', fn],
  ['an object holding a function', { f: fn }],
];
const badJsonValues: [string, unknown][] = [
  ['undefined', undefined],
  ['a bigint', 1n],
  ['a circular object', circular],
  ['a function', fn],
  ['an object whose toJSON returns undefined', { toJSON: () => undefined }],
];
const badStringValues: [string, unknown][] = [
  ['a number', 1],
  ['null', null],
  ['undefined', undefined],
  ['an unpaired surrogate', 'x\uD800'],
];
const badBinaryValues: [string, unknown][] = [
  ['a string', 'abc'],
  ['a number', 1],
  ['null', null],
  ['an array', [1, 2]],
];

const badOpenOptions: [string, unknown][] = [
  ['null', null],
  ['a string', 'full'],
  ['an array', []],
  ['an unknown option', { syncc: 'full' }],
  ['pageSize NaN', { pageSize: NaN }],
  ['pageSize 1000', { pageSize: 1000 }],
  ['pageSize 3 * 4096', { pageSize: 3 * 4096 }],
  ['pageSize 2^17', { pageSize: 2 ** 17 }],
  ["pageSize '4096'", { pageSize: '4096' }],
  ['pageSize -4096', { pageSize: -4096 }],
  ["sync 'sometimes'", { sync: 'sometimes' }],
  ['sync true', { sync: true }],
  ["readOnly 'yes'", { readOnly: 'yes' }],
  ['verifyChecksums 1', { verifyChecksums: 1 }],
  ['populate null', { populate: null }],
  ["keyEncoding 'xml'", { keyEncoding: 'xml' }],
  ['valueEncoding 1', { valueEncoding: 1 }],
  ['segmentSize NaN', { segmentSize: NaN }],
  ['segmentSize 1000', { segmentSize: 1000 }],
  ['segmentSize 2^31', { segmentSize: 2 ** 31 }],
  ['segmentSize 100000', { segmentSize: 100_000 }],
  ['lockTimeout -1', { lockTimeout: -1 }],
  ['lockTimeout NaN', { lockTimeout: NaN }],
  ["lockTimeout '10'", { lockTimeout: '10' }],
  ['maxReaders 0', { maxReaders: 0 }],
  ['maxReaders 1.5', { maxReaders: 1.5 }],
  ['maxReaders NaN', { maxReaders: NaN }],
  ['msgpack 1', { msgpack: 1 }],
];

const badRangeOptions: [string, unknown, Code][] = [
  ['null', null, 'ERR_BAD_OPTION'],
  ['a string', 'a', 'ERR_BAD_OPTION'],
  ['limit -1', { limit: -1 }, 'ERR_BAD_OPTION'],
  ['limit NaN', { limit: NaN }, 'ERR_BAD_OPTION'],
  ['limit 1.5', { limit: 1.5 }, 'ERR_BAD_OPTION'],
  ["limit '5'", { limit: '5' }, 'ERR_BAD_OPTION'],
  ["reverse 'yes'", { reverse: 'yes' }, 'ERR_BAD_OPTION'],
  ['start: a symbol', { start: symbol }, 'ERR_BAD_KEY'],
  ['end: an object', { end: { a: 1 } }, 'ERR_BAD_KEY'],
  ['prefix: NaN', { prefix: NaN }, 'ERR_BAD_KEY'],
  ['start: too large', { start: 'x'.repeat(5000) }, 'ERR_KEY_TOO_LARGE'],
];

const badDbNames: [string, unknown][] = [
  ['an empty name', ''],
  ['undefined', undefined],
  ['a number', 1],
  ['a symbol', symbol],
  ['a 300-byte name', 'n'.repeat(300)],
  ['an object', { name: 'x' }],
];
const badDbOptions: [string, unknown][] = [
  ['null', null],
  ["kind 'tree'", { kind: 'tree' }],
  ['kind 1', { kind: 1 }],
  ["keyEncoding 'xml'", { keyEncoding: 'xml' }],
  ['valueEncoding null', { valueEncoding: null }],
  ['ttl 0', { ttl: 0 }],
  ['ttl -1', { ttl: -1 }],
  ['ttl NaN', { ttl: NaN }],
  ["ttl '5'", { ttl: '5' }],
];

/** Bad options of put, putSync and txn.put (third argument). */
const badPutOptions: [string, unknown][] = [
  ['null', null],
  ['a number', 5],
  ['an unknown key', { expires: 5 }],
  ['ttl 0', { ttl: 0 }],
  ['ttl -Infinity', { ttl: -Infinity }],
  ['ttl NaN', { ttl: NaN }],
  ["ttl '5'", { ttl: '5' }],
];

// --- the handles ---

let db: Database<any, any>;
let ro: Database<any, any>;
let closed: Database<any, any>;
let other: Database<any, any>;
let subs: Record<string, DatabaseBase<any, any>>;
let roSub: DatabaseBase<any, any>;
let closedSub: DatabaseBase<any, any>;
let snap: Snapshot<any, any>;
let closedSnap: Snapshot<any, any>;
let doneTxn: Transaction<any, any>;
let abortedTxn: Transaction<any, any>;
let snapOfClosed: Snapshot<any, any>;
let before: Buffer;

beforeAll(async () => {
  const setup = open<any, any>(file);
  setup.putSync('a', 1);
  setup.putSync(['t', 1], { x: 1 });
  setup.openDB('str', { keyEncoding: 'string', valueEncoding: 'string' }).putSync('s', 'v');
  setup.openDB('u32', { keyEncoding: 'uint32', valueEncoding: 'json' }).putSync(7, { j: 1 });
  setup
    .openDB('bin', { keyEncoding: 'binary', valueEncoding: 'binary' })
    .putSync(Buffer.from('b'), Buffer.from('v'));
  setup.openDB('expiring', { ttl: 60_000 }).putSync('e', 1);
  await setup.close();
  const o = open<any, any>(otherFile);
  o.putSync('o', 1);
  other = o;
  before = fs.readFileSync(file);

  db = open<any, any>(file);
  subs = {
    ordered: db,
    str: db.openDB('str'),
    u32: db.openDB('u32'),
    bin: db.openDB('bin'),
  };
  ro = open<any, any>(file, { readOnly: true });
  roSub = ro.openDB('str');
  closed = open<any, any>(file);
  closedSub = closed.openDB('str');
  snapOfClosed = closed.snapshot();
  await closed.close();
  snap = db.snapshot();
  closedSnap = db.snapshot();
  closedSnap.close();
  db.transactionSync((t) => {
    doneTxn = t;
  });
  db.transactionSync((t) => {
    abortedTxn = t;
    t.abort();
  });

  // Keys: every key-taking function of every handle kind.
  const keyUsers = (
    label: string,
    h: DatabaseBase<any, any>,
    keys: [string, unknown][],
    code: Code,
  ): void => {
    for (const [name, k] of keys) {
      const w = `${label} key ${name}`;
      add(`get, ${w}`, code, () => h.get(k));
      add(`getBinary, ${w}`, code, () => h.getBinary(k));
      add(`has, ${w}`, code, () => h.has(k));
      add(`putSync, ${w}`, code, () => h.putSync(k, validValue(h)));
      add(`removeSync, ${w}`, code, () => h.removeSync(k));
      add(`put, ${w}`, code, () => h.put(k, validValue(h)), true);
      add(`remove, ${w}`, code, () => h.remove(k), true);
      // An undefined bound means "no bound", as optional options do.
      if (k !== undefined) {
        add(`range start, ${w}`, code, () => h.range({ start: k }));
        add(`range end reverse, ${w}`, code, () => h.range({ end: k, reverse: true }));
        add(`keys prefix, ${w}`, code, () => h.keys({ prefix: k }));
        add(`values start, ${w}`, code, () => h.values({ start: k }));
        add(`count start, ${w}`, code, () => h.count({ start: k }));
        add(`snapshot range, ${w}`, code, () => snap.db(h).range({ start: k }));
        add(`snapshot count, ${w}`, code, () => snap.db(h).count({ end: k }));
        add(`txn.range, ${w}`, code, () =>
          db.transactionSync((t) => [...t.db(h).range({ start: k })]),
        );
        add(`txn.count, ${w}`, code, () => db.transactionSync((t) => t.db(h).count({ start: k })));
      }
      add(`snapshot get, ${w}`, code, () => snap.db(h).get(k));
      add(`snapshot has, ${w}`, code, () => snap.db(h).has(k));
      add(`snapshot getBinary, ${w}`, code, () => snap.db(h).getBinary(k));
      add(`txn.get, ${w}`, code, () => db.transactionSync((t) => t.db(h).get(k)));
      add(`txn.getBinary, ${w}`, code, () => db.transactionSync((t) => t.db(h).getBinary(k)));
      add(`txn.has, ${w}`, code, () => db.transactionSync((t) => t.db(h).has(k)));
      add(`txn.remove, ${w}`, code, () => db.transactionSync((t) => t.db(h).remove(k)));
      // A bad key after good writes: the whole transaction is aborted, nothing is written.
      add(`txn.put after a good put, ${w}`, code, () =>
        db.transactionSync((t) => {
          t.db(h).put(goodKey(h), validValue(h));
          t.db(h).put(k, validValue(h));
        }),
      );
      add(
        `transaction (async) put, ${w}`,
        code,
        () => db.transaction((t) => t.db(h).put(k, validValue(h))),
        true,
      );
    }
  };
  keyUsers('ordered', db, badOrderedKeys, 'ERR_BAD_KEY');
  keyUsers('ordered', db, tooLargeOrderedKeys, 'ERR_KEY_TOO_LARGE');
  keyUsers('string', subs.str!, badStringKeys, 'ERR_BAD_KEY');
  keyUsers(
    'string',
    subs.str!,
    [['a 5000-character string', 'y'.repeat(5000)]],
    'ERR_KEY_TOO_LARGE',
  );
  keyUsers('uint32', subs.u32!, badUint32Keys, 'ERR_BAD_KEY');
  keyUsers('binary', subs.bin!, badBinaryKeys, 'ERR_BAD_KEY');
  keyUsers('binary', subs.bin!, [['a 2000-byte Buffer', Buffer.alloc(2000)]], 'ERR_KEY_TOO_LARGE');

  // Values: every value-taking function, per value encoding.
  const valueUsers = (
    label: string,
    h: DatabaseBase<any, any>,
    values: [string, unknown][],
  ): void => {
    for (const [name, v] of values) {
      const w = `${label} value ${name}`;
      add(`putSync, ${w}`, 'ERR_BAD_VALUE', () => h.putSync(goodKey(h), v));
      add(`put, ${w}`, 'ERR_BAD_VALUE', () => h.put(goodKey(h), v), true);
      add(`txn.put, ${w}`, 'ERR_BAD_VALUE', () =>
        db.transactionSync((t) => t.db(h).put(goodKey(h), v)),
      );
      add(
        `transaction (async) put, ${w}`,
        'ERR_BAD_VALUE',
        () => db.transaction((t) => t.db(h).put(goodKey(h), v)),
        true,
      );
    }
  };
  valueUsers('msgpack', db, badMsgpackValues);
  valueUsers('json', subs.u32!, badJsonValues);
  valueUsers('string', subs.str!, badStringValues);
  valueUsers('binary', subs.bin!, badBinaryValues);

  // Options of open().
  for (const [name, o] of badOpenOptions) {
    add(`open, options ${name}`, 'ERR_BAD_OPTION', () =>
      open(folder.file('never.mkv'), o as never),
    );
    add(`open existing, options ${name}`, 'ERR_BAD_OPTION', () => open(file, o as never));
  }
  for (const [name, p] of [
    ['undefined', undefined],
    ['a number', 1],
    ['a symbol', symbol],
    ['an empty string', ''],
    ['a path with a NUL byte', `${folder.dir}/a\0b`],
    ['an object', { path: file }],
  ] as [string, unknown][]) {
    add(`open, path ${name}`, 'ERR_BAD_OPTION', () => open(p as string));
  }
  add('open existing, another pageSize', 'ERR_INCOMPATIBLE', () => open(file, { pageSize: 8192 }));
  add('open existing, another keyEncoding', 'ERR_INCOMPATIBLE', () =>
    open(file, { keyEncoding: 'string' }),
  );
  add('open existing, another valueEncoding', 'ERR_INCOMPATIBLE', () =>
    open(file, { valueEncoding: 'json' }),
  );

  // Range options.
  for (const [name, o, code] of badRangeOptions) {
    add(`range, options ${name}`, code, () => db.range(o as never));
    add(`keys, options ${name}`, code, () => db.keys(o as never));
    add(`values, options ${name}`, code, () => db.values(o as never));
    add(`count, options ${name}`, code, () => db.count(o as never));
    add(`sub range, options ${name}`, code, () => subs.str!.range(o as never));
    add(`snapshot range, options ${name}`, code, () => snap.range(o as never));
    add(`snapshot count, options ${name}`, code, () => snap.count(o as never));
    add(`txn.range, options ${name}`, code, () =>
      db.transactionSync((t) => [...t.range(o as never)]),
    );
    add(`txn.keys, options ${name}`, code, () =>
      db.transactionSync((t) => [...t.keys(o as never)]),
    );
    add(`txn.count, options ${name}`, code, () => db.transactionSync((t) => t.count(o as never)));
  }

  // openDB.
  for (const [name, n] of badDbNames)
    add(`openDB, name ${name}`, 'ERR_BAD_OPTION', () => db.openDB(n as string));
  for (const [name, o] of badDbOptions) {
    add(`openDB, options ${name}`, 'ERR_BAD_OPTION', () => db.openDB('str', o as never));
    add(`openDB of a new name, options ${name}`, 'ERR_BAD_OPTION', () =>
      db.openDB('fresh', o as never),
    );
  }
  add('openDB existing, a ttl it was created without', 'ERR_INCOMPATIBLE', () =>
    db.openDB('str', { ttl: 1000 }),
  );
  // Put options, on an expiring sub-database and on one that does not expire (where any ttl
  // is refused).
  // Opened without ttl: it expires all the same (created with one in beforeAll).
  const expiring = db.openDB('expiring');
  for (const [label, h] of [
    ['expiring sub-db', expiring],
    ['sub-db', subs.str!],
  ] as const) {
    const bad: [string, unknown][] =
      h === expiring ? badPutOptions : [...badPutOptions, ['ttl 5', { ttl: 5 }]];
    for (const [name, o] of bad) {
      const w = `${label} put options ${name}`;
      add(`putSync, ${w}`, 'ERR_BAD_OPTION', () => h.putSync('k', 'v', o as never));
      add(`put, ${w}`, 'ERR_BAD_OPTION', () => h.put('k', 'v', o as never), true);
      add(`txn.put, ${w}`, 'ERR_BAD_OPTION', () =>
        db.transactionSync((t) => t.db(h).put('k', 'v', o as never)),
      );
    }
  }
  add('openDB existing, another kind', 'ERR_INCOMPATIBLE', () =>
    db.openDB('str', { kind: 'hash' }),
  );
  add('openDB existing, another keyEncoding', 'ERR_INCOMPATIBLE', () =>
    db.openDB('str', { keyEncoding: 'binary' }),
  );
  add('openDB existing, another valueEncoding', 'ERR_INCOMPATIBLE', () =>
    db.openDB('u32', { valueEncoding: 'msgpack' }),
  );

  // Transaction callbacks.
  for (const [name, f] of [
    ['undefined', undefined],
    ['a number', 1],
    ['an object', {}],
  ] as [string, unknown][]) {
    add(`transactionSync, callback ${name}`, 'ERR_BAD_OPTION', () =>
      db.transactionSync(f as never),
    );
    add(`transaction, callback ${name}`, 'ERR_BAD_OPTION', () => db.transaction(f as never), true);
    add(`sub transactionSync, callback ${name}`, 'ERR_BAD_OPTION', () =>
      subs.str!.transactionSync(f as never),
    );
  }
  add('transactionSync, an async callback', 'ERR_BAD_OPTION', () =>
    // @ts-expect-error an async callback: a compile error too
    db.transactionSync(async (t) => {
      t.put('async', 1);
    }),
  );
  add(
    'transaction, an async callback',
    'ERR_BAD_OPTION',
    // @ts-expect-error an async callback: a compile error too
    () => db.transaction(async (t) => t.put('async', 1)),
    true,
  );
  add('txn.db of another file', 'ERR_BAD_OPTION', () => db.transactionSync((t) => t.db(other)));
  add('snapshot.db of another file', 'ERR_BAD_OPTION', () => snap.db(other));

  // backup.
  for (const [name, p] of [
    ['undefined', undefined],
    ['an empty string', ''],
    ['a number', 5],
  ] as [string, unknown][]) {
    add(`backup, path ${name}`, 'ERR_BAD_OPTION', () => db.backup(p as string), true);
  }
  for (const [name, o] of [
    ['null', null],
    ["compact 'yes'", { compact: 'yes' }],
  ] as [string, unknown][]) {
    add(
      `backup, options ${name}`,
      'ERR_BAD_OPTION',
      () => db.backup(folder.file('b.mkv'), o as never),
      true,
    );
  }

  // A finished transaction (committed-empty and aborted).
  for (const [label, t] of [
    ['finished', () => doneTxn],
    ['aborted', () => abortedTxn],
  ] as const) {
    add(`${label} txn.get`, 'ERR_TXN_DONE', () => t().get('a'));
    add(`${label} txn.getBinary`, 'ERR_TXN_DONE', () => t().getBinary('a'));
    add(`${label} txn.has`, 'ERR_TXN_DONE', () => t().has('a'));
    add(`${label} txn.put`, 'ERR_TXN_DONE', () => t().put('late', 1));
    add(`${label} txn.remove`, 'ERR_TXN_DONE', () => t().remove('a'));
    add(`${label} txn.range`, 'ERR_TXN_DONE', () => t().range());
    add(`${label} txn.keys`, 'ERR_TXN_DONE', () => t().keys());
    add(`${label} txn.values`, 'ERR_TXN_DONE', () => t().values());
    add(`${label} txn.count`, 'ERR_TXN_DONE', () => t().count());
    add(`${label} txn.db`, 'ERR_TXN_DONE', () => t().db(subs.str!));
    add(`${label} txn.abort`, 'ERR_TXN_DONE', () => t().abort());
  }
  // A transaction used after its callback returned, from inside another one.
  add('a finished txn inside a live one', 'ERR_TXN_DONE', () =>
    db.transactionSync(() => doneTxn.put('late', 1)),
  );

  // A closed snapshot.
  for (const [name, call] of [
    ['get', () => closedSnap.get('a')],
    ['getBinary', () => closedSnap.getBinary('a')],
    ['has', () => closedSnap.has('a')],
    ['range', () => closedSnap.range()],
    ['keys', () => closedSnap.keys()],
    ['values', () => closedSnap.values()],
    ['count', () => closedSnap.count()],
    ['db', () => closedSnap.db(subs.str!)],
  ] as [string, () => unknown][]) {
    add(`closed snapshot ${name}`, 'ERR_TXN_DONE', call);
  }

  // A read-only database: every write.
  for (const [label, h] of [
    ['read-only db', () => ro],
    ['read-only sub-db', () => roSub],
  ] as const) {
    add(`${label} putSync`, 'ERR_READ_ONLY', () => h().putSync('a', 'v'));
    add(`${label} removeSync`, 'ERR_READ_ONLY', () => h().removeSync('a'));
    add(`${label} put`, 'ERR_READ_ONLY', () => h().put('a', 'v'), true);
    add(`${label} remove`, 'ERR_READ_ONLY', () => h().remove('a'), true);
    add(`${label} transactionSync`, 'ERR_READ_ONLY', () =>
      h().transactionSync((t) => t.put('a', 'v')),
    );
    add(
      `${label} transaction`,
      'ERR_READ_ONLY',
      () => h().transaction((t) => t.put('a', 'v')),
      true,
    );
    add(`${label} purgeExpiredSync`, 'ERR_READ_ONLY', () => h().purgeExpiredSync());
    add(`${label} purgeExpired`, 'ERR_READ_ONLY', () => h().purgeExpired(), true);
  }

  // A closed database, its sub-database and a snapshot left open when it closed.
  for (const [label, h] of [
    ['closed db', () => closed],
    ['closed sub-db', () => closedSub],
  ] as const) {
    add(`${label} get`, 'ERR_CLOSED', () => h().get('a'));
    add(`${label} getBinary`, 'ERR_CLOSED', () => h().getBinary('a'));
    add(`${label} has`, 'ERR_CLOSED', () => h().has('a'));
    add(`${label} putSync`, 'ERR_CLOSED', () => h().putSync('a', 'v'));
    add(`${label} removeSync`, 'ERR_CLOSED', () => h().removeSync('a'));
    add(`${label} put`, 'ERR_CLOSED', () => h().put('a', 'v'), true);
    add(`${label} remove`, 'ERR_CLOSED', () => h().remove('a'), true);
    add(`${label} transactionSync`, 'ERR_CLOSED', () => h().transactionSync(() => 1));
    add(`${label} transaction`, 'ERR_CLOSED', () => h().transaction(() => 1), true);
    add(`${label} snapshot`, 'ERR_CLOSED', () => h().snapshot());
    add(`${label} range`, 'ERR_CLOSED', () => h().range());
    add(`${label} keys`, 'ERR_CLOSED', () => h().keys());
    add(`${label} values`, 'ERR_CLOSED', () => h().values());
    add(`${label} count`, 'ERR_CLOSED', () => h().count());
    add(`${label} get with a bad key`, 'ERR_CLOSED', () => h().get(symbol));
    add(`${label} expiresAt`, 'ERR_CLOSED', () => h().expiresAt('a'));
    add(`${label} purgeExpiredSync`, 'ERR_CLOSED', () => h().purgeExpiredSync());
    add(`${label} purgeExpired`, 'ERR_CLOSED', () => h().purgeExpired(), true);
    add(`${label} putSync with a ttl`, 'ERR_CLOSED', () => h().putSync('a', 'v', { ttl: 5 }));
  }
  add('closed db openDB', 'ERR_CLOSED', () => closed.openDB('str'));
  add('closed db stats', 'ERR_CLOSED', () => closed.stats());
  add('closed db check', 'ERR_CLOSED', () => closed.check());
  add('closed db backup', 'ERR_CLOSED', () => closed.backup(folder.file('c.mkv')), true);
  add('snapshot of a closed db, get', 'ERR_CLOSED', () => snapOfClosed.get('a'));
  add('snapshot of a closed db, range', 'ERR_CLOSED', () => snapOfClosed.range());
  add('snapshot of a closed db, count', 'ERR_CLOSED', () => snapOfClosed.count());
}, 60_000);

function goodKey(h: DatabaseBase<any, any>): unknown {
  switch (h.keyEncoding) {
    case 'uint32':
      return 99;
    case 'binary':
      return Buffer.from('gk');
    default:
      return 'good-key';
  }
}

function validValue(h: DatabaseBase<any, any>): unknown {
  switch (h.valueEncoding) {
    case 'binary':
      return Buffer.from('v');
    case 'string':
      return 'v';
    default:
      return { v: 1 };
  }
}

describe('bad arguments to every public function', () => {
  it('each bad call fails with its MapKVError code', async () => {
    const wrong: string[] = [];
    for (const c of cases) {
      const o = await outcome(c);
      const err = o.err as { code?: unknown } | undefined;
      if (o.returned) wrong.push(`${c.what}: returned, expected ${c.code}`);
      else if (!(o.err instanceof MapKVError))
        wrong.push(
          `${c.what}: threw ${String(o.err)} (${(o.err as Error)?.constructor?.name}), expected MapKVError ${c.code}`,
        );
      else if (err!.code !== c.code)
        wrong.push(
          `${c.what}: ${String(err!.code)}, expected ${c.code} (${(o.err as Error).message})`,
        );
      else if (c.async && o.sync)
        wrong.push(`${c.what}: threw synchronously; a promise-returning call must reject`);
    }
    console.log(`[bad arguments] ${cases.length} calls, ${wrong.length} wrong`);
    expect(wrong, `${wrong.length} of ${cases.length} calls`).toEqual([]);
  }, 120_000);

  it('after them the database still works, and the data file is byte-for-byte unchanged', async () => {
    expect(db.get('a')).toBe(1);
    expect(db.check()).toEqual({ ok: true, problems: [] });
    snap.close();
    await db.close();
    await ro.close();
    await other.close();
    for (const leftover of ['never.mkv', 'b.mkv', 'c.mkv'])
      expect(fs.existsSync(folder.file(leftover)), `${leftover} was created`).toBe(false);
    const after = fs.readFileSync(file);
    expect(after.length, 'data file size').toBe(before.length);
    expect(after.equals(before), 'the data file changed').toBe(true);
  }, 120_000);
});
