/**
 * compactHeap (src/btree/node.ts), which B+tree nodes and hash buckets share: whatever order
 * and gaps a page's records lie in, it must leave every slot's record byte for byte as it was,
 * packed below the top of the page in slot order, and touch nothing else. It moves runs of
 * records that lie one below the other with one copy, and skips a run already in place; pages
 * made here put records in slot order, in shuffled order, with and without gaps, so that runs
 * start, stop and sit in place in every way. appendRecords (src/hash/bucket.ts), which a bucket
 * split or merge fills a bucket with, copies runs the same way and is held to the same.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEADER_SIZE, H_COUNT, H_FRAG, H_UPPER, LEAF_RECORD_HEADER } from '../../src/format/layout';
import { compactHeap } from '../../src/btree/node';
import { appendRecords } from '../../src/hash/bucket';

const PS = 4096;

interface Layout {
  /** Bytes from one slot to the next, and where in a slot its record's offset lies. */
  stride: number;
  at: number;
}
const NODE: Layout = { stride: 2, at: 0 };
const BUCKET: Layout = { stride: 6, at: 4 };

interface Rec {
  klen: number;
  vlen: number;
  /** Dead bytes left above this record when it is placed. */
  gap: number;
  /** Where it is placed: records are laid down from the top in the order of these keys. */
  place: number;
}

const recArb = fc.record({
  // At most 63 bytes with its gap: 40 of them and their slots fit a 4 KiB page.
  klen: fc.integer({ min: 0, max: 16 }),
  vlen: fc.integer({ min: 0, max: 24 }),
  gap: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 16 })),
  place: fc.integer({ min: 0, max: 3 }),
});

interface Page {
  b: Uint8Array;
  /** Record i's bytes, as placed. */
  bytes: Uint8Array[];
  /** The page offset of the lowest record (the page size when there is none). */
  top: number;
}

/**
 * A page at offset `o` of a buffer of three pages whose slots list `recs` in order. Records are
 * laid down from the top of the page in placement order: by `place` when `shuffled`, else in
 * slot order; each below its gap. Every other byte is random.
 */
function makePage(recs: Rec[], layout: Layout, shuffled: boolean, o: number, seed: number): Page {
  const b = new Uint8Array(3 * PS);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  const order = recs.map((_, i) => i);
  if (shuffled) order.sort((i, j) => recs[i]!.place - recs[j]!.place || i - j);
  const bytes: Uint8Array[] = new Array<Uint8Array>(recs.length);
  let top = PS;
  for (const i of order) {
    const r = recs[i]!;
    const size = LEAF_RECORD_HEADER + r.klen + r.vlen;
    top -= r.gap + size;
    const p = o + top;
    b[p] = r.klen & 0xff;
    b[p + 1] = r.klen >> 8;
    b[p + 2] = 0; // an inline value: the record's size is header + key + value
    new DataView(b.buffer).setUint32(p + 3, r.vlen, true);
    const s = o + HEADER_SIZE + layout.stride * i + layout.at;
    b[s] = top & 0xff;
    b[s + 1] = top >> 8;
    bytes[i] = b.slice(p, p + size);
  }
  // The heap stays clear of the slot array (recArb keeps sizes small).
  expect(top).toBeGreaterThanOrEqual(HEADER_SIZE + layout.stride * recs.length);
  return { b, bytes, top };
}

function check(recs: Rec[], layout: Layout, shuffled: boolean, seed: number): void {
  const o = PS; // the middle page: writes outside it would show in the pages around it
  const { b, bytes } = makePage(recs, layout, shuffled, o, seed);
  const before = b.slice();
  const scratch = new Uint8Array(PS);
  compactHeap(b, o, scratch, PS, recs.length, layout.stride, layout.at, true);
  const view = new DataView(b.buffer);
  let upper = PS;
  const slotBytes = new Set<number>();
  for (let i = 0; i < recs.length; i++) {
    upper -= bytes[i]!.length;
    const s = o + HEADER_SIZE + layout.stride * i + layout.at;
    slotBytes.add(s).add(s + 1);
    expect(b[s]! | (b[s + 1]! << 8)).toBe(upper);
    expect(b.subarray(o + upper, o + upper + bytes[i]!.length)).toEqual(bytes[i]);
  }
  expect(view.getUint32(o + H_UPPER, true)).toBe(upper);
  expect(view.getUint32(o + H_FRAG, true)).toBe(0);
  // Nothing else changed: the other pages, the header but for upper and frag, the rest of
  // each slot (a bucket's hash), and the free bytes between the slots and the heap.
  const heapEnd = o + HEADER_SIZE + layout.stride * recs.length;
  for (let i = 0; i < b.length; i++) {
    const inHeap = i >= o + upper && i < o + PS;
    const inFields =
      (i >= o + H_UPPER && i < o + H_UPPER + 4) || (i >= o + H_FRAG && i < o + H_FRAG + 4);
    const inFree = i >= heapEnd && i < o + upper;
    if (inHeap || inFields || slotBytes.has(i) || inFree) continue;
    if (b[i] !== before[i]) expect.fail(`byte ${i} (page offset ${i - o}) changed`);
  }
}

describe('compactHeap', () => {
  for (const [name, layout] of [
    ['B+tree node slots', NODE],
    ['hash bucket slots', BUCKET],
  ] as const) {
    it(`packs any heap in slot order, byte for byte (${name})`, () => {
      fc.assert(
        fc.property(
          fc.array(recArb, { minLength: 0, maxLength: 40 }),
          fc.boolean(),
          fc.integer(),
          (recs, shuffled, seed) => check(recs, layout, shuffled, seed),
        ),
        { numRuns: 300 },
      );
    });
  }
});

describe('appendRecords', () => {
  it('appends the chosen records of any bucket image after the records there, byte for byte', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(recArb, fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 20 }),
        fc.array(recArb, { maxLength: 20 }),
        fc.boolean(),
        fc.integer({ min: -1, max: 31 }),
        fc.integer({ min: 0, max: 1 }),
        fc.integer(),
        (srcRecs, destRecs, shuffled, bit, side, seed) => {
          // The image: its records in any order in its heap, the hashes in its slots.
          const recs = srcRecs.map(([r]) => r);
          const hashes = srcRecs.map(([, h]) => h);
          const src = makePage(recs, BUCKET, shuffled, 0, seed);
          const sv = new DataView(src.b.buffer);
          sv.setUint16(H_COUNT, recs.length, true);
          hashes.forEach((h, i) => sv.setUint32(HEADER_SIZE + BUCKET.stride * i, h, true));
          // The bucket appended to: its records packed, count and upper set.
          const o = PS;
          const dest = makePage(destRecs, BUCKET, false, o, seed ^ 0x5555);
          const dv = new DataView(dest.b.buffer);
          dv.setUint16(o + H_COUNT, destRecs.length, true);
          dv.setUint32(o + H_UPPER, dest.top, true);
          const before = dest.b.slice();

          appendRecords(dest.b, o, src.b, bit, side);

          const chosen = hashes
            .map((h, i) => ({ h, i }))
            .filter(({ h }) => bit < 0 || ((h >>> (31 - bit)) & 1) === side);
          const n = destRecs.length;
          expect(dv.getUint16(o + H_COUNT, true)).toBe(n + chosen.length);
          let upper = dest.top;
          for (let j = 0; j < chosen.length; j++) {
            const { h, i } = chosen[j]!;
            upper -= src.bytes[i]!.length;
            const s = o + HEADER_SIZE + BUCKET.stride * (n + j);
            expect(dv.getUint32(s, true) >>> 0).toBe(h);
            expect(dv.getUint16(s + 4, true)).toBe(upper);
            expect(dest.b.subarray(o + upper, o + upper + src.bytes[i]!.length)).toEqual(
              src.bytes[i],
            );
          }
          expect(dv.getUint32(o + H_UPPER, true)).toBe(upper);
          // Nothing else changed: the records and slots there before, the free bytes, the
          // pages around.
          const slotsEnd = o + HEADER_SIZE + BUCKET.stride * (n + chosen.length);
          const slotsStart = o + HEADER_SIZE + BUCKET.stride * n;
          for (let i = 0; i < dest.b.length; i++) {
            const written =
              (i >= slotsStart && i < slotsEnd) ||
              (i >= o + upper && i < o + dest.top) ||
              (i >= o + H_COUNT && i < o + H_COUNT + 2) ||
              (i >= o + H_UPPER && i < o + H_UPPER + 4);
            if (!written && dest.b[i] !== before[i]) expect.fail(`byte ${i} changed`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
