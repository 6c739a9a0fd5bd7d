/**
 * A decoder for the plain part of msgpack - nil, booleans, numbers up to 32 bits and doubles,
 * strings, arrays and maps - that gives exactly what msgpackr's Unpackr gives for the same
 * bytes, only faster: it reads the mapped page in place with no per-call setup, and an object
 * of a shape met before is read by a function made for that shape, which recognizes its keys
 * by their bytes and builds it in one step (see Shape). `{ name, n, tags }` decodes in about
 * a fifth of msgpackr's time (`node bench/decode.mjs`: 70 ns against 348 on Node 20 and this
 * project's machine).
 *
 * Anything else (extensions, which include msgpackr's records, Dates, typed arrays and
 * `undefined`; binary; 64-bit integers; strings that are not well-formed UTF-8 or begin with
 * a byte order mark; damaged or truncated data) makes it give up and return NOT_PLAIN, and
 * the caller decodes the whole value with msgpackr. The subset is chosen so that msgpackr's
 * result does not depend on anything the two could disagree on: the options that matter are
 * checked once (plainDecoderFor), and well-formed UTF-8 has one decoding.
 * test/encoding/plainmsgpack.test.ts compares the two on random and damaged bytes.
 */
import type { Unpackr } from 'msgpackr';
import { SHORT_ASCII_MAX, decodeShortAscii, decodeUtf8 } from './keys';

/** What a plain decoder returns for bytes outside the plain subset (no decoded value is it). */
const GIVE_UP: unique symbol = Symbol('not plain msgpack');
// Exported under another name: the CommonJS output would read every use of an exported const
// from `exports`, in the hottest loops here.
export { GIVE_UP as NOT_PLAIN };

/** A function decoding `buf[start, end)`, or giving GIVE_UP. */
export type PlainDecoder = (buf: Uint8Array, start: number, end: number) => unknown;

/** The Unpackr fields that change how plain msgpack decodes (they are set from its options). */
interface UnpackrSettings {
  mapsAsObjects?: boolean;
  freezeData?: boolean;
  useFloat32?: number;
  structures?: unknown;
  getStructures?: unknown;
  _readStruct?: unknown;
}

/**
 * The plain decoder matching `unpackr`, or null when its options make plain msgpack decode
 * differently from what this module does (shared record structures, frozen data, rounded
 * float32s, random-access structs): then everything goes to msgpackr.
 */
export function plainDecoderFor(unpackr: Unpackr): PlainDecoder | null {
  const u = unpackr as unknown as UnpackrSettings;
  // Shared structures turn the positive fixints 0x40..0x7f into record references.
  if (u.structures !== undefined || u.getStructures !== undefined) return null;
  if (u.freezeData === true || (u.useFloat32 ?? 0) > 2) return null;
  const asObjects = u.mapsAsObjects === true;
  return (buf, start, end) => {
    // msgpackr's struct module reads positive fixints 0x20..0x3f at the top as structs.
    if (u._readStruct !== undefined && u._readStruct !== null) return GIVE_UP;
    src = buf;
    pos = start;
    limit = end;
    objects = asObjects;
    const value = read(0);
    src = EMPTY; // holds no buffer between decodes (it may be a one-off copy of a large value)
    // Bytes left over: msgpackr refuses the value, so let it say so.
    return pos === end ? value : GIVE_UP;
  };
}

// The state of the running decode: module variables, so a decode allocates none. A decode
// runs no user code (no getters, no extensions) and lets no exception out (every length is
// checked against `limit` before use, nesting is bounded, the strict UTF-8 decoder's refusal
// is caught), so it is never re-entered or cut short.
const EMPTY = new Uint8Array(0);
let src: Uint8Array = EMPTY;
let pos = 0;
let limit = 0;
let objects = false;

/** Deeper nesting is left to msgpackr (which may then run out of stack and say so). */
const MAX_NESTING = 64;

const scratch = new DataView(new ArrayBuffer(8));

/** Reads one value at `pos`; GIVE_UP (with `pos` anywhere) when it is not plain. */
function read(depth: number): unknown {
  if (pos >= limit) return GIVE_UP;
  const token = src[pos++]!;
  if (token < 0x80) return token; // positive fixint
  if (token < 0x90) return readMap(token - 0x80, depth);
  if (token < 0xa0) return readArray(token - 0x90, depth);
  if (token < 0xc0) return readString(token - 0xa0);
  if (token >= 0xe0) return token - 0x100; // negative fixint
  switch (token) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xca:
      return readFloat(4);
    case 0xcb:
      return readFloat(8);
    // Integers up to 32 bits, big-endian (written out: read() is too big for V8 to inline
    // helpers into it).
    case 0xcc:
    case 0xd0: {
      if (pos + 1 > limit) return GIVE_UP;
      const u = src[pos++]!;
      return token === 0xcc ? u : (u << 24) >> 24;
    }
    case 0xcd:
    case 0xd1: {
      const p = pos;
      if (p + 2 > limit) return GIVE_UP;
      pos = p + 2;
      const u = (src[p]! << 8) | src[p + 1]!;
      return token === 0xcd ? u : (u << 16) >> 16;
    }
    case 0xce:
    case 0xd2: {
      const p = pos;
      if (p + 4 > limit) return GIVE_UP;
      pos = p + 4;
      const i = (src[p]! << 24) | (src[p + 1]! << 16) | (src[p + 2]! << 8) | src[p + 3]!;
      return token === 0xce ? i >>> 0 : i;
    }
    case 0xd9:
      return readSizedString(1);
    case 0xda:
      return readSizedString(2);
    case 0xdb:
      return readSizedString(4);
    case 0xdc:
    case 0xdd: {
      const n = readUint(token === 0xdc ? 2 : 4);
      return typeof n === 'number' ? readArray(n, depth) : n;
    }
    case 0xde:
    case 0xdf: {
      const n = readUint(token === 0xde ? 2 : 4);
      return typeof n === 'number' ? readMap(n, depth) : n;
    }
  }
  // 0xc1 (unused), binary, extensions, 64-bit integers.
  return GIVE_UP;
}

/** A big-endian unsigned integer of `bytes` bytes (1, 2 or 4). */
function readUint(bytes: number): number | typeof GIVE_UP {
  if (pos + bytes > limit) return GIVE_UP;
  let n = 0;
  for (let i = 0; i < bytes; i++) n = n * 256 + src[pos++]!;
  return n;
}

function readFloat(bytes: number): number | typeof GIVE_UP {
  if (pos + bytes > limit) return GIVE_UP;
  for (let i = 0; i < bytes; i++) scratch.setUint8(i, src[pos++]!);
  return bytes === 4 ? scratch.getFloat32(0) : scratch.getFloat64(0);
}

function readArray(n: number, depth: number): unknown {
  // Each element takes a byte at least: a longer count is damage, for msgpackr to report.
  if (n > limit - pos || depth >= MAX_NESTING) return GIVE_UP;
  const array = new Array<unknown>(n);
  for (let i = 0; i < n; i++) {
    // Small integers and one-character strings, the commonest elements, without a call (the
    // same values read() gives); anything else through read().
    const t = pos < limit ? src[pos]! : 0xc1;
    let v: unknown;
    if (t < 0x80) {
      pos++;
      v = t;
    } else if (t === 0xa1 && pos + 2 <= limit && src[pos + 1]! < 0x80) {
      v = fromCharCode(src[pos + 1]!);
      pos += 2;
    } else {
      v = read(depth + 1);
      if (v === GIVE_UP) return GIVE_UP;
    }
    array[i] = v;
  }
  return array;
}

function readMap(n: number, depth: number): unknown {
  if (n > (limit - pos) / 2 || depth >= MAX_NESTING) return GIVE_UP;
  if (!objects) {
    const map = new Map<unknown, unknown>();
    for (let i = 0; i < n; i++) {
      const k = read(depth + 1);
      if (k === GIVE_UP) return GIVE_UP;
      const v = read(depth + 1);
      if (v === GIVE_UP) return GIVE_UP;
      map.set(k, v);
    }
    return map;
  }
  if (n === 0) return {};
  objectsRead++;
  // An object of a shape seen before is read by the shape's own function (see Shape): its
  // keys are recognized by their bytes, with no string made or looked up, and it is built by
  // one object literal, much faster than adding properties one by one.
  const slot = shapeSlot(n);
  const shape = shapes[slot];
  let from = 0;
  if (shape !== undefined && shape.keys.length === n) {
    const object = shape.read(src, pos, limit, depth);
    if (object !== MISS) return object;
    // Key `missedAt` is not the shape's: the values before it are in the scratch, read once.
    from = missedAt;
  }
  // Keys and values first, then the object, property by property.
  const keys = (keysAt[depth] ??= []);
  const values = (valuesAt[depth] ??= []);
  for (let i = 0; i < from; i++) keys[i] = shape!.keys[i]!;
  for (let i = from; i < n; i++) {
    let k = readKey();
    if (k === GIVE_UP) return giveUp(values, i);
    // msgpackr's guard against prototype pollution, kept so both decoders agree.
    if (k === '__proto__') k = '__proto_';
    const v = read(depth + 1);
    if (v === GIVE_UP) return giveUp(values, i);
    keys[i] = k;
    values[i] = v;
  }
  const object: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) object[keys[i]!] = values[i];
  learnShape(slot, keys, n);
  // The scratch keeps no decoded value alive.
  for (let i = 0; i < n; i++) values[i] = undefined;
  return object;
}

/** GIVE_UP, after clearing the `n` values read so far from the scratch. */
function giveUp(values: unknown[], n: number): typeof GIVE_UP {
  for (let i = 0; i < n; i++) values[i] = undefined;
  return GIVE_UP;
}

/**
 * An object shape: its keys in order, and a function made for it (shapeReader) that reads an
 * object of those keys at `pos`: it compares each key's bytes with constants in its code, reads
 * the values into local variables (small integers and short ASCII strings inline, the rest
 * through read()), and returns the object built by one object literal. V8 creates such an
 * object with its final layout at once; property by property, each store looks up the
 * layout's next step (and the store site, seeing every shape of the data, is megamorphic).
 *
 * The literal defines the properties, where msgpackr assigns them: the two differ only if
 * Object.prototype has a setter or a read-only property of the key's name, and a literal is
 * then the safer of the two (`__proto__` never gets here: it was renamed).
 */
interface Shape {
  readonly keys: readonly string[];
  /**
   * Reads the map at `pos` (its header read already; `depth` is its nesting; called with
   * `src`, `pos` and `limit`, which it reads as arguments) as this shape: the object; GIVE_UP
   * when a value is not plain; MISS when a key's bytes are not this shape's, with `missedAt`
   * set to that key's index, `pos` at it and the values before it in `valuesAt[depth]`, so
   * that readMap goes on from there and no value is read twice (nested objects read twice at
   * every level would take time exponential in the nesting). Each key is recognized as msgpack
   * writes it (fixstr, or str8 from 32 bytes); a key written otherwise is not, and the object
   * is read the slow way; so is one with a key `__proto__`, whose bytes are not those of its
   * new name.
   */
  readonly read: (b: Uint8Array, p: number, lim: number, depth: number) => unknown;
}

/** What a shape's reader returns when a key is not the shape's (see Shape.read). */
const MISS: unique symbol = Symbol('not this shape');
let missedAt = 0;

/**
 * Shapes, in a table indexed by the key count and the first key's first bytes (shapeSlot),
 * so that objects of several shapes mixed - nested ones, rows of a few kinds - each find
 * theirs. A slot's shape is made the second time the same keys come to it (`pending` holds
 * the keys of the last object that came to a slot without its shape), so data whose keys
 * keep changing makes none.
 */
const SHAPE_SLOTS = 256;
const shapes: Array<Shape | undefined> = new Array<Shape | undefined>(SHAPE_SLOTS);
const pending: Array<string[] | undefined> = new Array<string[] | undefined>(SHAPE_SLOTS);
/** Shapes are made for objects of at most this many keys. */
const SHAPE_MAX_KEYS = 64;
const FREE_SHAPES = 256;
const SHAPE_PERIOD = 10_000;
let shapesMade = 0;
let lastShapeMade = 0;
/** Objects read (an approximate clock for the rate of new shapes). */
let objectsRead = 0;

/** @internal Objects (maps read as objects) decoded so far; for tests. */
export function plainObjectsRead(): number {
  return objectsRead;
}

// Per nesting depth: the keys and values of the map being read.
const keysAt: string[][] = [];
const valuesAt: unknown[][] = [];

/** The shape slot of a map of `n` entries whose first key is at `pos` (n > 0). */
function shapeSlot(n: number): number {
  let h = n * 31;
  if (pos + 2 < limit) h += src[pos]! * 7 + src[pos + 1]! * 3 + src[pos + 2]!;
  return h & (SHAPE_SLOTS - 1);
}

function sameKeys(a: readonly string[], b: readonly string[], n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function learnShape(slot: number, keys: readonly string[], n: number): void {
  const last = pending[slot];
  if (last === undefined || last.length !== n || !sameKeys(last, keys, n)) {
    pending[slot] = keys.slice(0, n);
    return;
  }
  pending[slot] = undefined;
  if (n > SHAPE_MAX_KEYS) return;
  // Past the first shapes, data whose shapes keep taking each other's slots must not compile
  // functions all the time: one new shape per SHAPE_PERIOD objects read at most.
  if (shapesMade >= FREE_SHAPES && objectsRead - lastShapeMade < SHAPE_PERIOD) return;
  const reader = shapeReader(last, last.map(keyBytesOf));
  if (reader === null) return;
  shapesMade++;
  lastShapeMade = objectsRead;
  shapes[slot] = { keys: last, read: reader };
}

/** How msgpack writes key `k` (readKey read it, so its UTF-8 has at most 255 bytes). */
function keyBytesOf(k: string): Uint8Array {
  const utf8 = Buffer.from(k, 'utf8');
  const header = utf8.length < 32 ? [0xa0 + utf8.length] : [0xd9, utf8.length];
  const bytes = new Uint8Array(header.length + utf8.length);
  bytes.set(header);
  bytes.set(utf8, header.length);
  return bytes;
}

/**
 * The reader of the shape of `keys` (see Shape.read); null when code generation is not
 * allowed (`--disallow-code-generation-from-strings`), which then stays off. For keys `a`
 * (bytes a1 61) and `bc` it is, in short (`value(i)` stands for the inline reads of valueCode):
 *
 *     function (b, p, lim, d) {
 *       let v0, v1, m = 0, t = 0;
 *       found: {
 *         m = 0; if (p + 2 > lim || b[p + 0] !== 161 || b[p + 1] !== 97) break found; p += 2;
 *         value(0)
 *         m = 1; if (p + 3 > lim || ...) break found; p += 3;
 *         value(1)
 *         setPos(p);
 *         return { "a": v0, "bc": v1 };
 *       }
 *       setPos(p);
 *       const s = stash(d);
 *       switch (m) { case 1: s[0] = v0; }
 *       return miss(m);
 *     }
 *
 * The decoder's position lives in `p` while the function runs and goes back to `pos` before
 * any read() and on every way out but GIVE_UP's (which ends the whole decode). A key is
 * written as its JSON text, a JavaScript string literal for any string: no key can change the
 * code; the rest of the text is made of numbers.
 */
function shapeReader(
  keys: readonly string[],
  keyBytes: readonly Uint8Array[],
): Shape['read'] | null {
  // A literal's "__proto__" would set the prototype; readMap renamed that key already.
  if (!codegen || keys.includes('__proto__')) return null;
  const n = keys.length;
  const lets = keys.map((_, i) => `v${i}`).join(', ');
  let steps = '';
  for (let i = 0; i < n; i++) {
    const kb = keyBytes[i]!;
    const same = Array.from(kb, (x, j) => `b[p + ${j}] !== ${x}`).join(' || ');
    steps += `m = ${i}; if (p + ${kb.length} > lim || ${same}) break found; p += ${kb.length};\n`;
    steps += valueCode(`v${i}`);
  }
  const fields = keys.map((k, i) => `${JSON.stringify(k)}: v${i}`).join(', ');
  let stashes = '';
  for (let i = n - 1; i >= 1; i--) stashes += `case ${i}: s[${i - 1}] = v${i - 1};\n`;
  const body =
    `return function (b, p, lim, d) {\n` +
    `let ${lets}, m = 0, t = 0;\n` +
    `found: {\n${steps}setPos(p);\nreturn { ${fields} };\n}\n` +
    `setPos(p);\n` +
    `const s = stash(d);\n` +
    (n > 1 ? `switch (m) {\n${stashes}}\n` : '') +
    `return miss(m);\n};`;
  try {
    const factory = new Function(
      'readAt',
      'posNow',
      'setPos',
      'G',
      'ascii',
      'fcc',
      'stash',
      'miss',
      body,
    ) as (...args: unknown[]) => Shape['read'];
    return factory(
      readAt,
      posNow,
      setPos,
      GIVE_UP,
      decodeShortAscii,
      fromCharCode,
      stashOf,
      missAt,
    );
  } catch {
    codegen = false;
    return null;
  }
}

/**
 * The code of a shape reader that reads the value at `p` into `v`: a positive fixint, a
 * one-character ASCII string, or an ASCII fixstr of 2 to SHORT_ASCII_MAX bytes (the values
 * read() gives for them), else read() itself (GIVE_UP returned as is).
 */
function valueCode(v: string): string {
  const short = 0xa0 + SHORT_ASCII_MAX;
  return (
    `t = p < lim ? b[p] : 0xc1;\n` +
    `if (t < 0x80) { p++; ${v} = t; }\n` +
    `else if (t === 0xa1 && p + 2 <= lim && b[p + 1] < 0x80) { ${v} = fcc(b[p + 1]); p += 2; }\n` +
    `else if (t > 0xa1 && t <= ${short} && p + t - 0x9f <= lim && ` +
    `(${v} = ascii(b, p + 1, p + t - 0x9f)) !== null) p += t - 0x9f;\n` +
    `else { ${v} = readAt(p, d + 1); if (${v} === G) return G; p = posNow(); }\n`
  );
}

/** read() at `p` (a shape reader's position). */
function readAt(p: number, depth: number): unknown {
  pos = p;
  return read(depth);
}

function posNow(): number {
  return pos;
}

function setPos(p: number): void {
  pos = p;
}

const fromCharCode = String.fromCharCode;

/** The scratch of the values of the map being read at nesting `depth`. */
function stashOf(depth: number): unknown[] {
  return (valuesAt[depth] ??= []);
}

/** MISS, with `missedAt` = `i` (the index of the key that is not the shape's). */
function missAt(i: number): typeof MISS {
  missedAt = i;
  return MISS;
}

let codegen = true;

/**
 * Object keys read before, by length and first and last byte, with their bytes: a key met
 * again is the same string (V8 internalized it when it was first used as a property name),
 * so storing the property needs no string-table lookup. The bytes, not the string, are
 * compared: the string may by then be a thin reference to its internalized copy.
 */
const KEY_CACHE_SIZE = 4096;
const keyCacheText: Array<string | undefined> = new Array<string | undefined>(KEY_CACHE_SIZE);
const keyCacheBytes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(
  KEY_CACHE_SIZE,
);

/** A map key: fixstr and str8 keys only (msgpackr stringifies others; left to it). */
function readKey(): string | typeof GIVE_UP {
  if (pos >= limit) return GIVE_UP;
  const token = src[pos]!;
  let n: number;
  if (token >= 0xa0 && token < 0xc0) {
    n = token - 0xa0;
    pos++;
  } else if (token === 0xd9 && pos + 1 < limit) {
    n = src[pos + 1]!;
    pos += 2;
  } else return GIVE_UP;
  const s = pos;
  const e = s + n;
  if (e > limit) return GIVE_UP;
  if (n === 0) return '';
  const slot = ((n << 7) ^ (src[s]! << 3) ^ src[e - 1]!) & (KEY_CACHE_SIZE - 1);
  const bytes = keyCacheBytes[slot];
  if (bytes !== undefined && bytes.length === n) {
    let i = 0;
    while (i < n && bytes[i] === src[s + i]) i++;
    if (i === n) {
      pos = e;
      return keyCacheText[slot]!;
    }
  }
  const key = readString(n);
  if (typeof key === 'string') {
    keyCacheText[slot] = key;
    keyCacheBytes[slot] = src.slice(s, e);
  }
  return key;
}

function readSizedString(lengthBytes: number): string | typeof GIVE_UP {
  const n = readUint(lengthBytes);
  return typeof n === 'number' ? readString(n) : n;
}

/**
 * `n` bytes of UTF-8 at `pos` as a string; GIVE_UP when they are not well-formed UTF-8
 * (msgpackr's own decoder and Node's differ on malformed bytes, and msgpackr writes a lone
 * surrogate as the three bytes of one), or begin with a byte order mark (which msgpackr
 * drops from strings over 64 bytes, read with TextDecoder, and keeps in shorter ones).
 */
function readString(n: number): string | typeof GIVE_UP {
  const s = pos;
  const e = s + n;
  if (e > limit) return GIVE_UP;
  let text = n <= SHORT_ASCII_MAX ? decodeShortAscii(src, s, e) : null;
  if (text === null) {
    if (n >= 3 && src[s] === 0xef && src[s + 1] === 0xbb && src[s + 2] === 0xbf) return GIVE_UP;
    // Well-formed UTF-8 has one decoding, whichever decoder reads it. A long string is checked
    // and decoded in one native pass (the decoder throws on anything else).
    if (n > LONG_STRING_MIN) {
      try {
        text = strictUtf8.decode(src.subarray(s, e));
      } catch {
        return GIVE_UP;
      }
    } else if (isWellFormedUtf8(src, s, e)) text = decodeUtf8(src, s, e);
    else return GIVE_UP;
  }
  pos = e;
  return text;
}

/** Strings longer than this are checked and decoded by strictUtf8. */
const LONG_STRING_MIN = 64;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Whether `b[s, e)` is well-formed UTF-8 (RFC 3629): no stray continuation bytes, overlong
 * forms, surrogates, code points past U+10FFFF or sequences cut by the end.
 */
function isWellFormedUtf8(b: Uint8Array, s: number, e: number): boolean {
  let i = s;
  while (i < e) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c < 0xc2) return false;
    if (c < 0xe0) {
      if (i + 1 >= e || (b[i + 1]! & 0xc0) !== 0x80) return false;
      i += 2;
      continue;
    }
    if (c < 0xf0) {
      if (i + 2 >= e) return false;
      const c1 = b[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (b[i + 2]! & 0xc0) !== 0x80) return false;
      if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 >= 0xa0)) return false;
      i += 3;
      continue;
    }
    if (c < 0xf5) {
      if (i + 3 >= e) return false;
      const c1 = b[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (b[i + 2]! & 0xc0) !== 0x80 || (b[i + 3]! & 0xc0) !== 0x80)
        return false;
      if ((c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 >= 0x90)) return false;
      i += 4;
      continue;
    }
    return false;
  }
  return true;
}
