import { describe, expect, it } from 'vitest';

import { MemoryStorage } from '../../src/storage/memory';

const UNIT = 4096;
const SECTOR = 512;

/** A seeded generator (mulberry32), so every random image can be replayed. */
function seededRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const alwaysDrop = (): number => 0;
const alwaysKeep = (): number => 0.5;

/** A storage of `units` durable units filled with 1, then each unit rewritten with `10 + i`. */
function rewritten(units: number): MemoryStorage {
  const storage = new MemoryStorage({ segmentSize: 4 * UNIT });
  storage.grow(units * UNIT);
  for (let i = 0; i < units; i++) write(storage, i * UNIT, UNIT, 1);
  storage.sync();
  for (let i = 0; i < units; i++) write(storage, i * UNIT, UNIT, 10 + i);
  return storage;
}

function write(storage: MemoryStorage, offset: number, length: number, value: number): void {
  for (let at = offset; at < offset + length; at++) {
    storage.writeSegment(Math.floor(at / storage.segmentSize))[at % storage.segmentSize] = value;
  }
}

describe('views', () => {
  it('the read and write views of a segment are the same array', () => {
    const storage = new MemoryStorage();
    storage.grow(UNIT);
    expect(storage.segmentSize).toBe(2 ** 20);
    expect(storage.readSegment(0)).toBe(storage.writeSegment(0));
    expect(storage.path).toBe('');
  });

  it('grown bytes read as zeros, even where a write strayed past the old size', () => {
    const storage = new MemoryStorage({ segmentSize: 4 * UNIT });
    storage.grow(UNIT);
    storage.writeSegment(0)[UNIT + 5] = 7; // past the size: never durable, zeroed by growth
    storage.grow(2 * UNIT);
    expect(storage.readSegment(0)[UNIT + 5]).toBe(0);
  });

  it('refuses bad options with ERR_BAD_OPTION', () => {
    for (const options of [
      { segmentSize: 2048 },
      { segmentSize: 3 * UNIT },
      { unitSize: 256 },
      { segmentSize: UNIT, unitSize: 2 * UNIT },
      { capacity: -1 },
    ]) {
      expect(() => new MemoryStorage(options)).toThrow(
        expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
      );
    }
  });

  it('a capacity makes growth past it fail with ENOSPC and change nothing', () => {
    const storage = new MemoryStorage({ segmentSize: 4 * UNIT, capacity: 8 * UNIT });
    storage.grow(8 * UNIT);
    expect(() => storage.grow(9 * UNIT)).toThrow(
      expect.objectContaining({ code: 'ENOSPC', syscall: 'fallocate' }),
    );
    expect(storage.size).toBe(8 * UNIT);
  });
});

describe('durable image', () => {
  it('flush copies exactly the flushed ranges into the durable image', () => {
    const storage = rewritten(4);
    storage.flush([{ offset: UNIT, length: 2 * UNIT }]);
    const durable = storage.durableImage();
    expect(durable.subarray(0, UNIT).every((b) => b === 1)).toBe(true);
    expect(durable.subarray(UNIT, 2 * UNIT).every((b) => b === 11)).toBe(true);
    expect(durable.subarray(2 * UNIT, 3 * UNIT).every((b) => b === 12)).toBe(true);
    expect(durable.subarray(3 * UNIT).every((b) => b === 1)).toBe(true);
    expect(storage.currentImage()[3 * UNIT]).toBe(13);
  });

  it('bytes written with writeAt are volatile until flushed or synced', () => {
    const storage = rewritten(3);
    const before = storage.durableImage();
    storage.writeAt(UNIT, [new Uint8Array(UNIT).fill(21)]);
    expect(storage.currentImage()[UNIT]).toBe(21);
    expect(storage.durableImage()).toEqual(before);
    storage.sync();
    expect(storage.durableImage()[UNIT]).toBe(21);
  });

  it('sync makes every byte and the size durable', () => {
    const storage = rewritten(3);
    storage.grow(5 * UNIT);
    expect(storage.durableSize).toBe(3 * UNIT);
    storage.sync();
    expect(storage.durableSize).toBe(5 * UNIT);
    expect(storage.durableImage()).toEqual(storage.currentImage());
  });

  it('a fault injected into flush leaves the durable image unchanged', () => {
    const storage = rewritten(2);
    storage.setFaultHook(() => {
      throw Object.assign(new Error('EIO'), { code: 'EIO' });
    });
    expect(() => storage.flush([{ offset: 0, length: UNIT }])).toThrow('EIO');
    expect(() => storage.sync()).toThrow('EIO');
    expect(storage.durableImage().every((b) => b === 1)).toBe(true);
  });

  it('flush refuses ranges not aligned to the unit size', () => {
    const storage = new MemoryStorage({ segmentSize: 4 * UNIT, unitSize: 2 * UNIT });
    storage.grow(4 * UNIT);
    expect(() => storage.flush([{ offset: UNIT, length: 2 * UNIT }])).toThrow(/not aligned/);
    storage.flush([{ offset: 2 * UNIT, length: 2 * UNIT }]);
  });
});

describe('crash images', () => {
  it('dropped units hold exactly the flushed bytes', () => {
    const storage = rewritten(6);
    storage.flush([
      { offset: UNIT, length: UNIT },
      { offset: 4 * UNIT, length: 2 * UNIT },
    ]);
    const image = storage.crashImage(alwaysDrop);
    expect(image).toEqual(storage.durableImage());
    const firstByteOfUnits = Array.from({ length: 6 }, (_, i) => image[i * UNIT]);
    expect(firstByteOfUnits).toEqual([1, 11, 1, 1, 14, 15]);
  });

  it('with an rng that always keeps, the image equals the current bytes', () => {
    const storage = rewritten(5);
    storage.grow(7 * UNIT);
    write(storage, 6 * UNIT, 10, 99);
    const image = storage.crashImage(alwaysKeep);
    expect(image.length).toBe(7 * UNIT);
    expect(image).toEqual(storage.currentImage());
  });

  it('torn units mix only current and durable bytes, in whole 512-byte sectors', () => {
    const storage = rewritten(8);
    storage.flush([{ offset: 2 * UNIT, length: UNIT }]);
    const current = storage.currentImage();
    const durable = storage.durableImage();
    let mixed = 0;
    for (let seed = 1; seed <= 50; seed++) {
      const image = storage.crashImage(seededRng(seed));
      expect(image.length).toBe(8 * UNIT);
      for (let unit = 0; unit < 8; unit++) {
        let fromCurrent = 0;
        let fromDurable = 0;
        for (let sector = unit * UNIT; sector < (unit + 1) * UNIT; sector += SECTOR) {
          const bytes = image.subarray(sector, sector + SECTOR);
          const isCurrent = bytes.every((b, i) => b === current[sector + i]);
          const isDurable = bytes.every((b, i) => b === durable[sector + i]);
          expect(isCurrent || isDurable).toBe(true);
          if (isCurrent && !isDurable) fromCurrent++;
          if (isDurable && !isCurrent) fromDurable++;
        }
        if (fromCurrent > 0 && fromDurable > 0) mixed++;
      }
    }
    expect(mixed).toBeGreaterThan(0); // the seeds do tear some units
  });

  it('a tear unit of 4096 tears nothing smaller than a whole unit', () => {
    const storage = rewritten(4);
    for (let seed = 1; seed <= 20; seed++) {
      const image = storage.crashImage(seededRng(seed), { tearUnit: UNIT });
      for (let unit = 0; unit < 4; unit++) {
        const value = image[unit * UNIT];
        expect(value === 1 || value === 10 + unit).toBe(true);
        expect(image.subarray(unit * UNIT, (unit + 1) * UNIT).every((b) => b === value)).toBe(true);
      }
    }
    expect(() => storage.crashImage(alwaysDrop, { tearUnit: 3 * SECTOR })).toThrow(RangeError);
  });

  it('growth is volatile until sync: an image keeps the durable size or the grown one', () => {
    const storage = rewritten(2);
    storage.grow(6 * UNIT);
    write(storage, 5 * UNIT, UNIT, 55);
    storage.flush([{ offset: 5 * UNIT, length: UNIT }]); // flushed, but the size is not durable
    expect(storage.crashImage(alwaysDrop).length).toBe(2 * UNIT);
    const grown = storage.crashImage(alwaysKeep);
    expect(grown.length).toBe(6 * UNIT);
    expect(grown[5 * UNIT]).toBe(55);
    const lengths = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) lengths.add(storage.crashImage(seededRng(seed)).length);
    expect([...lengths].sort((a, b) => a - b)).toEqual([2 * UNIT, 6 * UNIT]);
    storage.sync();
    expect(storage.crashImage(alwaysDrop).length).toBe(6 * UNIT);
  });

  it('unflushed units past the durable size read as zeros when dropped', () => {
    const storage = rewritten(1);
    storage.grow(3 * UNIT);
    write(storage, 2 * UNIT, UNIT, 77);
    let sawGrownAndDropped = false;
    for (let seed = 1; seed <= 40; seed++) {
      const image = storage.crashImage(seededRng(seed));
      if (image.length === 3 * UNIT && image[2 * UNIT] === 0) sawGrownAndDropped = true;
      if (image.length === 3 * UNIT) expect([0, 77]).toContain(image[2 * UNIT]);
    }
    expect(sawGrownAndDropped).toBe(true);
  });

  it('fromImage reopens an image with every byte durable', () => {
    const storage = rewritten(3);
    const image = storage.crashImage(seededRng(7));
    const reopened = MemoryStorage.fromImage(image, { segmentSize: 4 * UNIT });
    expect(reopened.size).toBe(image.length);
    expect(reopened.durableSize).toBe(image.length);
    expect(reopened.currentImage()).toEqual(image);
    expect(reopened.crashImage(seededRng(3))).toEqual(image);
    image[0] = 200; // the image was copied
    expect(reopened.readSegment(0)[0]).not.toBe(200);
  });

  it('crash images and copies are fresh buffers, and throw ERR_CLOSED after close', () => {
    const storage = rewritten(1);
    const a = storage.currentImage();
    a[0] = 0;
    expect(storage.currentImage()[0]).toBe(10);
    storage.close();
    expect(() => storage.crashImage(alwaysDrop)).toThrow(
      expect.objectContaining({ code: 'ERR_CLOSED' }),
    );
    expect(() => storage.currentImage()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    expect(() => storage.durableImage()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });
});
