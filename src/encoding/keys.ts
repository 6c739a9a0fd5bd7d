/**
 * Key encoders: a key becomes bytes whose unsigned lexicographic order (memcmp, then the
 * shorter first) is the natural order of the keys. The engine compares these bytes only, so
 * every ordering promise below is a promise about the byte layout.
 *
 * ## `ordered` keys
 *
 * Type order: `null < false < true < numbers < strings < arrays < binary`.
 * - Numbers are in numeric order; `-Infinity` and `Infinity` are allowed; `-0` is stored as
 *   `0` (they are one key); `NaN` is refused.
 * - Strings are in Unicode code point order, which is the order of their UTF-8 bytes. This
 *   differs from JavaScript's `<` on strings (UTF-16 code units) only for characters above
 *   U+FFFF against characters U+E000..U+FFFF: `'\u{10000}' > '\uFFFF'` here, `<` in JS.
 *   Strings with an unpaired surrogate have no UTF-8 form and are refused.
 * - Arrays (tuples) compare element by element; a prefix sorts first (`[1] < [1, null]`).
 * - Binary (`Uint8Array`, `Buffer`) compares bytewise, a prefix first; decodes as a `Buffer`.
 *
 * Byte layout (one tag byte per value, then a body):
 *
 * | value   | tag    | body at the top level      | body inside an array                     |
 * |---------|--------|----------------------------|------------------------------------------|
 * | null    | `0x10` | none                       | none                                     |
 * | false   | `0x20` | none                       | none                                     |
 * | true    | `0x21` | none                       | none                                     |
 * | number  | `0x30` | 8 bytes, see below         | same                                     |
 * | string  | `0x40` | UTF-8, to the end of key   | UTF-8, `00`→`00 FF`, then `00 00`         |
 * | array   | `0x50` | elements, then `00`        | same                                     |
 * | binary  | `0x60` | bytes, to the end of key   | bytes, `00`→`00 FF`, then `00 00`         |
 *
 * Numbers: the IEEE 754 double, big-endian, with the sign bit flipped when the number is
 * positive and every bit flipped when it is negative, so the bytes of doubles compare in
 * numeric order.
 *
 * Why the bodies order correctly:
 * - At the top level a string or binary body is the last thing in the key, so raw bytes
 *   compare correctly (the shorter prefix first) and need no terminator.
 * - Inside an array a body must end in a way that sorts before anything that could follow
 *   it in a longer value: the terminator `00 00` is below every continuation, because a
 *   data byte `00` is written `00 FF` and every other data byte is above `00`.
 *   So inside an array `'a' < 'a\0' < 'ab'`: `61 00 00` < `61 00 FF 00 00` < `61 62 00 00`.
 * - The array terminator `00` is below every tag (all tags are `>= 0x10`), so a tuple that
 *   is a prefix of another sorts first.
 * Tags are spaced out to leave room for types added later (a new tag keeps old keys valid).
 */
import { types } from 'node:util';

import { MapKVError, corrupt } from '../errors';
import { copyBytes, newBytes } from './owned';
import type { KeyEncoder } from './types';

/**
 * A key of the `ordered` encoding: a string, number, boolean, null, bytes, or an array (tuple)
 * of these, nested arrays allowed. Readonly arrays (`['user', 1] as const`) are accepted; keys
 * read back are plain arrays, and binary keys decode as `Buffer`.
 */
export type OrderedKey =
  string | number | boolean | null | Uint8Array | OrderedKey[] | readonly OrderedKey[];

/** Keys of any type in their natural order (see the module comment for the order). */
export const orderedKeyEncoder: KeyEncoder<OrderedKey> = {
  name: 'ordered',
  encode(key: OrderedKey, target: Uint8Array): number {
    return writeOrdered(key, target, 0, 0);
  },
  decode(buf: Uint8Array, start: number, end: number): OrderedKey {
    if (start >= end) corrupt('an ordered key is empty');
    const tag = buf[start];
    if (tag === TAG_STRING) return decodeUtf8(buf, start + 1, end);
    if (tag === TAG_BINARY) return copyBytes(buf, start + 1, end);
    cursor = start;
    const key = readNested(buf, end, 0);
    if (cursor !== end) corrupt('an ordered key has bytes after its value');
    return key;
  },
};

/** String keys as raw UTF-8, in code point order. The empty string is a valid key. */
export const stringKeyEncoder: KeyEncoder<string> = {
  name: 'string',
  encode(key: string, target: Uint8Array): number {
    if (typeof key !== 'string') throw badKey(key, "the 'string' key encoding takes strings");
    return writeUtf8(key, target, 0, false);
  },
  decode(buf: Uint8Array, start: number, end: number): string {
    return decodeUtf8(buf, start, end);
  },
};

/** Byte-string keys stored as is; they decode as a new `Buffer` the caller owns. */
export const binaryKeyEncoder: KeyEncoder<Uint8Array> = {
  name: 'binary',
  encode(key: Uint8Array, target: Uint8Array): number {
    if (!isBytes(key)) {
      throw badKey(key, "the 'binary' key encoding takes a Uint8Array or Buffer");
    }
    if (key.length > target.length) throw keyTooLarge(target);
    target.set(key, 0);
    return key.length;
  },
  decode(buf: Uint8Array, start: number, end: number): Uint8Array {
    return copyBytes(buf, start, end);
  },
};

/** Integers 0..2^32-1 as 4 big-endian bytes, in numeric order. */
export const uint32KeyEncoder: KeyEncoder<number> = {
  name: 'uint32',
  encode(key: number, target: Uint8Array): number {
    if (typeof key !== 'number' || !Number.isInteger(key) || key < 0 || key > 0xffffffff) {
      throw badKey(key, "the 'uint32' key encoding takes integers from 0 to 4294967295");
    }
    if (target.length < 4) throw keyTooLarge(target);
    target[0] = key >>> 24;
    target[1] = (key >>> 16) & 0xff;
    target[2] = (key >>> 8) & 0xff;
    target[3] = key & 0xff;
    return 4;
  },
  decode(buf: Uint8Array, start: number, end: number): number {
    if (end - start !== 4) corrupt(`a uint32 key is ${end - start} bytes, not 4`);
    return (
      ((buf[start] << 24) | (buf[start + 1] << 16) | (buf[start + 2] << 8) | buf[start + 3]) >>> 0
    );
  },
};

// ---------------------------------------------------------------------------------------------
// Ordered encoding: writing

const TAG_NULL = 0x10;
const TAG_FALSE = 0x20;
const TAG_TRUE = 0x21;
const TAG_NUMBER = 0x30;
const TAG_STRING = 0x40;
const TAG_ARRAY = 0x50;
const TAG_BINARY = 0x60;
/** Ends an array, and (doubled) a string or binary body inside an array. */
const END = 0x00;
/** Follows a data byte `00` inside an array, telling it from the terminator `00 00`. */
const ESCAPED_ZERO = 0xff;

/**
 * Arrays in an ordered key nest at most this deep. Both directions recurse once per level,
 * and decoding uses more stack per level than encoding: without a bound, a key deep enough
 * (thousands of levels, which a 64 KiB page's key size allows) was written and then could not
 * be read back (a RangeError from the stack). A file holding a deeper key is damaged.
 */
export const MAX_KEY_NESTING = 100;

/**
 * Writes `key` at `target[pos]` and returns the position after it. `depth` is the number of
 * arrays around `key`; inside one, string and binary bodies are escaped and terminated. Every
 * write is preceded by a bound check, so nothing lands past `target.length`.
 */
function writeOrdered(key: OrderedKey, target: Uint8Array, pos: number, depth: number): number {
  if (pos >= target.length) throw keyTooLarge(target);
  const nested = depth > 0;
  switch (typeof key) {
    case 'string':
      target[pos] = TAG_STRING;
      pos = writeUtf8(key, target, pos + 1, nested);
      return nested ? writeTerminator(target, pos) : pos;
    case 'number':
      if (Number.isNaN(key)) throw badKey(key, 'NaN cannot be a key');
      target[pos] = TAG_NUMBER;
      return writeNumber(key, target, pos + 1);
    case 'boolean':
      target[pos] = key ? TAG_TRUE : TAG_FALSE;
      return pos + 1;
    case 'object':
      if (key === null) {
        target[pos] = TAG_NULL;
        return pos + 1;
      }
      if (Array.isArray(key)) {
        if (depth >= MAX_KEY_NESTING) {
          throw badKey(key, `arrays in a key nest at most ${MAX_KEY_NESTING} levels deep`);
        }
        target[pos++] = TAG_ARRAY;
        for (let i = 0; i < key.length; i++) pos = writeOrdered(key[i], target, pos, depth + 1);
        if (pos >= target.length) throw keyTooLarge(target);
        target[pos] = END;
        return pos + 1;
      }
      if (isBytes(key)) {
        target[pos] = TAG_BINARY;
        if (!nested) {
          if (pos + 1 + key.length > target.length) throw keyTooLarge(target);
          target.set(key, pos + 1);
          return pos + 1 + key.length;
        }
        return writeTerminator(target, writeEscapedBytes(key, target, pos + 1));
      }
      break;
  }
  throw badKey(
    key,
    "the 'ordered' key encoding takes strings, numbers, booleans, null, Uint8Array and arrays of these",
  );
}

// A number's bytes go through this scratch double; allocated once, so encoding allocates nothing.
const scratchDouble = new Float64Array(1);
const scratchBytes = new Uint8Array(scratchDouble.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Index in `scratchBytes` of the i-th most significant byte of the double. */
const byteIndex = (i: number): number => (littleEndian ? 7 - i : i);

function writeNumber(n: number, target: Uint8Array, pos: number): number {
  if (pos + 8 > target.length) throw keyTooLarge(target);
  scratchDouble[0] = n === 0 ? 0 : n; // -0 and 0 are one key
  // Negative: flip every bit (a larger magnitude must sort lower); positive: the sign bit only.
  const negative = (scratchBytes[byteIndex(0)] & 0x80) !== 0;
  const rest = negative ? 0xff : 0x00;
  target[pos] = scratchBytes[byteIndex(0)] ^ (negative ? 0xff : 0x80);
  for (let i = 1; i < 8; i++) target[pos + i] = scratchBytes[byteIndex(i)] ^ rest;
  return pos + 8;
}

/**
 * Writes `s` as UTF-8 at `target[pos]` and returns the position after it; with `escapeZero`
 * a U+0000 is written `00 FF` (the nested form). Throws ERR_BAD_KEY on an unpaired surrogate,
 * which has no UTF-8 form (TextEncoder would turn it into U+FFFD, merging distinct keys).
 */
function writeUtf8(s: string, target: Uint8Array, pos: number, escapeZero: boolean): number {
  const n = s.length;
  const limit = target.length;
  let i = 0;
  // Fast path: ASCII, when even one byte per character fits; keys are mostly short ASCII.
  if (pos + n <= limit) {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80 || (c === 0 && escapeZero)) break;
      target[pos++] = c;
    }
    if (i === n) return pos;
  }
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0 && escapeZero) {
        if (pos + 2 > limit) throw keyTooLarge(target);
        target[pos++] = 0;
        target[pos++] = ESCAPED_ZERO;
      } else {
        if (pos >= limit) throw keyTooLarge(target);
        target[pos++] = c;
      }
    } else if (c < 0x800) {
      if (pos + 2 > limit) throw keyTooLarge(target);
      target[pos++] = 0xc0 | (c >> 6);
      target[pos++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      if (pos + 3 > limit) throw keyTooLarge(target);
      target[pos++] = 0xe0 | (c >> 12);
      target[pos++] = 0x80 | ((c >> 6) & 0x3f);
      target[pos++] = 0x80 | (c & 0x3f);
    } else {
      const low = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || low < 0xdc00 || low > 0xdfff) {
        throw badKey(s, `the string has an unpaired surrogate at index ${i}`);
      }
      i++;
      const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
      if (pos + 4 > limit) throw keyTooLarge(target);
      target[pos++] = 0xf0 | (cp >> 18);
      target[pos++] = 0x80 | ((cp >> 12) & 0x3f);
      target[pos++] = 0x80 | ((cp >> 6) & 0x3f);
      target[pos++] = 0x80 | (cp & 0x3f);
    }
  }
  return pos;
}

/** Writes `bytes` with each `00` as `00 FF` (the nested binary body, before its terminator). */
function writeEscapedBytes(bytes: Uint8Array, target: Uint8Array, pos: number): number {
  const limit = target.length;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0) {
      if (pos + 2 > limit) throw keyTooLarge(target);
      target[pos++] = 0;
      target[pos++] = ESCAPED_ZERO;
    } else {
      if (pos >= limit) throw keyTooLarge(target);
      target[pos++] = b;
    }
  }
  return pos;
}

function writeTerminator(target: Uint8Array, pos: number): number {
  if (pos + 2 > target.length) throw keyTooLarge(target);
  target[pos] = END;
  target[pos + 1] = END;
  return pos + 2;
}

// ---------------------------------------------------------------------------------------------
// Ordered encoding: reading

/** Read position of the nested decoder; a module variable so decoding allocates no state. */
let cursor = 0;

/**
 * Reads the value at `buf[cursor]` in its nested form, advancing `cursor` past it. `depth`:
 * the arrays around it (bounded as in writeOrdered).
 */
function readNested(buf: Uint8Array, end: number, depth: number): OrderedKey {
  if (cursor >= end) corrupt('an ordered key ends inside a value');
  const tag = buf[cursor++];
  switch (tag) {
    case TAG_NULL:
      return null;
    case TAG_FALSE:
      return false;
    case TAG_TRUE:
      return true;
    case TAG_NUMBER:
      return readNumber(buf, end);
    case TAG_STRING: {
      const bodyStart = cursor;
      const escapes = skipEscapedBody(buf, end);
      if (escapes === 0) return decodeUtf8(buf, bodyStart, cursor - 2);
      const bytes = unescapeBody(buf, bodyStart, cursor - 2, escapes);
      return decodeUtf8(bytes, 0, bytes.length);
    }
    case TAG_BINARY: {
      const bodyStart = cursor;
      const escapes = skipEscapedBody(buf, end);
      return unescapeBody(buf, bodyStart, cursor - 2, escapes);
    }
    case TAG_ARRAY: {
      if (depth >= MAX_KEY_NESTING) {
        corrupt(`an ordered key nests arrays deeper than ${MAX_KEY_NESTING} levels`);
      }
      const items: OrderedKey[] = [];
      while (true) {
        if (cursor >= end) corrupt('an ordered key ends inside an array');
        if (buf[cursor] === END) break;
        items.push(readNested(buf, end, depth + 1));
      }
      cursor++;
      return items;
    }
    default:
      return corrupt(`an ordered key has the unknown type tag 0x${tag.toString(16)}`);
  }
}

function readNumber(buf: Uint8Array, end: number): number {
  if (cursor + 8 > end) corrupt('an ordered key ends inside a number');
  const first = buf[cursor];
  const positive = (first & 0x80) !== 0; // the top bit of the key byte is the flipped sign
  const rest = positive ? 0x00 : 0xff;
  scratchBytes[byteIndex(0)] = first ^ (positive ? 0x80 : 0xff);
  for (let i = 1; i < 8; i++) scratchBytes[byteIndex(i)] = buf[cursor + i] ^ rest;
  cursor += 8;
  return scratchDouble[0];
}

/**
 * Moves `cursor` past an escaped body and its `00 00` terminator; returns how many `00 FF`
 * escapes the body holds.
 */
function skipEscapedBody(buf: Uint8Array, end: number): number {
  let escapes = 0;
  let p = cursor;
  while (true) {
    while (p < end && buf[p] !== 0) p++;
    if (p + 1 >= end) corrupt('an ordered key ends inside a string or binary value');
    const next = buf[p + 1];
    if (next === END) break;
    if (next !== ESCAPED_ZERO) corrupt(`an ordered key has the bad escape 00 ${next.toString(16)}`);
    escapes++;
    p += 2;
  }
  cursor = p + 2;
  return escapes;
}

/** A new Buffer of the body `buf[start, end)` with each `00 FF` turned back into `00`. */
function unescapeBody(buf: Uint8Array, start: number, end: number, escapes: number): Buffer {
  const out = newBytes(end - start - escapes);
  let o = 0;
  for (let p = start; p < end; p++) {
    out[o++] = buf[p];
    if (buf[p] === 0) p++; // skip the FF of the escape
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

// ignoreBOM: a U+FEFF at the start is text to keep, not a byte-order mark to drop (the default
// drops it, and each piece of decodeUtf8InPieces starts a new decode).
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });
// Buffer's native utf8Slice reads any Uint8Array without making a Buffer view first; it is
// about 1.5x faster than TextDecoder on short keys (measured on Node 20). Not a documented
// API, so fall back to TextDecoder when it is missing.
const nativeUtf8Slice = (
  Buffer.prototype as unknown as { utf8Slice?: (this: Uint8Array, s: number, e: number) => string }
).utf8Slice;

/** Decodes the UTF-8 in `buf[start, end)`. */
export function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= SHORT_ASCII_MAX) {
    const s = decodeShortAscii(buf, start, end);
    if (s !== null) return s;
  }
  if (end - start > UTF8_SLICE_MAX) return decodeUtf8InPieces(buf, start, end, UTF8_SLICE_MAX);
  if (nativeUtf8Slice !== undefined) return nativeUtf8Slice.call(buf, start, end);
  return utf8Decoder.decode(buf.subarray(start, end));
}

/**
 * Node refuses to decode more than 2^29 - 24 bytes into one string (ERR_STRING_TOO_LONG),
 * counting bytes, not characters: 'é'.repeat(2 ** 28) is a valid string of 2^28 characters
 * whose UTF-8 is 2^29 bytes. Longer text is decoded in pieces cut at character starts.
 */
const UTF8_SLICE_MAX = 1 << 28;

/** @internal `buf[start, end)` decoded `piece` bytes (at most) at a time; exported for tests. */
export function decodeUtf8InPieces(
  buf: Uint8Array,
  start: number,
  end: number,
  piece: number,
): string {
  let out = '';
  for (let at = start; at < end;) {
    let cut = Math.min(at + piece, end);
    // Back up over continuation bytes (10xxxxxx) to the start of a character; a run longer
    // than a character's 3 continuation bytes is not UTF-8, and the decoder makes it U+FFFD.
    for (let back = 0; cut < end && back < 3 && (buf[cut]! & 0xc0) === 0x80; back++) cut--;
    // A piece shorter than the character at `at` (only in tests): take that whole character.
    if (cut <= at) {
      cut = at + 1;
      while (cut < end && cut - at < 4 && (buf[cut]! & 0xc0) === 0x80) cut++;
    }
    out += utf8Decoder.decode(buf.subarray(at, cut));
    at = cut;
  }
  return out;
}

/** Strings up to this many bytes are tried as ASCII first (see decodeShortAscii). */
export const SHORT_ASCII_MAX = 16;
const fromCharCode = String.fromCharCode;

/**
 * `buf[s, e)` as a string when every byte is ASCII (then UTF-8 and char codes agree), else
 * null. One fromCharCode call with the bytes as arguments builds the string without leaving
 * JS; for short keys that beats utf8Slice, whose cost is mostly the call into C++ (an 11-byte
 * key: about 25 ns against 45 ns, measured on Node 20). `e - s` is at most SHORT_ASCII_MAX.
 */
export function decodeShortAscii(b: Uint8Array, s: number, e: number): string | null {
  let any = 0;
  for (let i = s; i < e; i++) any |= b[i]!;
  if (any >= 0x80) return null;
  // prettier-ignore
  switch (e - s) {
    case 0: return fromCharCode();
    case 1: return fromCharCode(b[s]!);
    case 2: return fromCharCode(b[s]!, b[s + 1]!);
    case 3: return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!);
    case 4: return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!);
    case 5: return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!);
    case 6: return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!);
    case 7:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!,
      );
    case 8:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!,
      );
    case 9:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!,
      );
    case 10:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!,
      );
    case 11:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!,
      );
    case 12:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!,
      );
    case 13:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!,
        b[s + 12]!,
      );
    case 14:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!,
        b[s + 12]!, b[s + 13]!,
      );
    case 15:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!,
        b[s + 12]!, b[s + 13]!, b[s + 14]!,
      );
    case 16:
      return fromCharCode(
        b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!,
        b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!,
        b[s + 12]!, b[s + 13]!, b[s + 14]!, b[s + 15]!,
      );
  }
  return null;
}

function keyTooLarge(target: Uint8Array): MapKVError {
  return new MapKVError(
    'ERR_KEY_TOO_LARGE',
    `the key encodes to more than ${target.length} bytes, the largest key for this page size`,
  );
}

function badKey(key: unknown, rule: string): MapKVError {
  return new MapKVError('ERR_BAD_KEY', `invalid key (${describeType(key)}): ${rule}`);
}

/**
 * Whether `x` is a real Uint8Array (or Buffer). A Proxy of one passes `instanceof` and then
 * throws on every read of its length or bytes; ArrayBuffer.isView looks at the object itself.
 * A Uint8Array made in another realm (a `vm` context, a test runner's sandbox) fails
 * `instanceof` here; util.types.isUint8Array, asked only then, knows it by its internal slots.
 */
export function isBytes(x: unknown): x is Uint8Array {
  return ArrayBuffer.isView(x) && (x instanceof Uint8Array || types.isUint8Array(x));
}

/** Whether `s` has a UTF-8 form: no unpaired surrogate (String#isWellFormed, Node 20). */
export function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** A short name of a value's type for error messages: 'undefined', 'NaN', 'object (Date)'. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  if (typeof value !== 'object') return typeof value;
  try {
    if (Array.isArray(value)) return 'array';
    if (value instanceof Uint8Array && !ArrayBuffer.isView(value)) return 'Proxy of a Uint8Array';
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto === null) return 'object (null prototype)';
    const ctor = (value as { constructor?: { name?: unknown } }).constructor;
    const name = typeof ctor?.name === 'string' ? ctor.name : '';
    return name === 'Object' || name === '' ? 'plain object' : `object (${name})`;
  } catch {
    // A revoked proxy throws on every look, a proxy or getter may throw on `constructor`: the
    // message is for an error already being raised, and must not replace it.
    return 'object (unreadable)';
  }
}
