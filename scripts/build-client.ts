/**
 * Builds the client kit (src/client) for web-client developers into dist/client:
 *
 *   index.js    one ES module, not minified, that imports nothing (Vite library mode);
 *   index.d.ts  its types, re-exporting types/client/index.d.ts (and types/shared/page-api.d.ts).
 *
 * The kit must import no package: a second matrix-js-sdk in a page throws "Multiple matrix-js-sdk
 * entrypoints detected", and anything else would be the app's to install. A bare import fails the
 * build, in the code and in the types.
 *
 * Types come from the installed TypeScript 7 (`tsc`, the native port), which emits declarations
 * with `--declaration --emitDeclarationOnly`; it keeps the sources' `.ts` import suffixes, which a
 * consumer's compiler would refuse, so they are rewritten to `.js` (resolved to the `.d.ts` beside).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build, type Plugin } from 'vite';

const root = resolve(import.meta.dirname, '..');
const entry = join(root, 'src/client/index.ts');

/** Fails the build on any import that is not a relative path inside src/. */
function noPackages(): Plugin {
  return {
    name: 'mkv-client-no-packages',
    enforce: 'pre',
    resolveId(source, importer) {
      if (importer === undefined || source.startsWith('.') || isAbsolute(source) || source.startsWith('\0')) return null;
      throw new Error(`build-client: ${relative(root, importer)} imports the package "${source}"; the client kit may import only src/client and src/shared`);
    },
  };
}

async function buildCode(outDir: string): Promise<void> {
  await build({
    configFile: false,
    logLevel: 'warn',
    publicDir: false,
    plugins: [noPackages()],
    build: {
      outDir,
      emptyOutDir: false,
      target: 'es2022',
      minify: false,
      sourcemap: false,
      lib: { entry, formats: ['es'], fileName: () => 'index.js' },
    },
  });
}

async function buildTypes(outDir: string): Promise<void> {
  const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  const staging = mkdtempSync(join(outDir, '.types-'));
  try {
    await promisify(execFile)(process.execPath, [
      tsc, '--ignoreConfig', '--declaration', '--emitDeclarationOnly', '--outDir', staging, '--rootDir', join(root, 'src'),
      '--target', 'ES2022', '--module', 'ESNext', '--moduleResolution', 'bundler', '--lib', 'ES2023,DOM',
      '--types', '', '--strict', '--skipLibCheck', '--isolatedModules', '--verbatimModuleSyntax', '--allowImportingTsExtensions',
      entry,
    ], { cwd: root }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`build-client: tsc could not emit the kit's declarations:\n${error.stdout ?? ''}${error.stderr ?? error.message}`);
    });
    for (const file of declarationFiles(staging)) writeFileSync(file, rewriteSpecifiers(readFileSync(file, 'utf8'), relative(staging, file)));
    rmSync(join(outDir, 'types'), { recursive: true, force: true });
    renameSync(staging, join(outDir, 'types'));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  writeFileSync(join(outDir, 'index.d.ts'), "export * from './types/client/index.js';\n");
}

function declarationFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return declarationFiles(p);
    return e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** `'./x.ts'` → `'./x.js'`; a bare specifier (a package) is an error. */
export function rewriteSpecifiers(text: string, file: string): string {
  return text.replace(/(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\2/g, (whole, lead: string, quote: string, spec: string) => {
    if (!spec.startsWith('.')) throw new Error(`build-client: the declarations in ${file} import the package "${spec}"`);
    return `${lead}${quote}${spec.replace(/\.ts$/, '.js')}${quote}`;
  });
}

/** Builds the kit into `outDir` (relative to the repository root unless absolute), replacing what was there. */
export async function buildClientKit(outDir = 'dist/client'): Promise<void> {
  const out = resolve(root, outDir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await Promise.all([buildCode(out), buildTypes(out)]);
  if (!existsSync(join(out, 'index.js'))) throw new Error(`build-client: vite wrote no ${join(outDir, 'index.js')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const started = Date.now();
  await buildClientKit(process.argv[2]);
  console.log(`built ${process.argv[2] ?? 'dist/client'} in ${Date.now() - started} ms`);
}
