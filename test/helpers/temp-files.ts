// Temporary folders and child processes for the native and storage tests.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The helper script run as a second process (see its header for the commands). */
export const CHILD_MAP = path.resolve(__dirname, 'child-map.mjs');

/** A fresh folder under the OS temp dir; `remove()` deletes it and everything in it. */
export function tempFolder(): { dir: string; file(name: string): string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapkv-test-'));
  return {
    dir,
    file: (name) => path.join(dir, name),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** Runs the child helper to completion; returns its stdout, throwing if it failed. */
export function runChild(args: string[], nodeArgs: string[] = []): string {
  const result = spawnSync(process.execPath, [...nodeArgs, CHILD_MAP, ...args], {
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    throw new Error(`child ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Starts the child helper's `hold-lock` and resolves once it holds the lock. `release()` ends
 * its stdin, which makes it unlock and exit, and resolves when it has exited.
 */
export async function holdLockInChild(
  file: string,
  mode: 'ex' | 'sh',
): Promise<{ release(): Promise<void> }> {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [
    CHILD_MAP,
    'hold-lock',
    file,
    mode,
  ]);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('locked\n')) resolve();
    });
    void exited.then((code) => reject(new Error(`lock child exited (${code}): ${stderr}`)));
  });
  return {
    async release() {
      child.stdin.end();
      await exited;
    },
  };
}
