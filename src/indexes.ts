/**
 * The index kinds behind a database, behind one interface: the API layer dispatches on the
 * descriptor's kind and never on layouts.
 */
import { type ValueRef, treeGetFlat, treePut, treeRemove } from './btree/btree';
import { checkTree } from './btree/check';
import { TreeCursor } from './btree/cursor';
import { MapKVError } from './errors';
import { DbKind, type DbDescriptor } from './format/meta';
import { hashIndex } from './hash/index';
import type { PageReader, PageWriter } from './txn/pages';

/** Positioned iteration over an index of one snapshot. */
export interface IndexCursor {
  /** First entry with key >= k (first entry when k is null). */
  seek(k: Uint8Array | null, kl: number): boolean;
  /** Last entry with key < k (last entry when k is null). */
  seekBefore(k: Uint8Array | null, kl: number): boolean;
  next(): boolean;
  prev(): boolean;
  keyBuf(): Uint8Array;
  keyStart(): number;
  keyLength(): number;
  value(out: ValueRef): void;
  /** Re-targets the cursor at another root of the same reader (after a write). */
  reset(r: PageReader, d: DbDescriptor): void;
}

/** What `check()` asks of an index: visit every page it owns and report damage. */
export interface IndexCheck {
  /** Marks pages as reachable; returns false when a page was already marked. */
  visit(pgno: number, pages: number, what: string): void;
  problem(message: string): void;
}

export interface Index {
  get(r: PageReader, d: DbDescriptor, k: Uint8Array, kl: number, out: ValueRef): boolean;
  put(
    w: PageWriter,
    d: DbDescriptor,
    k: Uint8Array,
    kl: number,
    v: Uint8Array,
    vl: number,
  ): boolean;
  remove(w: PageWriter, d: DbDescriptor, k: Uint8Array, kl: number): boolean;
  cursor(r: PageReader, d: DbDescriptor, pageLimit: number): IndexCursor;
  /** Walks the index; returns the entries found. */
  check(r: PageReader, d: DbDescriptor, c: IndexCheck, label: string): number;
}

export const btreeIndex: Index = {
  get: treeGetFlat,
  put: treePut,
  remove: treeRemove,
  cursor: (r, d, pageLimit) => new TreeCursor(r, d, pageLimit),
  check: checkTree,
};

const kinds = new Map<DbKind, Index>([
  [DbKind.BTree, btreeIndex],
  [DbKind.Hash, hashIndex],
]);

/** Registers the implementation of an index kind. */
export function registerIndex(kind: DbKind, index: Index): void {
  kinds.set(kind, index);
}

export function indexFor(kind: DbKind): Index {
  const index = kinds.get(kind);
  if (index === undefined)
    throw new MapKVError('ERR_INCOMPATIBLE', `this mapkv cannot read index kind ${kind}`);
  return index;
}
