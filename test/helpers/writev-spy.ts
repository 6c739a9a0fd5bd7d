/**
 * Records the bytes of every `fs.writevSync` call (MappedStorage writes pages with it). The
 * CommonJS fs object is writable; syncBuiltinESMExports carries the change into the
 * `import * as fs` of the code under test.
 */
import type * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';

const cjsFs = createRequire(__filename)('node:fs') as typeof fs;

export function spyOnWritev(): { calls: number[]; restore: () => void } {
  const calls: number[] = [];
  const writev = cjsFs.writevSync;
  cjsFs.writevSync = (fd, bufs, at) => {
    calls.push(bufs.reduce((n, b) => n + b.byteLength, 0));
    return writev(fd, bufs, at);
  };
  syncBuiltinESMExports();
  return {
    calls,
    restore: () => {
      cjsFs.writevSync = writev;
      syncBuiltinESMExports();
    },
  };
}
