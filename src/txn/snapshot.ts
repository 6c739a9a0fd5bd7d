/**
 * Read access to one committed state. Every page number is checked against the snapshot's own
 * page count before it is followed (invariant 5); the pages below it are never rewritten while
 * the snapshot is pinned (invariants 1 and 4), so reads need no lock and no native call.
 */
import { corrupt } from '../errors';
import { FIRST_DATA_PAGE } from '../format/layout';
import type { MetaState } from '../format/meta';
import type { DirectoryCache } from '../hash/directory';
import type { PageReader } from './pages';
import type { Pager } from './pager';
import { verifyPage, verifyRun } from './write';

export class SnapshotReader implements PageReader {
  readonly pageSize: number;
  readonly pageCount: number;
  at = 0;

  readonly flatIndexes: DirectoryCache | undefined;

  constructor(
    private readonly pager: Pager,
    readonly meta: MetaState,
    readonly verifyChecksums: boolean,
    flatIndexes?: DirectoryCache,
  ) {
    this.pageSize = pager.pageSize;
    this.pageCount = meta.pageCount;
    // A reader that verifies every page's checksum reads every page it uses.
    this.flatIndexes = verifyChecksums ? undefined : flatIndexes;
  }

  pageCountLimit(): number {
    return this.pageCount;
  }

  page(pgno: number): Uint8Array {
    if (pgno < FIRST_DATA_PAGE || pgno >= this.pageCount)
      corrupt(`page ${pgno} is outside the file`);
    const b = this.pager.readView(pgno);
    this.at = this.pager.offsetOf(pgno);
    if (this.verifyChecksums) verifyPage(b, this.at, this.pageSize, pgno);
    return b;
  }

  runBytes(
    first: number,
    pages: number,
    from: number,
    length: number,
  ): { buf: Uint8Array; start: number } {
    if (first < FIRST_DATA_PAGE || pages < 1 || first + pages > this.pageCount) {
      corrupt(`overflow run ${first}+${pages} is outside the file`);
    }
    this.pager.checkOverflowHead(first, pages);
    if (this.verifyChecksums) verifyRun(this.pager, first, pages);
    return this.pager.runBytes(first, from, length);
  }
}
