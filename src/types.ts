/**
 * Type-level helpers of the public API: the key and value types an encoding implies, the
 * check of explicit type arguments against the encoding options, and the prefix type of
 * `range`. Nothing here exists at run time.
 */
import type { KeyEncodingName, OrderedKey, ValueEncodingName } from './encoding/index';

/**
 * The value type of a `'msgpack'` or `'json'` database opened without a value type argument:
 * `any`, as in lmdb-js, so that `txn.get('n') ?? 0` is a number to add to. Pass the value type
 * as the second type argument (`open<string, User>(...)`) to have values checked.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type DefaultValue = any;

/**
 * Whether `E`, an encoding name type, is `any` (the only name type `unknown` extends; the
 * usual `0 extends 1 & E` test is reduced to false by E's constraint).
 */
type IsAny<E> = unknown extends E ? true : false;

/**
 * The key type of a `keyEncoding`: `'string'` gives `string`, `'uint32'` `number`, `'binary'`
 * `Uint8Array`, and `'ordered'` or none (the default, or the file's encoding) {@link OrderedKey}.
 * A union of names (an options object typed `OpenOptions`) gives `OrderedKey`, which they all
 * fit in.
 *
 * @typeParam E - The `keyEncoding` option as written (a name, or `undefined` when left out).
 */
export type KeyTypeOf<E extends KeyEncodingName | undefined> =
  IsAny<E> extends true
    ? // open<any, any>(...) resolves to the overload that infers from the encodings.
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      any
    : [E] extends ['string']
      ? string
      : [E] extends ['uint32']
        ? number
        : [E] extends ['binary']
          ? Uint8Array
          : OrderedKey;

/**
 * The value type of a `valueEncoding`: `'string'` gives `string`, `'binary'` `Uint8Array`, and
 * `'msgpack'`, `'json'` or none {@link DefaultValue} (`any`).
 *
 * @typeParam E - The `valueEncoding` option as written (a name, or `undefined` when left out).
 */
export type ValueTypeOf<E extends ValueEncodingName | undefined> =
  IsAny<E> extends true
    ? DefaultValue
    : [E] extends ['string']
      ? string
      : [E] extends ['binary']
        ? Uint8Array
        : DefaultValue;

/**
 * The `keyEncoding` names that can store keys of type `K`: `'string'` for strings, `'uint32'`
 * for numbers, `'binary'` for bytes, `'ordered'` for any {@link OrderedKey}. Any name when `K`
 * is `unknown` or `any`.
 *
 * @typeParam K - The key type.
 */
export type KeyEncodingFor<K> = unknown extends K
  ? KeyEncodingName
  : | ([K] extends [string] ? 'string' : never)
    | ([K] extends [number] ? 'uint32' : never)
    | ([K] extends [Uint8Array] ? 'binary' : never)
    | ([K] extends [OrderedKey] ? 'ordered' : never);

/**
 * The `valueEncoding` names that can store values of type `V`: `'msgpack'` and `'json'` for
 * any, `'string'` for strings, `'binary'` for bytes. Any name when `V` is `unknown` or `any`.
 *
 * @typeParam V - The value type.
 */
export type ValueEncodingFor<V> = unknown extends V
  ? ValueEncodingName
  : | 'msgpack'
    | 'json'
    | ([V] extends [string] ? 'string' : never)
    | ([V] extends [Uint8Array] ? 'binary' : never);

/**
 * The encoding options that agree with explicit type arguments `<K, V>`: with
 * `open<string, User>(path, { keyEncoding: 'uint32' })` the key encoding is a compile error.
 * A function generic in `K` and `V` that passes its options on to `open<K, V>` or
 * `openDB<K, V>` types them `OpenOptions & EncodingsFor<K, V>` (or `DBOptions & ...`).
 *
 * @typeParam K - The key type given.
 * @typeParam V - The value type given.
 */
export interface EncodingsFor<K, V> {
  /** A key encoding that can store keys of type `K` (see {@link KeyEncodingFor}). */
  keyEncoding?: KeyEncodingFor<K> | undefined;
  /** A value encoding that can store values of type `V` (see {@link ValueEncodingFor}). */
  valueEncoding?: ValueEncodingFor<V> | undefined;
}

/**
 * What a transaction callback may return: anything but a promise (or other thenable). mapkv
 * transactions are synchronous, and a callback that returns a promise is refused at run time
 * with ERR_BAD_OPTION; this type makes it a compile error too.
 *
 * @typeParam T - What the callback returns.
 */
export type NotPromise<T> = T extends PromiseLike<unknown> ? never : T;

/** The tuples made of the first 0 to n elements of tuple `T`. */
type LeadingParts<T extends readonly unknown[]> = T extends readonly [...infer Init, unknown]
  ? T | Readonly<T> | LeadingParts<Init>
  : T | Readonly<T>;

/**
 * What the `prefix` option of `range` accepts for keys of type `K`: a key, or, for tuple keys,
 * any leading part of the tuple (`{ prefix: ['user'] }` for keys `[string, number]`), mutable
 * or readonly.
 *
 * @typeParam K - The key type of the database.
 */
export type KeyPrefix<K> = K extends readonly unknown[] ? LeadingParts<K> : K;
