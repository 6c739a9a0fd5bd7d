// Runs the hostile-file reader child (crash-hostile.mjs) over batches of damaged files and
// judges what it reports (see test/hostile/hostile.test.ts for the rules).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { HELPERS, runNode } from './crash-common';
import type { Expected } from './crash-mutants';

const CHILD = path.join(HELPERS, 'crash-hostile.mjs');
/** A batch's child must finish within this bound; past it the batch is a HANG. */
export const BATCH_TIMEOUT_MS = 20_000;

export interface Item {
  id: number;
  file: string;
  readOnly: boolean;
  verifyChecksums: boolean;
  segmentSize?: number;
  write: boolean;
  desc: string;
  /** A checksum was recomputed: a forged file, whose values may be validly different. */
  forged: boolean;
  /** The file is empty: a new database by design, not damage. */
  emptyFile?: boolean;
}

export interface ItemResult {
  outcome: 'data' | 'error';
  same: 'final' | 'prev' | null;
  checkOk: boolean | null;
  problems: string[];
  notes: string[];
  checkAfterWrite?: boolean;
  problemsAfterWrite?: string[];
  error?: {
    phase: string;
    mapkv: boolean;
    code?: string;
    name?: string;
    message: string;
    stack?: string;
  };
}

export interface Violation {
  kind: 'CRASH' | 'HANG' | 'FOREIGN' | 'SILENT' | 'WRITE-BROKE';
  item: Item;
  detail: string;
}

/** Runs one batch in as many children as it takes (one more after each culprit). */
export async function runBatch(
  expected: Expected,
  items: Item[],
  dir: string,
): Promise<{ results: Map<number, ItemResult>; violations: Violation[] }> {
  const manifest = path.join(dir, 'manifest.json');
  fs.writeFileSync(manifest, JSON.stringify({ expected, items }));
  const results = new Map<number, ItemResult>();
  const violations: Violation[] = [];
  let first = 0;
  while (first < items.length) {
    const run = await runNode(CHILD, [manifest, String(first)], {
      nodeArgs: ['--max-old-space-size=512'],
      timeoutMs: BATCH_TIMEOUT_MS,
    });
    let open: number | null = null;
    let ended = 0;
    for (const line of run.stdout.split('\n')) {
      if (line.startsWith('BEGIN ')) open = Number(line.slice(6));
      else if (line.startsWith('END ')) {
        const sp = line.indexOf(' ', 4);
        results.set(Number(line.slice(4, sp)), JSON.parse(line.slice(sp + 1)) as ItemResult);
        open = null;
        ended++;
      }
    }
    const clean = run.code === 0 && run.signal === null && !run.timedOut && open === null;
    if (clean) break;
    // The culprit is the item begun and never ended (or, if none, the next one).
    const index = items.findIndex((it) => it.id === open);
    const culprit = items[index >= 0 ? index : Math.min(first + ended, items.length - 1)]!;
    const how = run.timedOut
      ? `no END within ${BATCH_TIMEOUT_MS} ms`
      : `exit code ${run.code}, signal ${run.signal}`;
    violations.push({
      kind: run.timedOut ? 'HANG' : 'CRASH',
      item: culprit,
      detail: `${how}; stderr: ${run.stderr.slice(-1500)}`,
    });
    first = items.indexOf(culprit) + 1;
  }
  return { results, violations };
}

export function judge(item: Item, r: ItemResult | undefined): Violation | null {
  if (r === undefined) return null; // a culprit, reported as CRASH or HANG
  if (r.outcome === 'error') {
    const e = r.error!;
    if (e.mapkv && (e.code === 'ERR_CORRUPT' || e.code === 'ERR_INCOMPATIBLE')) return null;
    return {
      kind: 'FOREIGN',
      item,
      detail: `${e.phase}: ${e.mapkv ? `MapKVError ${e.code}` : `${e.name} (code ${e.code})`}: ${e.message}\n${e.stack ?? ''}`,
    };
  }
  const right = r.same !== null && r.notes.length === 0;
  // A forged page (checksum recomputed) may hold other valid values: no checksum can tell,
  // so wrong data is only a violation for damage the checksums must catch.
  if (!right && r.checkOk === true && !item.forged && item.emptyFile !== true) {
    return {
      kind: 'SILENT',
      item,
      detail: `the data read is wrong (${r.same === null ? 'neither commit' : r.notes.join('; ')}) and check() is clean`,
    };
  }
  if (right && r.checkOk === true && r.checkAfterWrite === false) {
    return {
      kind: 'WRITE-BROKE',
      item,
      detail: `check() after writes: ${(r.problemsAfterWrite ?? []).join('; ')}`,
    };
  }
  return null;
}

/** One line per violation, with everything needed to reproduce it. */
export function describeViolations(violations: Violation[], max = 40): string {
  return violations
    .slice(0, max)
    .map(
      (v) =>
        `${v.kind} mutant ${v.item.id} (${v.item.desc}; readOnly ${v.item.readOnly}, ` +
        `verifyChecksums ${v.item.verifyChecksums}, segmentSize ${v.item.segmentSize ?? 'default'}, ` +
        `write ${v.item.write}): ${v.detail}`,
    )
    .join('\n\n');
}

/**
 * Copies the damaged file of each violation to `dir` (MAPKV_KEEP_CULPRITS=1 only: the test's
 * own folder is deleted at the end) and notes where in its detail.
 */
export function keepCulprits(violations: Violation[], dir: string, tag: string): void {
  if (process.env.MAPKV_KEEP_CULPRITS !== '1') return;
  for (const v of violations) {
    fs.mkdirSync(dir, { recursive: true });
    const keep = path.join(dir, `${tag}-${v.item.id}.mkv`);
    fs.copyFileSync(v.item.file, keep);
    v.detail += `\n  file kept at ${keep}`;
  }
}
