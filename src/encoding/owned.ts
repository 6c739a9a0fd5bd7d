/**
 * Copies of stored bytes handed to callers: Buffers that own exactly their bytes.
 *
 * Why small copies use `Buffer.alloc`, not `Buffer.allocUnsafe`: for a small size allocUnsafe
 * hands out a view of Node's shared 8 KiB pool, an ArrayBuffer outside V8's heap, and making
 * that view costs more than copying a few dozen bytes. `Buffer.alloc(n)` without a fill makes
 * a plain Buffer of its own, which V8 keeps inside its heap up to 64 bytes (its ArrayBuffer is
 * made only if asked for); zeroing so few bytes costs next to nothing. A 27-byte copy took
 * 52-75 ns against 78-92 ns through allocUnsafe (a microbenchmark of 2M copies x 15
 * paired rounds, medians, two runs); inside a random getBinary on a 1M-key hash database
 * (330-480 ns here) the saving was within the machine's noise. The main gain is memory: a
 * kept small copy no longer keeps an 8 KiB slab alive.
 */

/** V8's largest typed array kept inside its heap (its flag typed_array_max_size_in_heap). */
const IN_HEAP_MAX = 64;

/** A new Buffer holding a copy of `src[start, end)`, so it outlives the mapped page. */
export function copyBytes(src: Uint8Array, start: number, end: number): Buffer {
  const n = end - start;
  if (n <= IN_HEAP_MAX) {
    const out = Buffer.alloc(n);
    // Byte by byte: set() would first make a subarray, an object as costly as the copy.
    for (let i = 0; i < n; i++) out[i] = src[start + i]!;
    return out;
  }
  const out = Buffer.allocUnsafe(n);
  out.set(src.subarray(start, end));
  return out;
}

/** A new Buffer of `n` bytes for the caller to fill in full; see copyBytes. */
export function newBytes(n: number): Buffer {
  return n <= IN_HEAP_MAX ? Buffer.alloc(n) : Buffer.allocUnsafe(n);
}
