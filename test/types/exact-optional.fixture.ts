/**
 * Options passed as `undefined`, the way code compiled with `exactOptionalPropertyTypes`
 * writes them. exact-optional.test.ts compiles this file with that flag on; the runtime
 * treats `undefined` as an option left out.
 */
import { open, type Database, type OrderedKey } from '../../src/index';

export async function undefinedOptions(
  db: Database<OrderedKey, unknown>,
  flag: boolean | undefined,
  n: number | undefined,
  key: OrderedKey | undefined,
): Promise<void> {
  const other = open('other.mkv', {
    readOnly: flag,
    sync: undefined,
    pageSize: n,
    keyEncoding: undefined,
    valueEncoding: undefined,
    verifyChecksums: flag,
    segmentSize: n,
    populate: flag,
    msgpack: undefined,
    lockTimeout: n,
    maxReaders: n,
    ttl: undefined,
  });
  db.openDB('sub', { kind: undefined, keyEncoding: undefined, valueEncoding: undefined });
  const cache = db.openDB('cache', { ttl: n });
  cache.putSync('k', 1, { ttl: n });
  await cache.put('k', 1, { ttl: undefined });
  cache.transactionSync((txn) => txn.put('k', 1, { ttl: n }));
  cache.purgeExpiredSync({ limit: n });
  await cache.purgeExpired({ limit: undefined });
  db.range({ start: key, end: key, reverse: flag, limit: n, prefix: key });
  db.count({ limit: n });
  await db.backup('copy.mkv', { compact: flag });
  await other.close();
}
