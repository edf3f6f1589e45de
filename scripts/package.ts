/**
 * `npm run package`: builds, then writes the packages the stores take:
 *   dist/matrix-key-vault-chrome-VERSION.zip   (Chrome Web Store)
 *   dist/matrix-key-vault-firefox-VERSION.xpi  (addons.mozilla.org; made by `web-ext build`)
 * VERSION is package.json's, which the build also writes into both manifests.
 *
 * Two runs give the same bytes. `web-ext build` zips with JSZip through zip-dir: every entry gets
 * the time of the run, and entries come in the order the file system's callbacks return. So its
 * archive is rewritten (normalise()): files only, sorted by path, one fixed timestamp
 * (SOURCE_DATE_EPOCH if set, else 1980-01-01), DEFLATE level 9. The Chrome zip is written the same way.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import JSZip from 'jszip';
import { buildExtension, packageVersion } from './build.ts';

const root = resolve(import.meta.dirname, '..');
const run = promisify(execFile);

/** The one timestamp every entry carries. */
export function fixedDate(): Date {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  // The zip format cannot hold times before 1980.
  return Number.isFinite(epoch) && epoch >= 315532800 ? new Date(epoch * 1000) : new Date(Date.UTC(1980, 0, 1));
}

/** A zip of `files` (path → bytes): sorted, fixed time, fixed compression; the same bytes for the same files. */
export async function deterministicZip(files: Map<string, Uint8Array>, date = fixedDate()): Promise<Buffer> {
  const zip = new JSZip();
  for (const name of [...files.keys()].sort()) {
    zip.file(name, files.get(name)!, { date, createFolders: false, binary: true });
  }
  return zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', compressionOptions: { level: 9 }, platform: 'DOS' });
}

/** Rewrites any zip deterministically: its files (directory entries dropped), sorted, with the fixed time. */
export async function normalise(archive: Uint8Array, date = fixedDate()): Promise<Buffer> {
  const zip = await JSZip.loadAsync(archive);
  const files = new Map<string, Uint8Array>();
  for (const entry of Object.values(zip.files)) {
    if (!entry.dir) files.set(entry.name, await entry.async('uint8array'));
  }
  return deterministicZip(files, date);
}

function filesOf(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.set(relative(dir, p).split(sep).join('/'), readFileSync(p));
    }
  };
  walk(dir);
  return files;
}

/** `web-ext build` of a Firefox build directory, as bytes (its own archive, before normalising). */
export async function webExtBuild(sourceDir: string): Promise<Buffer> {
  const out = mkdtempSync(join(tmpdir(), 'mkv-web-ext-'));
  try {
    await run(join(root, 'node_modules/.bin/web-ext'), [
      'build', '--source-dir', sourceDir, '--artifacts-dir', out, '--filename', 'firefox.xpi', '--overwrite-dest', '--no-config-discovery',
    ]);
    return readFileSync(join(out, 'firefox.xpi'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export interface Packages {
  chrome: string;
  firefox: string;
}

/** Packages an existing build in `<dist>/chrome` and `<dist>/firefox`; returns the paths written. */
export async function packageBuilt(dist: string, version = packageVersion()): Promise<Packages> {
  const chrome = join(dist, `matrix-key-vault-chrome-${version}.zip`);
  const firefox = join(dist, `matrix-key-vault-firefox-${version}.xpi`);
  writeFileSync(chrome, await deterministicZip(filesOf(join(dist, 'chrome'))));
  writeFileSync(firefox, await normalise(await webExtBuild(join(dist, 'firefox'))));
  return { chrome, firefox };
}

/** Builds into `dist` (dist/ by default), then packages. */
export async function packageExtension(dist = join(root, 'dist')): Promise<Packages> {
  await buildExtension(dist);
  return packageBuilt(dist);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { chrome, firefox } = await packageExtension();
  for (const p of [chrome, firefox]) console.log(`${relative(root, p)}  ${readFileSync(p).length.toLocaleString('en')} bytes`);
}
