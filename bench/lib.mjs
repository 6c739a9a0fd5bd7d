// Shared pieces of the benchmark harness: data set, PRNG, encoder, temp dirs, sizes, stats.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';

/** The one msgpack encoder every store's values are compared against (no record extension). */
export const packr = new Packr({ useRecords: false });

/** 'key' + 8 zero-padded digits: 'key00000042'. Fixed width, so string order = numeric order. */
export function keyOf(i) {
  return 'key' + String(i).padStart(8, '0');
}

/** The value stored under keyOf(i) by the load; writes use the same shape with another n. */
export function valueOf(i) {
  return { name: 'value', n: i, tags: ['a', 'b'] };
}

/** mulberry32: small, fast, seeded; the same seed gives every store the same sequence. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` random indexes in [0, n) from `seed`. */
export function randomIndexes(seed, count, n) {
  const next = prng(seed);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.floor(next() * n);
  return out;
}

/** A fresh, empty directory under `base` (default os.tmpdir()). */
export function makeTempDir(store, base = os.tmpdir()) {
  return fs.mkdtempSync(path.join(base, `mapkv-bench-${store}-`));
}

export function removeDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Apparent size in bytes of every file under `dir` (data, log, WAL, lock files: all of it). */
export function dirSize(dir) {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += dirSize(p);
    else if (entry.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

/** Filesystem type of the mount holding `dir` (Linux only; 'unknown' elsewhere). */
export function fsTypeOf(dir) {
  try {
    const real = fs.realpathSync(dir);
    let best = { mount: '', type: 'unknown' };
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ');
      if (!mount) continue;
      const prefix = mount.endsWith('/') ? mount : mount + '/';
      if ((real === mount || real.startsWith(prefix)) && mount.length > best.mount.length) {
        best = { mount, type };
      }
    }
    return best.type;
  } catch {
    return 'unknown';
  }
}

/** `--name=value` and `--flag` arguments as an object; anything else is an error. */
export function parseArgs(argv) {
  const opts = {};
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unknown argument '${arg}'`);
    opts[m[1]] = m[2] === undefined ? true : m[2];
  }
  return opts;
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Resolves on the next event-loop turn (after I/O and the setImmediate queue so far). */
export function nextTurn() {
  return new Promise((resolve) => setImmediate(resolve));
}

export function gc() {
  if (typeof globalThis.gc === 'function') globalThis.gc();
}

/** Byte-wise equality of two Uint8Arrays (Buffers included). */
export function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Version of an installed package, found beside its resolved entry point (ignores "exports"). */
export function packageVersion(require, name) {
  let dir = path.dirname(require.resolve(name));
  while (dir !== path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (pkg.name === name) return pkg.version;
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

/** Median latency (ms) of `count` 4 KiB write + fdatasync pairs in `base`: how fast the disk is. */
export function fdatasyncProbe(base, count = 100) {
  const dir = makeTempDir('fsync', base);
  const fd = fs.openSync(path.join(dir, 'probe'), 'w');
  const block = Buffer.alloc(4096, 1);
  const times = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      fs.writeSync(fd, block, 0, block.length, (i % 16) * 4096);
      fs.fdatasyncSync(fd);
      times.push(performance.now() - t0);
    }
  } finally {
    fs.closeSync(fd);
    removeDir(dir);
  }
  return median(times);
}
