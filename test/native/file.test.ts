import * as fs from 'node:fs';
import * as os from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { native } from '../../src/storage/native';
import { holdLockInChild, tempFolder } from '../helpers/temp-files';

/** The statfs magic of ext4, where a huge fallocate fails at once with EFBIG. */
const EXT4_SUPER_MAGIC = 0xef53;

let folder: ReturnType<typeof tempFolder>;
let file: string;
let fd: number;

beforeEach(() => {
  folder = tempFolder();
  file = folder.file('data');
  fd = fs.openSync(file, 'w+');
});

afterEach(() => {
  fs.closeSync(fd);
  folder.remove();
});

describe('pageSize and fileSize', () => {
  it('pageSize is a power of two of at least 4096', () => {
    const page = native.pageSize();
    expect(page).toBeGreaterThanOrEqual(4096);
    expect(page & (page - 1)).toBe(0);
  });

  it('fileSize equals the size fstat reports', () => {
    expect(native.fileSize(fd)).toBe(0);
    fs.writeSync(fd, Buffer.alloc(12345));
    expect(native.fileSize(fd)).toBe(12345);
    expect(native.fileSize(fd)).toBe(fs.fstatSync(fd).size);
  });
});

describe('fallocate', () => {
  it('extends the file with real blocks that read as zeros', () => {
    native.fallocate(fd, 0, 256 * 1024);
    const stat = fs.fstatSync(fd);
    expect(stat.size).toBe(256 * 1024);
    expect(stat.blocks * 512).toBeGreaterThanOrEqual(256 * 1024);
    expect(fs.readFileSync(file).every((b) => b === 0)).toBe(true);
  });

  it('allocating inside the file keeps its size and bytes', () => {
    fs.writeSync(fd, Buffer.from('hello'), 0, 5, 0);
    native.fallocate(fd, 0, 5);
    expect(fs.readFileSync(file, 'utf8')).toBe('hello');
  });

  it.runIf(fs.statfsSync(os.tmpdir()).type === EXT4_SUPER_MAGIC)(
    'an absurd length fails with a system error and leaves the size unchanged (ext4)',
    () => {
      native.fallocate(fd, 0, 8192);
      let caught: unknown;
      try {
        native.fallocate(fd, 8192, 2 ** 50);
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ syscall: 'fallocate' });
      expect(['EFBIG', 'ENOSPC']).toContain((caught as { code: string }).code);
      expect(fs.fstatSync(fd).size).toBe(8192);
    },
  );
});

describe('punchHole', () => {
  it('frees the blocks of a range, which reads as zeros; the size stays', () => {
    fs.writeSync(fd, Buffer.alloc(64 * 1024, 7), 0, 64 * 1024, 0);
    fs.fsyncSync(fd);
    const before = fs.fstatSync(fd).blocks;
    native.punchHole(fd, 16 * 1024, 32 * 1024);
    const st = fs.fstatSync(fd);
    expect(st.size).toBe(64 * 1024);
    expect(before - st.blocks).toBeGreaterThanOrEqual((32 * 1024) / 512);
    const bytes = fs.readFileSync(file);
    expect(bytes.subarray(0, 16 * 1024).every((b) => b === 7)).toBe(true);
    expect(bytes.subarray(16 * 1024, 48 * 1024).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(48 * 1024).every((b) => b === 7)).toBe(true);
  });

  it('refuses an empty or oversized range, and reports a closed descriptor', () => {
    expect(() => native.punchHole(fd, 0, 0)).toThrow(RangeError);
    expect(() => native.punchHole(fd, 2 ** 53 - 10, 20)).toThrow(RangeError);
    const other = fs.openSync(folder.file('other'), 'w+');
    fs.closeSync(other);
    expect(() => native.punchHole(other, 0, 4096)).toThrow(
      expect.objectContaining({ code: 'EBADF', syscall: 'fallocate' }),
    );
  });
});

describe('fdatasync', () => {
  it('succeeds on an open file after a write', () => {
    fs.writeSync(fd, Buffer.from('durable'));
    expect(native.fdatasync(fd)).toBeUndefined();
  });
});

describe('flock', () => {
  it('an exclusive lock held by a child process makes the non-blocking try return false', async () => {
    const child = await holdLockInChild(file, 'ex');
    try {
      expect(native.flock(fd, true, false)).toBe(false);
      expect(native.flock(fd, false, false)).toBe(false);
    } finally {
      await child.release();
    }
    expect(native.flock(fd, true, false)).toBe(true);
    native.funlock(fd);
  });

  it('a shared lock in a child coexists with a shared lock here and blocks an exclusive one', async () => {
    const child = await holdLockInChild(file, 'sh');
    try {
      expect(native.flock(fd, false, false)).toBe(true);
      native.funlock(fd);
      expect(native.flock(fd, true, false)).toBe(false);
    } finally {
      await child.release();
    }
  });

  it('locks of separate open file descriptions conflict, and funlock releases them', () => {
    const other = fs.openSync(file, 'r');
    try {
      expect(native.flock(fd, false, true)).toBe(true);
      expect(native.flock(other, false, false)).toBe(true); // shared locks coexist
      expect(native.flock(other, true, false)).toBe(false); // exclusive waits for ours
      native.funlock(fd);
      expect(native.flock(other, true, false)).toBe(true); // upgraded once we unlocked
      expect(native.flock(fd, false, false)).toBe(false);
      native.funlock(other);
      expect(native.flock(fd, true, true)).toBe(true);
      native.funlock(fd);
      native.funlock(fd); // unlocking with no lock held is a no-op
    } finally {
      fs.closeSync(other);
    }
  });
});

describe('fdatasyncAsync', () => {
  it('resolves after flushing, and rejects with EBADF for a closed fd', async () => {
    const dir = fs.mkdtempSync(`${os.tmpdir()}/mapkv-fdasync-`);
    try {
      const file = `${dir}/f`;
      const fd = fs.openSync(file, 'w+');
      fs.writeSync(fd, Buffer.from('durable'));
      await expect(native.fdatasyncAsync(fd)).resolves.toBeUndefined();
      fs.closeSync(fd);
      expect(fs.readFileSync(file, 'utf8')).toBe('durable');
      await expect(native.fdatasyncAsync(fd)).rejects.toMatchObject({
        code: 'EBADF',
        syscall: 'fdatasync',
      });
      expect(() => native.fdatasyncAsync(-1)).toThrow(RangeError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
