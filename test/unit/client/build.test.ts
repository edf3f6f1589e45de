/**
 * The built kit (scripts/build-client.ts): one ES module that imports nothing (a page has its own
 * matrix-js-sdk), with declarations a TypeScript consumer can compile against.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClientKit, rewriteSpecifiers } from '../../../scripts/build-client.ts';
import { importsOf } from '../layout.test.ts';

let out: string;
beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'mkv-client-kit-'));
  await buildClientKit(out);
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('client kit build', () => {
  it('writes one ES module with no import at all, exporting the public surface', async () => {
    const code = readFileSync(join(out, 'index.js'), 'utf8');
    expect(importsOf(code)).toEqual([]);
    expect(code).not.toMatch(/\brequire\s*\(/);
    const kit = (await import(join(out, 'index.js'))) as Record<string, unknown>;
    for (const name of ['findKeyVault', 'KeyVault', 'KeyVaultError', 'checkClient', 'attachKeyVault', 'ErrorCode', 'REQUEST_EVENT', 'ANNOUNCE_EVENT']) {
      expect(kit[name], name).toBeDefined();
    }
    expect(code).toContain('PRIVATE FIELD'); // not minified: a reader finds the one private access
  });

  it('writes declarations that import no package and compile in a consumer', async () => {
    expect(existsSync(join(out, 'index.d.ts'))).toBe(true);
    const types = readFileSync(join(out, 'types/client/index.d.ts'), 'utf8');
    expect(importsOf(types).every((spec) => spec.startsWith('./') || spec.startsWith('../'))).toBe(true);
    expect(types).not.toMatch(/\.ts['"]/);

    writeFileSync(join(out, 'consumer.ts'), [
      "import { attachKeyVault, findKeyVault, ErrorCode, type Attachment } from './index.js';",
      'declare const client: unknown;',
      'export async function start(): Promise<Attachment | null> {',
      '  const vault = await findKeyVault({ timeoutMs: 10 });',
      '  if (!vault || (await vault.status()).state === "locked") return null;',
      '  const code: number = ErrorCode.vaultLocked;',
      '  return attachKeyVault(client, vault, { onError: (e: Error) => console.log(code, e.message) });',
      '}',
    ].join('\n'));
    const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
    const run = promisify(execFile)(process.execPath, [tsc, '--ignoreConfig', '--noEmit', '--strict', '--target', 'ES2022', '--module', 'ESNext',
      '--moduleResolution', 'bundler', '--lib', 'ES2023,DOM', '--types', '', join(out, 'consumer.ts')], { cwd: out });
    await expect(run.then(() => 'ok', (e: { stdout?: string }) => e.stdout)).resolves.toBe('ok');
  });

  it('refuses declarations that would import a package', () => {
    expect(rewriteSpecifiers("export * from './a.ts';\nimport type { B } from '../b.ts';", 'x.d.ts')).toBe("export * from './a.js';\nimport type { B } from '../b.js';");
    expect(() => rewriteSpecifiers("import type { MatrixClient } from 'matrix-js-sdk';", 'x.d.ts')).toThrow(/import the package "matrix-js-sdk"/);
  });
});
