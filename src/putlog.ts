/**
 * The async puts queued for the next batched commit, kept as bytes: each put's key and value
 * packed side by side into shared chunks, and four numbers per put in one typed array.
 *
 * Why not one object per put: a batch collects puts for as long as the previous commit flushes,
 * so its puts live long enough to be copied by the young-generation GC and promoted. With a
 * key array, a value array and an op object per put, a batch of 40,000 puts kept some 300
 * bytes each alive across the turns it collected for; here it keeps its bytes, 16 bytes of
 * numbers and one reference.
 */

/** Chunk size: small enough to keep a few spare, large enough that most batches fit in one. */
const CHUNK_BYTES = 256 << 10;
/** Chunks kept for the next batches (1 MiB). */
const SPARE_CHUNKS = 4;
/** Numbers per put in `recs`: chunk index, start in the chunk, key length, value length. */
const REC = 4;
/** A held key's place is chunk * CHUNK_SPAN + start (exact below 2^53: 2^21 chunks). */
const CHUNK_SPAN = 2 ** 32;

/** Key bytes keyOrder sorts on by radix; longer keys that agree on them are compared whole. */
const PREFIX = 12;

/** Chunks of the default size that finished logs gave back, for the next ones. */
const spareChunks: Uint8Array[] = [];

/**
 * The indexes 0..n-1 in the order of their `width`-byte strings `digits[i * width, (i + 1) *
 * width)`: an LSD radix sort, a pass per byte, last byte first, each stable, so equal strings
 * keep their order. A comparison sort calling a JS comparator cost as much as the B+tree work
 * the order saved.
 */
function radixOrder(digits: Uint8Array, n: number, width: number): Int32Array {
  let order = new Int32Array(n);
  let spare = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const count = new Int32Array(257);
  for (let j = width - 1; j >= 0; j--) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[digits[i * width + j]! + 1]!++;
    // A byte every string shares orders nothing (common: keys with a common prefix).
    let same = false;
    for (let d = 1; d <= 256; d++) if (count[d] === n) same = true;
    if (same) continue;
    for (let d = 1; d <= 256; d++) count[d]! += count[d - 1]!;
    for (let k = 0; k < n; k++) {
      const x = order[k]!;
      spare[count[digits[x * width + j]!]!++] = x;
    }
    const t = order;
    order = spare;
    spare = t;
  }
  return order;
}

export class PutLog<D> {
  /** The database of each put, by put index. */
  private readonly dbs: D[] = [];
  private recs = new Uint32Array(REC * 64);
  private readonly chunks: Uint8Array[] = [];
  /** Bytes used of the last chunk. */
  private used = 0;

  /** Puts in the log. */
  get length(): number {
    return this.dbs.length;
  }

  /**
   * Copies a put's key, `key[0, kl)`, into the log before its value is encoded; returns where
   * it went, for `append`. The value's encoder runs user code (getters, toJSON) that may itself
   * put or encode keys into the buffer `key` lives in, so the key must be held elsewhere
   * meanwhile. A put whose value fails to encode gives the bytes back (releaseKey).
   */
  reserveKey(key: Uint8Array, kl: number): number {
    const at = this.room(kl);
    const chunk = this.chunks[this.chunks.length - 1]!;
    for (let i = 0; i < kl; i++) chunk[at + i] = key[i]!;
    this.used = at + kl;
    return (this.chunks.length - 1) * CHUNK_SPAN + at;
  }

  /**
   * Gives back the bytes of a key held at `held` whose put was not made: they are reused when
   * nothing was added after them (else they stay unused until the log is recycled). Without it
   * a run of failed puts, with no batch to recycle the log, would grow it for ever.
   */
  releaseKey(held: number, kl: number): void {
    const c = Math.floor(held / CHUNK_SPAN);
    const at = held - c * CHUNK_SPAN;
    if (c === this.chunks.length - 1 && this.used === at + kl) this.used = at;
  }

  /** Bytes the log holds in its chunks (for tests). */
  get bytesHeld(): number {
    let n = 0;
    for (let i = 0; i < this.chunks.length - 1; i++) n += this.chunks[i]!.length;
    return n + this.used;
  }

  /** Adds a put of `db`: its key held by reserveKey at `held` (`kl` bytes) and `value` (copied). */
  append(db: D, held: number, kl: number, value: Uint8Array): void {
    const vl = value.length;
    let c = Math.floor(held / CHUNK_SPAN);
    let at = held - c * CHUNK_SPAN;
    // The value goes right after its key unless something was added since (a put made by
    // the value's encoder) or the chunk has no room left: then key and value move together.
    if (c !== this.chunks.length - 1 || this.used !== at + kl || at + kl + vl > this.tail()) {
      const from = this.chunks[c]!;
      const to = this.room(kl + vl);
      const chunk = this.chunks[this.chunks.length - 1]!;
      chunk.set(from.subarray(at, at + kl), to);
      c = this.chunks.length - 1;
      at = to;
    }
    const chunk = this.chunks[c]!;
    // set() costs ~16 ns at any length, a byte loop ~1 ns a byte: the loop only for the
    // shortest values.
    if (vl <= 12) for (let i = 0; i < vl; i++) chunk[at + kl + i] = value[i]!;
    else chunk.set(value, at + kl);
    this.used = at + kl + vl;
    const n = this.dbs.length;
    if (REC * (n + 1) > this.recs.length) {
      const grown = new Uint32Array(this.recs.length * 2);
      grown.set(this.recs);
      this.recs = grown;
    }
    const r = REC * n;
    this.recs[r] = c;
    this.recs[r + 1] = at;
    this.recs[r + 2] = kl;
    this.recs[r + 3] = vl;
    this.dbs.push(db);
  }

  /** The database of put `i`. */
  db(i: number): D {
    return this.dbs[i]!;
  }

  /** Put `i`'s bytes: key at `[at, at + keyLength)` of `chunk`, its value right after. */
  chunk(i: number): Uint8Array {
    return this.chunks[this.recs[REC * i]!]!;
  }
  at(i: number): number {
    return this.recs[REC * i + 1]!;
  }
  keyLength(i: number): number {
    return this.recs[REC * i + 2]!;
  }
  valueLength(i: number): number {
    return this.recs[REC * i + 3]!;
  }

  /**
   * Puts `[from, to)` in the order of their keys' bytes, puts of one key in the order they were
   * made (a stable sort): applying them so leaves a B+tree's pages in the CPU caches from one
   * put to the next, where the order they came in (random keys) meets a cold page at each. All
   * must be puts to one database.
   */
  keyOrder(from: number, to: number): Int32Array {
    const n = to - from;
    const recs = this.recs;
    const chunks = this.chunks;
    // The first PREFIX bytes of each key (0 past its end), sorted on by radixOrder (stable: puts
    // of one key keep their order).
    const digits = new Uint8Array(n * PREFIX);
    let longer = false;
    for (let i = 0; i < n; i++) {
      const r = REC * (from + i);
      const c = chunks[recs[r]!]!;
      const p = recs[r + 1]!;
      const kl = recs[r + 2]!;
      if (kl > PREFIX) longer = true;
      const m = kl < PREFIX ? kl : PREFIX;
      for (let j = 0; j < m; j++) digits[i * PREFIX + j] = c[p + j]!;
    }
    const order = radixOrder(digits, n, PREFIX);
    // Keys whose first PREFIX bytes agree are told apart by the rest and by their lengths.
    let start = 0;
    for (let k = 1; k <= n; k++) {
      if (k < n && samePrefix(digits, order[k - 1]!, order[k]!)) continue;
      if (k - start > 1 && (longer || this.lengthsDiffer(order, start, k, from))) {
        const group = Array.from(order.subarray(start, k));
        group.sort((a, b) => this.compareKeys(from + a, from + b));
        order.set(group, start);
      }
      start = k;
    }
    for (let i = 0; i < n; i++) order[i]! += from;
    return order;
  }

  /**
   * Puts `[from, to)` in the order of `hash(chunk, at, keyLength)` of their keys, an unsigned
   * 32-bit value, puts of one key in the order they were made (radixOrder is stable). A hash
   * table placing keys by their hash's leading bits then meets its buckets one after the
   * other, each once, instead of a cold one at each put.
   */
  hashOrder(
    from: number,
    to: number,
    hash: (chunk: Uint8Array, at: number, kl: number) => number,
  ): Int32Array {
    const n = to - from;
    const recs = this.recs;
    // Each hash as 4 big-endian bytes: their byte order is the hash's numeric order.
    const digits = new Uint8Array(n * 4);
    for (let i = 0; i < n; i++) {
      const r = REC * (from + i);
      const h = hash(this.chunks[recs[r]!]!, recs[r + 1]!, recs[r + 2]!);
      digits[4 * i] = h >>> 24;
      digits[4 * i + 1] = h >>> 16;
      digits[4 * i + 2] = h >>> 8;
      digits[4 * i + 3] = h;
    }
    const order = radixOrder(digits, n, 4);
    for (let i = 0; i < n; i++) order[i]! += from;
    return order;
  }

  /** Whether the keys of puts `order[start, end)` (relative to `from`) differ in length. */
  private lengthsDiffer(order: Int32Array, start: number, end: number, from: number): boolean {
    const kl = this.recs[REC * (from + order[start]!) + 2]!;
    for (let k = start + 1; k < end; k++) {
      if (this.recs[REC * (from + order[k]!) + 2] !== kl) return true;
    }
    return false;
  }

  /** Compares the keys of puts `a` and `b` byte by byte, like memcmp then by length. */
  private compareKeys(a: number, b: number): number {
    const recs = this.recs;
    const ca = this.chunks[recs[REC * a]!]!;
    const pa = recs[REC * a + 1]!;
    const la = recs[REC * a + 2]!;
    const cb = this.chunks[recs[REC * b]!]!;
    const pb = recs[REC * b + 1]!;
    const lb = recs[REC * b + 2]!;
    const n = la < lb ? la : lb;
    for (let j = 0; j < n; j++) {
      const d = ca[pa + j]! - cb[pb + j]!;
      if (d !== 0) return d;
    }
    return la - lb;
  }

  /** Gives the log's default-size chunks to the next logs; the log is empty afterwards. */
  recycle(): void {
    for (const c of this.chunks) {
      if (c.length === CHUNK_BYTES && spareChunks.length < SPARE_CHUNKS) spareChunks.push(c);
    }
    this.chunks.length = 0;
    this.dbs.length = 0;
    this.used = 0;
  }

  /** Bytes the last chunk holds in all (0 with no chunk). */
  private tail(): number {
    const n = this.chunks.length;
    return n === 0 ? 0 : this.chunks[n - 1]!.length;
  }

  /** Where `bytes` more bytes fit in the last chunk, starting a new chunk when they do not. */
  private room(bytes: number): number {
    if (this.chunks.length > 0 && this.used + bytes <= this.tail()) return this.used;
    const chunk =
      bytes <= CHUNK_BYTES
        ? (spareChunks.pop() ?? new Uint8Array(CHUNK_BYTES))
        : new Uint8Array(bytes);
    this.chunks.push(chunk);
    this.used = 0;
    return 0;
  }
}

/** Whether rows `a` and `b` of keyOrder's digits are equal. */
function samePrefix(digits: Uint8Array, a: number, b: number): boolean {
  for (let j = 0; j < PREFIX; j++) {
    if (digits[a * PREFIX + j] !== digits[b * PREFIX + j]) return false;
  }
  return true;
}
