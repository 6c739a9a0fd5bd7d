/**
 * Chooses the key and value encoders named by the `keyEncoding` and `valueEncoding` options.
 * Each call returns an encoder the caller may use alone: value encoders keep reusable scratch
 * state, so two databases never share one.
 */
import type { Options as MsgpackOptions } from 'msgpackr';
import { MapKVError } from '../errors';
import { binaryKeyEncoder, orderedKeyEncoder, stringKeyEncoder, uint32KeyEncoder } from './keys';
import {
  createBinaryValueEncoder,
  createJsonValueEncoder,
  createMsgpackValueEncoder,
  createStringValueEncoder,
} from './values';
import type { KeyEncoder, ValueEncoder } from './types';

export type { OrderedKey } from './keys';
export type { KeyEncoder, ValueEncoder } from './types';

/** The names the `keyEncoding` option accepts. */
export type KeyEncodingName = KeyEncoder['name'];
/** The names the `valueEncoding` option accepts. */
export type ValueEncodingName = ValueEncoder['name'];

/** The valid `keyEncoding` names, in the order the docs list them. */
export const KEY_ENCODING_NAMES: readonly KeyEncodingName[] = [
  'ordered',
  'string',
  'binary',
  'uint32',
];
/** The valid `valueEncoding` names, in the order the docs list them. */
export const VALUE_ENCODING_NAMES: readonly ValueEncodingName[] = [
  'msgpack',
  'json',
  'string',
  'binary',
];

/**
 * The key encoder called `name`. Key encoders are stateless and shared.
 * Throws MapKVError ERR_BAD_OPTION for any other name.
 */
export function createKeyEncoder(name: KeyEncodingName): KeyEncoder {
  switch (name) {
    case 'ordered':
      return orderedKeyEncoder as KeyEncoder;
    case 'string':
      return stringKeyEncoder as KeyEncoder;
    case 'binary':
      return binaryKeyEncoder as KeyEncoder;
    case 'uint32':
      return uint32KeyEncoder as KeyEncoder;
  }
  throw badOption('keyEncoding', name, KEY_ENCODING_NAMES);
}

/**
 * A new value encoder called `name`. Throws MapKVError ERR_BAD_OPTION for any other name.
 */
export function createValueEncoder(
  name: ValueEncodingName,
  msgpack?: MsgpackOptions,
): ValueEncoder {
  switch (name) {
    case 'msgpack':
      return createMsgpackValueEncoder(msgpack);
    case 'json':
      return createJsonValueEncoder();
    case 'string':
      return createStringValueEncoder() as ValueEncoder;
    case 'binary':
      return createBinaryValueEncoder() as ValueEncoder;
  }
  throw badOption('valueEncoding', name, VALUE_ENCODING_NAMES);
}

function badOption(option: string, name: unknown, valid: readonly string[]): MapKVError {
  const shown = typeof name === 'string' ? `'${name}'` : typeof name;
  return new MapKVError(
    'ERR_BAD_OPTION',
    `${option} ${shown} is not one of ${valid.map((n) => `'${n}'`).join(', ')}`,
  );
}
