/**
 * The built dist/firefox in Debian's Firefox ESR, loaded the way a person loads it by hand: as a
 * temporary add-on (`web-ext run`, headless). Its background must start and answer a status request
 * that the extension's own popup page sends; two sabotaged copies prove the check can fail; and
 * `web-ext build` must pack the same directory offline. See test/harness/firefox.ts for how the test
 * looks inside Firefox (its remote debugging protocol: the extension itself logs nothing).
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result, VaultStatus } from '../../src/shared/messages.ts';
import {
  findAddon, firefoxDist, livePids, openExtensionPage, startFirefox, webExtBin, type FirefoxRun,
} from '../harness/firefox.ts';

const exec = promisify(execFile);

interface BuiltManifest { version: string; browser_specific_settings: { gecko: { id: string } } }

function builtManifest(): BuiltManifest {
  const path = join(firefoxDist, 'manifest.json');
  if (!existsSync(path)) throw new Error(`no Firefox build at ${firefoxDist}: run \`npm run build\` first`);
  return JSON.parse(readFileSync(path, 'utf8')) as BuiltManifest;
}

/** What the popup page learns from the background: the text it renders and a status.get it sends itself. */
async function askBackgroundFromPopup(run: FirefoxRun, addonId: string): Promise<{ answer: Result<VaultStatus>; rendered: string }> {
  const rdp = await run.connect();
  try {
    const addon = await findAddon(rdp, addonId);
    if (!addon) throw new Error(`Firefox lists no add-on ${addonId}`);
    const popup = await openExtensionPage(rdp, addon, 'popup.html');
    // Sent first: with no background listening it fails at once ("Receiving end does not exist").
    const answer = await popup.evaluateAsync('browser.runtime.sendMessage({ type: "status.get" })') as Result<VaultStatus>;
    const rendered = await popup.waitForText('document.querySelector("[data-testid=worker-status]")?.textContent ?? ""', 30_000);
    return { answer, rendered };
  } finally {
    rdp.close();
  }
}

/** A copy of dist/firefox with one file replaced, in a temp dir the caller removes. */
function sabotagedCopy(file: string, contents: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mkv-firefox-sabotaged-'));
  cpSync(firefoxDist, dir, { recursive: true });
  writeFileSync(join(dir, file), contents);
  return dir;
}

describe('Firefox ESR: dist/firefox as a temporary add-on (web-ext run, headless)', () => {
  const manifest = builtManifest();
  const addonId = manifest.browser_specific_settings.gecko.id;
  let run: FirefoxRun | undefined;
  beforeAll(async () => { run = await startFirefox(); });
  afterAll(async () => { await run?.stop(); });

  it('installs as a temporary add-on with its background running', async () => {
    const rdp = await run!.connect();
    try {
      const addon = await findAddon(rdp, addonId);
      expect(addon).toMatchObject({ temporarilyInstalled: true, warnings: [] });
      expect(addon!.manifestURL).toMatch(/^moz-extension:\/\/[0-9a-f-]{36}\/manifest\.json$/);
    } finally {
      rdp.close();
    }
  });

  it('answers a status request from its popup page, which renders the answer', async () => {
    const { answer, rendered } = await askBackgroundFromPopup(run!, addonId);
    expect(answer).toMatchObject({ ok: true, value: { worker: { product: 'Matrix Key Vault', version: manifest.version }, account: null } });
    if (answer.ok) expect(answer.value.worker.bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(rendered).toContain(`Background worker running (version ${manifest.version})`);
    const rdp = await run!.connect();
    try {
      expect((await findAddon(rdp, addonId))?.backgroundScriptStatus).toBe('RUNNING');
    } finally {
      rdp.close();
    }
  });

  it('stops Firefox and web-ext, leaving no process behind', async () => {
    const group = run!.processGroup;
    expect(livePids(group).length).toBeGreaterThan(1); // web-ext and Firefox, at least
    await run!.stop();
    expect(livePids(group)).toEqual([]);
  });
});

describe('Firefox ESR: the smoke test fails when it should', () => {
  it('when the background throws at start, the popup gets no answer', async () => {
    const dir = sabotagedCopy('background.js', 'throw new Error("sabotaged by firefox-smoke.test.ts");\n');
    const run = await startFirefox({ sourceDir: dir });
    try {
      await expect(askBackgroundFromPopup(run, builtManifest().browser_specific_settings.gecko.id))
        .rejects.toMatchObject({ kind: 'evaluation', message: expect.stringMatching(/Receiving end does not exist/) });
    } finally {
      await run.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(livePids(run.processGroup)).toEqual([]);
  });

  it('when Firefox refuses the add-on, starting fails with kind install-failed', async () => {
    const broken = { ...builtManifest(), manifest_version: 4 };
    const dir = sabotagedCopy('manifest.json', JSON.stringify(broken));
    try {
      await expect(startFirefox({ sourceDir: dir })).rejects.toMatchObject({
        kind: 'install-failed',
        message: expect.stringMatching(/Could not install add-on/), // Firefox's refusal, relayed by web-ext
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('web-ext build', () => {
  it('packs dist/firefox into an .xpi (offline)', async () => {
    const { version } = builtManifest();
    const out = mkdtempSync(join(tmpdir(), 'mkv-xpi-'));
    try {
      await exec(webExtBin, ['build', '--source-dir', firefoxDist, '--artifacts-dir', out, '--overwrite-dest',
        '--no-config-discovery', '--filename', 'matrix-key-vault-{version}.xpi'], { maxBuffer: 16 << 20 });
      const xpi = join(out, `matrix-key-vault-${version}.xpi`);
      expect(existsSync(xpi)).toBe(true);
      const bytes = readFileSync(xpi);
      expect(bytes.subarray(0, 4).toString('latin1')).toBe('PK\x03\x04'); // a zip's local file header
      for (const name of ['manifest.json', 'background.js', 'popup.html']) expect(bytes.includes(name)).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
