/**
 * Argument checks shared by the storage implementations. A bad argument is a bug in the
 * caller, so it is a RangeError, not a MapKVError.
 */
import type { FlushRange } from './storage';

/** Throws a RangeError unless `value` is an integer in [0, Number.MAX_SAFE_INTEGER]. */
export function checkByteCount(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}

/**
 * Throws a RangeError unless the range's offset and length are non-negative multiples of
 * `pageSize` and the range ends at or before `limit`.
 */
export function checkFlushRange(range: FlushRange, pageSize: number, limit: number): void {
  const { offset, length } = range;
  checkByteCount(offset, 'flush offset');
  checkByteCount(length, 'flush length');
  if (offset % pageSize !== 0 || length % pageSize !== 0) {
    throw new RangeError(
      `flush range [${offset}, ${offset + length}) is not aligned to the ${pageSize}-byte page`,
    );
  }
  if (offset + length > limit) {
    throw new RangeError(
      `flush range [${offset}, ${offset + length}) passes the end of the storage (${limit})`,
    );
  }
}

/**
 * The byte length of `buffers`; throws a RangeError unless `offset` is a byte offset and the
 * write ends within the first `size` bytes.
 */
export function checkWrite(offset: number, buffers: readonly Uint8Array[], size: number): number {
  checkByteCount(offset, 'write offset');
  let length = 0;
  for (const b of buffers) length += b.length;
  if (offset + length > size) {
    throw new RangeError(
      `write range [${offset}, ${offset + length}) passes the end of the storage (${size})`,
    );
  }
  return length;
}

/** True when `value` is a positive integer power of two. */
export function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}

/** `value` rounded up to a multiple of `unit`. */
export function roundUp(value: number, unit: number): number {
  return Math.ceil(value / unit) * unit;
}
