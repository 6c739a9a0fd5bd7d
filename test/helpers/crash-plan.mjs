// The deterministic workload of the kill -9 harness, shared by the writer child
// (crash-writer.mjs) and the parent test (test/crash/kill.test.ts), which replays it to know
// the exact content of the database after any number of commits.
//
// Commit n (n = 1, 2, ...) of a run with seed S is one of:
//   group   transactionSync: every key `g<G>/<i>` of group G (3 + G keys) gets { gen: n, ... },
//           and key `g<G>` of the sub-database 'side' gets { gen: n } - in one transaction, so
//           a group whose keys disagree on `gen` is a transaction seen in part
//   batch   the same writes as `group`, as `await db.put` / `side.put` calls of one event-loop
//           turn (batched into one commit)
//   drop    transactionSync removing group G from both databases
//   big     `big<J>`: 50..250 KiB of bytes derived from (S, n) - overflow pages; putSync for
//           odd n, `await db.put` for even n (an async commit that writes its pages on a thread)
//   unbig   removeSync of `big<J>`
//   single  putSync of `s<X>` = { n }
//   unsingle removeSync of `s<X>`
//
// A state is { main: Map<key, Entry>, side: Map<key, Entry> }, Entry = { kind, n, ... }.

/** mulberry32: the same seed gives the same sequence in [0, 1). */
export function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mix(a, b) {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul((b >>> 0) + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

export const GROUPS = 6;
export const BIGS = 4;
export const SINGLES = 20;

/** Keys in group `g`. */
export function groupSize(g) {
  return 3 + g;
}

/** The operation of commit `n` of run `seed`. */
export function planCommit(seed, n) {
  const r = mulberry32(mix(seed, n));
  const x = r();
  if (x < 0.3) return { kind: 'group', g: Math.floor(r() * GROUPS) };
  if (x < 0.42) return { kind: 'batch', g: Math.floor(r() * GROUPS) };
  if (x < 0.47) return { kind: 'drop', g: Math.floor(r() * GROUPS) };
  if (x < 0.62)
    return { kind: 'big', j: Math.floor(r() * BIGS), size: 50_000 + Math.floor(r() * 206_000) };
  if (x < 0.67) return { kind: 'unbig', j: Math.floor(r() * BIGS) };
  if (x < 0.9) return { kind: 'single', x: Math.floor(r() * SINGLES) };
  return { kind: 'unsingle', x: Math.floor(r() * SINGLES) };
}

/** A fresh, empty state. */
export function emptyState() {
  return { main: new Map(), side: new Map() };
}

export function cloneState(s) {
  return { main: new Map(s.main), side: new Map(s.side) };
}

/** Applies commit `n` to `state` (in place). */
export function applyCommit(state, seed, n) {
  const op = planCommit(seed, n);
  switch (op.kind) {
    case 'group':
    case 'batch':
      for (let i = 0; i < groupSize(op.g); i++)
        state.main.set(`g${op.g}/${i}`, { kind: 'grp', n, g: op.g, i });
      state.side.set(`g${op.g}`, { kind: 'side', n, g: op.g });
      break;
    case 'drop':
      for (let i = 0; i < groupSize(op.g); i++) state.main.delete(`g${op.g}/${i}`);
      state.side.delete(`g${op.g}`);
      break;
    case 'big':
      state.main.set(`big${op.j}`, { kind: 'big', n, size: op.size });
      break;
    case 'unbig':
      state.main.delete(`big${op.j}`);
      break;
    case 'single':
      state.main.set(`s${op.x}`, { kind: 'single', n });
      break;
    case 'unsingle':
      state.main.delete(`s${op.x}`);
      break;
  }
  return op;
}

/** The value stored for an entry. */
export function valueOf(seed, entry) {
  switch (entry.kind) {
    case 'grp':
      return { gen: entry.n, g: entry.g, i: entry.i, pad: 'p'.repeat(40 + 13 * entry.i) };
    case 'side':
      return { gen: entry.n, g: entry.g };
    case 'single':
      return { n: entry.n };
    case 'big':
      return bigBytes(seed, entry.n, entry.size);
  }
  throw new Error(`unknown entry kind ${entry.kind}`);
}

/** `size` bytes derived from (seed, n). */
export function bigBytes(seed, n, size) {
  const out = Buffer.allocUnsafe(size);
  const r = mulberry32(mix(seed ^ 0x5bd1e995, n));
  let i = 0;
  for (; i + 4 <= size; i += 4) out.writeUInt32LE(Math.floor(r() * 4294967296), i);
  for (; i < size; i++) out[i] = Math.floor(r() * 256);
  return out;
}

/**
 * Compares one database's entries (from a full forward range) with the expected map.
 * Returns a list of human-readable differences (empty when they match).
 */
export function diffEntries(seed, label, entries, expected) {
  const problems = [];
  const seen = new Set();
  for (const { key, value } of entries) {
    seen.add(key);
    const e = expected.get(key);
    if (e === undefined) {
      problems.push(`${label}: unexpected key ${key} = ${describe(value)}`);
      continue;
    }
    const want = valueOf(seed, e);
    if (!sameValue(value, want))
      problems.push(`${label}: ${key} = ${describe(value)}, expected ${describe(want)}`);
  }
  for (const key of expected.keys()) if (!seen.has(key)) problems.push(`${label}: missing ${key}`);
  return problems;
}

/** Every group is all-or-nothing: all keys present with one gen, and the side key agrees. */
export function groupProblems(mainEntries, sideEntries) {
  const problems = [];
  const main = new Map(mainEntries.map((e) => [e.key, e.value]));
  const side = new Map(sideEntries.map((e) => [e.key, e.value]));
  for (let g = 0; g < GROUPS; g++) {
    const gens = [];
    for (let i = 0; i < groupSize(g); i++) gens.push(main.get(`g${g}/${i}`)?.gen);
    gens.push(side.get(`g${g}`)?.gen);
    if (new Set(gens).size !== 1)
      problems.push(`group ${g} is seen in part: gens ${gens.map(String).join(',')}`);
  }
  return problems;
}

function sameValue(a, b) {
  if (Buffer.isBuffer(b)) return a instanceof Uint8Array && Buffer.from(a).equals(b);
  if (typeof b !== 'object' || b === null) return a === b;
  if (typeof a !== 'object' || a === null) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return kb.every((k) => a[k] === b[k]);
}

function describe(v) {
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
