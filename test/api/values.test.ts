// Value sizes: large values in overflow runs (1 MiB, 100 MiB), their replacement by small
// ones, and values just below and above the inline threshold (about pageSize / 4).
import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  ApiFolder,
  bytesOf,
  expectCode,
  expectHealthy,
  expectUnchanged,
} from '../helpers/api-helpers';
import { MAX_VALUE_BYTES } from '../../src/encoding/index';
import { MappedStorage } from '../../src/storage/mapped';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

const MiB = 1024 * 1024;

/** `size` bytes of a position-dependent pattern (no two nearby pages alike). */
function pattern(size: number, seed: number): Buffer {
  const block = Buffer.alloc(Math.min(size, 1 << 20) + 251);
  for (let i = 0; i < block.length; i++) block[i] = (i * 131 + seed * 17 + (i >>> 8)) & 0xff;
  const out = Buffer.allocUnsafe(size);
  // Shift the block by a prime per megabyte so the copies differ from one another.
  for (let pos = 0, n = 0; pos < size; pos += 1 << 20, n++) {
    const len = Math.min(1 << 20, size - pos);
    block.copy(out, pos, n % 251, (n % 251) + len);
  }
  return out;
}

/** Equality of two byte arrays without printing them. */
function expectSameBytes(actual: Uint8Array | undefined, expected: Uint8Array): void {
  expect(actual).toBeDefined();
  expect(actual!.length).toBe(expected.length);
  expect(Buffer.from(actual!.buffer, actual!.byteOffset, actual!.byteLength).equals(expected)).toBe(
    true,
  );
}

describe('large values', () => {
  it('a 1 MiB binary value round-trips, is replaced by a small one, and check() stays ok', async () => {
    const db = folder.open<string, Uint8Array>({ valueEncoding: 'binary' });
    const big = pattern(MiB, 1);
    db.putSync('big', big);
    db.putSync('after', Buffer.from('neighbour'));
    expectSameBytes(db.get('big'), big);
    expectSameBytes(db.getBinary('big'), big);
    expect(db.stats().fileSize).toBeGreaterThanOrEqual(MiB);
    expectHealthy(db);
    db.putSync('big', Buffer.from('small'));
    expectSameBytes(db.get('big'), Buffer.from('small'));
    expect(db.stats().freePages).toBeGreaterThanOrEqual(MiB / 4096 - 1);
    expectHealthy(db);
    // The freed run is reused: a second 1 MiB value does not grow the file much.
    const size = db.stats().fileSize;
    await db.put('big2', pattern(MiB, 2));
    expectSameBytes(db.get('big2'), pattern(MiB, 2));
    expect(db.stats().fileSize).toBeLessThanOrEqual(size + MiB / 2);
    expectHealthy(db);
    await db.close();
    const again = folder.open<string, Uint8Array>();
    expectSameBytes(again.get('big2'), pattern(MiB, 2));
    expectSameBytes(again.get('after'), Buffer.from('neighbour'));
    expectHealthy(again);
  });

  it('a 100 MiB binary value round-trips (also after a reopen), then a small value replaces it', async () => {
    const db = folder.open<string, Uint8Array>({ valueEncoding: 'binary' });
    const huge = pattern(100 * MiB, 3);
    db.putSync('huge', huge);
    expectSameBytes(db.getBinary('huge'), huge);
    expectSameBytes(db.get('huge'), huge);
    expect(db.stats().fileSize).toBeGreaterThanOrEqual(100 * MiB);
    await db.close();
    const again = folder.open<string, Uint8Array>();
    expectSameBytes(again.get('huge'), huge);
    again.putSync('huge', Uint8Array.from([1, 2, 3]));
    expectSameBytes(again.get('huge'), Uint8Array.from([1, 2, 3]));
    expect(again.stats().freePages).toBeGreaterThanOrEqual((100 * MiB) / 4096 - 1);
    expectHealthy(again);
  });

  it('a value over 4 GiB - 128 KiB is ERR_BAD_VALUE at the call, and nothing is written', async () => {
    const db = folder.open<string, Uint8Array>({ valueEncoding: 'binary' });
    db.putSync('kept', Uint8Array.from([1]));
    const before = bytesOf(folder.file());
    // Zero-filled and never touched, so the 4 GiB costs no memory. It used to reach the commit,
    // where allocating its overflow run threw a RangeError (over 2^32 bytes).
    const tooBig = new Uint8Array(MAX_VALUE_BYTES + 1);
    expectCode(() => db.putSync('big', tooBig), 'ERR_BAD_VALUE');
    expectCode(() => db.transactionSync((txn) => txn.put('big', tooBig)), 'ERR_BAD_VALUE');
    await expect(db.put('big', tooBig)).rejects.toMatchObject({ code: 'ERR_BAD_VALUE' });
    expectUnchanged(folder.file(), before);
    expect(db.has('big')).toBe(false);
  });

  // Linux writes at most 0x7ffff000 bytes per call, so a run of over 2 GiB goes out in pieces
  // of at most MappedStorage.writePiece (1 GiB). The default suite lowers the piece to 1 MiB
  // and stores 5 MiB + 12,345 bytes; MAPKV_SOAK stores 2 GiB + 12,345 bytes with the real
  // piece (about 40 s and 5 GiB of memory).
  it('a value larger than one write call round-trips, in pieces', async () => {
    const soak = process.env.MAPKV_SOAK === '1';
    const piece = MappedStorage.writePiece;
    if (!soak) MappedStorage.writePiece = MiB;
    try {
      const db = folder.open<string, Uint8Array>({ valueEncoding: 'binary', sync: 'none' });
      const size = (soak ? 2 ** 31 : 5 * MiB) + 12_345;
      const big = Buffer.allocUnsafe(size);
      for (let i = 0; i < size; i += 4096) big[i] = (i >>> 12) & 0xff;
      big[size - 1] = 7;
      db.putSync('big', big);
      expectHealthy(db);
      await db.close();
      const again = folder.open<string, Uint8Array>();
      const back = again.getBinary('big')!;
      expect(back.length).toBe(size);
      expect(back[size - 1]).toBe(7);
      for (let i = 0; i < size; i += 4096 * 97) expect(back[i]).toBe((i >>> 12) & 0xff);
    } finally {
      MappedStorage.writePiece = piece;
    }
  }, 300_000);

  it('a 1 MiB msgpack value (object with a big array) round-trips through put and transaction', async () => {
    const db = folder.open<string, unknown>();
    const arr = Array.from({ length: 100_000 }, (_, i) => i * 3);
    const obj = { arr, s: 'x'.repeat(300_000), bytes: pattern(200_000, 4) };
    await db.put('obj', obj);
    expect(db.get('obj')).toEqual(obj);
    await db.transaction((txn) => txn.put('obj2', { arr }));
    expect(db.get('obj2')).toEqual({ arr });
    db.removeSync('obj');
    expect(db.has('obj')).toBe(false);
    expectHealthy(db);
  });

  it('large values at pageSize 65536 round-trip', () => {
    const db = folder.open<string, Uint8Array>({ pageSize: 65536, valueEncoding: 'binary' });
    for (const size of [70_000, 65536 * 3, 65536 * 3 + 1, 5 * MiB + 17]) {
      const v = pattern(size, size % 251);
      db.putSync(`v${size}`, v);
      expectSameBytes(db.get(`v${size}`), v);
    }
    expectHealthy(db);
  });

  it('a file whose segments are one page each (pageSize = segmentSize = 65536) is created and used', async () => {
    // Creating it wrote both metas through the first segment, which holds only the first.
    const options = { pageSize: 65536, segmentSize: 65536, valueEncoding: 'binary' } as const;
    const db = folder.open<string, Uint8Array>(options);
    const v = pattern(3 * 65536 + 5, 7);
    db.putSync('a', v);
    expectSameBytes(db.get('a'), v);
    expectHealthy(db);
    await db.close();
    const again = folder.open<string, Uint8Array>(options);
    expectSameBytes(again.get('a'), v);
    expect(again.stats().pageSize).toBe(65536);
  });

  it('with one-page segments, a damaged meta 0 falls back to meta 1 (which lies in segment 1)', async () => {
    // Open read both metas through segment 0, so meta 1 was "cut short": ERR_CORRUPT instead
    // of the fallback, and a plain backup holding only meta 1 did not open with these options.
    const options = { pageSize: 65536, segmentSize: 65536 } as const;
    const db = folder.open<string, number>(options);
    let n = 0;
    // Until the newest commit is in meta 0 (slot = txnId % 2) and the one before in meta 1.
    while (n < 4 || db.stats().txnId % 2 !== 0) db.putSync('n', ++n);
    const txn = db.stats().txnId;
    await db.close();
    const bytes = fs.readFileSync(folder.file());
    bytes.fill(0x55, 100, 164); // inside meta 0
    fs.writeFileSync(folder.file(), bytes);
    const again = folder.open<string, number>(options);
    expect(again.stats().txnId).toBe(txn - 1);
    expect(again.get('n')).toBe(n - 1);
    const copy = folder.file('copy.mkv');
    await again.backup(copy); // of an odd txn: the copy has meta 1 only
    await again.close();
    const restored = folder.open<string, number>(options, copy);
    expect(restored.get('n')).toBe(n - 1);
  });
});

/** The largest inline leaf record of the format (header + key + value) for `pageSize`. */
function inlineLimit(pageSize: number): number {
  return Math.floor((pageSize - 32) / 4) - 2;
}

describe('strings longer than Node decodes at once (2^29 - 24 bytes of UTF-8)', () => {
  // 'é' is 2 bytes of UTF-8: 2^28 + 1000 of them are a valid string of fewer characters than
  // V8's limit whose UTF-8 is longer than Node's decoders take in one piece.
  it("round-trip under 'string' and 'json'; under msgpack are refused with nothing written", async () => {
    const db = folder.open({ sync: 'none' });
    let v: string | null = '\u00e9'.repeat(2 ** 28 + 1000);
    const s = db.openDB<string, string>('s', { valueEncoding: 'string' });
    s.putSync('big', v);
    expect(s.get('big') === v).toBe(true);
    s.removeSync('big');
    const j = db.openDB<string, unknown>('j', { valueEncoding: 'json' });
    j.putSync('big', { v });
    expect((j.get('big') as { v: string }).v === v).toBe(true);
    j.removeSync('big');
    db.putSync('small', 1);
    await db.close();
    const before = bytesOf(folder.file());
    const again = folder.open();
    // Stored, it read back as ERR_CORRUPT: msgpackr cannot decode a string that long.
    expectCode(() => again.putSync('big', v), 'ERR_BAD_VALUE');
    v = null;
    expect(again.has('big')).toBe(false);
    expectUnchanged(folder.file(), before);
  }, 120_000);
});

describe('values around the inline threshold', () => {
  for (const pageSize of [4096, 65536]) {
    it(`values of every length near pageSize/4 round-trip at pageSize ${pageSize}, grown and shrunk in place`, () => {
      const db = folder.open<Uint8Array, Uint8Array>(
        { pageSize, keyEncoding: 'binary', valueEncoding: 'binary', sync: 'none' },
        folder.file(`t${pageSize}.mkv`),
      );
      // With an 8-byte key the record is 7 + 8 + value bytes; cover 40 lengths either side.
      const edge = inlineLimit(pageSize) - 7 - 8;
      const lengths: number[] = [];
      for (let len = edge - 40; len <= edge + 40; len++) lengths.push(len);
      const keyOf = (len: number): Buffer => {
        const k = Buffer.alloc(8);
        k.writeUInt32BE(len, 4);
        return k;
      };
      db.transactionSync((txn) => {
        for (const len of lengths) txn.put(keyOf(len), pattern(len, len % 251));
      });
      for (const len of lengths) expectSameBytes(db.get(keyOf(len)), pattern(len, len % 251));
      expectHealthy(db);

      // Swap the values across the threshold: inline <-> overflow in one transaction.
      db.transactionSync((txn) => {
        for (const len of lengths) txn.put(keyOf(len), pattern(2 * edge - len, len % 13));
      });
      for (const len of lengths)
        expectSameBytes(db.get(keyOf(len)), pattern(2 * edge - len, len % 13));
      expectHealthy(db);

      // And one commit at a time, then remove every other one.
      for (const len of lengths) db.putSync(keyOf(len), pattern(len, 7));
      for (const [i, len] of lengths.entries()) if (i % 2) db.removeSync(keyOf(len));
      for (const [i, len] of lengths.entries()) {
        if (i % 2) expect(db.has(keyOf(len))).toBe(false);
        else expectSameBytes(db.get(keyOf(len)), pattern(len, 7));
      }
      expect([...db.keys()].length).toBe(Math.ceil(lengths.length / 2));
      expectHealthy(db);
    });
  }

  it('values from 0 bytes to 3 pages, with keys of the largest size, round-trip', () => {
    const db = folder.open<Uint8Array, Uint8Array>({
      keyEncoding: 'binary',
      valueEncoding: 'binary',
      sync: 'none',
    });
    const max = db.stats().maxKeySize;
    const sizes = [0, 1, 2, 100, 500, 999, 1000, 1014, 1015, 2000, 4095, 4096, 4097, 8192, 12_000];
    db.transactionSync((txn) => {
      for (const [i, size] of sizes.entries()) {
        const k = Buffer.alloc(max, i);
        txn.put(k, pattern(size, i));
      }
    });
    for (const [i, size] of sizes.entries()) {
      const k = Buffer.alloc(max, i);
      expectSameBytes(db.get(k), pattern(size, i));
    }
    expect([...db.values()].map((v) => v.length)).toEqual(sizes);
    expectHealthy(db);
  });
});
