/**
 * The reader table: slots in the lock file `${path}-lock`, mapped MAP_SHARED by every handle
 * of every process, through which writers learn the oldest snapshot any reader still reads
 * (invariant 4).
 *
 * Layout (host byte order; the file is never shared between machines):
 *
 *   header, 64 bytes
 *     0 u32 magic       LOCK_MAGIC
 *     4 u32 version     LOCK_VERSION
 *     8 u32 slot size   SLOT_SIZE
 *    12 u32 slots       the table's size: the largest `maxReaders` any open asked for. Only
 *                       raised (CAS), and only after the file was made long enough to hold it
 *    16 u32 writer pid  pid of the last writer-lock holder, 0 once released (for messages,
 *                       and a hint to a reader waiting for a commit: env.ts, "Visibility")
 *    24 u64 durable     the newest txn id a sync 'full' writer made durable; a 'full' writer
 *                       whose base is newer flushes the file before reusing pages it freed
 *    32 u64 published   the newest txn id whose commit call finished its flush (or, under
 *                       sync 'none', its write): other handles adopt no newer meta while a
 *                       writer holds the lock (env.ts, "Visibility"). Zero in a file of a
 *                       build before it, which then adopts such a meta once the lock is free
 *   slot i at 64 + 32 * i
 *     0 u32 pid         0: free. Claimed with a CAS 0 -> pid; RECLAIMING | pid while a
 *                       process clears a dead owner's slot
 *     4 u32 tid         Linux thread id of the owning thread (0: unknown)
 *     8 u64 owner       random id of the owning handle
 *    16 u64 txn         the oldest txn id the handle pins, 0 when it pins nothing
 *    24 u64 reserved
 *
 * One slot per open handle (each worker_thread opens its own). The handle stores the minimum
 * of the txn ids it pins; that lower bound also protects every later snapshot, since a page a
 * snapshot s reaches can only be freed by a txn T > s, and chunks freed by T are reused only
 * when T <= the oldest pin.
 *
 * Publishing a pin uses the classic protocol: store the txn id, fence, re-read the meta. If
 * the meta still names that txn, every writer that commits after it scans the table after
 * our store and sees the pin; if it moved on, the meta read after the fence is protected by
 * the (lower) value already stored, and the pin is raised to it.
 *
 * A slot whose process is gone (process.kill(pid, 0) throws ESRCH) or, on Linux, whose thread
 * is gone (no /proc/<pid>/task/<tid>: a worker ended without closing its database) is
 * reclaimed: at open, when the table is full, and when a writer's scan meets a slot that
 * would hold reuse back.
 */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { MapKVError } from '../errors';
import { native } from '../storage/native';

export const LOCK_MAGIC = 0x4c564b4d; // 'MKVL'
export const LOCK_VERSION = 1;
export const HEADER_SIZE = 64;
export const SLOT_SIZE = 32;
/** The most slots a table may have (1 MiB of slots). */
export const MAX_READERS = 32_768;
/** Bytes of the lock file each handle maps: the header and the largest table. */
export const TABLE_MAP_LENGTH = HEADER_SIZE + MAX_READERS * SLOT_SIZE;

export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_SLOT_SIZE = 8;
export const H_SLOTS = 12;
export const H_WRITER = 16;
export const H_DURABLE = 24;
export const H_PUBLISHED = 32;

const S_PID = 0;
const S_TID = 4;
const S_OWNER = 8;
const S_TXN = 16;

/** A slot's pid word with this bit set is being cleared by the pid in the low bits. */
const RECLAIMING = 0x8000_0000;
/** How long a live owner is trusted before its liveness is checked again. */
const ALIVE_FOR_MS = 100;

/**
 * A 64-bit word of the lock file. Writers store txn ids, which stay below 2^53; a larger word
 * is damage, and reads as ERR_CORRUPT rather than the addon's RangeError.
 */
export function loadWord64(buf: ArrayBuffer, offset: number): number {
  try {
    return native.atomicLoad64(buf, offset);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new MapKVError(
      'ERR_CORRUPT',
      `the lock file is damaged (the 64-bit word at byte ${offset} is above 2^53); delete it ` +
        'when no process has the database open',
    );
  }
}

/** The calling thread's identity: its process id and (on Linux) its thread id. */
export interface ThreadId {
  pid: number;
  tid: number;
}

let cachedThread: ThreadId | null = null;

/**
 * The calling thread's pid and Linux thread id (from /proc/thread-self; 0 where there is no
 * such file). Module state is per thread: each worker_thread loads its own copy.
 */
export function currentThread(): ThreadId {
  if (cachedThread === null) {
    let tid = 0;
    try {
      const m = /^(\d+)\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
      if (m !== null && Number(m[1]) === process.pid) tid = Number(m[2]);
    } catch {
      // Not Linux (or no /proc): threads are not told apart; a worker that ends without
      // closing its database keeps its slot until the process exits.
    }
    cachedThread = { pid: process.pid, tid };
  }
  return cachedThread;
}

/** Whether the thread `tid` of process `pid` still runs, as far as this process can tell. */
export function isAlive(pid: number, tid: number): boolean {
  const me = currentThread();
  if (pid === me.pid) {
    if (tid === 0 || tid === me.tid || me.tid === 0) return true;
    return existsSync(`/proc/self/task/${tid}`);
  }
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  if (me.tid === 0) return true;
  // Killed but not yet reaped by its parent: gone, but kill(pid, 0) still finds it.
  if (isZombie(pid)) return false;
  if (tid === 0) return true;
  // /proc/<pid> may be hidden (hidepid): only a visible process without the thread is dead.
  return !existsSync(`/proc/${pid}`) || existsSync(`/proc/${pid}/task/${tid}`);
}

/** Whether /proc says process `pid` has exited (state Z or X); false when it cannot tell. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat[stat.lastIndexOf(')') + 2];
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

/** The table over one handle's MAP_SHARED mapping of the lock file. */
export class ReaderTable {
  private readonly words: Uint32Array;
  /** owner id -> time until which it is trusted to be alive. */
  private readonly trusted = new Map<number, number>();

  constructor(private readonly buf: ArrayBuffer) {
    this.words = new Uint32Array(buf);
  }

  /** The table's size; the file holds every slot below it. */
  slots(): number {
    return Math.min(native.atomicLoad32(this.buf, H_SLOTS), MAX_READERS);
  }

  /**
   * Reclaims the slots of dead owners, then claims a free slot for the calling thread's
   * handle `owner`; returns its index, or -1 when every slot belongs to a live owner.
   */
  claim(owner: number): number {
    const me = currentThread();
    this.reclaimDead();
    for (let pass = 0; pass < 2; pass++) {
      const n = this.slots();
      for (let i = 0; i < n; i++) {
        const at = HEADER_SIZE + i * SLOT_SIZE;
        if (this.words[(at + S_PID) >> 2] !== 0) continue;
        if (!native.atomicCas32(this.buf, at + S_PID, 0, me.pid)) continue;
        // A free slot has tid, owner and txn 0 (release and reclaim clear them before the
        // pid), so until these stores land the slot reads as a live owner pinning nothing.
        native.atomicStore32(this.buf, at + S_TID, me.tid);
        native.atomicStore64(this.buf, at + S_OWNER, owner);
        return i;
      }
      // Full: an owner may have died since the sweep.
      if (pass === 0 && this.reclaimDead() === 0) break;
    }
    return -1;
  }

  /** Whether slot `i` still belongs to `owner` (a plain read: for checks, not for protocol). */
  owns(i: number, owner: number): boolean {
    const at = HEADER_SIZE + i * SLOT_SIZE;
    return (
      this.words[(at + S_PID) >> 2] === currentThread().pid &&
      this.words[(at + S_OWNER) >> 2]! + this.words[(at + S_OWNER + 4) >> 2]! * 0x1_0000_0000 ===
        owner
    );
  }

  /** Stores the oldest txn id the slot's handle pins (0: none). */
  publish(i: number, txnId: number): void {
    native.atomicStore64(this.buf, HEADER_SIZE + i * SLOT_SIZE + S_TXN, txnId);
  }

  /** Frees slot `i`, which the caller owns. */
  release(i: number): void {
    const at = HEADER_SIZE + i * SLOT_SIZE;
    native.atomicStore64(this.buf, at + S_TXN, 0);
    native.atomicStore64(this.buf, at + S_OWNER, 0);
    native.atomicStore32(this.buf, at + S_TID, 0);
    native.atomicStore32(this.buf, at + S_PID, 0);
  }

  /**
   * The oldest txn id pinned by a live slot, or `upper` when none pins anything older.
   * Slots of dead owners that would hold reuse back are reclaimed on the way.
   */
  oldest(upper: number): number {
    native.fence();
    const n = this.slots();
    const w = this.words;
    let min = upper;
    for (let i = 0; i < n; i++) {
      const at = HEADER_SIZE + i * SLOT_SIZE;
      const pid = w[(at + S_PID) >> 2]!;
      if (pid === 0 || pid >= RECLAIMING) continue;
      const txn = loadWord64(this.buf, at + S_TXN);
      if (txn === 0 || txn >= min) continue;
      if (!this.trust(at, pid)) {
        // Whoever holds the slot after this (a new owner that claimed it once freed) pins
        // what the meta says now, the base of the caller's txn: nothing it may reuse.
        this.reclaim(at, pid);
        continue;
      }
      min = txn;
    }
    return min;
  }

  /** Clears every slot whose owner is gone; returns how many. */
  reclaimDead(): number {
    const n = this.slots();
    let freed = 0;
    for (let i = 0; i < n; i++) {
      const at = HEADER_SIZE + i * SLOT_SIZE;
      const pid = this.words[(at + S_PID) >> 2]!;
      if (pid === 0) continue;
      if (pid >= RECLAIMING) {
        // A reclaim that never finished: its process died in the middle.
        if (!isAlive(pid - RECLAIMING, 0) && this.reclaim(at, pid)) freed++;
        continue;
      }
      if (!isAlive(pid, this.words[(at + S_TID) >> 2]!) && this.reclaim(at, pid)) freed++;
    }
    return freed;
  }

  /** How many slots hold a live-looking owner (for stats and tests). */
  used(): number {
    const n = this.slots();
    let used = 0;
    for (let i = 0; i < n; i++) if (this.words[(HEADER_SIZE + i * SLOT_SIZE) >> 2] !== 0) used++;
    return used;
  }

  /** Liveness of the owner of the slot at `at`, trusted for ALIVE_FOR_MS once checked. */
  private trust(at: number, pid: number): boolean {
    const w = this.words;
    const owner = w[(at + S_OWNER) >> 2]! + w[(at + S_OWNER + 4) >> 2]! * 0x1_0000_0000;
    const now = Date.now();
    const until = this.trusted.get(owner);
    if (until !== undefined && until > now) return true;
    if (!isAlive(pid, w[(at + S_TID) >> 2]!)) {
      this.trusted.delete(owner);
      return false;
    }
    if (this.trusted.size > 4 * MAX_READERS) this.trusted.clear();
    this.trusted.set(owner, now + ALIVE_FOR_MS);
    return true;
  }

  /**
   * Frees the slot at `at` of a dead owner whose pid word reads `pid`. The CAS to
   * RECLAIMING | our pid makes this process the only one to touch the slot until it is free
   * again, so a slot claimed meanwhile by a new owner is never cleared.
   */
  private reclaim(at: number, pid: number): boolean {
    const mark = (RECLAIMING | currentThread().pid) >>> 0;
    if (!native.atomicCas32(this.buf, at + S_PID, pid, mark)) return false;
    native.atomicStore64(this.buf, at + S_TXN, 0);
    native.atomicStore64(this.buf, at + S_OWNER, 0);
    native.atomicStore32(this.buf, at + S_TID, 0);
    native.atomicStore32(this.buf, at + S_PID, 0);
    return true;
  }
}
