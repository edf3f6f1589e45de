/**
 * The Chromium end-to-end flows, in Debian's Firefox ESR against the same Synapse: sign in from the
 * popup, create a backup in its page, import a key file Element's crypto wrote, and see every
 * session reach the server through injected faults while the event page is terminated again and
 * again (Firefox's equivalent of a killed service worker, each proved by a new boot id); the server
 * swaps in a backup with a foreign key and gets nothing; on another account, a wrong key is refused,
 * the Security Key (secret storage as Element writes it) unlocks, the unlocked key survives an event
 * page restart, the restore leaves the vault holding exactly the backed-up sessions, and new keys go
 * up to the proved backup.
 *
 * Driven over Firefox's remote debugging protocol (test/harness/firefox.ts): WebDriver BiDi, which
 * Firefox also serves, refuses to navigate a tab to moz-extension:// pages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupDecryptor, decodeRecoveryKey, encodeRecoveryKey, type EncryptedSessionData } from '../../src/core/index.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import {
  closeTab, findAddon, firefoxDist, openExtensionPage, openExtensionTab, startFirefox, tabActors, terminateBackground,
  waitForNewTab, type AddonDescriptor, type FirefoxRun, type RdpConnection,
} from '../harness/firefox.ts';
import { exportAllFirefox, firefoxUi, importKeyFileFirefox, signInFirefox, type FirefoxUi } from '../harness/firefox-ui.ts';
import { startFaultProxy, type FaultKind, type FaultProxy } from '../harness/fault-proxy.ts';
import { createPeerWrittenBackup, writeElementSecretStorage, type ElementSecretStorage, type PeerWrittenBackup } from '../harness/peer-backup.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { createServerBackup, peerSessions, randomKey } from '../harness/upload-rig.ts';
import { getWholeBackup } from '../harness/whole-backup.ts';
import { keyFileFromPeer, type ExportedSessionData } from '../peer/index.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Two upload batches (500 each): a group of faults before each one gets through. */
const SESSIONS = 800;
const RESTORED = 300;
const password = 'firefox flows password';
const passphrase = 'export passphrase 🦊';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function addonId(): string {
  const manifest = JSON.parse(readFileSync(join(firefoxDist, 'manifest.json'), 'utf8')) as { browser_specific_settings: { gecko: { id: string } } };
  return manifest.browser_specific_settings.gecko.id;
}

/** One Firefox with the add-on, an RDP connection, and a probe page (the popup in the first tab). */
interface Firefox {
  run: FirefoxRun;
  rdp: RdpConnection;
  addon: AddonDescriptor;
  probe: FirefoxUi;
}

async function launchFirefox(): Promise<Firefox> {
  // The extension's console goes to Firefox's stdout too, where extensionErrors() looks.
  const run = await startFirefox({ maxRunMs: 8 * 60_000, prefs: { 'devtools.console.stdout.content': true } });
  try {
    const rdp = await run.connect();
    const addon = await findAddon(rdp, addonId());
    if (!addon) throw new Error('Firefox lists no Matrix Key Vault add-on');
    const probe = firefoxUi(await openExtensionPage(rdp, addon, 'popup.html'));
    return { run, rdp, addon, probe };
  } catch (e) {
    await run.stop();
    throw e;
  }
}

async function closeFirefox(fx: Firefox | undefined): Promise<void> {
  if (!fx) return;
  fx.rdp.close();
  await fx.run.stop();
}

/**
 * What the extension logged as an error: an uncaught exception or unhandled rejection in one of its
 * pages or its event page ("JavaScript error: moz-extension://…"), or the event page's report of a
 * background run that failed unexpectedly.
 */
function extensionErrors(fx: Firefox): string[] {
  return fx.run.output().split('\n').filter((line) => /JavaScript error: moz-extension:\/\/|console\.error: .*Matrix Key Vault/.test(line));
}

/** Terminates the event page and wakes it with a status request; returns both boot ids (they differ). */
async function restartBackground(fx: Firefox): Promise<{ before: string; after: string }> {
  const before = (await fx.probe.status()).worker.bootId;
  // A retry alarm due at that moment may start it again before STOPPED is seen: a new boot id counts.
  await terminateBackground(fx.rdp, fx.addon.id, { restarted: async () => (await fx.probe.status()).worker.bootId !== before });
  const after = (await fx.probe.status()).worker.bootId; // the message starts the event page again
  expect(after, 'the event page was really restarted').not.toBe(before);
  return { before, after };
}

async function newPopup(fx: Firefox): Promise<FirefoxUi> {
  const popup = firefoxUi(await openExtensionTab(fx.rdp, fx.probe.page, 'popup.html'));
  await popup.waitFor('main[data-screen]:not([data-screen=loading])');
  return popup;
}

async function importInPage(fx: Firefox, fileText: string): Promise<ImportResult> {
  const page = firefoxUi(await openExtensionTab(fx.rdp, fx.probe.page, 'import.html'));
  const summary = await importKeyFileFirefox(page, fileText, passphrase);
  await closeTab(fx.rdp, page.page);
  return summary;
}
type ImportResult = Awaited<ReturnType<typeof importKeyFileFirefox>>;

/** The vault's rows (read from an extension page: same origin as the event page), by public key. */
async function vaultPublicKeys(page: FirefoxUi): Promise<string[]> {
  return page.page.evaluateAsync(`(async () => {
    const read = (r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
    const db = await read(indexedDB.open('matrix-key-vault'));
    const tx = db.transaction(['sessions', 'packed', 'kv']);
    // Rows and pages as stored (src/platform/vault-rows.ts, vault-pages.ts): the public key is its
    // number in publicKeys.
    const rows = [...await read(tx.objectStore('sessions').getAll()), ...await read(tx.objectStore('packed').getAll())];
    const publicKeys = await read(tx.objectStore('kv').get('publicKeys'));
    db.close();
    return [...new Set(rows.map((r) => publicKeys[r.k]))];
  })()`) as Promise<string[]>;
}

describe(`Firefox ESR: ${SESSIONS} sessions from Element's key file reach the server backup`, () => {
  const synapse = sharedSynapse();
  let user: SynapseUser;
  let direct: HomeserverClient;
  let sessions: ExportedSessionData[];
  let keyFile: string;
  let proxy: FaultProxy;
  let fx: Firefox | undefined;
  let recoveryKey: string;

  beforeAll(async () => {
    user = await synapse.registerUser(uniqueLocalpart('ff'), password);
    direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    sessions = await peerSessions(SESSIONS, 8);
    keyFile = await keyFileFromPeer(sessions, passphrase, 500_000); // Element's default rounds
    proxy = await startFaultProxy(synapse.baseUrl, {}, { hideWellKnown: true });
    fx = await launchFirefox();
  });

  afterAll(async () => {
    await closeFirefox(fx);
    await proxy?.stop();
  });

  it('a new user signs in from the popup and creates a backup in its page', async () => {
    const popup = await newPopup(fx!);
    await signInFirefox(popup, proxy.baseUrl, user.userId, password);
    await popup.waitFor('[data-testid=open-create]');
    // The link opens the page in a new tab, as a click does.
    const before = await tabActors(fx!.rdp);
    await popup.click('[data-testid=open-create]');
    const page = firefoxUi(await waitForNewTab(fx!.rdp, before, (url) => url.endsWith('/backup.html')));
    await page.waitFor('[data-testid=generate]');
    await page.click('[data-testid=generate]');
    await page.waitFor('[data-testid=recovery-key]');
    recoveryKey = (await page.text('[data-testid=recovery-key]'))!;
    expect(recoveryKey).toMatch(/^Es[STU][1-9A-HJ-NP-Za-km-z]( ?[1-9A-HJ-NP-Za-km-z]){44}/);
    expect(await page.isDisabled('[data-testid=create]'), 'not before "I have saved it"').toBe(true);
    await page.click('[data-testid=saved]');
    await page.click('[data-testid=create]');
    await page.waitFor('[data-testid=created]', 30_000);
    await closeTab(fx!.rdp, page.page);

    const info = await direct.getLatestBackupVersion();
    expect(info?.state).toBe('supported');
    expect((await fx!.probe.status()).backup).toMatchObject({ version: info!.version, source: 'created' });
    await closeTab(fx!.rdp, popup.page);
  });

  it('imports the key file and uploads every session through faults and repeated event page restarts', async () => {
    const faults: FaultKind[] = ['limit-body', 'status-500', 'drop-after', 'stall', 'limit-header', 'status-502', 'drop-before', 'status-503'];
    proxy.resetCounts();
    proxy.setPlan({
      match: { method: 'PUT', path: /\/room_keys\/keys/ },
      // Four faults before each batch gets through; the backoff doubles within a group only.
      script: [...faults.slice(0, 4), 'pass', ...faults.slice(4), 'pass'],
      retryAfterMs: 1500,
      stallMs: 3000,
    });

    const summary = await importInPage(fx!, keyFile);
    expect(summary).toMatchObject({ stored: SESSIONS, unchanged: 0, total: SESSIONS });

    const bootIds = new Set<string>();
    let restarts = 0;
    const deadline = Date.now() + 3 * 60_000;
    for (;;) {
      const now = await fx!.probe.status();
      bootIds.add(now.worker.bootId);
      if (now.upload.pending === 0 && now.upload.phase === 'idle') break;
      expect(now.upload.phase).not.toBe('stopped');
      if (restarts < 8) {
        const { before, after } = await restartBackground(fx!);
        bootIds.add(before).add(after);
        restarts++;
      }
      if (Date.now() > deadline) throw new Error(`upload did not finish: ${JSON.stringify(now.upload)}`);
      await sleep(1500 + Math.random() * 1500);
    }
    console.log(`firefox flows: ${SESSIONS} sessions uploaded through ${restarts} event page restarts`);
    expect(restarts).toBeGreaterThanOrEqual(4);
    expect(bootIds.size).toBeGreaterThan(restarts);

    const counts = proxy.counts();
    for (const kind of faults) expect(counts.injected[kind], kind).toBeGreaterThan(0);
    proxy.setPlan({});

    const status = await fx!.probe.status();
    expect(status.upload).toMatchObject({ phase: 'idle', pending: 0, stored: SESSIONS, serverCount: SESSIONS });
  });

  it('the server holds exactly the exported sessions, readable with the recovery key', async () => {
    const info = await direct.getLatestBackupVersion();
    expect(info?.count).toBe(SESSIONS);
    const backup = await getWholeBackup(direct, info!.version);
    expect(backup.invalid).toEqual([]);
    const entries: Array<{ roomId: string; sessionId: string; sd: EncryptedSessionData; fc: number }> = [];
    for (const [roomId, room] of Object.entries(backup.rooms)) {
      for (const [sessionId, e] of Object.entries(room.sessions)) entries.push({ roomId, sessionId, sd: e.session_data, fc: e.forwarded_count });
    }
    expect(entries.length).toBe(SESSIONS);
    const plain = await (await createBackupDecryptor(decodeRecoveryKey(recoveryKey))).decryptMany(entries.map((e) => e.sd));
    const byId = new Map(sessions.map((s) => [s.session_id, s]));
    entries.forEach((e, i) => {
      const result = plain[i]!;
      if (!result.ok) throw new Error(`entry ${e.sessionId} did not decrypt: ${result.error.message}`);
      const { room_id: roomId, session_id: _s, ...expected } = byId.get(e.sessionId)!;
      expect(e.roomId).toBe(roomId);
      expect(result.value).toEqual(expected);
      expect(e.fc).toBeGreaterThanOrEqual(1);
    });
  });

  it('the popup shows the finished backup', async () => {
    const popup = await newPopup(fx!);
    await popup.waitUntil(() => popup.text('[data-testid=pending-count]'), '0', 'no key pending');
    expect(await popup.text('[data-testid=server-count]')).toBe(String(SESSIONS));
    expect(await popup.text('[data-testid=upload-phase]')).toBe('All keys are backed up.');
    await closeTab(fx!.rdp, popup.page);
  });

  it('gives nothing to a version the server swapped in with a foreign key, and says why', async () => {
    const pinned = (await fx!.probe.status()).backup!;
    const attacker = await createServerBackup(direct, randomKey());
    const more = await peerSessions(20, 2);
    const summary = await importInPage(fx!, await keyFileFromPeer(more, passphrase, 1000));
    expect(summary.stored).toBe(20);

    const popup = await newPopup(fx!);
    await popup.waitUntil(() => popup.attr('[data-testid=upload-phase]', 'data-phase'), 'stopped', 'the upload to stop', 30_000);
    const text = await popup.text('[data-testid=upload-phase]');
    expect(text).toContain('The backup changed on the server');
    expect(text).toContain(`replaced by version ${attacker.version}`);
    await popup.waitFor('[data-testid=join]'); // the way out: prove the new backup's key

    expect((await direct.getBackupVersion(attacker.version)).count).toBe(0);
    const status = await fx!.probe.status();
    expect(status.backup).toMatchObject({ version: pinned.version, publicKey: pinned.publicKey });
    expect(status.upload.pending).toBe(20);
    // Every session the vault holds is encrypted to the pinned key, none to the attacker's.
    expect(await vaultPublicKeys(fx!.probe)).toEqual([pinned.publicKey]);
    // An event page restart changes nothing: still stopped, still nothing uploaded.
    await restartBackground(fx!);
    await sleep(1500);
    expect((await fx!.probe.status()).upload).toMatchObject({ phase: 'stopped', pending: 20 });
    expect((await direct.getBackupVersion(attacker.version)).count).toBe(0);
    await closeTab(fx!.rdp, popup.page);
  });

  it('logged no error from its pages or event page through all of it', () => {
    expect(extensionErrors(fx!)).toEqual([]);
  });
});

describe(`Firefox ESR: unlock with the Security Key and restore ${RESTORED} sessions`, () => {
  const synapse = sharedSynapse();
  let user: SynapseUser;
  let direct: HomeserverClient;
  let backup: PeerWrittenBackup;
  let storage: ElementSecretStorage;
  let fx: Firefox | undefined;
  let popup: FirefoxUi;

  beforeAll(async () => {
    user = await synapse.registerUser(uniqueLocalpart('ff-restore'), password);
    direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    backup = await createPeerWrittenBackup(direct, { sessions: RESTORED, rooms: 5 });
    storage = await writeElementSecretStorage(direct, user.userId, backup.privateKey);
    fx = await launchFirefox();
  });

  afterAll(async () => {
    await closeFirefox(fx);
  });

  it('joins the backup only with a proved key: a wrong key is refused, the Security Key unlocks', async () => {
    popup = await newPopup(fx!);
    await signInFirefox(popup, synapse.serverName, user.userId, password);
    await popup.waitUntil(() => popup.attr('main', 'data-screen'), 'locked', 'the locked screen', 30_000);
    expect(await popup.text('[data-testid=join]')).toContain(`version ${backup.version}`);

    const unlock = async (input: string) => {
      await popup.fill('[data-testid=recovery-input]', input);
      await popup.click('[data-testid=join] button[type=submit]', 'Unlock');
      await popup.waitUntil(async () => await popup.count('[data-testid=unlocked]') > 0
        || (await popup.count('[data-testid=join] [role=alert]') > 0 && !await popup.isDisabled('[data-testid=join] button[type=submit]')), true, 'the unlock to answer', 60_000);
    };
    await unlock(encodeRecoveryKey(randomKey()));
    expect(await popup.attr('[data-testid=join] [role=alert] [data-kind]', 'data-kind')).toBe('wrong-key');
    expect((await popup.status()).backup).toBeNull();

    await unlock(storage.securityKey);
    expect(await popup.attr('[data-testid=unlocked]', 'data-via')).toBe('security-key');
    const status = await popup.status();
    expect(status.backup).toMatchObject({ version: backup.version, publicKey: backup.publicKey, source: 'proved' });
    expect(status.unlocked).not.toBeNull();
  });

  it('the unlocked key survives an event page restart (storage.session)', async () => {
    await restartBackground(fx!);
    const status = await fx!.probe.status();
    expect(status.unlocked).not.toBeNull();
    expect(status.backup).toMatchObject({ version: backup.version, source: 'proved' });
  });

  it(`restores: the vault then holds exactly the ${RESTORED} backed-up sessions`, async () => {
    await popup.waitFor('[data-testid=unlocked]');
    await popup.click('button', 'Restore');
    await popup.waitUntil(() => popup.attr('[data-testid=restore]', 'data-phase'), 'done', 'the restore to finish', 120_000);
    const status = await popup.status();
    expect(status.restore).toMatchObject({ phase: 'done', restored: RESTORED, alreadyPresent: 0, failed: 0, serverCount: RESTORED });
    expect(status.upload).toMatchObject({ stored: RESTORED, pending: 0 });
    expect(await popup.text('[data-testid=restore-restored]')).toBe(String(RESTORED));

    const out = await exportAllFirefox(fx!.probe);
    expect(out).toMatchObject({ skipped: 0, total: RESTORED });
    expect(out.sessions).toHaveLength(RESTORED);
    const byId = new Map(backup.sessions.map((s) => [s.session_id, s]));
    expect(new Set(out.sessions.map((s) => s.session_id)).size).toBe(RESTORED);
    for (const s of out.sessions) {
      const want = byId.get(s.session_id as string);
      expect(want, `exported ${String(s.session_id)} is a backed-up session`).toBeDefined();
      expect([s.room_id, s.session_key, s.sender_key, s.sender_claimed_keys])
        .toEqual([want!.room_id, want!.session_key, want!.sender_key, want!.sender_claimed_keys]);
    }
  });

  it('uploads new keys to the backup whose key was proved', async () => {
    const more = await peerSessions(20, 2);
    const summary = await importInPage(fx!, await keyFileFromPeer(more, passphrase, 1000));
    expect(summary.stored).toBe(20);
    await popup.waitUntil(async () => (await popup.status()).upload.pending, 0, 'the new keys to upload', 60_000);
    expect((await direct.getBackupVersion(backup.version)).count).toBe(RESTORED + 20);
    expect((await popup.status()).upload).toMatchObject({ stored: RESTORED + 20, pending: 0, phase: 'idle' });
    await closeTab(fx!.rdp, popup.page);
  });

  it('logged no error from its pages or event page through all of it', () => {
    expect(extensionErrors(fx!)).toEqual([]);
  });
});
