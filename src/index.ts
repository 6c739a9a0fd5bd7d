/**
 * mapkv: an embedded, memory-mapped, transactional key-value store.
 *
 * ```ts
 * import { open } from 'mapkv';
 * const db = open('data/app.mkv');
 * db.putSync('greeting', { hello: 'world' });
 * db.get('greeting'); // { hello: 'world' }
 * ```
 */
export { open } from './open';
export { MapKVError, type MapKVErrorCode } from './errors';
export {
  Database,
  DatabaseBase,
  Snapshot,
  SnapshotView,
  Transaction,
  type DBOptions,
  type DatabaseStats,
  type DbKindName,
  type Entry,
  type HashRangeOptions,
  type OpenOptions,
  type PurgeOptions,
  type PutOptions,
  type RangeOptions,
  type RangeOptionsFor,
} from './database';
export type { CheckResult } from './check';
export type { BackupOptions } from './backup';
export type { KeyEncodingName, ValueEncodingName, OrderedKey } from './encoding/index';
export type {
  DefaultValue,
  EncodingsFor,
  KeyEncodingFor,
  KeyPrefix,
  KeyTypeOf,
  NotPromise,
  ValueEncodingFor,
  ValueTypeOf,
} from './types';
