// User code that runs inside a call - a getter or toJSON while a value is encoded, a getter on
// a tuple element while a key is encoded - and uses the database from there. Every key is
// encoded into one scratch buffer per file, so such code must not leave a write under another
// key's bytes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ApiFolder, bytesOf, expectCode, expectUnchanged } from '../helpers/api-helpers';

let folder: ApiFolder;

beforeEach(() => {
  folder = new ApiFolder();
});

afterEach(async () => {
  await folder.cleanup();
});

describe('a value whose encoding uses the database', () => {
  it('putSync stores it under its own key when a getter reads another key', () => {
    const db = folder.open();
    db.putSync('zzzz', 'other');
    const value = {
      get x(): number {
        expect(db.get('zzzz')).toBe('other');
        return 1;
      },
    };
    db.putSync('a', value);
    expect(db.get('a')).toEqual({ x: 1 });
    expect([...db.keys()]).toEqual(['a', 'zzzz']);
  });

  it("putSync under 'json' stores it under its own key when toJSON calls has()", () => {
    const db = folder.open();
    const j = db.openDB('j', { valueEncoding: 'json' });
    const value = {
      toJSON(): number {
        j.has('yyyy');
        return 5;
      },
    };
    j.putSync('b', value);
    expect(j.get('b')).toBe(5);
    expect([...j.keys()]).toEqual(['b']);
  });

  it('txn.put stores it under its own key and leaves the key the getter read alone', () => {
    const db = folder.open();
    db.putSync('zzzz', 'other');
    db.transactionSync((txn) => {
      txn.put('c', {
        get x(): number {
          txn.get('zzzz');
          return 2;
        },
      });
    });
    expect(db.get('c')).toEqual({ x: 2 });
    expect(db.get('zzzz')).toBe('other');
    expect([...db.keys()]).toEqual(['c', 'zzzz']);
  });

  it('a getter that writes another key commits both values whole', () => {
    const db = folder.open();
    db.putSync('a', {
      head: 'h'.repeat(50),
      get x(): number {
        db.putSync('n', { big: 'x'.repeat(100), n: 7 });
        return 1;
      },
      tail: 'tail',
    });
    expect(db.get('a')).toEqual({ head: 'h'.repeat(50), x: 1, tail: 'tail' });
    expect(db.get('n')).toEqual({ big: 'x'.repeat(100), n: 7 });
  });
});

describe('an async put whose value encoding uses the database', () => {
  it('stores it under its own key when a getter reads and puts other keys', async () => {
    const db = folder.open();
    db.putSync('zzzz', 'other');
    let inner: Promise<void> | undefined;
    const outer = db.put('a', {
      head: 'h'.repeat(50),
      get x(): number {
        expect(db.get('zzzz')).toBe('other');
        // Queued while the outer put's key is held and its value half encoded.
        inner = db.put('n', { big: 'x'.repeat(300), n: 7 });
        return 1;
      },
      tail: 'tail',
    });
    const later = db.put('b', 2);
    await Promise.all([outer, inner, later]);
    expect(db.get('a')).toEqual({ head: 'h'.repeat(50), x: 1, tail: 'tail' });
    expect(db.get('n')).toEqual({ big: 'x'.repeat(300), n: 7 });
    expect(db.get('b')).toBe(2);
    expect([...db.keys()]).toEqual(['a', 'b', 'n', 'zzzz']);
  });

  it('a getter that throws rejects that put alone; the others of its turn commit', async () => {
    const db = folder.open();
    const first = db.put('first', 1);
    const failing = db.put('bad', {
      get x(): number {
        throw new Error('getter fails');
      },
    });
    const last = db.put('last', 3);
    await expect(failing).rejects.toThrow('getter fails');
    await Promise.all([first, last]);
    expect([...db.range()]).toEqual([
      { key: 'first', value: 1 },
      { key: 'last', value: 3 },
    ]);
  });
});

describe('a key whose encoding uses the database', () => {
  it('is refused with ERR_BAD_KEY and nothing is written', async () => {
    const db = folder.open();
    db.putSync('zz', 1);
    await db.close();
    const before = bytesOf(folder.file());
    const again = folder.open();
    const key: unknown[] = ['k'];
    Object.defineProperty(key, 1, {
      enumerable: true,
      get(): string {
        again.get('zz');
        return 'v';
      },
    });
    expectCode(() => again.putSync(key, 1), 'ERR_BAD_KEY');
    expectCode(() => again.get(key), 'ERR_BAD_KEY');
    expectCode(() => again.transactionSync((txn) => txn.put(key, 2)), 'ERR_BAD_KEY');
    expect([...again.keys()]).toEqual(['zz']);
    expectUnchanged(folder.file(), before);
    // The refusal leaves the store usable.
    again.putSync(['k', 'v'], 3);
    expect(again.get(['k', 'v'])).toBe(3);
  });
});
