// The three ways to clear a database, for the model tests' 'clear' steps.
import fc from 'fast-check';

import type { DatabaseBase } from '../../src/index';

export type ClearHow = 'sync' | 'async' | 'txn';

/** A model test's clear step: which of the three calls it makes. */
export const clearArb = fc.record({
  t: fc.constant('clear' as const),
  how: fc.constantFrom<ClearHow>('sync', 'async', 'txn'),
});

/** Clears `db` by clearSync(), by clear() (batched) or by txn.clear() in transactionSync. */
export async function clearBy(db: DatabaseBase<any, any, any>, how: ClearHow): Promise<void> {
  if (how === 'sync') db.clearSync();
  else if (how === 'async') await db.clear();
  else db.transactionSync((txn) => txn.clear());
}
