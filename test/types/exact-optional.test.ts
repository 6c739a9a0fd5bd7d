/**
 * Users who compile with `exactOptionalPropertyTypes` can pass `undefined` for any option
 * (the runtime treats it as left out). The project's own tsconfig has the flag off, so this
 * test compiles a fixture with it on.
 */
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

describe('typings under exactOptionalPropertyTypes', () => {
  it('accept undefined for every optional option', () => {
    const fixture = path.join(__dirname, 'exact-optional.fixture.ts');
    const program = ts.createProgram([fixture], {
      strict: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      types: ['node'],
      skipLibCheck: true,
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(problems).toEqual([]);
  });
});
