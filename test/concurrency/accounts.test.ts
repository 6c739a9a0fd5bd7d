// Snapshot isolation across processes and worker_threads: money moves between 100 accounts
// in transactions committed by 4 processes x 2 workers (each worker its own handle, writes
// mixing transactionSync and batched async transactions), while every thread checks that
// every snapshot's total is unchanged and that a snapshot kept open never changes.
// A few seconds by default; MAPKV_SOAK=1 runs it for 10 minutes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { open } from '../../src/index';
import { Child } from '../helpers/mp-spawn';
import { tempFolder } from '../helpers/temp-files';

const SOAK = process.env.MAPKV_SOAK === '1';
const RUN_MS = SOAK ? 10 * 60_000 : 4_000;
const PROCESSES = 4;
const WORKERS = 2;
const ACCOUNTS = 100;
const START_BALANCE = 1000;

interface ThreadResult {
  commits: number;
  snapshots: number;
  ranges: number;
  violations: string[];
}

let folder: ReturnType<typeof tempFolder>;
beforeEach(() => {
  folder = tempFolder();
});
afterEach(() => folder.remove());

describe('accounts invariant', () => {
  it(
    `${PROCESSES} processes x ${WORKERS} workers keep every snapshot's total for ${RUN_MS} ms`,
    async () => {
      const file = folder.file('accounts.mkv');
      const setup = open<string, number>(file, { sync: 'none' });
      setup.transactionSync((txn) => {
        for (let i = 0; i < ACCOUNTS; i++)
          txn.put(`acct:${String(i).padStart(3, '0')}`, START_BALANCE);
      });
      await setup.close();

      const seed = (Date.now() % 100_000) + 1;
      // One process commits under sync 'full', the others under 'none'.
      const children = Array.from({ length: PROCESSES }, (_, p) =>
        Child.start('accounts', file, RUN_MS, seed + p, WORKERS, p === 0 ? 'full' : 'none'),
      );
      const results = (
        await Promise.all(children.map((c) => c.result<ThreadResult[]>(RUN_MS)))
      ).flat();

      const violations = results.flatMap((r) => r.violations);
      expect(violations, `seed ${seed}`).toEqual([]);
      for (const r of results) {
        // Every thread got to write and to check snapshots.
        expect(r.commits).toBeGreaterThan(0);
        expect(r.snapshots + r.ranges).toBeGreaterThan(0);
      }

      const db = open<string, number>(file, { readOnly: true });
      let total = 0;
      for (const v of db.values()) total += v;
      expect(total).toBe(ACCOUNTS * START_BALANCE);
      expect(db.count()).toBe(ACCOUNTS);
      expect(db.check()).toEqual({ ok: true, problems: [] });
      await db.close();
    },
    RUN_MS + 60_000,
  );
});
