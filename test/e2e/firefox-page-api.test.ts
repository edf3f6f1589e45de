/**
 * The page API in Debian's Firefox ESR, through the real content scripts (the Chromium side is
 * page-api.test.ts): a site nobody allowed finds nothing; after `sites.allow` from an extension page
 * its open tab finds the vault at once (scripting.executeScript into the page's MAIN world and the
 * isolated world) and `vault_status` answers; a reload finds it again (the registered scripts); a
 * second port of the same host gets the registered scripts too, since Firefox ignores ports in match
 * patterns, yet finds nothing, because the worker refuses the bridge's origin.
 *
 * The extension is a copy of dist/firefox whose manifest lists `host_permissions: ['http://127.0.0.1/*']`
 * (page-site.ts, grantedCopy): Firefox ESR 153 grants a listed host permission to the temporary
 * add-on at install, so `permissions.contains` is true without a prompt. The real build (the pattern
 * only in optional_host_permissions) cannot be granted over RDP instead: `permissions.request`
 * refuses ("may only be called from a user input handler") an evaluation and a scripted click alike,
 * with or without the pref extensions.webextOptionalPermissionPrompts=false.
 *
 * Driven over Firefox's remote debugging protocol (test/harness/firefox.ts). A site's page code is
 * evaluated in the page's own world, as the page's scripts run; what the bridge sends the worker is
 * seen from an extension page (a content script's runtime.sendMessage reaches every extension page
 * that listens, with the sender Firefox reports).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE_SCRIPT_FILE, PAGE_SCRIPT_FILE } from '../../src/platform/sites.ts';
import {
  findAddon, firefoxDist, openExtensionPage, openWebTab, reloadTab, startFirefox, type ExtensionPage, type FirefoxRun, type RdpConnection,
} from '../harness/firefox.ts';
import { firefoxUi, type FirefoxUi } from '../harness/firefox-ui.ts';
import { grantedCopy, startSite, type Site } from '../harness/page-site.ts';

const LOOPBACK = 'http://127.0.0.1/*';

function addonId(dir: string): string {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { browser_specific_settings: { gecko: { id: string } } };
  return manifest.browser_specific_settings.gecko.id;
}

/** Discovery as a page does it: listen for announcements, ask, wait. True when a provider came (kept as window.__vault). */
function findsProvider(page: ExtensionPage, ms = 1500): Promise<boolean> {
  return page.evaluateAsync(`new Promise((resolve) => {
    const done = (found) => { window.removeEventListener('matrix-key-vault:announce', on); resolve(found); };
    const on = (e) => {
      const d = e.detail;
      if (d && d.info && d.info.name === 'Matrix Key Vault' && d.provider) { window.__vault = d.provider; done(true); }
    };
    window.addEventListener('matrix-key-vault:announce', on);
    window.dispatchEvent(new Event('matrix-key-vault:request'));
    setTimeout(() => done(false), ${ms});
  })`, ms + 10_000) as Promise<boolean>;
}

/** Calls the provider `findsProvider` kept; `{ result }` or `{ error: { code, message } }`. */
function callVault(page: ExtensionPage, method: string): Promise<{ result?: unknown; error?: { code: number; message: string } }> {
  return page.evaluateAsync(`(async () => {
    const provider = window.__vault;
    if (!provider) return { error: { code: -1, message: 'no provider found' } };
    try { return { result: await provider.request({ method: ${JSON.stringify(method)} }) }; }
    catch (e) { return { error: { code: e.code ?? -2, message: String(e.message ?? e) } }; }
  })()`) as Promise<{ result?: unknown; error?: { code: number; message: string } }>;
}

/** Records every message posted on the page's window from now on (what a page could see of a bridge). */
async function watchMessages(page: ExtensionPage): Promise<void> {
  await page.evaluate(`window.__seen = [], window.addEventListener('message', (e) => window.__seen.push(e.data)), null`);
}

async function seenMessages(page: ExtensionPage): Promise<unknown[]> {
  return page.evaluateAsync('window.__seen') as Promise<unknown[]>;
}

/** Whether the page-world script ran in this document (its flag on the page's global). */
async function pageScriptRan(page: ExtensionPage): Promise<boolean> {
  return (await page.evaluate(`window[Symbol.for('matrix-key-vault.page')] === true`)) === true;
}

interface SeenSender { type: unknown; origin?: string; url?: string; frameId?: number; tabId?: number; id?: string }

/** From now on the probe page records each message a content script sends, with its sender as Firefox reports it. */
async function recordSenders(probe: FirefoxUi): Promise<void> {
  await probe.page.evaluate(`window.__senders = [], browser.runtime.onMessage.addListener((m, s) => {
    if (s.tab) window.__senders.push({ type: m && m.type, origin: s.origin, url: s.url, frameId: s.frameId, tabId: s.tab.id, id: s.id });
  }), null`);
}

async function sendersFrom(probe: FirefoxUi, origin: string, timeoutMs = 10_000): Promise<SeenSender[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await probe.page.evaluateAsync('window.__senders') as SeenSender[];
    const found = all.filter((s) => typeof s.url === 'string' && s.url.startsWith(`${origin}/`));
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Firefox ESR: the page API on allowed sites', () => {
  let tmp: string;
  let extDir: string;
  let site: Site;
  let otherPort: Site;
  let run: FirefoxRun | undefined;
  let rdp: RdpConnection;
  let probe: FirefoxUi;
  let siteTab: ExtensionPage;

  beforeAll(async () => {
    for (const file of [PAGE_SCRIPT_FILE, BRIDGE_SCRIPT_FILE]) {
      if (!existsSync(join(firefoxDist, file))) throw new Error(`dist/firefox has no ${file}: run \`npx tsx scripts/build.ts\``);
    }
    tmp = mkdtempSync(join(tmpdir(), 'mkv-ff-page-api-'));
    extDir = grantedCopy(firefoxDist, join(tmp, 'ext'));
    [site, otherPort] = await Promise.all([startSite(), startSite()]);
    // The extension's console (content scripts included) goes to Firefox's stdout, where the last test looks.
    run = await startFirefox({ sourceDir: extDir, maxRunMs: 3 * 60_000, prefs: { 'devtools.console.stdout.content': true } });
    rdp = await run.connect();
    const addon = await findAddon(rdp, addonId(extDir));
    if (!addon) throw new Error('Firefox lists no Matrix Key Vault add-on');
    probe = firefoxUi(await openExtensionPage(rdp, addon, 'popup.html'));
  });

  afterAll(async () => {
    rdp?.close();
    await run?.stop();
    await site?.close();
    await otherPort?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('the build has both content scripts, and Firefox grants the host permission the copy lists', async () => {
    for (const file of [PAGE_SCRIPT_FILE, BRIDGE_SCRIPT_FILE]) expect(existsSync(join(extDir, file)), file).toBe(true);
    // Firefox grants MV3 host_permissions at install, a temporary add-on's too: no prompt, no pref.
    expect(await probe.page.evaluateAsync(`browser.permissions.contains({ origins: [${JSON.stringify(LOOPBACK)}] })`)).toBe(true);
    // Nothing is registered before a site is allowed.
    expect(await probe.page.evaluateAsync('browser.scripting.getRegisteredContentScripts()')).toEqual([]);
  });

  it('a site nobody allowed gets no script and no answer', async () => {
    siteTab = await openWebTab(rdp, probe.page, `${site.origin}/`);
    await watchMessages(siteTab);
    expect(await findsProvider(siteTab)).toBe(false);
    expect(await seenMessages(siteTab)).toEqual([]);
    expect(await pageScriptRan(siteTab)).toBe(false);
  });

  it('after sites.allow from an extension page, the open tab finds the vault at once and vault_status answers', async () => {
    await recordSenders(probe);
    const allowed = await probe.send<{ site: { origin: string; scopes: string[] }; injected: number }>(
      { type: 'sites.allow', origin: site.origin, scopes: ['read', 'backup'] });
    expect(allowed.site).toMatchObject({ origin: site.origin, scopes: ['read', 'backup'] });
    // tabs.query({ url }) found the open tab (host permission, no "tabs" permission) and executeScript took.
    expect(allowed.injected).toBe(1);

    expect(await findsProvider(siteTab)).toBe(true);
    expect(await pageScriptRan(siteTab)).toBe(true);
    const status = await callVault(siteTab, 'vault_status');
    expect(status).toEqual({ result: { state: 'locked', scopes: ['read', 'backup'], userId: null, backup: false } });

    // What the worker decided from: Firefox reports the bridge's origin, its tab and the top frame.
    const senders = await sendersFrom(probe, site.origin);
    expect(senders.length).toBeGreaterThan(0);
    for (const s of senders) expect(s).toMatchObject({ origin: site.origin, frameId: 0, url: `${site.origin}/` });
    expect(senders.map((s) => s.type)).toContain('page.hello');

    // Registered for later loads: only the bridge, in the isolated world (the pattern has no port in
    // Firefox); the worker puts the page script in once the bridge's origin is confirmed.
    const registered = await probe.page.evaluateAsync('browser.scripting.getRegisteredContentScripts()') as Array<Record<string, unknown>>;
    expect(registered.map((s) => [s.id, s.world, s.matches, s.js, s.allFrames, s.persistAcrossSessions]).sort()).toEqual([
      [`bridge ${site.origin}`, 'ISOLATED', [LOOPBACK], [BRIDGE_SCRIPT_FILE], false, true],
    ]);
    expect(PAGE_SCRIPT_FILE).toBe('content/page.js');
  });

  it('a reload finds it again, through the registered scripts', async () => {
    siteTab = await reloadTab(rdp, siteTab);
    expect(await findsProvider(siteTab)).toBe(true);
    expect(await callVault(siteTab, 'vault_status')).toEqual({ result: { state: 'locked', scopes: ['read', 'backup'], userId: null, backup: false } });
  });

  it('another port of 127.0.0.1 gets the bridge (Firefox ignores ports) but nothing the page can see: the worker refuses its origin', async () => {
    const other = await openWebTab(rdp, probe.page, `${otherPort.origin}/`);
    await watchMessages(other);
    expect(await findsProvider(other)).toBe(false);
    expect(await seenMessages(other)).toEqual([]);
    // The page-world script never came: the worker puts it in only for a confirmed origin…
    expect(await pageScriptRan(other)).toBe(false);
    // …while the bridge, invisible to the page, ran (the pattern matched this port) and was refused.
    const senders = await sendersFrom(probe, otherPort.origin);
    expect(senders.map((s) => [s.type, s.origin, s.frameId])).toEqual([['page.hello', otherPort.origin, 0]]);
    // Asked again later, still nothing.
    expect(await findsProvider(other, 500)).toBe(false);
    expect(await seenMessages(other)).toEqual([]);
    expect(await callVault(other, 'vault_status')).toEqual({ error: { code: -1, message: 'no provider found' } });
  });

  it('logged no error from its pages, event page or content scripts', () => {
    const errors = run!.output().split('\n').filter((line) => /JavaScript error: moz-extension:\/\/|console\.error: .*Matrix Key Vault/.test(line));
    expect(errors).toEqual([]);
  });
});
