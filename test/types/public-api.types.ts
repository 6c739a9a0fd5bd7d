/**
 * Compile-time tests of the public typings: `npm run typecheck` compiles this file, nothing
 * runs it (vitest runs `*.test.ts` only). An assertion (`typeOf(x).is<T>()`,
 * `expectType<Equal<A, B>>()`) fails to compile when the types differ; a `@ts-expect-error` line pins something that must
 * stay a compile error (tsc reports a directive that no longer has an error to expect).
 */
import {
  type Database,
  type DatabaseBase,
  type DefaultValue,
  type Entry,
  type OpenOptions,
  type OrderedKey,
  type RangeOptions,
  type Snapshot,
  type SnapshotView,
  type Transaction,
  open,
} from '../../src/index';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Compiles only when `T` is `true`. */
function expectType<T extends true>(): T | void {}
/** `typeOf(x).is<T>()` compiles only when the type of `x` is exactly `T`. */
function typeOf<A>(_value: A) {
  return { is<B>(..._ok: Equal<A, B> extends true ? [] : ['the types differ']): void {} };
}

interface User {
  name: string;
  age: number;
}

declare const path: string;

// --- key and value types from the encoding options (no type arguments) ---

export function inferredFromEncodings(): void {
  const d = open(path);
  typeOf(d).is<Database<OrderedKey, DefaultValue>>();
  expectType<Equal<DefaultValue, any>>();

  const s = open(path, { keyEncoding: 'string', valueEncoding: 'string' });
  typeOf(s).is<Database<string, string>>();
  const u = open(path, { keyEncoding: 'uint32', valueEncoding: 'binary' });
  typeOf(u).is<Database<number, Uint8Array>>();
  const b = open(path, { keyEncoding: 'binary', valueEncoding: 'json' });
  typeOf(b).is<Database<Uint8Array, DefaultValue>>();
  const o = open(path, { keyEncoding: 'ordered', valueEncoding: 'msgpack', sync: 'none' });
  typeOf(o).is<Database<OrderedKey, DefaultValue>>();
  // An options object typed OpenOptions: any encoding, so the widest types.
  const opts: OpenOptions = { readOnly: true };
  const w = open(path, opts);
  typeOf(w).is<Database<OrderedKey, DefaultValue>>();

  for (const { key, value } of u.range()) {
    typeOf(key).is<number>();
    typeOf(value).is<Uint8Array>();
  }
  // @ts-expect-error a uint32 database takes number keys
  u.putSync('not-a-number', new Uint8Array(1));
  // @ts-expect-error a binary-valued database takes bytes
  u.putSync(1, 'text');
  // @ts-expect-error a string-keyed database takes string keys
  s.get(1);

  const users = d.openDB('users', { keyEncoding: 'uint32' });
  typeOf(users).is<DatabaseBase<number, DefaultValue>>();
  const h = d.openDB('h', { kind: 'hash', keyEncoding: 'string', valueEncoding: 'binary' });
  typeOf(h).is<DatabaseBase<string, Uint8Array>>();
  const plain = d.openDB('plain');
  typeOf(plain).is<DatabaseBase<OrderedKey, DefaultValue>>();
  // @ts-expect-error a uint32 sub-database takes number keys
  users.get('alice');

  const cache = d.openDB('cache', { kind: 'hash', keyEncoding: 'string', ttl: 60_000 });
  typeOf(cache).is<DatabaseBase<string, DefaultValue, 'hash'>>();
  typeOf(cache.expiresAt('k')).is<number | undefined>();
  typeOf(cache.purgeExpiredSync({ limit: 10 })).is<number>();
  typeOf(cache.purgeExpired()).is<Promise<number>>();
  cache.putSync('k', 1, { ttl: 5_000 });
  // @ts-expect-error ttl is a number of milliseconds
  cache.putSync('k', 1, { ttl: '5s' });
  // @ts-expect-error put options are ttl only
  void cache.put('k', 1, { expires: 5 });
  // @ts-expect-error ttl is a number of milliseconds
  d.openDB('cache', { ttl: true });
  typeOf(cache.clearSync()).is<void>();
  typeOf(d.dropDB('cache')).is<boolean>();
  typeOf(cache.clear()).is<Promise<void>>();
  cache.transactionSync((txn) => {
    typeOf(txn.clear()).is<void>();
  });
  // The unnamed database expires when open creates the file with ttl.
  typeOf(open(path, { ttl: 60_000 }).expiring).is<boolean>();
  // @ts-expect-error ttl is a number of milliseconds
  open(path, { ttl: '1h' });
}

// --- explicit type arguments <K, V> ---

export function explicitTypeArguments(): void {
  const db = open<string, User>(path, { keyEncoding: 'string' });
  typeOf(db).is<Database<string, User>>();
  typeOf(db.get('a')).is<User | undefined>();
  // One type argument is refused: lmdb-js users write open<V>, and it would be the key type.
  // @ts-expect-error both <K, V> are required
  open<User>(path);
  // @ts-expect-error both <K, V> are required
  db.openDB<User>('users');
  const loose = open<any, any>(path, { readOnly: true });
  typeOf(loose).is<Database<any, any>>();

  const users = db.openDB<string, User>('users', { keyEncoding: 'string' });
  typeOf(users).is<DatabaseBase<string, User>>();
  const n = db.openDB<number, string>('n', { keyEncoding: 'uint32', valueEncoding: 'string' });
  typeOf(n).is<DatabaseBase<number, string>>();
  // Encodings left out are taken from the file: any type arguments go.
  const t = db.openDB<[string, number], User>('t');
  typeOf(t).is<DatabaseBase<[string, number], User>>();

  // @ts-expect-error wrong key type
  db.get(1);
  // @ts-expect-error wrong value type
  db.putSync('a', { name: 1 });

  // Type arguments the encoding options cannot store are compile errors.
  // @ts-expect-error string keys with keyEncoding 'uint32'
  open<string, User>(path, { keyEncoding: 'uint32' });
  // @ts-expect-error number values with valueEncoding 'string'
  open<string, number>(path, { valueEncoding: 'string' });
  // @ts-expect-error string keys with keyEncoding 'binary'
  db.openDB<string, User>('x', { keyEncoding: 'binary' });
  // @ts-expect-error User values with valueEncoding 'binary'
  db.openDB<number, User>('x', { keyEncoding: 'uint32', valueEncoding: 'binary' });
}

// --- misspelt and invalid options stay compile errors ---

export function misspeltOptions(db: Database<string, User>): void {
  // @ts-expect-error misspelt open option
  open(path, { readonly: true });
  // @ts-expect-error misspelt open option, with type arguments
  open<string, User>(path, { keyEncoding: 'string', readonly: true });
  // @ts-expect-error bad key encoding name
  open(path, { keyEncoding: 'utf8' });
  // @ts-expect-error bad value encoding name
  open(path, { valueEncoding: 'cbor' });
  // @ts-expect-error misspelt openDB option
  db.openDB('x', { kindd: 'hash' });
  // @ts-expect-error misspelt openDB option, with type arguments
  db.openDB<string, User>('x', { kindd: 'hash' });
  // @ts-expect-error bad kind
  db.openDB('x', { kind: 'lsm' });
  // @ts-expect-error misspelt range option
  db.range({ gte: 'a' });
  // @ts-expect-error misspelt backup option
  void db.backup('copy.mkv', { compacted: true });
}

// --- transaction callbacks are synchronous ---

export async function transactions(db: Database<string, User>): Promise<void> {
  const sub = db.openDB<string, number>('n');
  const a: number = db.transactionSync((txn) => {
    typeOf(txn).is<Transaction<string, User>>();
    return 1;
  });
  const b: string = await db.transaction(() => 'x');
  const c = sub.transactionSync((txn) => {
    txn.db(db).put('k', { name: 'n', age: 1 });
    txn.put('k', 1);
  });
  typeOf(c).is<void>();
  void [a, b];

  // @ts-expect-error transactionSync with an async callback (ERR_BAD_OPTION at run time)
  db.transactionSync(async (txn) => txn.put('a', { name: 'x', age: 1 }));
  // @ts-expect-error transaction with an async callback (ERR_BAD_OPTION at run time)
  await db.transaction(async (txn) => txn.put('a', { name: 'x', age: 1 }));
  // @ts-expect-error a callback returning a promise it did not await
  db.transactionSync(() => Promise.resolve(1));
  // @ts-expect-error on a sub-database too
  sub.transactionSync(async () => undefined);
  // @ts-expect-error and with db.transaction on a sub-database
  await sub.transaction(async () => undefined);
}

// --- ordered keys: readonly arrays and tuple prefixes ---

export function orderedKeys(): void {
  const db = open(path);
  const key = ['user', 1] as const;
  db.get(key);
  db.putSync(key, { n: 1 });
  const ro: readonly string[] = ['a'];
  db.range({ prefix: ro });
  db.range({ start: ['user', 1] as const, end: ['user', 2] as const });
  db.get(['user', 1]);
  const explicit = open<OrderedKey, { n: number }>(path);
  explicit.get(key);
  explicit.transactionSync((txn) => txn.put(['user', 2] as const, { n: 2 }));
  explicit.keys({ prefix: ro });

  const t = open<[string, number], User>(path);
  t.range({ prefix: ['user'] });
  t.range({ prefix: ['user', 1] });
  t.keys({ prefix: [] });
  t.count({ prefix: ['user'] as const });
  // @ts-expect-error a prefix's elements have the key's element types
  t.range({ prefix: [1] });
  const snap = t.snapshot();
  snap.range({ prefix: ['user'] });
  snap.close();

  const prefix: RangeOptions<[string, number]>['prefix'] = ['user'];
  void prefix;
  // @ts-expect-error an object is not an ordered key
  db.get({ a: 1 });
}

// --- snapshots, views and entries ---

export function snapshots(db: Database<string, User>): void {
  const nums = db.openDB('nums', { keyEncoding: 'uint32', valueEncoding: 'string' });
  using snap = db.snapshot();
  typeOf(snap).is<Snapshot<string, User>>();
  const view = snap.db(nums);
  typeOf(view).is<SnapshotView<number, string>>();
  const entries = [...snap.range({ start: 'a' })];
  typeOf(entries).is<Entry<string, User>[]>();
}

// --- a hash sub-database has no key order: only `limit` compiles ---

export function hashRanges(db: Database<string, User>): void {
  const h = db.openDB('h', { kind: 'hash', keyEncoding: 'string' });
  void [...h.range({ limit: 10 })];
  h.count();
  // @ts-expect-error start needs kind 'btree'
  h.range({ start: 'a' });
  // @ts-expect-error end needs kind 'btree'
  h.keys({ end: 'b' });
  // @ts-expect-error reverse needs kind 'btree'
  h.values({ reverse: true });
  // @ts-expect-error prefix needs kind 'btree'
  h.count({ prefix: 'a' });

  // The kind carries through transactions and snapshots.
  db.transactionSync((txn) => {
    txn.db(h).range({ limit: 1 });
    // @ts-expect-error through txn.db()
    txn.db(h).range({ start: 'a' });
  });
  h.transactionSync((txn) => {
    // @ts-expect-error through the hash database's own transaction
    txn.count({ reverse: false });
  });
  using snap = db.snapshot();
  // @ts-expect-error through snapshot.db()
  snap.db(h).keys({ start: 'a' });
  using own = h.snapshot();
  // @ts-expect-error through the hash database's own snapshot
  own.range({ end: 'z' });

  // B+trees, the root database, and handles whose kind is not known keep every option.
  const b = db.openDB('b', { kind: 'btree', keyEncoding: 'string' });
  b.range({ start: 'a', end: 'b', reverse: true, prefix: 'a', limit: 1 });
  db.range({ start: 'a' });
  db.transactionSync((txn) => txn.db(b).count({ prefix: 'a' }));
  const unknownKind = db.openDB('h', { keyEncoding: 'string' });
  unknownKind.range({ start: 'a' }); // compiles; ERR_BAD_OPTION at run time if it is a hash
  const kind: 'btree' | 'hash' = Math.random() < 0.5 ? 'btree' : 'hash';
  db.openDB('k', { kind }).range({ start: 'a' });
}

// --- the README's examples, compiled as they are written there ---

/** README, Quick start. */
export async function readmeQuickStart(): Promise<void> {
  const db = open('data/app.mkv'); // creates data/ and the file when missing

  db.putSync('user:1', { name: 'Ada', langs: ['en', 'fr'] }); // one durable commit
  db.get('user:1'); // { name: 'Ada', langs: ['en', 'fr'] }

  await db.put('counter', 1); // batched with the other writes of this tick
  db.transactionSync((txn) => {
    const n = txn.get('counter') ?? 0;
    txn.put('counter', n + 1);
  });

  for (const { key, value } of db.range({ prefix: 'user:' })) console.log(key, value);

  await db.close();
}

/** README, Transactions. */
export async function readmeTransactions(db: Database<OrderedKey, DefaultValue>): Promise<void> {
  const total = db.transactionSync((txn) => {
    const a = txn.get('a') ?? 0; // reads see the transaction's own writes
    txn.put('a', a - 10);
    txn.put('b', (txn.get('b') ?? 0) + 10);
    txn.remove('old');
    return a; // transactionSync returns what the callback returns
  });

  await db.transaction((txn) => {
    /* the same, committed with this turn's batched writes */
    void txn;
  });
  void total;
}

/** README, Sub-databases and multi-database transactions. */
export function readmeSubDatabases(db: Database<OrderedKey, DefaultValue>): void {
  const users = db.openDB('users', { keyEncoding: 'uint32' }); // kind 'btree' by default
  const sessions = db.openDB('sessions', { kind: 'hash' });

  db.transactionSync((txn) => {
    txn.db(users).put(1, { name: 'Ada' }); // txn.db(sub): the same transaction on `sub`
    txn.db(sessions).put('s-9', { user: 1 });
    txn.put('lastUser', 1); // the database the transaction was started on
  }); // all three commit together, or none does

  const snap = db.snapshot();
  snap.db(users).get(1); // one snapshot across databases
  snap.close();

  db.dropDB('sessions'); // its entries, pages and name, in one commit -> whether it existed
}

/** README, TypeScript types. */
export function readmeTypes(): void {
  const db = open('data/app.mkv'); // Database<OrderedKey, any>
  const names = db.openDB('names', { keyEncoding: 'uint32', valueEncoding: 'string' });
  names.putSync(7, 'Ada'); // DatabaseBase<number, string>: names.putSync('7', 7) does not compile
  // @ts-expect-error as the README says
  names.putSync('7', 7);

  interface User {
    name: string;
  }
  const users = db.openDB<string, User>('users', { keyEncoding: 'string' }); // <K, V>
  typeOf(db).is<Database<OrderedKey, DefaultValue>>();
  typeOf(names).is<DatabaseBase<number, string>>();
  typeOf(users).is<DatabaseBase<string, User>>();
}
