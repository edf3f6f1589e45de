/**
 * The build a store would get: both manifests carry package.json's version and take name and
 * description from _locales/en; the extension pages run under a strict CSP (no inline script, no
 * remote code, no eval) and the built HTML gives it nothing to refuse; nothing is web-accessible;
 * `npm run package`'s archives are the same bytes run after run.
 * Builds into a temporary directory, so it neither needs nor disturbs dist/.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import JSZip from 'jszip';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildExtension, packageVersion } from '../../scripts/build.ts';
import { deterministicZip, normalise, packageBuilt } from '../../scripts/package.ts';

const root = resolve(import.meta.dirname, '../..');
const browsers = ['chrome', 'firefox'] as const;
let out: string;

type Manifest = Record<string, unknown> & {
  name: string; description: string; version: string; default_locale?: string; short_name?: string;
  action?: { default_title?: string };
  content_security_policy?: { extension_pages?: string; sandbox?: string };
};

const manifestOf = (browser: string) => JSON.parse(readFileSync(join(out, browser, 'manifest.json'), 'utf8')) as Manifest;

/** Every file under `dir`, as slash-separated paths relative to it. */
function filesUnder(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p, base) : [relative(base, p).split(sep).join('/')];
  });
}

/** The directives of a CSP string: name → sources. */
export function parseCsp(csp: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const part of csp.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) directives.set(name.toLowerCase(), sources);
  }
  return directives;
}

/** What a CSP for extension pages must not allow; empty when it is strict. */
export function cspProblems(csp: string | undefined): string[] {
  if (csp === undefined) return ['no extension_pages CSP'];
  const d = parseCsp(csp);
  const problems: string[] = [];
  const scripts = d.get('script-src') ?? d.get('default-src');
  if (!scripts) problems.push('no script-src');
  else if (scripts.join(' ') !== "'self'") problems.push(`script-src allows more than the extension's own files: ${scripts.join(' ')}`);
  if (d.get('object-src')?.join(' ') !== "'none'") problems.push('object-src is not \'none\'');
  for (const [name, sources] of d) {
    for (const s of sources) {
      if (/^'unsafe-|^'wasm-unsafe-eval'$|^\*$|^(https?|wss?|data|blob):|^\/\//i.test(s) && !(name === 'connect-src')) problems.push(`${name} allows ${s}`);
    }
  }
  return problems;
}

/** What a built page does that the CSP would refuse, or that loads from elsewhere; empty when clean. */
export function htmlProblems(html: string): string[] {
  const problems: string[] = [];
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    if (!/\bsrc\s*=/.test(m[1]!)) problems.push('inline <script> without src');
    if (m[2]!.trim() !== '') problems.push('<script> with a body');
  }
  for (const m of html.matchAll(/<[a-z][^>]*?\s(on[a-z]+)\s*=/gi)) problems.push(`${m[1]} handler attribute`);
  for (const m of html.matchAll(/\b(?:src|href|action|formaction|srcset|poster|data)\s*=\s*["']?\s*((?:[a-z][a-z0-9+.-]*:|\/\/)[^"'\s>]*)/gi)) {
    problems.push(`external URL ${m[1]}`);
  }
  if (/<style\b/i.test(html)) problems.push('inline <style>');
  if (/\sstyle\s*=/i.test(html)) problems.push('style attribute');
  if (/<base\b/i.test(html)) problems.push('<base>');
  return problems;
}

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'mkv-package-'));
  await buildExtension(out);
}, 120_000);

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

describe('manifests', () => {
  it('carry package.json\'s version, and name and description from _locales/en', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(packageVersion()).toBe(version);
    for (const browser of browsers) {
      const m = manifestOf(browser);
      expect(m.version, browser).toBe(version);
      expect(m.default_locale).toBe('en');
      expect([m.name, m.short_name, m.description, m.action?.default_title]).toEqual(['__MSG_name__', '__MSG_shortName__', '__MSG_description__', '__MSG_name__']);
      const messages = JSON.parse(readFileSync(join(out, browser, '_locales/en/messages.json'), 'utf8')) as Record<string, { message: string }>;
      // Every __MSG_x__ the manifest names exists (a missing one shows as the raw placeholder).
      for (const [, key] of JSON.stringify(m).matchAll(/__MSG_(\w+)__/g)) expect(messages[key!]?.message, key).toBeTruthy();
      expect(messages.name!.message).toBe('Matrix Key Vault');
      expect(messages.description!.message.length, 'the Chrome Web Store takes at most 132 characters').toBeLessThanOrEqual(132);
      expect(messages.shortName!.message.length).toBeLessThanOrEqual(12);
    }
  });

  it('ask for no web-accessible resources and no extra reach', () => {
    for (const browser of browsers) {
      const m = manifestOf(browser);
      expect(m.web_accessible_resources, browser).toBeUndefined();
      expect(m.externally_connectable, browser).toBeUndefined();
      expect(m.host_permissions ?? [], browser).toEqual([]);
      expect(m.content_security_policy?.sandbox, browser).toBeUndefined();
    }
  });
});

describe('CHANGELOG.md', () => {
  it('has an entry for package.json\'s version, in Keep a Changelog\'s form', () => {
    const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8');
    const version = packageVersion().replace(/\./g, '\\.');
    expect(changelog).toMatch(new RegExp(`^## \\[${version}\\] - \\d{4}-\\d{2}-\\d{2}$`, 'm'));
    expect(changelog).toMatch(/^## \[Unreleased\]$/m);
  });
});

describe('README', () => {
  it('lists each permission the manifest asks for, with why', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = /^## Permissions\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
    expect(section, 'a "## Permissions" section').not.toBe('');
    // Each bullet names one or more permissions in backquotes before its colon: "- `a`, `b`: why".
    const listed = new Set([...section.matchAll(/^- ((?:`[^`]+`(?:, )?)+): \S/gm)].flatMap((m) => [...m[1]!.matchAll(/`([^`]+)`/g)].map((n) => n[1])));
    for (const browser of browsers) {
      const m = manifestOf(browser) as Manifest & Record<'permissions' | 'optional_permissions' | 'host_permissions' | 'optional_host_permissions', string[] | undefined>;
      const asked = [...m.permissions ?? [], ...m.optional_permissions ?? [], ...m.host_permissions ?? [], ...m.optional_host_permissions ?? []];
      expect(asked.length).toBeGreaterThan(0);
      for (const permission of asked) expect(listed.has(permission), `README explains ${permission}`).toBe(true);
    }
  });
});

describe('strict CSP for extension pages', () => {
  it('the built manifests allow only the extension\'s own scripts', () => {
    for (const browser of browsers) expect(cspProblems(manifestOf(browser).content_security_policy?.extension_pages), browser).toEqual([]);
  });

  it('the CSP check refuses what a loose policy allows (it can fail)', () => {
    expect(cspProblems("script-src 'self' 'unsafe-eval'; object-src 'none'")).toEqual(["script-src allows more than the extension's own files: 'self' 'unsafe-eval'", "script-src allows 'unsafe-eval'"]);
    expect(cspProblems("script-src 'self' https://cdn.example; object-src 'self'")).toHaveLength(3);
    expect(cspProblems("script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; style-src 'unsafe-inline'")).toHaveLength(3);
    expect(cspProblems(undefined)).toEqual(['no extension_pages CSP']);
  });

  it('every built page loads only its own files, with no inline script or handler', () => {
    const pages = filesUnder(join(out, 'chrome')).filter((f) => f.endsWith('.html'));
    expect(pages.sort()).toEqual(['approve.html', 'backup.html', 'decrypt-helper.html', 'export.html', 'import.html', 'popup.html', 'restore.html', 'unlock.html']);
    for (const page of pages) {
      const html = readFileSync(join(out, 'chrome', page), 'utf8');
      expect(htmlProblems(html), page).toEqual([]);
      expect(html, page).toMatch(/<script type="module"[^>]*src="\.\/[\w-]+\.js"><\/script>/);
    }
  });

  it('the page check finds each thing it looks for (it can fail)', () => {
    const bad = '<html><head><base href="/"><script>alert(1)</script><script src="https://cdn.example/x.js"></script><style>p{}</style></head>' +
      '<body onload="go()"><img src="//tracker.example/p.png"><a href="javascript:void(0)" style="color:red">x</a></body></html>';
    expect(htmlProblems(bad)).toEqual([
      'inline <script> without src', '<script> with a body', 'onload handler attribute',
      'external URL https://cdn.example/x.js', 'external URL //tracker.example/p.png', 'external URL javascript:void(0)',
      'inline <style>', 'style attribute', '<base>',
    ]);
  });

  it('the built code evaluates no strings and writes no innerHTML', () => {
    const scripts = filesUnder(join(out, 'firefox')).filter((f) => f.endsWith('.js'));
    expect(scripts.length).toBeGreaterThan(5);
    for (const f of scripts) {
      const code = readFileSync(join(out, 'firefox', f), 'utf8');
      expect(code, f).not.toMatch(/\beval\s*\(|\bnew\s+Function\s*\(|\bimportScripts\s*\(|\.innerHTML\s*=[^=]|\.outerHTML\s*=[^=]|insertAdjacentHTML|document\.write\s*\(/);
      expect(code, f).not.toMatch(/\bimport\s*\(\s*["'`]https?:/);
    }
  });
});

describe('npm run package', () => {
  it('rewrites any archive to the same bytes, whatever its entries\' times and order', async () => {
    const files: Array<[string, string]> = [['b/two.js', 'two'], ['a.txt', 'one'], ['manifest.json', '{}']];
    const make = async (order: Array<[string, string]>, date: Date) => {
      const zip = new JSZip();
      for (const [name, text] of order) zip.file(name, text, { date });
      return zip.generateAsync({ type: 'uint8array', compression: 'DEFLATE' });
    };
    const first = await make(files, new Date(Date.UTC(2024, 0, 1, 10, 0, 0)));
    const second = await make([...files].reverse(), new Date(Date.UTC(2025, 5, 2, 11, 30, 4)));
    expect(Buffer.compare(Buffer.from(first), Buffer.from(second))).not.toBe(0);
    const [a, b] = [await normalise(first), await normalise(second)];
    expect(a.equals(b)).toBe(true);
    const entries = Object.values((await JSZip.loadAsync(a)).files);
    expect(entries.map((e) => e.name)).toEqual(['a.txt', 'b/two.js', 'manifest.json']);
    expect(new Set(entries.map((e) => e.date.getTime())).size).toBe(1);
    expect(a.equals(await deterministicZip(new Map(files.map(([n, t]) => [n, new TextEncoder().encode(t)]))))).toBe(true);
  });

  it('writes the Chrome zip and the Firefox xpi (web-ext build), the same bytes on a second run seconds later', async () => {
    const version = packageVersion();
    const first = await packageBuilt(out);
    expect([relative(out, first.chrome), relative(out, first.firefox)])
      .toEqual([`matrix-key-vault-chrome-${version}.zip`, `matrix-key-vault-firefox-${version}.xpi`]);
    const bytes = { chrome: readFileSync(first.chrome), firefox: readFileSync(first.firefox) };
    // Zip times have 2 s steps: a run more than 2 s later would differ if any time came from the clock.
    await new Promise((r) => setTimeout(r, 2100));
    // The second run packages a copy of the build made now: new file times, maybe a new directory order.
    const again = join(out, 'again');
    mkdirSync(again);
    for (const browser of browsers) cpSync(join(out, browser), join(again, browser), { recursive: true });
    const second = await packageBuilt(again);
    expect(readFileSync(second.chrome).equals(bytes.chrome), 'chrome zip').toBe(true);
    expect(readFileSync(second.firefox).equals(bytes.firefox), 'firefox xpi').toBe(true);

    // Each archive holds exactly its build, manifest included.
    for (const browser of browsers) {
      const zip = await JSZip.loadAsync(bytes[browser]);
      const names = Object.values(zip.files).filter((e) => !e.dir).map((e) => e.name);
      expect(names, browser).toEqual(filesUnder(join(out, browser)).sort());
      const manifest = JSON.parse(await zip.file('manifest.json')!.async('string')) as Manifest;
      expect(manifest.version).toBe(version);
    }
  }, 60_000);
});
