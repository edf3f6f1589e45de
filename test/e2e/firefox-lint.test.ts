/** Mozilla's add-on linter (through web-ext, offline) finds no errors and no warnings in the Firefox build. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/browser.ts';

const run = promisify(execFile);

interface LintReport {
  summary: { errors: number; warnings: number };
  errors: Array<{ code: string; message: string; file?: string }>;
  warnings: Array<{ code: string; message: string; file?: string }>;
}

async function lint(dir: string): Promise<LintReport> {
  const bin = join(repoRoot, 'node_modules/.bin/web-ext');
  const { stdout } = await run(bin, ['lint', '--source-dir', dir, '--output', 'json', '--no-config-discovery'],
    { maxBuffer: 16 << 20 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return JSON.parse(stdout) as LintReport;
}

describe('web-ext lint', () => {
  it('reports no errors and no warnings on dist/firefox', async () => {
    const report = await lint(join(repoRoot, 'dist/firefox'));
    expect(report.errors).toEqual([]);
    // The build takes preact's innerHTML sink out (scripts/build.ts, withoutInnerHtml), the one warning there was.
    expect(report.warnings).toEqual([]);
  });

  it('does report errors on the Chrome build, which lacks a gecko id (the lint can fail)', async () => {
    const report = await lint(join(repoRoot, 'dist/chrome'));
    expect(report.summary.errors).toBeGreaterThan(0);
  });
});
