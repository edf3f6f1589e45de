/** The build settings: content scripts come out as self-contained classic scripts. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { build } from 'vite';
import { describe, expect, it } from 'vitest';
import { contentScriptBuild } from '../../vite.config.ts';
import { assertNoDynamicImport } from '../../scripts/build.ts';

describe('content script build', () => {
  it('inlines its imports into one classic script', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mkv-content-'));
    try {
      await build(contentScriptBuild(out, 'test/fixtures/content-probe.ts', 'probe'));
      const code = readFileSync(join(out, 'content/probe.js'), 'utf8');
      expect(code).not.toMatch(/^\s*(import|export)\s/m);
      expect(code).not.toMatch(/\bimport\s*\(/);
      // Runs as a plain script and reaches the inlined shared code.
      const context: { __contentProbe?: boolean } = {};
      runInNewContext(code, context);
      expect(context.__contentProbe).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('service worker build check', () => {
  it('refuses a worker whose code would call import()', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkv-sw-'));
    try {
      mkdirSync(join(dir, 'chunks'));
      writeFileSync(join(dir, 'background.js'), "import { a } from './chunks/a.js';\n");
      writeFileSync(join(dir, 'chunks', 'a.js'), 'export const a = 1;\n');
      expect(() => assertNoDynamicImport(dir)).not.toThrow();
      writeFileSync(join(dir, 'chunks', 'lazy.js'), "export const load = () => import('./b.js');\n");
      expect(() => assertNoDynamicImport(dir)).toThrow(/dynamic import\(\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
