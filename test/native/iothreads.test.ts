// The addon's I/O threads (native/iothreads.cc): the threads of writeAsync and fdatasyncAsync.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../src/storage/native';
import { tempFolder } from '../helpers/temp-files';

const ADDON = path.resolve(__dirname, '../../build/Release/mapkv.node');

let folder: ReturnType<typeof tempFolder>;

beforeEach(() => {
  folder = tempFolder();
});

afterEach(() => {
  folder.remove();
});

/** Runs `source` (CommonJS, `native` bound to the addon) in a fresh Node process. */
function runChild(source: string): { status: number | null; stdout: string; stderr: string } {
  const script = `const native = require(${JSON.stringify(ADDON)});\n${source}`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Scheduling policy (field 41 of /proc/<pid>/task/<tid>/stat) of thread `tid`. */
function policyOf(tid: string | number): number {
  const stat = fs.readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count after it.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
}

/** The scheduling policy of each thread of this process. */
function threadPolicies(): number[] {
  return fs.readdirSync(`/proc/${process.pid}/task`).map(policyOf);
}

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

describe('I/O threads', () => {
  it('run under SCHED_BATCH, beside the threads of the process that do not', async () => {
    // One job per thread at once, so that every thread there may be is started.
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < native.ioThreads; i++) jobs.push(native.ioSleep(50)!);
    await Promise.all(jobs);
    const policies = threadPolicies();
    const batch = policies.filter((p) => p === SCHED_BATCH).length;
    // The I/O threads are the only threads of the process that Node or mapkv sets so.
    expect(batch).toBeGreaterThan(0);
    expect(batch).toBeLessThanOrEqual(native.ioThreads);
    // The event loop's thread: its id is the process id.
    expect(policyOf(process.pid)).toBe(SCHED_OTHER);
  });

  it('take queued jobs in order, at most ioThreads at a time', async () => {
    const order: string[] = [];
    const sleeps: Array<Promise<void>> = [];
    for (let i = 0; i < native.ioThreads; i++) {
      sleeps.push(native.ioSleep(200)!.then(() => void order.push(`sleep${i}`)));
    }
    // Queued behind the sleeps: it waits for a thread, so it settles after at least one.
    const fd = fs.openSync(folder.file('data'), 'w+');
    try {
      await native.fdatasyncAsync(fd)!.then(() => void order.push('flush'));
      await Promise.all(sleeps);
    } finally {
      fs.closeSync(fd);
    }
    expect(order.indexOf('flush')).toBeGreaterThan(0);
  });

  it('refuse a bad ioSleep argument with a TypeError or RangeError', () => {
    const ioSleep = native.ioSleep as (...args: unknown[]) => unknown;
    for (const bad of [undefined, '5', null, 5n]) expect(() => ioSleep(bad)).toThrow(TypeError);
    for (const bad of [-1, 10_001, NaN, Infinity]) expect(() => ioSleep(bad)).toThrow(RangeError);
  });

  it('keep the event loop alive while a job is outstanding, and not once none is', () => {
    // The promise is not awaited: the process must still wait for it to print.
    const busy = runChild(`native.ioSleep(200).then(() => console.log('settled'));`);
    expect(busy.stderr).toBe('');
    expect(busy.status).toBe(0);
    expect(busy.stdout.trim()).toBe('settled');
    // With the job done, nothing of the threads holds the process (the timeout above would
    // end a child that hung: status null).
    const idle = runChild(
      `native.ioSleep(1).then(() => { console.log('done'); setTimeout(() => {}, 10); });`,
    );
    expect(idle.status).toBe(0);
    expect(idle.stdout.trim()).toBe('done');
  });

  it("hold a terminated worker's end until the writes they are making for it are made", () => {
    // A write of 256 MiB takes the page-cache copies some 100 ms: long enough that a worker
    // ended under it would, if its threads were let go instead of waited for, leave the file
    // half written when terminate() resolves. Waited for, the write is whole - or was never
    // started (a job still queued when the worker ends is dropped).
    const r = runChild(`
      const { Worker } = require('node:worker_threads');
      const fs = require('node:fs');
      const file = ${JSON.stringify(folder.file('big'))};
      const size = 256 << 20;
      fs.writeFileSync(file, '');
      fs.truncateSync(file, size);
      const body = \`
        const { parentPort } = require('node:worker_threads');
        const native = require(\${JSON.stringify(${JSON.stringify(ADDON)})});
        const fd = require('node:fs').openSync(\${JSON.stringify(file)}, 'r+');
        native.writeAsync(fd, [new Uint8Array(\${size}).fill(1)], Float64Array.of(0), Uint32Array.of(1));
        parentPort.postMessage('queued');
      \`;
      (async () => {
        const w = new Worker(body, { eval: true });
        await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
        await w.terminate();
        const fd = fs.openSync(file, 'r');
        const first = Buffer.alloc(4096), last = Buffer.alloc(4096);
        fs.readSync(fd, first, 0, 4096, 0);
        fs.readSync(fd, last, 0, 4096, size - 4096);
        console.log(first[0] + ' ' + last[4095]);
      })().catch((err) => { console.error(err); process.exit(1); });
    `);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(['1 1', '0 0']).toContain(r.stdout.trim());
  });

  it('end with a worker that is terminated while they run its jobs, and work again after', () => {
    const r = runChild(`
      const { Worker } = require('node:worker_threads');
      const fs = require('node:fs');
      const file = ${JSON.stringify(folder.file('w'))};
      const body = \`
        const { parentPort } = require('node:worker_threads');
        const native = require(\${JSON.stringify(${JSON.stringify(ADDON)})});
        const fs = require('node:fs');
        const fd = fs.openSync(\${JSON.stringify(file)}, 'w+');
        for (let i = 0; i < native.ioThreads + 2; i++) native.ioSleep(300);
        const page = new Uint8Array(1 << 20).fill(1);
        native.writeAsync(fd, [page], Float64Array.of(0), Uint32Array.of(1));
        native.fdatasyncAsync(fd);
        parentPort.postMessage('queued');
      \`;
      (async () => {
        for (let round = 0; round < 3; round++) {
          const w = new Worker(body, { eval: true });
          await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
          await w.terminate();
        }
        // The main thread's own threads still work.
        const fd = fs.openSync(file, 'r+');
        const { done } = native.writeAsync(fd, [new Uint8Array(4096).fill(7)], Float64Array.of(0), Uint32Array.of(1));
        await done;
        await native.fdatasyncAsync(fd);
        fs.closeSync(fd);
        console.log(fs.readFileSync(file).subarray(0, 4096).every((x) => x === 7) ? 'ok' : 'bad');
      })().catch((err) => { console.error(err); process.exit(1); });
    `);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  });
});
