/**
 * Chooses the key and value encoders named by the `keyEncoding` and `valueEncoding` options.
 * Each call returns an encoder the caller may use alone: value encoders keep reusable scratch
 * state, so two databases never share one.
 */
import { constants as bufferConstants } from 'node:buffer';
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
  return limitValueSize(makeValueEncoder(name, msgpack));
}

function makeValueEncoder(name: ValueEncodingName, msgpack?: MsgpackOptions): ValueEncoder {
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

/**
 * The most bytes a stored value may have: 4 GiB - 128 KiB. A large value lives in an overflow
 * run of whole pages, header included, which a commit builds in one buffer, so the run (at most
 * the value + 32 + 65,535 bytes) must fit the largest buffer Node makes (2^32 bytes on 64-bit
 * Node 20); and a record's length field is a u32.
 */
export const MAX_VALUE_BYTES = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32) - 2 ** 17;

/** Refuses, at encode time (before any write is queued), a value too large to store. */
function limitValueSize(encoder: ValueEncoder): ValueEncoder {
  const encode = encoder.encode.bind(encoder);
  encoder.encode = (value: unknown): Uint8Array => {
    const bytes = encode(value);
    if (bytes.length > MAX_VALUE_BYTES) {
      throw new MapKVError(
        'ERR_BAD_VALUE',
        `the value is ${bytes.length} bytes encoded; the largest value is ${MAX_VALUE_BYTES} ` +
          'bytes (4 GiB - 128 KiB)',
      );
    }
    return bytes;
  };
  return encoder;
}

function badOption(option: string, name: unknown, valid: readonly string[]): MapKVError {
  const shown = typeof name === 'string' ? `'${name}'` : typeof name;
  return new MapKVError(
    'ERR_BAD_OPTION',
    `${option} ${shown} is not one of ${valid.map((n) => `'${n}'`).join(', ')}`,
  );
}
