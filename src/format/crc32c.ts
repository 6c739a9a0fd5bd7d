/**
 * CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor
 * 0xFFFFFFFF — the checksum of iSCSI, ext4 and LevelDB. `crc32c("123456789") === 0xE3069283`.
 *
 * Every page is checksummed at commit and checked when read, so this is a hot path. A page
 * goes to the native addon (`native/crc32c.cc`), which uses the CPU's crc32 instruction when
 * it has SSE4.2: about 0.2 us per 4 KiB page, call included, against about 2.6 us here. The
 * JavaScript version stays for short ranges, where the native call costs more than it saves,
 * and for when the addon cannot be loaded. It is slicing-by-8 (Intel's "Slicing-by-8" table
 * method): eight 256-entry tables let each step fold 8 input bytes with 8 lookups instead of
 * 8 dependent shift-and-lookup rounds.
 */
import { createRequire } from 'node:module';
import type { NativeBinding } from '../storage/native';

/**
 * The CRC-32C of `buf[start, end)`. `seed` is the CRC of the bytes before them, so a
 * checksum can be computed in pieces: `crc32c(b, k, n, crc32c(b, 0, k)) === crc32c(b, 0, n)`.
 * Returns an unsigned 32-bit integer. Throws RangeError when the range is outside `buf` or
 * `start` or `end` is not an integer.
 */
export function crc32c(buf: Uint8Array, start: number, end: number, seed = 0): number {
  // `seed >>> 0` is the uint32 the addon accepts; it has the same low 32 bits as the
  // ToInt32(seed) that `~seed` in crc32cJs takes, so both paths agree for any number.
  if (nativeCrc32c !== null && end - start >= NATIVE_MIN_BYTES) {
    return nativeCrc32c(buf, start, end, seed >>> 0);
  }
  return ~crc32cUpdate(~seed, buf, start, end) >>> 0;
}

/** {@link crc32c} in JavaScript only, whatever the length: the reference the tests compare. */
export function crc32cJs(buf: Uint8Array, start: number, end: number, seed = 0): number {
  return ~crc32cUpdate(~seed, buf, start, end) >>> 0;
}

/**
 * Feeds `buf[start, end)` into a raw CRC register (the value before the final inversion)
 * and returns the new register. Start from `0xFFFFFFFF` and invert the result (`~r >>> 0`)
 * to get the checksum; `crc32c` does exactly that.
 */
export function crc32cUpdate(
  register: number,
  buf: Uint8Array,
  start: number,
  end: number,
): number {
  // Integer offsets only, as the addon requires: buf[1.5] would read undefined as 0.
  if (
    !(start >= 0 && start <= end && end <= buf.length) ||
    !Number.isInteger(start) ||
    !Number.isInteger(end)
  ) {
    throw new RangeError(
      `crc32c range [${start}, ${end}) is outside a buffer of ${buf.length} bytes`,
    );
  }
  const t = TABLES;
  let c = register | 0;
  let i = start;
  for (const last = end - 8; i <= last; i += 8) {
    // Little-endian: the reflected CRC consumes the lowest byte first.
    const lo = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c =
      t[0x700 + (lo & 0xff)] ^
      t[0x600 + ((lo >>> 8) & 0xff)] ^
      t[0x500 + ((lo >>> 16) & 0xff)] ^
      t[0x400 + (lo >>> 24)] ^
      t[0x300 + buf[i + 4]] ^
      t[0x200 + buf[i + 5]] ^
      t[0x100 + buf[i + 6]] ^
      t[buf[i + 7]];
  }
  for (; i < end; i++) c = t[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return c;
}

/** Reflected Castagnoli polynomial. */
const POLYNOMIAL = 0x82f63b78;

/**
 * `TABLES[k * 256 + b]` is the CRC register after feeding byte `b` followed by `k` zero
 * bytes into a zero register: table 0 is the classic byte table, table k shifts it k bytes.
 * Built once at load (8 KiB).
 */
const TABLES: Int32Array = buildTables();

function buildTables(): Int32Array {
  const t = new Int32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    t[b] = c;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + b] = c;
    }
  }
  return t;
}

/**
 * From this many bytes on the native call beats the JavaScript loop. The call costs about 70 ns
 * whatever the length (N-API and the argument checks), the loop about 0.7 ns a byte, so they
 * cross at about 96 bytes (measured on the project machine, x86-64 with SSE4.2). Pages, the
 * ranges that matter, are far above it; the few short ranges stay in JavaScript.
 */
const NATIVE_MIN_BYTES = 96;

type NativeCrc32c = NativeBinding['crc32c'];

/**
 * The addon's crc32c, or null when the addon cannot be loaded (not built, built for another
 * Node ABI) or predates crc32c: checksums then stay in JavaScript, so importing this module
 * never fails. The path is relative to this file and holds from both src/format (tests) and
 * dist/format, like the one in storage/native.ts (Node loads the addon once either way).
 */
const nativeCrc32c: NativeCrc32c | null = loadNativeCrc32c();

function loadNativeCrc32c(): NativeCrc32c | null {
  try {
    const addon = createRequire(__filename)('../../build/Release/mapkv.node') as Partial<
      Pick<NativeBinding, 'crc32c'>
    >;
    return typeof addon.crc32c === 'function' ? addon.crc32c : null;
  } catch {
    return null;
  }
}
