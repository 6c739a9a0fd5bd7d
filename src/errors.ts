/**
 * Every error mapkv raises on purpose is a {@link MapKVError} with a stable string `code`.
 * System errors (ENOSPC, EIO, ...) keep Node's shape: `code`, `errno`, `syscall`, `path`.
 */

/** The codes a {@link MapKVError} can carry. */
export type MapKVErrorCode =
  | 'ERR_CLOSED'
  | 'ERR_READ_ONLY'
  | 'ERR_KEY_TOO_LARGE'
  | 'ERR_BAD_KEY'
  | 'ERR_BAD_VALUE'
  | 'ERR_BAD_OPTION'
  | 'ERR_TXN_DONE'
  | 'ERR_CORRUPT'
  | 'ERR_INCOMPATIBLE'
  | 'ERR_LOCKED'
  | 'ERR_READERS_FULL';

/** The error class of the library: check `err.code`, never the message. */
export class MapKVError extends Error {
  /** What went wrong, as a stable code (see {@link MapKVErrorCode} and the README's table). */
  readonly code: MapKVErrorCode;

  /**
   * mapkv raises these itself; constructing one is useful mainly in tests and wrappers.
   *
   * @param code - The error's `code`.
   * @param message - A human-readable description; it may change between versions.
   * @param options - `cause`: the underlying error, if any (as for `Error`).
   */
  constructor(code: MapKVErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MapKVError';
    this.code = code;
  }
}

/**
 * Checks an options argument and returns a plain copy of it to use instead: an object (not an
 * array) whose own keys are all in `known`. A misspelt option is refused rather than ignored:
 * ignored, `kindd: 'hash'` would create a B+tree for good. The copy holds each known option
 * read once (through getters and prototypes, as a plain read would), so a getter that throws
 * is ERR_BAD_OPTION here, and one that answers differently each time cannot pass validation
 * with one value and be used with another.
 */
export function checkOptionKeys<T>(opts: T, known: ReadonlySet<string>, what: string): T {
  let keys: string[];
  const copy: Record<string, unknown> = {};
  try {
    if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
      throw new MapKVError('ERR_BAD_OPTION', `${what} options must be an object`);
    keys = Object.keys(opts);
    for (const k of known) {
      const v: unknown = (opts as Record<string, unknown>)[k];
      if (v !== undefined) copy[k] = v;
    }
  } catch (err) {
    if (err instanceof MapKVError) throw err;
    // A revoked proxy throws on every look; a getter may throw.
    throw new MapKVError('ERR_BAD_OPTION', `${what} options could not be read: ${String(err)}`, {
      cause: err,
    });
  }
  for (const k of keys) {
    if (!known.has(k)) {
      throw new MapKVError(
        'ERR_BAD_OPTION',
        `unknown ${what} option '${k}' (known: ${[...known].join(', ')})`,
      );
    }
  }
  return copy as T;
}

/** Throws ERR_CORRUPT: the one way the engine reports a file that breaks an invariant. */
export function corrupt(message: string): never {
  throw new MapKVError('ERR_CORRUPT', `database file is damaged: ${message}`);
}

/** A Node-style system error (`code`, `errno`, `syscall`, `path`), for faults raised in JS. */
export interface SystemError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

/** Builds a Node-shaped system error, used by fault injection and the storage layer. */
export function systemError(code: string, syscall: string, path?: string): SystemError {
  const err = new Error(`${code}: ${syscall} failed${path ? ` on '${path}'` : ''}`) as SystemError;
  err.code = code;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}
