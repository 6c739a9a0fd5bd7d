import { describe, expect, it } from 'vitest';
import {
  KEY_ENCODING_NAMES,
  VALUE_ENCODING_NAMES,
  createKeyEncoder,
  createValueEncoder,
  type KeyEncodingName,
  type ValueEncodingName,
} from '../../src/encoding/index';

describe('encoder factory', () => {
  it('returns the key encoder of each documented name', () => {
    expect(KEY_ENCODING_NAMES).toEqual(['ordered', 'string', 'binary', 'uint32']);
    for (const name of KEY_ENCODING_NAMES) expect(createKeyEncoder(name).name).toBe(name);
  });

  it('returns a new value encoder of each documented name on every call', () => {
    expect(VALUE_ENCODING_NAMES).toEqual(['msgpack', 'json', 'string', 'binary']);
    for (const name of VALUE_ENCODING_NAMES) {
      const a = createValueEncoder(name);
      expect(a.name).toBe(name);
      expect(createValueEncoder(name)).not.toBe(a);
    }
  });

  it('an unknown key encoding is ERR_BAD_OPTION listing the valid names', () => {
    expect(() => createKeyEncoder('utf8' as KeyEncodingName)).toThrow(
      expect.objectContaining({
        code: 'ERR_BAD_OPTION',
        message: "keyEncoding 'utf8' is not one of 'ordered', 'string', 'binary', 'uint32'",
      }),
    );
    expect(() => createKeyEncoder(undefined as unknown as KeyEncodingName)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
    );
  });

  it('an unknown value encoding is ERR_BAD_OPTION listing the valid names', () => {
    expect(() => createValueEncoder('cbor' as ValueEncodingName)).toThrow(
      expect.objectContaining({
        code: 'ERR_BAD_OPTION',
        message: "valueEncoding 'cbor' is not one of 'msgpack', 'json', 'string', 'binary'",
      }),
    );
  });
});
