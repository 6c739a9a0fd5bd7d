/**
 * `open()`: validates options, creates the folder and file when missing, and builds the root
 * database handle.
 */
import { closeSync, constants, mkdirSync, openSync, realpathSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  Database,
  type OpenOptions,
  Store,
  resolveEncoding,
  resolvePlainMsgpack,
} from './database';
import {
  KEY_ENCODING_NAMES,
  VALUE_ENCODING_NAMES,
  type KeyEncodingName,
  type ValueEncodingName,
} from './encoding/index';
import { checkMsgpackOptions } from './encoding/values';
import { MapKVError, checkOptionKeys } from './errors';
import { checkTtl, resolveExpiry } from './expiry';
import { isValidPageSize } from './format/layout';
import { MappedStorage } from './storage/mapped';
import type { Storage } from './storage/storage';
import { type CommitHooks, Environment } from './txn/env';
import { DEFAULT_MAX_READERS, LockFile } from './txn/lockfile';
import { MAX_READERS } from './txn/readers';
import type { EncodingsFor, KeyTypeOf, ValueTypeOf } from './types';

const KNOWN_OPTIONS = new Set([
  'readOnly',
  'sync',
  'pageSize',
  'keyEncoding',
  'valueEncoding',
  'verifyChecksums',
  'segmentSize',
  'populate',
  'msgpack',
  'lockTimeout',
  'maxReaders',
  'ttl',
]);

/**
 * Opens the database file at `path` (creating it and its folder when missing, unless
 * `readOnly`). See OpenOptions for the options and their defaults.
 *
 * Without type arguments, the key and value types follow the `keyEncoding` and
 * `valueEncoding` options ({@link KeyTypeOf}, {@link ValueTypeOf}): `open(path)` has
 * {@link OrderedKey} keys and `any` values, `open(path, { keyEncoding: 'string',
 * valueEncoding: 'binary' })` has `string` keys and `Uint8Array` values.
 *
 * @typeParam KE - Inferred from `keyEncoding`; not meant to be written.
 * @typeParam VE - Inferred from `valueEncoding`; not meant to be written.
 */
export function open<
  KE extends KeyEncodingName | undefined = undefined,
  VE extends ValueEncodingName | undefined = undefined,
>(
  path: string,
  options?: OpenOptions & { keyEncoding?: KE; valueEncoding?: VE },
): Database<KeyTypeOf<KE>, ValueTypeOf<VE>>;
/**
 * Opens the database file at `path` with the key and value types given as type arguments:
 * `open<string, User>(path, { keyEncoding: 'string' })`. An encoding option that cannot store
 * them (`keyEncoding: 'uint32'` with `string` keys) is a compile error.
 *
 * @typeParam K - The key type.
 * @typeParam V - The value type. Both are required: `open<User>(path)` does not compile, since
 *   a lone type argument would be taken for the key type.
 */
export function open<K, V>(
  path: string,
  options?: OpenOptions & EncodingsFor<K, V>,
): Database<K, V>;
export function open<K = unknown, V = unknown>(
  path: string,
  options: OpenOptions = {},
): Database<K, V> {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new MapKVError('ERR_BAD_OPTION', 'open needs a file path (a non-empty string)');
  }
  options = validateOptions(options);
  const readOnly = options.readOnly === true;
  const full = resolve(path);
  if (!readOnly) mkdirSync(dirname(full), { recursive: true });
  const created = !readOnly && createIfMissing(full);
  const storage = MappedStorage.open(full, {
    readOnly,
    ...(options.segmentSize !== undefined ? { segmentSize: options.segmentSize } : {}),
    ...(options.populate !== undefined ? { populate: options.populate } : {}),
  });
  try {
    // Every path to one file must share one lock file (writer lock and reader table), or two
    // handles could write at once and a writer could reuse pages a reader still reads: the lock
    // goes beside the file's real path, whatever symlinks led to it.
    return openOn<K, V>(storage, full, options, undefined, realpathSync(full));
  } catch (err) {
    storage.close();
    // A file this call created and never initialised (the lock file could not be opened, say)
    // is removed, so a failed open leaves no empty database behind.
    if (created && storage.size === 0) {
      try {
        unlinkSync(full);
      } catch {
        // The open's own error is the one to report.
      }
    }
    throw err;
  }
}

/**
 * @internal Opens a database over any Storage (MemoryStorage in tests). `lockPath` is the data
 * file's path the lock file is named after (`${lockPath}-lock`; open() passes the real path).
 */
export function openOn<K = unknown, V = unknown>(
  storage: Storage,
  path: string,
  options: OpenOptions = {},
  hooks?: CommitHooks,
  lockPath: string = storage.path,
): Database<K, V> {
  options = validateOptions(options);
  // A real file is shared through its lock file `${path}-lock` (writer lock, reader table);
  // a MemoryStorage (path '') belongs to this handle alone.
  const lock =
    storage.path === ''
      ? undefined
      : openLockFile(lockPath, storage.readOnly, options.maxReaders ?? DEFAULT_MAX_READERS);
  let env: Environment;
  try {
    env = Environment.open(storage, {
      ...(options.pageSize !== undefined ? { pageSize: options.pageSize } : {}),
      sync: options.sync ?? 'full',
      verifyChecksums: options.verifyChecksums === true,
      ...(hooks !== undefined ? { hooks } : {}),
      ...(lock !== undefined ? { lock } : {}),
      ...(options.lockTimeout !== undefined ? { lockTimeout: options.lockTimeout } : {}),
    });
  } catch (err) {
    lock?.close();
    throw err;
  }
  try {
    const main = env.meta.main;
    // The unnamed database's encodings are recorded by the creating open's first commit.
    const { valueId: fileValueId, expiring } = resolveExpiry(
      main.valueEncoding,
      main.keyEncoding !== 0,
      options.ttl,
      'the file was created without ttl: its unnamed database cannot expire (open ' +
        'sub-databases with openDB(name, { ttl }) for expiring entries)',
    );
    const keyEncoding = resolveEncoding(
      'key',
      KEY_ENCODING_NAMES,
      main.keyEncoding,
      options.keyEncoding,
      'main',
    );
    const valueEncoding = resolveEncoding(
      'value',
      VALUE_ENCODING_NAMES,
      fileValueId,
      options.valueEncoding,
      'main',
    );
    const plain = resolvePlainMsgpack(fileValueId, valueEncoding, options.msgpack, 'main');
    const db = new Database<K, V>(
      new Store(env, path, options.msgpack),
      keyEncoding,
      valueEncoding,
      plain,
      expiring,
      options.ttl,
    );
    // Fix the encodings in the file at once, so a later open with other options is refused
    // even if nothing was ever written.
    if (!storage.readOnly && main.keyEncoding === 0)
      db.store.runSync((txn) => db.writeContext(txn));
    return db;
  } catch (err) {
    env.close();
    throw err;
  }
}

/** Creates an empty file at `path` unless something is there; true when this call created it. */
function createIfMissing(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  closeSync(fd);
  return true;
}

/**
 * The lock file of the database at `path`. A read-only open on a read-only file system gets
 * none (undefined): nobody can write the file there, so there is no writer to coordinate with.
 */
function openLockFile(path: string, readOnly: boolean, maxReaders: number): LockFile | undefined {
  try {
    return LockFile.open(path, { maxReaders });
  } catch (err) {
    if (readOnly && (err as NodeJS.ErrnoException).code === 'EROFS') return undefined;
    throw err;
  }
}

/** Checks the options of open; returns the copy to use (see checkOptionKeys). */
function validateOptions(options: OpenOptions): OpenOptions {
  const o = checkOptionKeys(options, KNOWN_OPTIONS, 'open');
  for (const k of ['readOnly', 'verifyChecksums', 'populate'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean')
      throw new MapKVError('ERR_BAD_OPTION', `${k} must be a boolean`);
  }
  if (o.sync !== undefined && o.sync !== 'full' && o.sync !== 'none') {
    throw new MapKVError('ERR_BAD_OPTION', `sync must be 'full' or 'none', got ${String(o.sync)}`);
  }
  if (o.pageSize !== undefined && !isValidPageSize(o.pageSize)) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `pageSize must be a power of two from 4096 to 65536, got ${String(o.pageSize)}`,
    );
  }
  if (
    o.keyEncoding !== undefined &&
    !(KEY_ENCODING_NAMES as readonly unknown[]).includes(o.keyEncoding)
  ) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `keyEncoding must be one of ${KEY_ENCODING_NAMES.join(', ')}`,
    );
  }
  if (
    o.valueEncoding !== undefined &&
    !(VALUE_ENCODING_NAMES as readonly unknown[]).includes(o.valueEncoding)
  ) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `valueEncoding must be one of ${VALUE_ENCODING_NAMES.join(', ')}`,
    );
  }
  if (o.msgpack !== undefined) o.msgpack = checkMsgpackOptions(o.msgpack);
  if (o.ttl !== undefined) checkTtl(o.ttl, 'open');
  if (
    o.lockTimeout !== undefined &&
    (typeof o.lockTimeout !== 'number' || Number.isNaN(o.lockTimeout) || o.lockTimeout < 0)
  ) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `lockTimeout must be a number of milliseconds >= 0 (Infinity: wait forever), got ${String(o.lockTimeout)}`,
    );
  }
  if (
    o.maxReaders !== undefined &&
    !(Number.isInteger(o.maxReaders) && o.maxReaders >= 1 && o.maxReaders <= MAX_READERS)
  ) {
    throw new MapKVError(
      'ERR_BAD_OPTION',
      `maxReaders must be an integer from 1 to ${MAX_READERS}, got ${String(o.maxReaders)}`,
    );
  }
  if (o.segmentSize !== undefined) {
    const s = o.segmentSize;
    if (!Number.isInteger(s) || s < 65536 || s > 2 ** 30 || (s & (s - 1)) !== 0) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        'segmentSize must be a power of two from 64 KiB to 1 GiB',
      );
    }
  }
  return o;
}
