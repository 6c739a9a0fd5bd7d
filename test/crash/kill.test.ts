// Issue #4 part 1 - process crash: a child commits (putSync, multi-key transactions, batched
// puts across two databases, 50..250 KiB values by putSync or async put) and prints `ACK <n>` for every commit as it
// returns; the parent SIGKILLs it at random instants and exactly inside the commit protocol
// (after the data flush, after the meta write), then reopens the one database file, which is
// reused from kill to kill, and checks:
// - every acknowledged commit is there with its values, and at most the one commit in flight
//   beyond it (exactly the commit in flight when killed after its meta write: the page cache
//   keeps it; exactly none when killed after the data flush);
// - no transaction is visible in part (a group's keys all carry one generation);
// - check() is clean.
// Default: 30 kills under sync 'full' + 8 under 'none'; MAPKV_SOAK=1: 1000 + 200.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { open } from '../../src/index';
import {
  HELPERS,
  type PlanModule,
  type PlanState,
  crashFolder,
  level,
  loadPlan,
  mix,
  requireDist,
  rng,
  runSeed,
  budget,
} from '../helpers/crash-common';

const WRITER = path.join(HELPERS, 'crash-writer.mjs');
const folder = crashFolder('kill');
afterAll(() => folder.remove());

type Mode = 'pause-data' | 'pause-meta' | 'random';

interface KillRun {
  lines: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/**
 * Runs the writer from commit `from`; kills it as `mode` says. `waitAcks`/`delayMs` place a
 * random kill: after that many ACKs following READY, plus a delay.
 */
function runAndKill(
  file: string,
  seed: number,
  from: number,
  sync: 'full' | 'none',
  mode: Mode,
  pauseAt: number,
  waitAcks: number,
  delayMs: number,
): Promise<KillRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (mode !== 'random') {
      env.MAPKV_CRASH_PAUSE = mode === 'pause-data' ? 'data' : 'meta';
      env.MAPKV_CRASH_PAUSE_AT = String(pauseAt);
    }
    const child = spawn(process.execPath, [WRITER, file, String(seed), String(from), sync], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    const lines: string[] = [];
    let stderr = '';
    let pending = '';
    let acks = 0;
    let ready = false;
    let killing = false;
    const kill = (): void => {
      if (killing) return;
      killing = true;
      child.kill('SIGKILL');
    };
    // A writer that neither pauses nor gets killed within this bound is a harness failure.
    const guard = setTimeout(kill, 60_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.stdout.on('data', (d: string) => {
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        lines.push(line);
        if (line.startsWith('PAUSE ')) kill();
        if (line.startsWith('READY')) ready = true;
        if (line.startsWith('ACK ') && ready) acks++;
        if (mode === 'random' && ready && acks >= waitAcks && !killing) {
          if (delayMs === 0) kill();
          else setTimeout(kill, delayMs);
          // Mark as scheduled so later lines do not schedule again.
          killing = delayMs === 0;
          waitAcks = Infinity;
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (pending !== '') lines.push(pending);
      resolve({ lines, signal, code, stderr });
    });
  });
}

function tail(run: KillRun): string {
  return `${run.lines.slice(-5).join('|')} (${run.lines.length} lines) ${run.stderr.slice(-2000)}`;
}

interface Tally {
  kills: number;
  pauseData: number;
  pauseMeta: number;
  random: number;
  inFlightLanded: number;
  commits: number;
}

async function killLoop(sync: 'full' | 'none', kills: number, plan: PlanModule): Promise<Tally> {
  requireDist();
  const seed = runSeed();
  const file = folder.file(`kill-${sync}.mkv`);
  const tally: Tally = {
    kills: 0,
    pauseData: 0,
    pauseMeta: 0,
    random: 0,
    inFlightLanded: 0,
    commits: 0,
  };
  let acked = 0;
  let state: PlanState = plan.emptyState();
  for (let k = 0; k < kills; k++) {
    const r = rng(mix(seed, k));
    const mode: Mode = r.pick(['pause-data', 'pause-meta', 'random', 'random'] as const);
    const from = acked + 1;
    const pauseAt = from + r.int(4);
    const ctx = `sync '${sync}', seed ${seed} (MAPKV_SEED=${seed}), kill #${k} (${mode}, from ${from}, pauseAt ${pauseAt})`;
    const run = await runAndKill(
      file,
      seed,
      from,
      sync,
      mode,
      pauseAt,
      r.int(5),
      r.chance(0.3) ? 0 : 1 + r.int(12),
    );
    expect(run.signal, `${ctx}: the writer was not killed: ${tail(run)}`).toBe('SIGKILL');
    tally.kills++;
    const acks = run.lines.filter((l) => l.startsWith('ACK ')).map((l) => Number(l.slice(4)));
    const lastAck = acks.length > 0 ? acks[acks.length - 1]! : acked;
    const paused = run.lines.find((l) => l.startsWith('PAUSE '));
    if (mode !== 'random') {
      const phase = mode === 'pause-data' ? 'data' : 'meta';
      expect(paused, `${ctx}: no PAUSE line: ${tail(run)}`).toMatch(`PAUSE ${phase} `);
      const at = Number(paused!.split(' ')[2]);
      expect(at, `${ctx}: paused before ${pauseAt}`).toBeGreaterThanOrEqual(pauseAt);
      expect(lastAck, `${ctx}: ACK of the paused commit`).toBe(at - 1);
    }

    // The two states the file may hold: every acked commit, plus perhaps the one in flight.
    const before = plan.cloneState(state);
    for (let n = acked + 1; n <= lastAck; n++) plan.applyCommit(before, seed, n);
    const after = plan.cloneState(before);
    plan.applyCommit(after, seed, lastAck + 1);

    const db = open<string, any>(file, { readOnly: true });
    let found: number;
    try {
      const side = db.openDB<string, any>('side');
      const main = [...db.range()];
      const sideEntries = [...side.range()];
      expect(
        plan.groupProblems(main, sideEntries),
        `${ctx}: a transaction is seen in part`,
      ).toEqual([]);
      const reverse = [...db.range({ reverse: true })].reverse();
      expect(
        reverse.map((e) => e.key),
        `${ctx}: reverse range`,
      ).toEqual(main.map((e) => e.key));
      expect(db.count(), `${ctx}: count`).toBe(main.length);
      const diffBefore = [
        ...plan.diffEntries(seed, 'main', main, before.main),
        ...plan.diffEntries(seed, 'side', sideEntries, before.side),
      ];
      const diffAfter = [
        ...plan.diffEntries(seed, 'main', main, after.main),
        ...plan.diffEntries(seed, 'side', sideEntries, after.side),
      ];
      if (mode === 'pause-data') {
        expect(
          diffBefore,
          `${ctx}: killed after the data flush, expected commit ${lastAck}`,
        ).toEqual([]);
        found = lastAck;
      } else if (mode === 'pause-meta') {
        expect(
          diffAfter,
          `${ctx}: killed after the meta write, expected commit ${lastAck + 1} (page cache)`,
        ).toEqual([]);
        found = lastAck + 1;
      } else if (diffBefore.length === 0) {
        found = lastAck;
      } else {
        expect(
          diffAfter,
          `${ctx}: the file holds neither commit ${lastAck} nor ${lastAck + 1}: ${diffBefore.join('; ')}`,
        ).toEqual([]);
        found = lastAck + 1;
      }
      expect(db.check(), `${ctx}: check()`).toEqual({ ok: true, problems: [] });
    } finally {
      await db.close();
    }
    if (mode === 'pause-data') tally.pauseData++;
    else if (mode === 'pause-meta') tally.pauseMeta++;
    else tally.random++;
    if (found === lastAck + 1 && mode === 'random') tally.inFlightLanded++;
    state = found === lastAck ? before : after;
    acked = found;
  }
  tally.commits = acked;
  return tally;
}

describe('kill -9 (process crash)', () => {
  let plan: PlanModule;

  it(
    "sync 'full': every acknowledged commit survives, nothing partial, check() clean",
    async () => {
      plan = await loadPlan();
      const tally = await killLoop('full', level(30, 1000), plan);
      console.log(`[kill -9] sync 'full': ${JSON.stringify(tally)}`);
      expect(tally.pauseData + tally.pauseMeta).toBeGreaterThan(0);
    },
    budget(600_000),
  );

  it(
    "sync 'none': every returned commit survives a process crash (the page cache does)",
    async () => {
      plan ??= await loadPlan();
      const tally = await killLoop('none', level(8, 200), plan);
      console.log(`[kill -9] sync 'none': ${JSON.stringify(tally)}`);
    },
    budget(600_000),
  );
});
