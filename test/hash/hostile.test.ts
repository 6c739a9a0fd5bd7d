/**
 * Damaged and hostile hash pages. Whatever the bytes of a directory, bucket, collision holder
 * or overflow page say, reads, iteration and writes either work or throw MapKVError
 * ERR_CORRUPT (never another error, a hang or a huge allocation), check() reports the damage
 * without throwing, and with verifyChecksums every read of a damaged page is refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MapKVError, type Database } from '../../src/index';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { crc32c } from '../../src/format/crc32c';
import { PageType, readU32, writeU32 } from '../../src/format/layout';
import { hashIndex } from '../../src/hash/index';
import { setHashMaskForTests } from '../../src/hash/hashkey';

const PS = 4096;
const ROUNDS = process.env.MAPKV_SOAK === '1' ? 2000 : 100;
const SEG = 65536;
const enc = { keyEncoding: 'string', valueEncoding: 'binary' } as const;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const keyOf = (i: number): string => `key${i}`;
function valueOf(i: number): Uint8Array {
  const size = i % 97 === 0 ? 3000 + i : i % 40;
  return new Uint8Array(size).fill(i & 0xff);
}

/**
 * An image of a file with a hash sub-database of `n` entries (some with overflow values), and
 * the pages the table reaches (directories, buckets, holders and their trees, overflow runs).
 */
function buildImage(n: number): { image: Uint8Array; pages: number[] } {
  const storage = new MemoryStorage({ segmentSize: SEG });
  const db = openOn<string, Uint8Array>(storage, '', enc);
  const h = db.openDB<string, Uint8Array>('h', { kind: 'hash', ...enc });
  h.transactionSync((txn) => {
    for (let i = 0; i < n; i++) txn.put(keyOf(i), valueOf(i));
  });
  // One more commit, elsewhere: damage to a page the newest (one-flush) commit wrote makes
  // open fall back to the commit before (test/crash/oneflush.test.ts); here the hash pages
  // must be read, so the newest commit lists none of them.
  db.putSync('after', valueOf(0));
  expect(db.check().problems).toEqual([]);
  const pages: number[] = [];
  const { r, desc } = h.readLatest();
  hashIndex.check(
    r,
    desc,
    {
      visit: (p, count) => {
        for (let i = 0; i < count; i++) pages.push(p + i);
      },
      problem: (m) => expect.fail(m),
    },
    'h',
  );
  const image = storage.currentImage();
  void db.close();
  return { image, pages };
}

/** Page numbers of the image whose type byte is one of `types`. */
function pagesOf(image: Uint8Array, types: number[]): number[] {
  const out: number[] = [];
  for (let p = 2; p * PS < image.length; p++) if (types.includes(image[p * PS + 4]!)) out.push(p);
  return out;
}

function fixChecksum(image: Uint8Array, pgno: number): void {
  const o = pgno * PS;
  writeU32(image, o, crc32c(image, o + 4, o + PS));
}

/** Runs `fn`; an ERR_CORRUPT counts as a refusal, any other error fails the test. */
function survive(fn: () => void): 'ok' | 'corrupt' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof MapKVError && err.code === 'ERR_CORRUPT') return 'corrupt';
    throw err;
  }
}

/** Every operation on the damaged file works or refuses; check() reports without throwing. */
async function exercise(image: Uint8Array, n: number, verifyChecksums: boolean): Promise<string[]> {
  const storage = MemoryStorage.fromImage(image, { segmentSize: SEG });
  let db: Database<string, Uint8Array>;
  try {
    db = openOn<string, Uint8Array>(storage, '', { ...enc, verifyChecksums });
  } catch (err) {
    if (err instanceof MapKVError && err.code === 'ERR_CORRUPT') return ['open refused'];
    throw err;
  }
  try {
    // First, before any write replaces a damaged page with a copy.
    const problems = db.check().problems;
    const h = db.openDB<string, Uint8Array>('h');
    for (let i = 0; i < n; i++) {
      survive(() => {
        const v = h.getBinary(keyOf(i));
        // With checksums verified, damage is refused: a read that works reads the truth.
        if (verifyChecksums && (v === undefined || Buffer.compare(v, valueOf(i)) !== 0)) {
          expect.fail(`key ${i} read wrong with checksums verified`);
        }
      });
    }
    survive(() => {
      h.has('absent');
    });
    survive(() => {
      let count = 0;
      for (const _ of h.keys()) count++;
      if (verifyChecksums) expect(count).toBe(n);
    });
    survive(() => {
      h.transactionSync((txn) => {
        for (let i = 0; i < 50; i++) txn.put(`new${i}`, valueOf(i));
        for (let i = 0; i < n; i += 7) txn.remove(keyOf(i));
        for (const _ of txn.keys()) {
          /* walk */
        }
      });
    });
    expect(() => db.check()).not.toThrow();
    return problems;
  } finally {
    await db.close();
  }
}

afterEach(() => setHashMaskForTests(-1));

describe('hostile hash pages', () => {
  for (const [name, mask, n] of [
    ['full hash', -1, 1500],
    ['four hash values: collision holders and deep directories', 0x8000_0001, 400],
  ] as const) {
    it(`random damage to hash and overflow pages is refused or reported (${name})`, async () => {
      setHashMaskForTests(mask);
      const { image, pages: targets } = buildImage(n);
      expect(targets.length).toBeGreaterThan(3);
      const rand = prng(mask + n);
      for (let round = 0; round < ROUNDS; round++) {
        const damaged = image.slice();
        const pgno = targets[Math.floor(rand() * targets.length)]!;
        const edits = 1 + Math.floor(rand() * 6);
        for (let e = 0; e < edits; e++) {
          // Mostly the header and slot area, where the numbers that are followed live.
          const at = rand() < 0.7 ? Math.floor(rand() * 256) : Math.floor(rand() * PS);
          damaged[pgno * PS + at] ^= 1 + Math.floor(rand() * 255);
        }
        const problems = await exercise(damaged, n, false);
        // Every page the table reaches is covered by a checksum: damage never goes unreported.
        expect(problems.length, `round ${round}, page ${pgno}`).toBeGreaterThan(0);
        await exercise(damaged, n, true);
      }
    }, 1_200_000);
  }

  it('a directory that points back up, or at a page of another kind, is ERR_CORRUPT', async () => {
    const { image } = buildImage(40_000);
    const dirs = pagesOf(image, [PageType.HashDirectory]);
    const root = dirs.find((p) => readU32(image, p * PS + 24) === 0)!;
    const child = dirs.find((p) => readU32(image, p * PS + 24) !== 0)!;
    expect(root).toBeDefined();
    expect(child).toBeDefined();
    const cases: Array<(img: Uint8Array) => void> = [
      // Every slot of a child directory names the root: a cycle.
      (img) => {
        for (let j = 0; j < 512; j++) writeU32(img, child * PS + 32 + 4 * j, root);
        fixChecksum(img, child);
      },
      // Every slot of the root names the root.
      (img) => {
        for (let j = 0; j < 512; j++) writeU32(img, root * PS + 32 + 4 * j, root);
        fixChecksum(img, root);
      },
      // Slots past the end of the file.
      (img) => {
        for (let j = 0; j < 512; j++) writeU32(img, root * PS + 32 + 4 * j, 0xffff_fff0 - j);
        fixChecksum(img, root);
      },
      // A directory claiming another start bit.
      (img) => {
        writeU32(img, child * PS + 24, 3);
        fixChecksum(img, child);
      },
      // Buckets claiming a huge slot count or depth.
      (img) => {
        for (const p of pagesOf(img, [PageType.HashBucket]).slice(0, 50)) {
          img[p * PS + 6] = 0xff;
          img[p * PS + 7] = 0xff;
          writeU32(img, p * PS + 24, 200);
          fixChecksum(img, p);
        }
      },
      // Record offsets pointing outside the page.
      (img) => {
        for (const p of pagesOf(img, [PageType.HashBucket]).slice(0, 50)) {
          for (let s = 0; s < 20; s++) {
            img[p * PS + 32 + 6 * s + 4] = 0xfe;
            img[p * PS + 32 + 6 * s + 5] = 0xff;
          }
          fixChecksum(img, p);
        }
      },
    ];
    for (const damage of cases) {
      const damaged = image.slice();
      damage(damaged);
      const problems = await exercise(damaged, 3000, false);
      expect(problems.length).toBeGreaterThan(0);
    }
  }, 120_000);

  it('a descriptor of an unknown hash format is ERR_INCOMPATIBLE; a bad root is ERR_CORRUPT', async () => {
    const storage = new MemoryStorage({ segmentSize: SEG });
    const db = openOn<string, Uint8Array>(storage, '', enc);
    try {
      const h = db.openDB<string, Uint8Array>('h', { kind: 'hash', ...enc });
      h.putSync('a', new Uint8Array(1));
      const { r, desc } = h.readLatest();
      const k = new TextEncoder().encode('a');
      const ref = { buf: new Uint8Array(0), start: 0, end: 0 };
      const later = { ...desc, aux: [desc.aux[0]!, desc.aux[1]!, 9, 0, 0, 0] };
      expect(() => hashIndex.get(r, later, k, 1, ref)).toThrow(
        expect.objectContaining({ code: 'ERR_INCOMPATIBLE' }),
      );
      const keyless = { ...desc, aux: [0, 0, 0, 0, 0, 0] };
      expect(() => hashIndex.get(r, keyless, k, 1, ref)).toThrow(
        expect.objectContaining({ code: 'ERR_CORRUPT' }),
      );
      const outside = { ...desc, root: r.pageCountLimit() + 5 };
      expect(() => hashIndex.get(r, outside, k, 1, ref)).toThrow(
        expect.objectContaining({ code: 'ERR_CORRUPT' }),
      );
      const problems: string[] = [];
      hashIndex.check(
        r,
        outside,
        { visit: () => undefined, problem: (m) => problems.push(m) },
        'h',
      );
      expect(problems.length).toBeGreaterThan(0);
    } finally {
      await db.close();
    }
  });
});
