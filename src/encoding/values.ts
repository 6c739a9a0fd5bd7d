/**
 * Value encoders. `encode` may return a view of a reused buffer (valid until the next
 * `encode` on the same encoder); `decode` returns values that hold no reference to the bytes
 * they came from, because those bytes are a mapped page that a later commit reuses.
 *
 * Values that cannot round-trip are refused with ERR_BAD_VALUE rather than stored changed:
 * `undefined` at the top level (so `get()` returning `undefined` always means "no such key"),
 * symbols and functions. Documented exceptions, which are the codecs' own rules:
 * - msgpack stores `-0` as `0`, and renames an own property `__proto__` to `__proto_`
 *   (msgpackr's guard against prototype pollution); `undefined` inside an object or array
 *   is kept.
 * - json follows `JSON.stringify` inside the value: properties that are `undefined`, functions
 *   or symbols are left out, `toJSON` is honoured, a Date becomes a string.
 */
import { constants as bufferConstants } from 'node:buffer';
import { Packr, Unpackr, type Options as MsgpackOptions } from 'msgpackr';
import { MapKVError, corrupt } from '../errors';
import { decodeUtf8, describeType, isBytes, isWellFormed } from './keys';
import { copyBytes } from './owned';
import { NOT_PLAIN, plainDecoderFor } from './plainmsgpack';
import type { ValueEncoder } from './types';

/**
 * msgpack through msgpackr: objects, arrays, strings, numbers, booleans, null, bigint, Date,
 * Map, Set, RegExp, Error, Buffer and every typed array round-trip. Objects come back as plain
 * objects and Maps as Maps (with their key types).
 */
export function createMsgpackValueEncoder(overrides: MsgpackOptions = {}): ValueEncoder {
  // Copies of the options: msgpackr's constructors may write to the object they are given.
  // The caller's overrides (open option `msgpack`) win, except that functions stay refused.
  const options: MsgpackOptions = {
    ...MSGPACK_OPTIONS,
    ...overrides,
    writeFunction: MSGPACK_OPTIONS.writeFunction!,
  };
  const packr = new Packr({ ...options });
  // Decoding goes through its own Unpackr: a Packr's record table is packing state, and
  // reading a value's inline record definitions must not touch it.
  const unpackr = new Unpackr({ ...options });
  const range = { start: 0, end: 0 }; // reused: decode allocates no options object
  // Plain values (no extensions, records or binary) skip msgpackr, decoding the same.
  const plain = plainDecoderFor(unpackr);
  let plainMisses = 0;
  let plainSkips = 0;
  // With copyBuffers off, binary inside a value would be a view of the copy: no copy then.
  const small = options.copyBuffers === true ? Buffer.allocUnsafeSlow(SMALL_VALUE_MAX) : null;
  let smallBusy = false;
  return {
    name: 'msgpack',
    encode(value: unknown): Uint8Array {
      refuseUnstorable(value);
      let packed: Uint8Array;
      packDepth++;
      try {
        packed = packr.pack(value);
      } catch (err) {
        packDepth--;
        // The pack may have grown msgpackr's buffer before it failed.
        dropPackBufferSoon(packr);
        if (err instanceof MapKVError) throw err;
        throw badValue(`the value cannot be encoded as msgpack: ${message(err)}`, err);
      }
      packDepth--;
      // msgpackr packs into one module-level buffer that it grows to fit the largest value
      // ever packed and keeps (up to 1 GiB): one 50 MiB value held 100-190 MiB for the life of
      // the process. After a large value it gets a small buffer again; `packed` keeps the
      // large one alive only until the caller has copied it. Not inside another pack (a getter
      // or toJSON of a value being packed that writes another value): the outer pack is still
      // writing into that buffer.
      if (packed.length > MAX_KEPT_SCRATCH || dropPending) dropPackBufferSoon(packr);
      // A class instance whose toJSON returns undefined packs as msgpack's `undefined`: stored,
      // get() would return undefined for a key that exists.
      if (packed.length === 3 && packed[0] === 0xd4 && packed[1] === 0 && packed[2] === 0) {
        throw badValue('the value encodes as undefined (a toJSON that returns undefined?)');
      }
      // msgpackr cannot decode a string of more than 2^29 - 24 bytes of UTF-8 (Node's limit,
      // counted in bytes), though such a string exists ('é'.repeat(2 ** 28)). Only a value at
      // least that long can hold one: such a value is decoded once here, and refused if that
      // fails, rather than stored and then unreadable.
      if (packed.length > STRING_BYTES_MAX) {
        try {
          unpackr.unpack(packed);
        } catch (err) {
          throw badValue(`the value would not read back from msgpack: ${message(err)}`, err);
        }
      }
      return packed;
    },
    decode(buf: Uint8Array, start: number, end: number): unknown {
      if (end <= start) corrupt('a msgpack value is empty');
      if (plain !== null) {
        if (plainSkips === 0) {
          const value = plain(buf, start, end);
          if (value !== NOT_PLAIN) {
            plainMisses = 0;
            return value;
          }
          // Values that are not plain (Dates, records, binary...) come in runs: after a run,
          // stop trying for a while, so that such data pays for few wasted attempts.
          if (++plainMisses === PLAIN_MISSES_MAX) {
            plainMisses = 0;
            plainSkips = PLAIN_SKIPS;
          }
        } else plainSkips--;
      }
      const n = end - start;
      if (n < SMALL_VALUE_MAX && small !== null && !smallBusy) {
        // msgpackr's fast paths (its map-key cache, strings read in JS) only run when the
        // source ends before byte 180, so a small value is decoded from a copy at offset 0,
        // as lmdb-js does. Reusing the copy is safe: copyBuffers is on (checked when `small`
        // was made), so nothing decoded keeps a view of it, and `smallBusy` sends a decode
        // re-entered from a msgpackr extension to the path below.
        for (let i = 0; i < n; i++) small[i] = buf[start + i]!;
        smallBusy = true;
        try {
          return unpackr.unpack(small, n);
        } catch (err) {
          return corrupt(`a msgpack value cannot be decoded: ${message(err)}`);
        } finally {
          smallBusy = false;
        }
      }
      range.start = start;
      range.end = end;
      try {
        return unpackr.unpack(sourceView(buf), range);
      } catch (err) {
        return corrupt(`a msgpack value cannot be decoded: ${message(err)}`);
      } finally {
        // msgpackr keeps a module-level DataView of the last source until the next unpack
        // (it never reads it again). For a large value that source may be a one-off copy of
        // an overflow run, so unpacking one constant byte drops the hold on it. For small
        // values it is the segment the engine keeps mapped anyway, and the reset would
        // cost about a quarter of the decode (~100 ns), so it is skipped.
        if (end - start >= RELEASE_SOURCE_MIN) unpackr.unpack(MSGPACK_NIL);
      }
    },
  };
}

/**
 * Packs in progress, over every encoder: msgpackr's buffer and position are module state that
 * all Packrs share, and a pack may run user code (getters, toJSON) that packs another value.
 */
let packDepth = 0;
/** A pack inside another one wanted msgpackr's buffer dropped: done when the outer one ends. */
let dropPending = false;

/**
 * Gives msgpackr a fresh small buffer to pack into (see encode), or, inside another pack,
 * once that one has finished.
 */
function dropPackBufferSoon(packr: Packr): void {
  if (packDepth > 0) {
    dropPending = true;
    return;
  }
  dropPending = false;
  packr.useBuffer(Buffer.allocUnsafeSlow(8192));
}

/**
 * The Buffer that msgpackr reads `buf` through: a Buffer so that binary inside a value
 * decodes as a Buffer (msgpackr copies it with the source's own species) whatever kind of
 * Uint8Array the engine hands over, and our own object because msgpackr caches a DataView
 * on its source as a property. The engine reads values from long-lived segment views, so the
 * view is cached per segment; the WeakMap keeps no segment alive.
 */
function sourceView(buf: Uint8Array): Buffer {
  let view = sourceViews.get(buf);
  if (view === undefined) {
    view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.byteLength >= CACHED_SOURCE_MIN) sourceViews.set(buf, view);
  }
  return view;
}
const sourceViews = new WeakMap<Uint8Array, Buffer>();
/** Smaller buffers (a page-sized copy, a test buffer) get a fresh view: cheaper than an entry. */
const CACHED_SOURCE_MIN = 64 * 1024;
/**
 * Values shorter than this are decoded from a private copy (see decode). msgpackr 2.1 uses its
 * key cache only while the source's end offset is below 180.
 */
const SMALL_VALUE_MAX = 180;
/** After this many values in a row that were not plain, the next PLAIN_SKIPS go to msgpackr. */
const PLAIN_MISSES_MAX = 16;
const PLAIN_SKIPS = 256;
/** Values from this size up release msgpackr's reference to their source after decoding. */
const RELEASE_SOURCE_MIN = 16 * 1024;

/**
 * msgpackr options, chosen so that every type named in the API round-trips with no state
 * kept outside the value:
 * - `useRecords: true` is what makes plain objects and Maps distinguishable: an object is
 *   written as a msgpackr record, a Map as a msgpack map that decodes back to a Map. With
 *   `useRecords: false` both are msgpack maps and one of the two types is lost. Records
 *   only need state stored in the database when structures are *shared* between values
 *   (`structures`, `getStructures`, `saveStructures`); none is set and `maxSharedStructures`
 *   is 0, so each value carries its own record definitions inline and decodes alone, with a
 *   fresh Unpackr (the tests decode with a new encoder to prove it).
 * - `moreTypes`: Set, Error, RegExp and typed arrays keep their types.
 * - `copyBuffers`: binary inside a value is copied out of the page instead of viewed.
 * - `writeFunction`: msgpackr would store a function as `undefined`; refuse it instead.
 * bigint needs no option: up to 64 bits it is a msgpack int64 read back as bigint (the
 * default `int64AsType`), larger ones use msgpackr's bigint extension (enabled by moreTypes).
 */
const MSGPACK_OPTIONS: MsgpackOptions = {
  useRecords: true,
  maxSharedStructures: 0,
  moreTypes: true,
  copyBuffers: true,
  writeFunction: () => {
    throw badValue('a function cannot be stored in a value');
  },
};
const MSGPACK_NIL = Buffer.from([0xc0]);

/**
 * msgpackr options that keep state in the encoder (record structures shared between values,
 * or a stream's running structures): values written with them would not decode after a
 * reopen or in another process, since the database stores values, not encoder state.
 */
const STATEFUL_MSGPACK_OPTIONS = [
  'saveStructures',
  'getStructures',
  'sequential',
  'shouldShareStructure',
] as const;

/**
 * Checks the open option `msgpack` and returns the copy to use: own options read once (a getter
 * that throws is ERR_BAD_OPTION), those set to `undefined` left out so that mapkv's defaults
 * hold, and the options that would make stored values unreadable or views of the file refused.
 * msgpackr then gets to see the options (its constructors throw on some), before any file is
 * created.
 */
export function checkMsgpackOptions(given: unknown): MsgpackOptions {
  const bad = (why: string, cause?: unknown): MapKVError =>
    new MapKVError('ERR_BAD_OPTION', `msgpack: ${why}`, cause === undefined ? {} : { cause });
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw bad('must be an object of msgpackr options');
  }
  const copy: Record<string, unknown> = {};
  try {
    for (const k of Object.keys(given)) {
      const v: unknown = (given as Record<string, unknown>)[k];
      if (v !== undefined) copy[k] = v;
    }
  } catch (err) {
    throw bad(`the options could not be read: ${message(err)}`, err);
  }
  // Without copyBuffers, binary inside a decoded value is a view of the bytes it was decoded
  // from: a page of the file or a scratch copy that later reads and commits overwrite.
  if ('copyBuffers' in copy && copy.copyBuffers !== true) {
    throw bad(
      'copyBuffers must be true or left out: binary inside a value would be a view of ' +
        'bytes that later reads and commits overwrite',
    );
  }
  // Shared record structures live in the encoder, not in the values: mapkv keeps every
  // value's record definition inline instead (maxSharedStructures 0).
  if ('maxSharedStructures' in copy && copy.maxSharedStructures !== 0) {
    throw bad(
      `maxSharedStructures must be 0 or left out, got ${String(copy.maxSharedStructures)}: ` +
        'shared record structures are not stored in the database, so values written with ' +
        'them could not be read after a reopen',
    );
  }
  // An empty list of structures, with none shared, is mapkv's own state: allowed.
  if ('structures' in copy && !(Array.isArray(copy.structures) && copy.structures.length === 0)) {
    throw bad('structures must be an empty array or left out (shared structures are not stored)');
  }
  for (const k of STATEFUL_MSGPACK_OPTIONS) {
    if (k in copy) {
      throw bad(
        `${k} is not supported: it keeps encoder state that the database does not store, so ` +
          'values written with it could not be read after a reopen',
      );
    }
  }
  // msgpackr without moreTypes packs a typed array other than Uint8Array as binary of the
  // wrong bytes (Uint32Array [1, 2, 3, 4] came back as 16 bytes: 01 02 03 04, then whatever
  // was in its buffer): stored, it would read back changed.
  if ('moreTypes' in copy && copy.moreTypes !== true) {
    throw bad('moreTypes must be true or left out: without it msgpackr stores typed arrays wrong');
  }
  if ('useRecords' in copy && typeof copy.useRecords !== 'boolean') {
    throw bad(`useRecords must be a boolean, got ${String(copy.useRecords)}`);
  }
  try {
    const options = { ...MSGPACK_OPTIONS, ...copy };
    new Packr({ ...options });
    new Unpackr({ ...options });
  } catch (err) {
    throw bad(`msgpackr refused the options: ${message(err)}`, err);
  }
  return copy as MsgpackOptions;
}

/** The most UTF-8 bytes Node decodes into one string (2^29 - 24 on 64-bit Node 20). */
const STRING_BYTES_MAX = bufferConstants.MAX_STRING_LENGTH;

/** JSON text in UTF-8; decodes with `JSON.parse`. */
export function createJsonValueEncoder(): ValueEncoder {
  const scratch = new Utf8Scratch();
  return {
    name: 'json',
    encode(value: unknown): Uint8Array {
      refuseUnstorable(value);
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (err) {
        // BigInt anywhere in the value, or a cycle.
        throw badValue(`the value cannot be encoded as JSON: ${message(err)}`, err);
      }
      if (text === undefined) {
        throw badValue('the value has no JSON form (its toJSON returned undefined)');
      }
      return scratch.write(text);
    },
    decode(buf: Uint8Array, start: number, end: number): unknown {
      const text = decodeUtf8(buf, start, end);
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        return corrupt(`a JSON value cannot be parsed: ${message(err)}`);
      }
    },
  };
}

/** Strings as UTF-8. */
export function createStringValueEncoder(): ValueEncoder<string> {
  const scratch = new Utf8Scratch();
  return {
    name: 'string',
    encode(value: string): Uint8Array {
      if (typeof value !== 'string') {
        throw badValue(`the 'string' value encoding takes strings, not ${describeType(value)}`);
      }
      // An unpaired surrogate has no UTF-8 form: it would be stored as U+FFFD, a different string.
      if (!isWellFormed(value)) {
        throw badValue('the string has an unpaired surrogate');
      }
      return scratch.write(value);
    },
    decode(buf: Uint8Array, start: number, end: number): string {
      return decodeUtf8(buf, start, end);
    },
  };
}

/** Bytes as they are; decoding returns a new Buffer the caller owns. */
export function createBinaryValueEncoder(): ValueEncoder<Uint8Array> {
  return {
    name: 'binary',
    encode(value: Uint8Array): Uint8Array {
      if (!isBytes(value)) {
        throw badValue(
          `the 'binary' value encoding takes a Uint8Array or Buffer, not ${describeType(value)}`,
        );
      }
      return value; // the caller copies it into the page before the next encode
    },
    decode(buf: Uint8Array, start: number, end: number): Uint8Array {
      return copyBytes(buf, start, end);
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** Refuses the top-level values no encoding stores: undefined, functions and symbols. */
function refuseUnstorable(value: unknown): void {
  const type = typeof value;
  if (type === 'undefined' || type === 'function' || type === 'symbol') {
    const hint =
      type === 'undefined' ? ' (get() returns undefined for a missing key; use null)' : '';
    throw badValue(`${type} cannot be stored as a value${hint}`);
  }
}

/** Encodes strings into one reused buffer, grown as needed; huge results are not kept. */
class Utf8Scratch {
  private buffer = Buffer.allocUnsafeSlow(INITIAL_SCRATCH);

  /** The UTF-8 of `text`, valid until the next call. */
  write(text: string): Uint8Array {
    // A UTF-16 unit is at most 3 bytes of UTF-8; measure exactly only when that may not fit.
    const bound = text.length * 3;
    let target = this.buffer;
    if (bound > target.length) {
      const size = Buffer.byteLength(text, 'utf8');
      if (size > MAX_KEPT_SCRATCH) {
        return Buffer.from(text, 'utf8'); // one-off: do not pin a huge buffer
      }
      if (size > target.length) {
        target = this.buffer = Buffer.allocUnsafeSlow(Math.max(size, target.length * 2));
      }
    }
    const written = target.write(text, 0, 'utf8');
    return target.subarray(0, written);
  }
}
const INITIAL_SCRATCH = 16 * 1024;
const MAX_KEPT_SCRATCH = 1024 * 1024;

function badValue(text: string, cause?: unknown): MapKVError {
  return new MapKVError('ERR_BAD_VALUE', text, cause === undefined ? undefined : { cause });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
