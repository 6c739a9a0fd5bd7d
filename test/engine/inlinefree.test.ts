/**
 * The meta's inline free list (format version 2, docs/FORMAT.md): a small commit keeps the
 * pages it frees in its meta instead of writing free-list pages, the list moves into the
 * directory and back when it outgrows the meta, and version-1 files still open.
 */
import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { crc32c } from '../../src/format/crc32c';
import { readMeta } from '../../src/format/meta';
import {
  ApiFolder,
  bytesOf,
  expectCode,
  expectHealthy,
  expectUnchanged,
  key,
  prng,
} from '../helpers/api-helpers';
import { spyOnWritev } from '../helpers/writev-spy';

const PS = 4096;
let folder: ApiFolder;
let file: string;
beforeEach(() => {
  folder = new ApiFolder();
  file = folder.file();
});
afterEach(async () => {
  await folder.cleanup();
});

/** Both metas of the file as readMeta sees them, newest first. */
function metas(bytes: Buffer) {
  return [0, 1]
    .map((slot) => ({ slot, r: readMeta(bytes, slot * PS, slot, PS) }))
    .flatMap(({ slot, r }) => (r.ok ? [{ slot, meta: r.meta }] : []))
    .sort((a, b) => b.meta.txnId - a.meta.txnId);
}

/** Re-seals meta slot `slot` of `bytes` after an edit. */
function reseal(bytes: Buffer, slot: number): void {
  bytes.writeUInt32LE(crc32c(bytes, slot * PS + 4, (slot + 1) * PS), slot * PS);
}

describe('inline free list', () => {
  it('a single put commit writes its tree path and its meta, no free-list page', () => {
    const db = folder.open<string, string>({ valueEncoding: 'string' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 5_000; i++) txn.put(key(i, 6), `value ${i}`);
    });
    const rnd = prng(7);
    for (let i = 0; i < 20; i++) db.putSync(key(rnd.int(5_000), 6), `warm ${i}`);
    const depth = db.stats().depth;
    const spy = spyOnWritev();
    try {
      for (let i = 0; i < 50; i++) {
        spy.calls.length = 0;
        db.putSync(key(rnd.int(5_000), 6), `new ${i}`);
        // The tree path and the meta: free-list pages (types 5 and 6) would add two.
        expect(spy.calls.reduce((n, bytes) => n + bytes, 0) / PS).toBe(depth + 1);
      }
    } finally {
      spy.restore();
    }
    const [newest] = metas(bytesOf(file));
    // The pages the last commit freed are in its meta, tagged with its txn.
    expect(newest!.meta.inlineFree?.some((g) => g.txn === newest!.meta.txnId)).toBe(true);
    expect(db.stats().freePages).toBe(newest!.meta.freePages);
    expectHealthy(db);
  });

  it('a snapshot held through many commits: the list spills into the directory and back', () => {
    const db = folder.open<string, number>({ sync: 'none' });
    db.transactionSync((txn) => {
      for (let i = 0; i < 3_000; i++) txn.put(key(i, 5), i);
    });
    const snap = db.snapshot();
    const rnd = prng(11);
    const model = new Map<string, number>();
    let spilled = false;
    for (let i = 0; i < 600; i++) {
      const k = key(rnd.int(3_000), 5);
      db.putSync(k, -i - 1);
      model.set(k, -i - 1);
      if (i % 100 === 99) expectHealthy(db);
      if (metas(bytesOf(file))[0]!.meta.freeDir !== 0) spilled = true;
    }
    // Nothing could be reused while the snapshot pinned the first commit: 600 commits' freed
    // pages do not fit one meta page.
    expect(spilled).toBe(true);
    // Invariant 4: no page the snapshot reaches was reused, inline list or not.
    for (let i = 0; i < 3_000; i++) expect(snap.get(key(i, 5))).toBe(i);
    snap.close();
    const pagesAtRelease = db.stats().pages;
    for (let i = 0; i < 600; i++) {
      const k = key(rnd.int(3_000), 5);
      db.putSync(k, i);
      model.set(k, i);
    }
    // Reused: the commits after the release took freed pages, not new ones.
    expect(db.stats().pages).toBe(pagesAtRelease);
    for (const [k, v] of model) expect(db.get(k)).toBe(v);
    expectHealthy(db);
  });

  it('a version-1 file opens, reads and takes commits; the first marks both metas version 2', async () => {
    const db = folder.open<string, number>();
    db.transactionSync((txn) => {
      for (let i = 0; i < 500; i++) txn.put(key(i), i);
    });
    await db.close();
    const bytes = bytesOf(file);
    for (const slot of [0, 1]) {
      // A first commit frees nothing, so neither meta has an inline list: as version 1 wrote.
      expect(bytes.readUInt32LE(slot * PS + 172)).toBe(0);
      bytes.writeUInt32LE(1, slot * PS + 36);
      // Version 1 left the word at 172 zero, and never read it: garbage there means nothing.
      bytes.writeUInt32LE(0xdeadbeef, slot * PS + 172);
      reseal(bytes, slot);
    }
    fs.writeFileSync(file, bytes);
    const again = folder.open<string, number>();
    expect(again.get(key(123))).toBe(123);
    expectHealthy(again);
    // The first commit marks the meta before it version 2 as well: a build that reads only
    // version 1 would otherwise open at that one and write over the new commit.
    again.putSync(key(0), -1);
    const once = bytesOf(file);
    expect([0, 1].map((slot) => once.readUInt32LE(slot * PS + 36))).toEqual([2, 2]);
    expect(metas(once)).toHaveLength(2);
    // The fallback kept everything else: the word at 172 is 0 now (no inline list).
    expect(metas(once)[1]!.meta.inlineFree).toBeUndefined();
    expectHealthy(again);
    for (let i = 0; i < 20; i++) again.putSync(key(i), -i);
    expect(again.get(key(7))).toBe(-7);
    expectHealthy(again);
    await again.close();
    const after = bytesOf(file);
    expect(metas(after).map((m) => after.readUInt32LE(m.slot * PS + 36))).toEqual([2, 2]);
  });

  it('a meta whose inline list runs past its page is passed over, and check() says so', async () => {
    const db = folder.open<string, number>();
    for (let i = 0; i < 30; i++) db.putSync(key(i), i);
    await db.close();
    const bytes = bytesOf(file);
    const [newest, older] = metas(bytes);
    expect(newest!.meta.inlineFree?.length).toBeGreaterThan(0);
    bytes.writeUInt32LE(100_000, newest!.slot * PS + 172);
    reseal(bytes, newest!.slot);
    fs.writeFileSync(file, bytes);
    const again = folder.open<string, number>({ readOnly: true });
    expect(again.stats().txnId).toBe(older!.meta.txnId);
    expect(again.get(key(28))).toBe(28);
    const { ok, problems } = again.check();
    expect(ok).toBe(false);
    expect(problems.join('\n')).toContain('inline free list');
    await again.close();
  });

  it('an inline free page outside the file is ERR_CORRUPT at open; the file is unchanged', async () => {
    const db = folder.open<string, number>();
    for (let i = 0; i < 30; i++) db.putSync(key(i), i);
    await db.close();
    const bytes = bytesOf(file);
    for (const { slot, meta } of metas(bytes)) {
      const groups = meta.inlineFree ?? [];
      expect(groups.length).toBeGreaterThan(0);
      // The first page number of the first group, after the written list and the group head.
      const at = slot * PS + 176 + 4 * (meta.written?.length ?? 0) + 12;
      bytes.writeUInt32LE(meta.pageCount + 5, at);
      reseal(bytes, slot);
    }
    fs.writeFileSync(file, bytes);
    const before = bytesOf(file);
    expectCode(() => folder.open(), 'ERR_CORRUPT');
    expectCode(() => folder.open({ readOnly: true }), 'ERR_CORRUPT');
    expectUnchanged(file, before);
  });
});
