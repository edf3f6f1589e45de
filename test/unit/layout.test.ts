/**
 * The tree is the architecture (doc/architecture.md): each folder of src/ may import only what this
 * table allows. A new import that crosses a boundary fails here, not in review.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

interface Rule { folders: string[]; packages: RegExp[] }

const rules: Array<[RegExp, Rule]> = [
  [/^core\//, { folders: ['core'], packages: [/^@noble\//, /^@scure\/base$/] }],
  [/^platform\//, { folders: ['core', 'shared', 'platform'], packages: [/^idb$/, /^webextension-polyfill$/, /^@streamparser\/json$/] }],
  [/^shared\//, { folders: ['core', 'shared'], packages: [] }],
  [/^background\//, { folders: ['core', 'platform', 'shared', 'background'], packages: [] }],
  // The page-world script runs with the page's privileges: no extension APIs, no polyfill.
  // The adapter for a site's own Matrix client: the client kit, in the page's world.
  [/^content\/client\//, { folders: ['shared', 'client', 'content/client'], packages: [] }],
  [/^content\/page\//, { folders: ['shared', 'content/page'], packages: [] }],
  [/^content\//, { folders: ['shared', 'platform/messaging.ts', 'content'], packages: [] }],
  // The import page reads a key file's JSON as it is decrypted (the same streaming parser as a download).
  [/^popup\//, { folders: ['core', 'shared', 'platform/messaging.ts', 'platform/permissions.ts', 'platform/sites.ts', 'popup'], packages: [/^preact(\/|$)/, /^@streamparser\/json$/] }],
  // The client kit runs in web pages beside the app's own matrix-js-sdk: no package at all.
  [/^client\//, { folders: ['shared', 'client'], packages: [] }],
  // The decryption helper's page: the core's restore opening, and its port to the worker.
  [/^helper\//, { folders: ['core', 'platform/decrypt-helper-page.ts', 'helper'], packages: [] }],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx)$/.test(e.name) ? [p] : [];
  });
}

export function importsOf(text: string): string[] {
  const found: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of text.matchAll(re)) found.push((m[1] ?? m[2] ?? m[3])!);
  return found;
}

function violations(file: string): string[] {
  const rel = relative(src, file);
  const rule = rules.find(([re]) => re.test(rel))?.[1];
  if (!rule) return [`${rel}: no layout rule covers this folder`];
  const out: string[] = [];
  for (const spec of importsOf(readFileSync(file, 'utf8'))) {
    if (spec.startsWith('.')) {
      if (/\.(css|html|png|svg)$/.test(spec)) continue;
      const target = relative(src, resolve(dirname(file), spec));
      if (target.startsWith('..')) { out.push(`${rel}: imports ${spec}, outside src/`); continue; }
      const ok = rule.folders.some((f) => (f.endsWith('.ts') ? target === f : target.startsWith(`${f}/`)));
      if (!ok) out.push(`${rel}: may not import ${target}`);
    } else if (!rule.packages.some((re) => re.test(spec))) {
      out.push(`${rel}: may not import package ${spec}`);
    }
  }
  return out;
}

describe('source layout', () => {
  it('the import scanner sees every import form', () => {
    expect(importsOf(`import a from 'x';\nimport { b } from "./y.ts";\nexport * from './z.ts';\nimport './w.css';\nconst m = import('dyn');\nimport type { T } from 'types';`))
      .toEqual(['x', './y.ts', './z.ts', './w.css', 'dyn', 'types']);
  });

  it('the rules catch a crossing', () => {
    const rule = rules.find(([re]) => re.test('core/x.ts'))![1];
    expect(rule.packages.some((re) => re.test('idb'))).toBe(false);
    expect(rules.find(([re]) => re.test('content/page/api.ts'))![1].folders).not.toContain('platform/messaging.ts');
  });

  it('every file under src/ imports only what its folder may', () => {
    const files = sourceFiles(src);
    expect(files.length).toBeGreaterThan(3);
    expect(files.flatMap(violations)).toEqual([]);
  });

  it('the core uses no node: imports and no top-level await', () => {
    for (const file of sourceFiles(join(src, 'core'))) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toMatch(/from\s+['"]node:/);
      expect(text, file).not.toMatch(/^await\s/m);
    }
  });
});
