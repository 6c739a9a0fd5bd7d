/**
 * Expiring sub-databases: the stored form of an entry's expiry time, and the checks of `ttl`
 * options.
 *
 * A sub-database created with `openDB(name, { ttl })` stores each value behind 8 bytes: the
 * time the entry expires, in milliseconds since the epoch, as a little-endian u64 (two u32
 * words, low first); 0 means never. Its descriptor's value-encoding byte carries EXPIRING_FLAG,
 * so the file says how to read its values: a handle that does not know the flag (an older
 * mapkv) finds an unknown value encoding and refuses the database (ERR_INCOMPATIBLE) instead
 * of reading the expiry as part of the value.
 *
 * Expiry is applied by reads, not by the engine: an expired record stays in its page, where
 * reads pass over it, until a purge, a remove or an overwrite deletes it. The indexes, the
 * commit protocol and the crash guarantees are those of any sub-database.
 */
import { MapKVError, corrupt } from './errors';
import { readU32, writeU32 } from './format/layout';
import type { ValueRef } from './btree/btree';

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
