/**
 * Builds the extension into dist/chrome and dist/firefox: one Vite build of the pages and the
 * service worker, then one manifest per browser (a manifest with both `service_worker` and `scripts`
 * draws warnings in each browser, and Firefox has no extension service workers).
 */
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'vite';
import { mainBuild } from '../vite.config.ts';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist');

type Manifest = Record<string, unknown> & { background: Record<string, unknown> };

function browserManifest(source: Manifest, browser: 'chrome' | 'firefox'): Manifest {
  const m: Manifest = structuredClone(source);
  if (browser === 'chrome') {
    delete m.browser_specific_settings;
    m.background = { service_worker: 'background.js', type: 'module' };
  } else {
    delete m.minimum_chrome_version;
    m.background = { scripts: ['background.js'], type: 'module' };
  }
  return m;
}

/** The worker may not use dynamic import(); fail the build rather than ship a worker that throws. */
export function assertNoDynamicImport(dir: string): void {
  const chunks = existsSync(join(dir, 'chunks')) ? readdirSync(join(dir, 'chunks'), { withFileTypes: true }) : [];
  const files = ['background.js', ...chunks.filter((e) => e.isFile() && e.name.endsWith('.js')).map((e) => join('chunks', e.name))];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (/\bimport\s*\(/.test(text)) throw new Error(`build: ${f} contains a dynamic import(), which a service worker cannot run`);
  }
}

export async function buildExtension(): Promise<void> {
  const started = Date.now();
  const chrome = join(dist, 'chrome');
  const firefox = join(dist, 'firefox');
  await build(mainBuild(chrome));
  assertNoDynamicImport(chrome);
  const source = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8')) as Manifest;
  rmSync(firefox, { recursive: true, force: true });
  cpSync(chrome, firefox, { recursive: true });
  writeFileSync(join(chrome, 'manifest.json'), JSON.stringify(browserManifest(source, 'chrome'), null, 2));
  writeFileSync(join(firefox, 'manifest.json'), JSON.stringify(browserManifest(source, 'firefox'), null, 2));
  console.log(`built dist/chrome and dist/firefox in ${Date.now() - started} ms`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildExtension();
}
