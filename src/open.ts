/**
 * `open()`: validates options, creates the folder and file when missing, and builds the root
 * database handle.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Database, type OpenOptions, Store, resolveEncoding } from './database';
import { KEY_ENCODING_NAMES, VALUE_ENCODING_NAMES } from './encoding/index';
import { MapKVError } from './errors';
import { isValidPageSize } from './format/layout';
import { MappedStorage } from './storage/mapped';
import type { Storage } from './storage/storage';
import { type CommitHooks, Environment } from './txn/env';

const KNOWN_OPTIONS = new Set([
  'readOnly',
  'sync',
  'pageSize',
  'keyEncoding',
  'valueEncoding',
  'verifyChecksums',
  'segmentSize',
  'populate',
]);

/**
 * Opens the database file at `path` (creating it and its folder when missing, unless
 * `readOnly`). See OpenOptions for the options and their defaults.
 */
export function open<K = unknown, V = unknown>(
  path: string,
  options: OpenOptions = {},
): Database<K, V> {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new MapKVError('ERR_BAD_OPTION', 'open needs a file path (a non-empty string)');
  }
  validateOptions(options);
  const readOnly = options.readOnly === true;
  const full = resolve(path);
  if (!readOnly) mkdirSync(dirname(full), { recursive: true });
  const storage = MappedStorage.open(full, {
    readOnly,
    ...(options.segmentSize !== undefined ? { segmentSize: options.segmentSize } : {}),
    ...(options.populate !== undefined ? { populate: options.populate } : {}),
  });
  try {
    return openOn<K, V>(storage, full, options);
  } catch (err) {
    storage.close();
    throw err;
  }
}

/** @internal Opens a database over any Storage (MemoryStorage in tests). */
export function openOn<K = unknown, V = unknown>(
  storage: Storage,
  path: string,
  options: OpenOptions = {},
  hooks?: CommitHooks,
): Database<K, V> {
  validateOptions(options);
  const env = Environment.open(storage, {
    ...(options.pageSize !== undefined ? { pageSize: options.pageSize } : {}),
    sync: options.sync ?? 'full',
    verifyChecksums: options.verifyChecksums === true,
    ...(hooks !== undefined ? { hooks } : {}),
  });
  try {
    const main = env.meta.main;
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
      main.valueEncoding,
      options.valueEncoding,
      'main',
    );
    return new Database<K, V>(new Store(env, path), keyEncoding, valueEncoding);
  } catch (err) {
    env.close();
    throw err;
  }
}

function validateOptions(o: OpenOptions): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new MapKVError('ERR_BAD_OPTION', 'options must be an object');
  for (const k of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(k)) throw new MapKVError('ERR_BAD_OPTION', `unknown option '${k}'`);
  }
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
  if (o.segmentSize !== undefined) {
    const s = o.segmentSize;
    if (!Number.isInteger(s) || s < 65536 || s > 2 ** 30 || (s & (s - 1)) !== 0) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        'segmentSize must be a power of two from 64 KiB to 1 GiB',
      );
    }
  }
}
