/**
 * Encoders turn user keys and values into bytes and back.
 *
 * Hot path: `encode` writes into a caller-owned scratch buffer and returns the length, so a
 * lookup allocates nothing; `decode` reads bytes in place from a mapped page.
 */

/** Key encoders: the bytes sort (unsigned, lexicographic) in the key type's natural order. */
export interface KeyEncoder<K = unknown> {
  readonly name: 'ordered' | 'string' | 'binary' | 'uint32';
  /**
   * Writes the encoding of `key` into `target` at offset 0 and returns its length.
   * Throws MapKVError ERR_BAD_KEY for a key this encoding cannot represent (wrong type,
   * NaN, empty when empty is not allowed, ...), and ERR_KEY_TOO_LARGE when the encoding
   * would exceed `target.length` bytes. `target` is never written past its length.
   */
  encode(key: K, target: Uint8Array): number;
  /** Decodes `buf[start, end)` into a fresh key value. */
  decode(buf: Uint8Array, start: number, end: number): K;
}

/** Value encoders. */
export interface ValueEncoder<V = unknown> {
  readonly name: 'msgpack' | 'json' | 'string' | 'binary';
  /**
   * Returns the bytes of `value`. The result may be a view into a reused internal buffer:
   * it is valid only until the next call of `encode` on this encoder, so the caller copies it
   * into the page before encoding anything else. Throws MapKVError ERR_BAD_VALUE when the
   * value cannot be encoded (undefined, a symbol, a function, the wrong type for the encoding).
   */
  encode(value: V): Uint8Array;
  /** Decodes `buf[start, end)`. Must not keep a reference to `buf` (it is a mapped page). */
  decode(buf: Uint8Array, start: number, end: number): V;
}
