// Shared helpers of the reliability harnesses (test/crash, test/hostile, test/faults,
// test/badargs): soak switch, seeds, a seeded PRNG, temp folders and child-process plumbing.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** True under `npm run test:soak` (MAPKV_SOAK=1): the harnesses run their long counts. */
export const SOAK = process.env.MAPKV_SOAK === '1';

/** `fast` in the default suite, `soak` under MAPKV_SOAK=1. */
export function level(fast: number, soak: number): number {
  return SOAK ? soak : fast;
}

/**
 * The seed of a harness run: MAPKV_SEED when set (to replay a failure), else a fresh one.
 * Every harness prints its seed in its failure messages.
 */
export function runSeed(): number {
  const fixed = process.env.MAPKV_SEED;
  if (fixed !== undefined && fixed !== '') return Number(fixed) >>> 0;
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
}

/** A deterministic PRNG (mulberry32); the same seed gives the same sequence. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** One element of `items`. */
  pick<T>(items: readonly T[]): T;
  /** True with probability p. */
  chance(p: number): boolean;
}

export function rng(seed: number): Rng {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
    chance: (p: number) => next() < p,
  };
}

/** Mixes two numbers into a 32-bit seed. */
export function mix(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul((b >>> 0) + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

/** A fresh folder under os.tmpdir(); `remove()` deletes it. */
export function crashFolder(tag: string): {
  dir: string;
  file(name: string): string;
  remove(): void;
} {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mapkv-${tag}-`));
  return {
    dir,
    file: (name) => path.join(dir, name),
    remove: () => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 }),
  };
}

/** Paths of the compiled engine and the child scripts. */
export const REPO = path.resolve(__dirname, '..', '..');
export const HELPERS = __dirname;

/** Fails fast with a clear message when dist/ is missing (npm test builds it first). */
export function requireDist(): void {
  if (!fs.existsSync(path.join(REPO, 'dist', 'open.js'))) {
    throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` (npm test does)');
  }
}

/** The outcome of a child process run to its end (or killed). */
export interface ChildResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/**
 * Runs `node [nodeArgs] script [args]` to completion, killing it with SIGKILL after
 * `timeoutMs` (reported as `timedOut`, never as a pass).
 */
export function runNode(
  script: string,
  args: string[],
  opts: { nodeArgs?: string[]; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (stdout += d));
    child.stderr.on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal, timedOut });
    });
  });
}

/** An entry of the kill -9 workload's model (see crash-plan.mjs). */
export interface PlanEntry {
  kind: 'grp' | 'side' | 'single' | 'big';
  n: number;
}
export interface PlanState {
  main: Map<string, PlanEntry>;
  side: Map<string, PlanEntry>;
}
export interface PlanOp {
  kind: string;
}
/** The exports of crash-plan.mjs, shared with the writer child. */
export interface PlanModule {
  emptyState(): PlanState;
  cloneState(s: PlanState): PlanState;
  applyCommit(s: PlanState, seed: number, n: number): PlanOp;
  planCommit(seed: number, n: number): PlanOp;
  diffEntries(
    seed: number,
    label: string,
    entries: { key: unknown; value: unknown }[],
    expected: Map<string, PlanEntry>,
  ): string[];
  groupProblems(
    main: { key: unknown; value: any }[],
    side: { key: unknown; value: any }[],
  ): string[];
}

/** Loads crash-plan.mjs (plain JS, so the child can import it too). */
export async function loadPlan(): Promise<PlanModule> {
  const url = new URL(`file://${path.join(HELPERS, 'crash-plan.mjs')}`).href;
  return (await import(url)) as PlanModule;
}

/** A test's time limit: `ms` in the default suite, none to speak of (6 h) under MAPKV_SOAK=1. */
export function budget(ms: number): number {
  return SOAK ? 6 * 3600_000 : ms;
}
