/**
 * Builds the extension into dist/chrome and dist/firefox: one Vite build of the pages and the
 * service worker, then one manifest per browser (a manifest with both `service_worker` and `scripts`
 * draws warnings in each browser, and Firefox has no extension service workers). The version comes
 * from package.json; name and description from public/_locales/en/messages.json (`__MSG_name__`).
 */
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build, type Plugin } from 'vite';
import { contentScriptBuild, mainBuild } from '../vite.config.ts';
import { buildClientKit } from './build-client.ts';
import { buildDemo } from './build-demo.ts';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist');

type Manifest = Record<string, unknown> & { background: Record<string, unknown> };

/** The version the build writes into both manifests. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Preact can write `dangerouslySetInnerHTML` into `innerHTML`. The extension never uses it, and an
 * `innerHTML` sink is what Mozilla's linter warns about (UNSAFE_VAR_ASSIGNMENT): the build replaces
 * that one assignment with a throw. A preact whose code no longer matches fails the build, so the
 * sink cannot come back unnoticed.
 */
export function withoutInnerHtml(): Plugin {
  const sink = /\b(\w+)\.innerHTML\s*=\s*(\w+)\.__html\b/g;
  return {
    name: 'mkv-without-inner-html',
    transform(code, id) {
      if (!/[\\/]preact[\\/]dist[\\/]preact\.m?js$/.test(id.split('?')[0]!)) return null;
      const found = code.match(sink)?.length ?? 0;
      if (found !== 1) throw new Error(`build: expected one innerHTML assignment in ${id}, found ${found}; update withoutInnerHtml()`);
      return { code: code.replace(sink, '(()=>{throw new Error("dangerouslySetInnerHTML is not supported")})()'), map: null };
    },
  };
}

export function browserManifest(source: Manifest, browser: 'chrome' | 'firefox', version = packageVersion()): Manifest {
  const m: Manifest = structuredClone(source);
  m.version = version;
  if (browser === 'chrome') {
    delete m.browser_specific_settings;
    m.background = { service_worker: 'background.js', type: 'module' };
    // The decryption helper's page (src/platform/decrypt-helper.ts): Chrome only; no install warning.
    m.permissions = [...(m.permissions as string[]), 'offscreen'];
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

/** Builds into `<out>/chrome` and `<out>/firefox` (dist/ unless told otherwise, e.g. by a test). */
export async function buildExtension(out = dist): Promise<void> {
  const started = Date.now();
  const chrome = join(out, 'chrome');
  const firefox = join(out, 'firefox');
  const config = mainBuild(chrome);
  await build({ ...config, plugins: [...(config.plugins ?? []), withoutInnerHtml()] });
  assertNoDynamicImport(chrome);
  // The page API: the page-world script and the bridge, each one classic script (src/content).
  await build(contentScriptBuild(chrome, 'src/content/page/index.ts', 'page'));
  await build(contentScriptBuild(chrome, 'src/content/bridge.ts', 'bridge'));
  // The adapter for a site's own Matrix client (Element Web), registered only where it is turned on.
  await build(contentScriptBuild(chrome, 'src/content/client/index.ts', 'client'));
  const source = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8')) as Manifest;
  rmSync(firefox, { recursive: true, force: true });
  cpSync(chrome, firefox, { recursive: true });
  writeFileSync(join(chrome, 'manifest.json'), JSON.stringify(browserManifest(source, 'chrome'), null, 2));
  writeFileSync(join(firefox, 'manifest.json'), JSON.stringify(browserManifest(source, 'firefox'), null, 2));
  if (out === dist) console.log(`built dist/chrome and dist/firefox in ${Date.now() - started} ms`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildExtension();
  // The client kit for web-client developers (dist/client) and the demo web client (dist/demo).
  const started = Date.now();
  await buildClientKit();
  await buildDemo();
  console.log(`built dist/client and dist/demo in ${Date.now() - started} ms`);
}
