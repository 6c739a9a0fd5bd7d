// Reproduction of BUGS.md #9 (fixed): worker.terminate() on a worker awaiting async commits under
// sync 'full' crashed the whole process with SIGSEGV (exit code 139) in about one run of three.
// Not part of `npm test`: it needs a loaded machine and many rounds, and a crash takes the
// process down. Exit code 0 and "check() clean" is the pass.
//
//   npm run build:ts && node test/crash/worker-terminate.mjs [mode] [rounds]
//
// mode: 'put' (await db.put in a loop; crashed before the fix), 'putSync' or 'none' (await
// db.put under sync 'none'): controls that never crashed. Run 4 at once on 2 cores.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { open } = require('../../dist/index.js');

if (isMainThread) {
  const mode = process.argv[2] ?? 'put';
  const rounds = Number(process.argv[3] ?? 150);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-wterm-'));
  const file = path.join(dir, 'db.mkv');
  const db = open(file, { lockTimeout: 5_000 });
  for (let round = 0; round < rounds; round++) {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { file, mode, round } });
    await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await new Promise((r) => setTimeout(r, 2 + (round % 7) * 3));
    await w.terminate();
    db.putSync('main', round); // the ended worker's lock is free
  }
  console.log(`${mode}: ${rounds} workers ended, check() ${db.check().ok ? 'clean' : 'NOT clean'}`);
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
} else {
  const { file, mode, round } = workerData;
  const db = open(file, { sync: mode === 'none' ? 'none' : 'full', lockTimeout: 60_000 });
  parentPort.postMessage('ready');
  for (let i = 0; ; i++) {
    if (mode === 'putSync') {
      db.putSync(`r${round}:${i % 100}`, i);
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    } else await db.put(`r${round}:${i % 100}`, i);
  }
}
