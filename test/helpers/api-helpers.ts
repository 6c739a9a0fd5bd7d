// Shared helpers of the public-API tests (test/api): temp folders that track the databases
// opened in them, MapKVError assertions, byte snapshots of files and a seeded PRNG.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';
import { expect } from 'vitest';

import {
  MapKVError,
  open,
  type Database,
  type EncodingsFor,
  type OpenOptions,
} from '../../src/index';

/**
 * A temp folder under os.tmpdir(); `open()` opens a database in it and remembers it, and
 * `cleanup()` closes every database still open and deletes the folder.
 */
export class ApiFolder {
  readonly dir: string;
  private readonly dbs: Database<any, any>[] = [];

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-api-'));
  }

  /** An absolute path inside the folder. */
  file(name = 'db.mkv'): string {
    return path.join(this.dir, name);
  }

  /** Opens (and tracks) a database at `file` (default: the folder's db.mkv). */
  open<K = any, V = any>(
    options: OpenOptions & EncodingsFor<K, V> = {},
    file = this.file(),
  ): Database<K, V> {
    const db = open<K, V>(file, options);
    this.dbs.push(db as Database<any, any>);
    return db;
  }

  /**
   * Runs check() on every database still open (a test that writes must leave a healthy
   * file), closes them and deletes the folder. Throws when a check found problems.
   */
  async cleanup(): Promise<void> {
    const unhealthy: string[] = [];
    for (const db of this.dbs.splice(0)) {
      try {
        const result = db.check();
        if (!result.ok) unhealthy.push(`${db.path}: ${result.problems.join('; ')}`);
      } catch (err) {
        if (!(err instanceof MapKVError && err.code === 'ERR_CLOSED'))
          unhealthy.push(`${db.path}: check() threw ${String(err)}`);
      }
      try {
        await db.close();
      } catch {
        // A test may have broken it on purpose; the folder goes anyway.
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (unhealthy.length > 0)
      throw new Error(`check() failed at the end of the test:\n${unhealthy.join('\n')}`);
  }
}

/** The error `fn` throws (fails the test when it returns). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw, but it returned');
}

/** Asserts that `fn` throws a MapKVError with `code`; returns the error. */
export function expectCode(fn: () => unknown, code: string): MapKVError {
  const err = thrown(fn);
  expect(err, `expected MapKVError ${code}, got ${String(err)}`).toBeInstanceOf(MapKVError);
  expect((err as MapKVError).code).toBe(code);
  expect(err).toBeInstanceOf(Error);
  return err as MapKVError;
}

/** Asserts that `p` rejects with a MapKVError with `code`. */
export async function expectRejectCode(p: Promise<unknown>, code: string): Promise<MapKVError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected a rejection with MapKVError ${code}`).toBeInstanceOf(MapKVError);
  expect((err as MapKVError).code).toBe(code);
  return err as MapKVError;
}

/** The bytes of a file right now. */
export function bytesOf(file: string): Buffer {
  return fs.readFileSync(file);
}

/** Asserts that `file` holds exactly `before` (compared without printing megabytes). */
export function expectUnchanged(file: string, before: Buffer): void {
  const after = fs.readFileSync(file);
  expect(after.length, 'file size changed').toBe(before.length);
  expect(after.equals(before), 'file bytes changed').toBe(true);
}

/** Asserts that db.check() reports a healthy file. */
export function expectHealthy(db: Database<any, any>): void {
  expect(db.check()).toEqual({ ok: true, problems: [] });
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same sequence. */
export function prng(seed: number): { next(): number; int(n: number): number } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}

/** A zero-padded string key: key(7) === 'k0007'. */
export function key(i: number, width = 4): string {
  return `k${String(i).padStart(width, '0')}`;
}

/** Byte-wise comparison of two strings' UTF-8 forms (the order of string keys). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Waits one macrotask turn (after the batched writes queued so far have committed). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The repository root (where package.json is). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Builds dist/ (npx tsc -p tsconfig.build.json) when dist/index.js is missing. */
export function ensureDist(): void {
  if (fs.existsSync(path.join(REPO_ROOT, 'dist', 'index.js'))) return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'pipe' });
}

let freshBuild: { dir: string; index: string } | null = null;

/**
 * Transpiles the current src/ into a temp folder (not dist/, which may be stale or shared)
 * for tests that run the library in a child process; returns the path of its index.js. It is
 * a per-file transpile (ts.transpileModule, as vitest does), not a type-checking build. The
 * folder gets `build` and `node_modules` symlinks so the addon and the dependencies resolve
 * as they do from dist/. Built once per test file; `removeFreshBuild()` deletes it.
 */
export function freshBuildIndex(): string {
  if (freshBuild !== null) return freshBuild.index;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-api-build-'));
  fs.symlinkSync(path.join(REPO_ROOT, 'build'), path.join(dir, 'build'));
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const srcDir = path.join(REPO_ROOT, 'src');
  const outDir = path.join(dir, 'dist');
  const compilerOptions: ts.CompilerOptions = {
    module: ts.ModuleKind.CommonJS,
    target: ts.ScriptTarget.ES2022,
    esModuleInterop: true,
    preserveConstEnums: true,
  };
  const walk = (from: string): void => {
    for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
      const full = path.join(from, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const out = path.join(outDir, path.relative(srcDir, full)).replace(/\.ts$/, '.js');
        const { outputText } = ts.transpileModule(fs.readFileSync(full, 'utf8'), {
          compilerOptions,
          fileName: full,
        });
        fs.mkdirSync(path.dirname(out), { recursive: true });
        fs.writeFileSync(out, outputText);
      }
    }
  };
  walk(srcDir);
  freshBuild = { dir, index: path.join(outDir, 'index.js') };
  return freshBuild.index;
}

/** Deletes the folder made by freshBuildIndex(), if any. */
export function removeFreshBuild(): void {
  if (freshBuild === null) return;
  fs.rmSync(freshBuild.dir, { recursive: true, force: true });
  freshBuild = null;
}
