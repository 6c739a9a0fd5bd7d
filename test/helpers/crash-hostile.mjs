// The reader child of the hostile file harness (test/hostile/hostile.test.ts).
//
//   node --max-old-space-size=512 crash-hostile.mjs MANIFEST.json [FIRST_INDEX]
//
// MANIFEST: { expected: { subs, final, prev }, items: [{ id, file, readOnly, verifyChecksums,
// segmentSize, write }] }. For each item from FIRST_INDEX on, it writes `BEGIN <id>`, opens
// the (damaged) file, reads all of it - every database forward and in reverse, counts, point
// reads of every known key, bounded ranges, a snapshot, stats() and check() - optionally
// writes to it and checks again, closes it, and writes `END <id> <json>` with what happened.
// It never judges: the parent does. A process that dies between BEGIN and END names its
// culprit.
import { createHash } from 'node:crypto';
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { open, MapKVError } = require('../../dist/index.js');

const [manifestPath, firstArg] = process.argv.slice(2);
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const { expected, items } = manifest;

function say(line) {
  writeSync(1, `${line}\n`);
}

/** Binary as its length and hash (cheaper to compare than hex); the rest as it is. */
function plain(v) {
  if (v instanceof Uint8Array) return binary(v);
  if (
    typeof v === 'object' &&
    v !== null &&
    typeof v.hex === 'string' &&
    Object.keys(v).length === 1
  )
    return binary(Buffer.from(v.hex, 'hex'));
  return v;
}

function binary(bytes) {
  return { bin: bytes.length, sha1: createHash('sha1').update(bytes).digest('base64') };
}

function line(key, value) {
  return JSON.stringify([plain(key), plain(value)]);
}

/** Canonical text of one database's content (hash databases sorted by key). */
function digest(lines, kind) {
  const l = kind === 'hash' ? [...lines].sort() : lines;
  return l.join('\n');
}

const kinds = { '': 'btree', ...expected.subs };
function expectedDigests(content) {
  const out = {};
  for (const [name, kind] of Object.entries(kinds))
    out[name] = digest(
      (content[name] ?? []).map(([k, v]) => line(k, v)),
      kind,
    );
  return out;
}
const wantFinal = expectedDigests(expected.final);
const wantPrev = expectedDigests(expected.prev);

/**
 * Keys named in the expected content of database `name`, as the API takes them: every one of
 * a small database, about 120 spread over a large one (point reads are the slow part).
 */
const known = new Map();
function knownKeys(name) {
  if (known.has(name)) return known.get(name);
  const keys = new Map();
  for (const content of [expected.final, expected.prev])
    for (const [k] of content[name] ?? []) keys.set(JSON.stringify(k), k);
  const all = [...keys.values()];
  const step = Math.max(1, Math.floor(all.length / 120));
  const picked = all.filter((_, i) => i % step === 0 || typeof all[i] !== 'string');
  known.set(name, picked);
  return picked;
}

function errorInfo(err, phase) {
  if (err instanceof MapKVError)
    return { phase, mapkv: true, code: err.code, message: err.message };
  return {
    phase,
    mapkv: false,
    name: err?.constructor?.name ?? typeof err,
    code: err?.code,
    message: String(err?.message ?? err),
    stack: String(err?.stack ?? '')
      .split('\n')
      .slice(0, 8)
      .join('\n'),
  };
}

async function runItem(item) {
  const result = { outcome: 'data', same: null, checkOk: null, problems: [], notes: [] };
  let phase = 'open';
  let db;
  try {
    // Writes use sync 'none': this harness is about damage, not durability, and fdatasync
    // per commit would make it slow.
    const opts = {
      readOnly: item.readOnly,
      verifyChecksums: item.verifyChecksums,
      keyEncoding: expected.keyEncoding,
      valueEncoding: expected.valueEncoding,
    };
    if (!item.readOnly) opts.sync = 'none';
    if (item.segmentSize) opts.segmentSize = item.segmentSize;
    db = open(item.file, opts);
    phase = 'read';
    const handles = { '': db };
    const encodings = { keyEncoding: expected.keyEncoding, valueEncoding: expected.valueEncoding };
    for (const [name, kind] of Object.entries(expected.subs))
      handles[name] = db.openDB(name, { kind, ...encodings });
    const got = {};
    for (const [name, h] of Object.entries(handles)) {
      const kind = kinds[name];
      const fwd = [...h.range()];
      const lines = fwd.map((e) => line(e.key, e.value));
      got[name] = digest(lines, kind);
      if (kind === 'btree') {
        const rev = [...h.range({ reverse: true })].map((e) => line(e.key, e.value)).reverse();
        if (rev.join('\n') !== lines.join('\n'))
          result.notes.push(`${name}: reverse range differs`);
        if (fwd.length > 2) {
          const mid = fwd[fwd.length >> 1].key;
          const part = [...h.keys({ start: mid, limit: 10 })];
          if (part.length === 0)
            result.notes.push(`${name}: a range from an existing key is empty`);
          const below = [...h.range({ end: mid, reverse: true, limit: 5 })];
          if (below.length === 0 && fwd[0].key !== mid)
            result.notes.push(`${name}: a reverse range below an existing key is empty`);
        }
      }
      const count = h.count();
      if (count !== fwd.length) result.notes.push(`${name}: count ${count}, range ${fwd.length}`);
      const byKey = new Map(fwd.map((e) => [JSON.stringify(plain(e.key)), line(e.key, e.value)]));
      for (const k of knownKeys(name)) {
        const v = h.get(k);
        const has = h.has(k);
        const bin = h.getBinary(k);
        const inRange = byKey.get(JSON.stringify(k));
        if ((v !== undefined) !== has || (bin !== undefined) !== has)
          result.notes.push(`${name}: get/has/getBinary disagree on ${JSON.stringify(k)}`);
        if (inRange !== undefined ? line(k, v) !== inRange : has)
          result.notes.push(`${name}: get and range disagree on ${JSON.stringify(k)}`);
      }
      const snap = db.snapshot();
      try {
        const first = fwd[0]?.key;
        if (first !== undefined && snap.db(h).get(first) === undefined)
          result.notes.push(`${name}: the snapshot misses the first key`);
      } finally {
        snap.close();
      }
    }
    db.stats();
    phase = 'check';
    const check = db.check();
    result.checkOk = check.ok;
    result.problems = check.problems.slice(0, 3);
    const same = (want) => Object.keys(kinds).every((n) => got[n] === want[n]);
    result.same = same(wantFinal) ? 'final' : same(wantPrev) ? 'prev' : null;
    if (item.write && !item.readOnly) {
      phase = 'write';
      db.putSync('zz-write', { w: 1 });
      const firstKey = knownKeys('')[0];
      db.removeSync(firstKey);
      db.transactionSync((txn) => {
        txn.put('zz-txn', 2);
        for (const [name, h] of Object.entries(handles))
          if (name !== '') txn.db(h).put('zz-sub', 3);
      });
      await db.put('zz-async', 4);
      if (db.get('zz-write')?.w !== 1) result.notes.push('a write is not read back');
      phase = 'check-after-write';
      const after = db.check();
      result.checkAfterWrite = after.ok;
      result.problemsAfterWrite = after.problems.slice(0, 3);
    }
  } catch (err) {
    result.outcome = 'error';
    result.error = errorInfo(err, phase);
  }
  if (db !== undefined) {
    try {
      await db.close();
    } catch (err) {
      result.outcome = 'error';
      result.error ??= errorInfo(err, 'close');
    }
  }
  return result;
}

for (let i = Number(firstArg ?? 0); i < items.length; i++) {
  const item = items[i];
  say(`BEGIN ${item.id}`);
  const result = await runItem(item);
  say(`END ${item.id} ${JSON.stringify(result)}`);
}
say('DONE');
