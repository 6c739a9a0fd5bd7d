/**
 * BUGS.md #9, the part a single thread can reproduce at will: when a worker is being ended,
 * the addon cannot make a promise (napi_create_promise fails), starts nothing, and returns
 * undefined from fdatasyncAsync / writeAsync. An async commit that meets that must fail - its
 * promises reject, it is never taken for a finished flush - and leave a file that opens clean,
 * holding either the commit before or the failed one whole. The race with worker.terminate()
 * itself is exercised by test/crash/worker-terminate.mjs and the worker tests; here the addon's
 * answer is stood in for, deterministically.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { type Database, open } from '../../src/index';
import { native } from '../../src/storage/native';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function fileIn(): string {
  const dir = fs.mkdtempSync(join(tmpdir(), 'mapkv-thread-ending-'));
  dirs.push(dir);
  return join(dir, 'db.mkv');
}

function openAt(file: string): Database<string, string> {
  return open<string, string>(file, {
    sync: 'full',
    keyEncoding: 'string',
    valueEncoding: 'string',
  });
}

/** Reopens `file`: check() clean, and the keys of `before` hold their values. */
async function expectWhole(file: string, before: Map<string, string>): Promise<void> {
  const db = openAt(file);
  try {
    expect(db.check().problems).toEqual([]);
    for (const [k, v] of before) expect(db.get(k)).toBe(v);
  } finally {
    await db.close();
  }
}

it('an async commit whose fdatasync cannot be started rejects, and the file stays whole', async () => {
  const file = fileIn();
  const db = openAt(file);
  const before = new Map<string, string>();
  for (let i = 0; i < 20; i++) {
    db.putSync(`k${i}`, `v${i}`);
    before.set(`k${i}`, `v${i}`);
  }
  const fdatasyncAsync = native.fdatasyncAsync;
  let calls = 0;
  native.fdatasyncAsync = () => {
    calls++;
    return undefined;
  };
  try {
    await expect(db.put('late', 'x')).rejects.toThrow(/fdatasync was not started/);
  } finally {
    native.fdatasyncAsync = fdatasyncAsync;
  }
  expect(calls).toBeGreaterThan(0);
  await db.close().catch(() => undefined);
  await expectWhole(file, before);
});

it('an async commit whose page writes cannot be started rejects, and the file stays whole', async () => {
  const file = fileIn();
  const db = openAt(file);
  const before = new Map([['first', 'one']]);
  db.putSync('first', 'one');
  const writeAsync = native.writeAsync;
  let calls = 0;
  native.writeAsync = () => {
    calls++;
    return undefined;
  };
  try {
    // Enough pages (>= 32 KiB) that the commit writes them on the thread pool.
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 2_000; i++) puts.push(db.put(`key${i}`, 'x'.repeat(100)));
    const results = await Promise.allSettled(puts);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/pwritev was not started/);
  } finally {
    native.writeAsync = writeAsync;
  }
  expect(calls).toBeGreaterThan(0);
  // Nothing of the failed commit was written: reads still see the commit before it.
  expect(db.get('key0')).toBeUndefined();
  await db.close().catch(() => undefined);
  await expectWhole(file, before);
});
