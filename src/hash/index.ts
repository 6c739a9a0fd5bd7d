/**
 * The hash index kind (`openDB(name, { kind: 'hash' })`): point lookups through a
 * copy-on-write hash table, iteration in no particular order. docs/HASH.md describes it.
 */
import type { Index } from '../indexes';
import { checkHash } from './check';
import { HashCursor } from './cursor';
import { hashGet, hashPut, hashRemove } from './table';

export const hashIndex: Index = {
  get: hashGet,
  put: hashPut,
  remove: hashRemove,
  cursor: (r, d, pageLimit) => new HashCursor(r, d, pageLimit),
  check: checkHash,
};
