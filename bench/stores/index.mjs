// Store registry: loads adapters by name and turns a failure to load into a "skipped" reason.
import mapkv from './mapkv.mjs';
import lmdb from './lmdb.mjs';
import sqlite from './sqlite.mjs';
import level from './level.mjs';

export const ALL_STORES = [mapkv, lmdb, sqlite, level];
export const STORE_NAMES = ALL_STORES.map((s) => s.name);

/** { adapter, version } or { skipped: reason }. Never throws for a store that fails to load. */
export function loadStore(name) {
  const adapter = ALL_STORES.find((s) => s.name === name);
  if (!adapter) return { skipped: `unknown store '${name}' (known: ${STORE_NAMES.join(', ')})` };
  try {
    const { version } = adapter.load();
    return { adapter, version };
  } catch (err) {
    const msg = String(err?.message ?? err).split('\n')[0];
    return { skipped: msg };
  }
}
