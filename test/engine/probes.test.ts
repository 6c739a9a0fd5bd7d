/**
 * startLeafProbes (src/btree/btree.ts) reads a leaf's slots and records before the page is
 * checked, where a remembered count says the binary search will look. Those bytes may be
 * anything, and the count may come from another file or page size: every read must stay
 * inside the page, since the byte after a file's last page is past the end of the file.
 */
import { describe, expect, it } from 'vitest';
import { setLeafCountForTests, startLeafProbes } from '../../src/btree/btree';

/** A page image in the middle of a larger buffer, recording the lowest and highest index read. */
function trackedBuffer(bytes: Uint8Array): { view: Uint8Array; reads: () => [number, number] } {
  let lo = Infinity;
  let hi = -Infinity;
  const view = new Proxy(bytes, {
    get(target, prop) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) {
        const i = Number(prop);
        lo = Math.min(lo, i);
        hi = Math.max(hi, i);
        return target[i];
      }
      return Reflect.get(target, prop) as unknown;
    },
  });
  return { view, reads: () => [lo, hi] };
}

describe('leaf probes', () => {
  it('read only inside the page, whatever the slots hold and the count says', () => {
    let seed = 7;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 8;
    };
    for (const pageSize of [4096, 65536]) {
      const o = pageSize; // one page before and one after the probed page
      const pgno = 5;
      for (let round = 0; round < 300; round++) {
        const bytes = new Uint8Array(3 * pageSize);
        // Slot values near the page's end and past it, where the bounds are.
        for (let s = o; s < o + pageSize; s += 2) {
          const r = pageSize - 24 + (next() % 48);
          bytes[s] = r & 0xff;
          bytes[s + 1] = (r >>> 8) & 0xff;
        }
        const n = round < 100 ? 1 + (next() % (pageSize / 2)) : 1 + (next() % 0xffff);
        setLeafCountForTests(pgno, n);
        const { view, reads } = trackedBuffer(bytes);
        startLeafProbes(view, o, pageSize, pgno);
        const [lo, hi] = reads();
        if (hi >= lo) {
          expect(lo).toBeGreaterThanOrEqual(o);
          expect(hi).toBeLessThan(o + pageSize);
        }
      }
    }
    setLeafCountForTests(5, 0);
  });

  it('reads the slots and records of the first two search levels', () => {
    const pageSize = 4096;
    const o = 0;
    const bytes = new Uint8Array(pageSize);
    // 10 slots pointing at records 100 bytes apart.
    for (let i = 0; i < 10; i++) {
      const r = 1000 + 100 * i;
      bytes[32 + 2 * i] = r & 0xff;
      bytes[33 + 2 * i] = r >>> 8;
    }
    setLeafCountForTests(9, 10);
    const read = new Set<number>();
    const view = new Proxy(bytes, {
      get(target, prop) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) read.add(Number(prop));
        return Reflect.get(target, prop) as unknown;
      },
    });
    startLeafProbes(view, o, pageSize, 9);
    // n = 10: the search's first probe is slot 5, then slot 2 or slot 8.
    for (const slot of [5, 2, 8]) {
      expect(read.has(32 + 2 * slot)).toBe(true);
      expect(read.has(1000 + 100 * slot + 7)).toBe(true);
    }
    setLeafCountForTests(9, 0);
  });
});
