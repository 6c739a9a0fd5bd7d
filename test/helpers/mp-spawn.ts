// Drives the child processes of the concurrency tests (mp-child.mjs): start one, wait for a
// line it prints, send it input, kill it, collect its RESULT.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { HEADER_SIZE, SLOT_SIZE, H_SLOTS } from '../../src/txn/readers';

/** The child script; it loads the package from dist/ (npm test builds it first). */
export const MP_CHILD = path.resolve(__dirname, 'mp-child.mjs');

/** How long any wait on a child may take before the test fails (never a timing assertion). */
const WAIT_MS = 60_000;

export class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';
  private err = '';
  private readonly waiters: Array<() => void> = [];

  private done = false;

  private constructor(args: string[]) {
    this.proc = spawn(process.execPath, [MP_CHILD, ...args]);
    const wake = (): void => {
      for (const w of this.waiters.splice(0)) w();
    };
    this.proc.stdout.on('data', (chunk: Buffer) => {
      this.out += chunk.toString();
      wake();
    });
    this.proc.stderr.on('data', (chunk: Buffer) => (this.err += chunk.toString()));
    // 'close' comes after the exit and after stdout and stderr are drained.
    this.exited = new Promise((resolve) => {
      this.proc.on('close', (code, signal) => {
        this.done = true;
        resolve({ code, signal });
        wake();
      });
    });
  }

  /** Starts `node mp-child.mjs ...args`. */
  static start(...args: Array<string | number>): Child {
    return new Child(args.map(String));
  }

  /** The first whole line printed that starts with `prefix` (waits up to `waitMs` for it). */
  async line(prefix: string, waitMs = WAIT_MS): Promise<string> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const found = this.out
        .split('\n')
        .slice(0, -1)
        .find((l) => l.startsWith(prefix));
      if (found !== undefined) return found;
      if (this.done) throw new Error(`child exited before printing '${prefix}': ${this.err}`);
      if (Date.now() > deadline) throw new Error(`child never printed '${prefix}': ${this.err}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 250);
      });
    }
  }

  /**
   * The parsed JSON of the `RESULT` line, once the child has exited with code 0. `runMs` is how
   * long the child was asked to run: the wait is that plus the usual margin.
   */
  async result<T = unknown>(runMs = 0): Promise<T> {
    const line = await this.line('RESULT ', runMs + WAIT_MS);
    const { code } = await this.exited;
    if (code !== 0) throw new Error(`child exited with ${code}: ${this.err}`);
    return JSON.parse(line.slice('RESULT '.length)) as T;
  }

  send(text: string): void {
    this.proc.stdin.write(text);
  }

  endInput(): void {
    this.proc.stdin.end();
  }

  /** Sends `signal` (SIGKILL by default) and waits for the child to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }

  get stderr(): string {
    return this.err;
  }
}

/** The owners (pid, Linux thread id) of the taken slots of a database's reader table. */
export function readerSlots(dbFile: string): Array<{ pid: number; tid: number }> {
  const b = fs.readFileSync(`${dbFile}-lock`);
  const slots = b.readUInt32LE(H_SLOTS);
  const owners: Array<{ pid: number; tid: number }> = [];
  for (let i = 0; i < slots; i++) {
    const at = HEADER_SIZE + i * SLOT_SIZE;
    if (at + 8 > b.length) break;
    const pid = b.readUInt32LE(at);
    if (pid !== 0) owners.push({ pid, tid: b.readUInt32LE(at + 4) });
  }
  return owners;
}

/** The pids of the taken slots of a database's reader table. */
export function readerPids(dbFile: string): number[] {
  return readerSlots(dbFile).map((s) => s.pid);
}

/** The worker script of the concurrency tests. */
export const MP_WORKER = path.resolve(__dirname, 'mp-worker.mjs');

/** Resolves after `ms` milliseconds. */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
