/**
 * Expiring databases: the stored form of an entry's expiry time, and the checks of `ttl`
 * options.
 *
 * A database created with `ttl` (a sub-database by `openDB(name, { ttl })`, a file's unnamed
 * database by the `open(path, { ttl })` that creates it) stores each value behind 8 bytes: the
 * time the entry expires, in milliseconds since the epoch, as a little-endian u64 (two u32
 * words, low first); 0 means never. Its descriptor's value-encoding byte carries EXPIRING_FLAG,
 * so the file says how to read its values: a handle that does not know the flag (an older
 * mapkv) finds an unknown value encoding and refuses the database (ERR_INCOMPATIBLE) instead
 * of reading the expiry as part of the value.
 *
 * Expiry is applied by reads, not by the engine: an expired record stays in its page, where
 * reads pass over it, until a purge, a remove or an overwrite deletes it. Purges find expired
 * records through the database's expiry index (below), a B+tree written in the same commits as
 * the records: the indexes, the commit protocol and the crash guarantees are those of any
 * sub-database.
 */
import { MapKVError, corrupt } from './errors';
import { readU32, writeU32 } from './format/layout';
import { type ValueRef, treePut, treeRemove } from './btree/btree';
import { type DbDescriptor, DbKind, emptyDescriptor } from './format/meta';
import type { PageWriter } from './txn/pages';

/** Set in a descriptor's value-encoding byte: the values carry an expiry time. */
export const EXPIRING_FLAG = 0x80;

/** Bytes in front of an expiring database's values. */
export const EXPIRY_BYTES = 8;

/** The largest expiry time stored: later ones (and Infinity) are stored as never (0). */
const MAX_EXPIRY = Number.MAX_SAFE_INTEGER;

/**
 * Checks a `ttl` option: a number of milliseconds > 0, or Infinity. Returns it.
 */
export function checkTtl(ttl: unknown, where: string): number {
  if (typeof ttl !== 'number' || !(ttl > 0)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `${where}: ttl must be a number of milliseconds > 0 (or Infinity), got ${describe(ttl)}`,
    );
  }
  return ttl;
}

/**
 * What a database's value-encoding byte in the file says to a handle opened with `ttl`: the
 * encoding's id, and whether the database expires - as the file records, or, for a database
 * whose encodings are not recorded yet (`recorded` false: being created), when `ttl` is given.
 * Throws ERR_INCOMPATIBLE with `refusal` for a `ttl` on a database created without one: its
 * records have no room for a deadline.
 */
export function resolveExpiry(
  fileByte: number,
  recorded: boolean,
  ttl: number | undefined,
  refusal: string,
): { valueId: number; expiring: boolean } {
  const valueId = fileByte & ~EXPIRING_FLAG;
  const expiring = recorded ? fileByte !== valueId : ttl !== undefined;
  if (ttl !== undefined && !expiring) throw new MapKVError('ERR_INCOMPATIBLE', refusal);
  return { valueId, expiring };
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v == null) return String(v);
  return typeof v;
}

/**
 * When an entry put at `now` with lifetime `ttl` expires, as stored: 0 for never. A fraction
 * of a millisecond rounds up, so an entry lives at least `ttl` milliseconds.
 */
export function expiryAt(now: number, ttl: number): number {
  const at = Math.ceil(now + ttl);
  return at > MAX_EXPIRY ? 0 : at;
}

/** `encoded` behind its expiry time `at` (0: never), as an expiring database stores it. */
export function withExpiry(encoded: Uint8Array, at: number): Uint8Array {
  const out = new Uint8Array(EXPIRY_BYTES + encoded.length);
  writeU32(out, 0, at % 0x1_0000_0000);
  writeU32(out, 4, Math.floor(at / 0x1_0000_0000));
  out.set(encoded, EXPIRY_BYTES);
  return out;
}

/** The expiry time (0: never) of the stored value `ref` of an expiring database. */
export function storedExpiry(ref: ValueRef): number {
  const s = ref.start;
  if (ref.end - s < EXPIRY_BYTES) corrupt('a value of an expiring database has no expiry time');
  const hi = readU32(ref.buf, s + 4);
  // Written values are at most MAX_EXPIRY (2^53 - 1): a larger one is damage, and would not
  // be an exact number.
  if (hi >= 0x20_0000) corrupt('a value of an expiring database has an impossible expiry time');
  return hi * 0x1_0000_0000 + readU32(ref.buf, s);
}

/**
 * Whether the stored value `ref` of an expiring database is live at time `now`; when it is,
 * `ref` is narrowed to the value's own bytes.
 */
export function liveValue(ref: ValueRef, now: number): boolean {
  const at = storedExpiry(ref);
  if (at !== 0 && now >= at) return false;
  ref.start += EXPIRY_BYTES;
  return true;
}

/**
 * The expiry index: a B+tree per expiring database, kept in the same commits as its records,
 * whose keys are (deadline as a big-endian u64, record key) and whose values are empty, for
 * every record with a deadline. It orders the records by deadline, so a purge reads the
 * expired ones from its start instead of walking the whole database. Its root, depth and
 * entry count are the database descriptor's aux[3..5] (0 in every other descriptor).
 */
export const AUX_EXPIRY_ROOT = 3;
export const AUX_EXPIRY_DEPTH = 4;
export const AUX_EXPIRY_ENTRIES = 5;

/** The expiry index of `d` as a B+tree descriptor (a new object: see saveExpiryIndex). */
export function expiryIndexOf(d: DbDescriptor): DbDescriptor {
  const x = emptyDescriptor(DbKind.BTree, 0, 0);
  x.root = d.aux[AUX_EXPIRY_ROOT]!;
  x.depth = d.aux[AUX_EXPIRY_DEPTH]!;
  x.entries = d.aux[AUX_EXPIRY_ENTRIES]!;
  return x;
}

/** Stores the expiry index `x` (after a change) back into `d`. */
function saveExpiryIndex(d: DbDescriptor, x: DbDescriptor): void {
  d.aux[AUX_EXPIRY_ROOT] = x.root;
  d.aux[AUX_EXPIRY_DEPTH] = x.depth;
  d.aux[AUX_EXPIRY_ENTRIES] = x.entries;
}

let indexKey = new Uint8Array(64);

/** Writes the expiry index key of (`at`, `k[0, kl)`) into indexKey; returns its length. */
function writeIndexKey(at: number, k: Uint8Array, kl: number): number {
  if (indexKey.length < EXPIRY_BYTES + kl) indexKey = new Uint8Array(2 * (EXPIRY_BYTES + kl));
  const hi = Math.floor(at / 0x1_0000_0000);
  const lo = at % 0x1_0000_0000;
  indexKey[0] = hi >>> 24;
  indexKey[1] = (hi >>> 16) & 0xff;
  indexKey[2] = (hi >>> 8) & 0xff;
  indexKey[3] = hi & 0xff;
  indexKey[4] = lo >>> 24;
  indexKey[5] = (lo >>> 16) & 0xff;
  indexKey[6] = (lo >>> 8) & 0xff;
  indexKey[7] = lo & 0xff;
  for (let i = 0; i < kl; i++) indexKey[EXPIRY_BYTES + i] = k[i]!;
  return EXPIRY_BYTES + kl;
}

/** The expiry index key of (`at`, `k[0, kl)`), a new array. */
export function expiryIndexKey(at: number, k: Uint8Array, kl: number): Uint8Array {
  return indexKey.slice(0, writeIndexKey(at, k, kl));
}

/** The deadline an expiry index key starts with. */
export function indexKeyExpiry(b: Uint8Array, s: number): number {
  const hi = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
  const lo = ((b[s + 4]! << 24) | (b[s + 5]! << 16) | (b[s + 6]! << 8) | b[s + 7]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}

const NO_VALUE = new Uint8Array(0);

/**
 * Records in the expiry index of `d` that key `k[0, kl)` went from deadline `before` to
 * `after` (0: none; `before` 0 also when the key was absent).
 */
export function noteExpiry(
  w: PageWriter,
  d: DbDescriptor,
  k: Uint8Array,
  kl: number,
  before: number,
  after: number,
): void {
  if (before === after) return;
  const x = expiryIndexOf(d);
  if (before !== 0) {
    const n = writeIndexKey(before, k, kl);
    if (!treeRemove(w, x, indexKey, n)) corrupt('an expiring record is missing from its index');
  }
  if (after !== 0) {
    const n = writeIndexKey(after, k, kl);
    treePut(w, x, indexKey, n, NO_VALUE, 0);
  }
  saveExpiryIndex(d, x);
}

/** The deadline of `v`, a value as an expiring database stores it (withExpiry). */
export function expiryOfStored(v: Uint8Array): number {
  return readU32(v, 4) * 0x1_0000_0000 + readU32(v, 0);
}
