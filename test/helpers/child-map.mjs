// A second process for the native and storage tests: maps, locks and finalizes in a process
// of its own, so the tests can prove what crosses a process boundary.
//
//   read FILE OFFSET LENGTH          prints the bytes of a fresh read-only MAP_PRIVATE mapping (hex)
//   hold-lock FILE ex|sh             takes the flock, prints "locked", holds it until stdin ends
//   cas64 FILE OFFSET EXPECTED DESIRED  atomicCas64 through a MAP_SHARED mapping; prints JSON
//   finalize FILE                    (run with --expose-gc) maps views, drops them, collects;
//                                    prints JSON counts of the file's mappings in /proc/self/maps
import { openSync, closeSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const native = require('../../build/Release/mapkv.node');

const [command, file, ...args] = process.argv.slice(2);

function mappingsOf(path) {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(path)).length;
}

function nextTurn() {
  return new Promise((resolve) => setImmediate(resolve));
}

async function collect() {
  for (let round = 0; round < 3; round++) {
    globalThis.gc();
    // Node runs the finalizers of external buffers from an immediate.
    for (let turn = 0; turn < 3; turn++) await nextTurn();
  }
}

switch (command) {
  case 'read': {
    const fd = openSync(file, 'r');
    const view = native.map(fd, Number(args[0]), Number(args[1]), {});
    process.stdout.write(Buffer.from(view).toString('hex'));
    native.unmap(view);
    closeSync(fd);
    break;
  }
  case 'hold-lock': {
    const fd = openSync(file, 'r+');
    native.flock(fd, args[0] === 'ex', true);
    process.stdout.write('locked\n');
    process.stdin.resume();
    process.stdin.on('end', () => {
      native.funlock(fd);
      closeSync(fd);
      process.exit(0);
    });
    break;
  }
  case 'cas64': {
    const fd = openSync(file, 'r+');
    const view = native.map(fd, 0, 4096, { write: true, shared: true });
    const [offset, expected, desired] = args.map(Number);
    const swapped = native.atomicCas64(view, offset, expected, desired);
    const value = native.atomicLoad64(view, offset);
    native.unmap(view);
    closeSync(fd);
    process.stdout.write(JSON.stringify({ swapped, value }));
    break;
  }
  case 'finalize': {
    const fd = openSync(file, 'r');
    const before = mappingsOf(file);
    // Maps 20 views and counts them; they are unreachable once this returns. (Finalizers run
    // from an immediate, so none can unmap before the count.)
    const mapAndDrop = () => {
      for (let i = 0; i < 20; i++) native.map(fd, 0, 4096, {});
      return mappingsOf(file);
    };
    const whileHeld = mapAndDrop();
    // Unmapped then collected: its finalizer must not unmap again, even though a later
    // mapping may reuse its address.
    const unmapped = native.map(fd, 0, 4096, {});
    native.unmap(unmapped);
    const kept = native.map(fd, 0, 4096, {});
    const keptView = new Uint8Array(kept);
    await collect();
    const afterCollect = mappingsOf(file);
    const keptFirstByte = keptView[0];
    native.unmap(kept);
    closeSync(fd);
    process.stdout.write(JSON.stringify({ before, whileHeld, afterCollect, keptFirstByte }));
    break;
  }
  default:
    process.stderr.write(`unknown command ${command}\n`);
    process.exit(2);
}
