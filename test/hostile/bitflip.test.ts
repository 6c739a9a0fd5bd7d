// Issue #4 part 3, the design choice: wrong data is acceptable only if check() reports it. Every
// page in use (reachable from the newest meta, or a meta) has a CRC32C, so one flipped bit
// anywhere in such a page - header, slots, records, free space inside the page, the padding of
// an overflow run, either meta - must make check() report a problem, or open fail with
// ERR_CORRUPT. check() itself must report, never throw (its contract).
// Default 400 flips; MAPKV_SOAK=1: 20,000. In-process on MemoryStorage: no mapping, no risk of
// a signal, so this runs fast; the child-process harness covers crashes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MapKVError } from '../../src/errors';
import { openOn } from '../../src/open';
import { MemoryStorage } from '../../src/storage/memory';
import { crashFolder, level, mix, rng, runSeed, budget } from '../helpers/crash-common';
import { type BaseFile, buildBase } from '../helpers/crash-mutants';

const folder = crashFolder('bitflip');
const bases: BaseFile[] = [];
beforeAll(async () => {
  bases.push(await buildBase(folder.file('base-4k.mkv'), 4096, true));
  bases.push(await buildBase(folder.file('base-8k.mkv'), 8192, false, true));
}, 60_000);
afterAll(() => folder.remove());

/** 'open' / 'check' when the flip was noticed, or the reason it was not. */
async function detect(bytes: Uint8Array): Promise<{ seen: boolean; how: string }> {
  let db;
  try {
    db = openOn(MemoryStorage.fromImage(bytes, { readOnly: true }), '', {});
  } catch (err) {
    if (err instanceof MapKVError && err.code === 'ERR_CORRUPT') return { seen: true, how: 'open' };
    return { seen: false, how: `open threw ${String(err)}` };
  }
  try {
    const c = db.check();
    return c.ok ? { seen: false, how: 'check() is ok' } : { seen: true, how: 'check' };
  } catch (err) {
    return { seen: false, how: `check() threw instead of reporting: ${String(err)}` };
  } finally {
    // Awaited: a pending close keeps the storage (and its buffers) alive.
    await db.close();
  }
}

describe('one flipped bit in a page in use is always reported', () => {
  it(
    'check() reports every flipped bit (or open fails with ERR_CORRUPT)',
    async () => {
      const seed = runSeed();
      const flips = level(400, 20_000);
      const misses: string[] = [];
      const tally = { open: 0, check: 0, missed: 0 };
      for (let i = 0; i < flips; i++) {
        const r = rng(mix(seed, i));
        const base = bases[i % 3 === 2 ? 1 : 0]!;
        const ps = base.map.pageSize;
        const p = r.pick(base.map.usedPages);
        const bit = r.int(ps * 8);
        const bytes = new Uint8Array(base.bytes);
        bytes[p * ps + (bit >> 3)]! ^= 1 << (bit & 7);
        const d = await detect(bytes);
        if (d.seen) tally[d.how as 'open' | 'check']++;
        else {
          tally.missed++;
          const type = base.bytes[p * ps + 4];
          if (misses.length < 20)
            misses.push(
              `flip #${i}: ${ps}-byte pages, page ${p} (type ${type}), byte ${bit >> 3} bit ${bit & 7}: ${d.how}`,
            );
        }
      }
      console.log(`[bit flips] seed ${seed}: ${JSON.stringify(tally)}`);
      expect(misses, `seed ${seed} (MAPKV_SEED=${seed})`).toEqual([]);
    },
    budget(600_000),
  );
});
