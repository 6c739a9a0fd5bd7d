// Issue #4 part 3 - damaged and hostile files, read in a child process.
//
// Valid files holding every page type (see buildBase) are damaged at random (crash-mutants.ts:
// bit flips, junk bytes, truncation, extension, swapped/duplicated/zeroed pages, zeroed metas,
// stale page copies, header/record/meta/freelist fields set to extreme values with the page
// checksum recomputed). A child (crash-hostile.mjs, --max-old-space-size=512) opens each one -
// read-only or read-write, with and without verifyChecksums, with 1 GiB or 64 KiB segments -
// and reads all of it, sometimes writes to it, printing `BEGIN <id>` first so a child that
// dies names its culprit. Failures:
// - CRASH: the child ends on a signal (SIGSEGV, SIGBUS, SIGABRT of an out-of-memory) or an
//   unexpected exit;
// - HANG: a batch runs past 20 s;
// - FOREIGN: an error other than MapKVError ERR_CORRUPT / ERR_INCOMPATIBLE escapes;
// - SILENT: the data read is neither the last commit nor the one before (a damaged newest
//   meta falls back to it), or reads disagree with each other, and check() says ok - for
//   damage only: a forged page (checksum recomputed) may validly hold other values;
// - WRITE-BROKE: a file that read right and checked clean fails check() after writes.
// Default 1000 mutants; MAPKV_SOAK=1: 50,000. MAPKV_SEED=<seed> replays a run;
// MAPKV_KEEP_CULPRITS=1 keeps the file of each violation under os.tmpdir()/mapkv-hostile-culprits.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  crashFolder,
  level,
  mix,
  requireDist,
  rng,
  runSeed,
  budget,
} from '../helpers/crash-common';
import {
  type Item,
  type Violation,
  describeViolations,
  judge,
  keepCulprits,
  runBatch,
} from '../helpers/crash-hostile-run';
import { type BaseFile, buildBase, mutate } from '../helpers/crash-mutants';

const BATCH = 100;

const folder = crashFolder('hostile');
const bases: BaseFile[] = [];
const CULPRITS = path.join(os.tmpdir(), 'mapkv-hostile-culprits');

beforeAll(async () => {
  requireDist();
  bases.push(await buildBase(folder.file('base-4k.mkv'), 4096, true));
  bases.push(await buildBase(folder.file('base-8k.mkv'), 8192, false, true));
}, 60_000);
afterAll(() => folder.remove());

describe('hostile files (child process reads every damaged file)', () => {
  it(
    'every damaged file gives its data or ERR_CORRUPT/ERR_INCOMPATIBLE, never a crash',
    async () => {
      const seed = runSeed();
      const total = level(1000, 50_000);
      const tally: Record<string, number> = {};
      const count = (k: string): void => {
        tally[k] = (tally[k] ?? 0) + 1;
      };
      const violations: Violation[] = [];
      const batches = Math.ceil(total / BATCH);
      const runOne = async (bi: number): Promise<void> => {
        const base = bases[bi % 4 === 3 ? 1 : 0]!;
        const dir = path.join(folder.dir, `batch-${bi}`);
        fs.mkdirSync(dir, { recursive: true });
        const items: Item[] = [];
        for (let j = 0; j < BATCH && bi * BATCH + j < total; j++) {
          const id = bi * BATCH + j;
          const r = rng(mix(seed, id));
          const m = mutate(base, r);
          const file = path.join(dir, `m${id}.mkv`);
          fs.writeFileSync(file, m.bytes);
          const readOnly = r.chance(0.5);
          items.push({
            id,
            file,
            readOnly,
            verifyChecksums: r.chance(0.3),
            ...(r.chance(0.3) ? { segmentSize: 65536 } : {}),
            write: !readOnly && r.chance(0.6),
            desc: `${base.pageSize}-byte pages: ${m.desc}`,
            forged: m.forged,
            emptyFile: m.bytes.length === 0,
          });
        }
        const { results, violations: v } = await runBatch(base.expected, items, dir);
        for (const item of items) {
          const res = results.get(item.id);
          if (res === undefined) count('culprit');
          else if (res.outcome === 'error')
            count(`error ${res.error!.code ?? res.error!.name} at ${res.error!.phase}`);
          else if (res.same !== null && res.notes.length === 0)
            count(`data ${res.same}, check ${res.checkOk ? 'ok' : 'flags'}`);
          else count(`wrong data, check ${res.checkOk ? 'ok' : 'flags'}`);
          const bad = judge(item, res);
          if (bad !== null) v.push(bad);
        }
        keepCulprits(v, CULPRITS, String(seed));
        violations.push(...v);
        fs.rmSync(dir, { recursive: true, force: true });
      };
      // Two children at a time.
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < batches) await runOne(next++);
      };
      await Promise.all([worker(), worker()]);
      console.log(`[hostile] seed ${seed}, ${total} mutants: ${JSON.stringify(tally)}`);
      const report = describeViolations(violations);
      expect(violations.length, `seed ${seed} (MAPKV_SEED=${seed}):\n${report}`).toBe(0);
    },
    budget(1_800_000),
  );
});
