/**
 * The per-database hash key. A hash database's descriptor arrives with aux all 0; the first
 * write into it draws a 64-bit key from the system's CSPRNG and stores it in aux[0..1], with
 * aux[2] = HASH_FORMAT, in the same commit as the first record. A file's placement of keys
 * therefore depends on a secret chosen at random per database: whoever picks the keys cannot
 * aim them at one bucket (see siphash.ts).
 */
import { randomInt } from 'node:crypto';
import { MapKVError, corrupt } from '../errors';
import type { DbDescriptor } from '../format/meta';
import { AUX_FORMAT, AUX_KEY_HI, AUX_KEY_LO, HASH_FORMAT } from './layout';
import { halfSipHash13 } from './siphash';

let hashMask = 0xffff_ffff;

/** The 32-bit hash of key `k[0, kl)` in the database of `d`. */
export function hashOf(d: DbDescriptor, k: Uint8Array, kl: number): number {
  return hashAt(d, k, 0, kl);
}

/** The 32-bit hash of key `b[start, start + len)` in the database of `d`. */
export function hashAt(d: DbDescriptor, b: Uint8Array, start: number, len: number): number {
  return (halfSipHash13(d.aux[AUX_KEY_LO]!, d.aux[AUX_KEY_HI]!, b, start, len) & hashMask) >>> 0;
}

/**
 * Checks that a hash descriptor can be read: a non-empty table must carry its hash key, and a
 * key of a later layout is refused rather than misread.
 */
export function checkHashFormat(d: DbDescriptor): void {
  const format = d.aux[AUX_FORMAT];
  if (format === HASH_FORMAT) return;
  if (format === 0) {
    if (d.root !== 0 || d.entries !== 0) corrupt('a hash database has records but no hash key');
    return;
  }
  throw new MapKVError(
    'ERR_INCOMPATIBLE',
    `this mapkv reads hash databases of format ${HASH_FORMAT}, not ${String(format)}`,
  );
}

/** Gives an empty hash database its random key before its first record is written. */
export function ensureHashKey(d: DbDescriptor): void {
  checkHashFormat(d);
  if (d.aux[AUX_FORMAT] === HASH_FORMAT) return;
  d.aux[AUX_KEY_LO] = randomInt(0, 0x1_0000_0000);
  d.aux[AUX_KEY_HI] = randomInt(0, 0x1_0000_0000);
  d.aux[AUX_FORMAT] = HASH_FORMAT;
}

/**
 * @internal Tests only: keeps just the hash bits in `mask` (default all), so that tests can
 * make keys collide on purpose and reach deep directories and collision holders. Files written
 * under a mask are read correctly only under the same mask.
 */
export function setHashMaskForTests(mask: number): void {
  hashMask = mask | 0;
}
