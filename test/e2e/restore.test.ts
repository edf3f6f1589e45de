/**
 * Recovery end to end, in Chromium against a real Synapse, driven through the popup as a person
 * does: backups written by Element's crypto (secret storage written the way Element writes it) are
 * unlocked with each kind of key and restored; the vault then holds exactly what the peer backed up.
 * A 5,000-key restore survives repeated worker kills, a restore goes through injected rate limits,
 * server errors, drops and a stall, corrupt entries are counted by reason, every bad input gets its
 * own message, nothing secret is left in storage after locking or a browser restart, and every
 * recovery screen passes axe.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { base58 } from '@scure/base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBase64, decryptKeyFile, encodeBase64, encodeRecoveryKey } from '../../src/core/index.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import type { RestoreFailureSummary } from '../../src/shared/messages.ts';
import { launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { startFaultProxy, type FaultKind, type FaultProxy } from '../harness/fault-proxy.ts';
import {
  createPeerWrittenBackup, putCorruptEntries, writeElementSecretStorage,
  type CorruptEntry, type ElementSecretStorage, type PeerWrittenBackup,
} from '../harness/peer-backup.ts';
import {
  attemptUnlock, dumpStorageAreas, exportAll, recoveryField, restoreViaPopup, screenshotAndAxe, sleep, unlockButton,
  unlockViaPopup, startThrottleProxy, wholeProfileFiles, type ThrottleProxy,
} from '../harness/restore-ui.ts';
import { profileStorageFiles, scanFor, type Secret } from '../harness/secret-scan.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { createServerBackup, randomKey } from '../harness/upload-rig.ts';
import { importExportedIntoFreshMachine, initPeer, readKeyFileWithPeer, type ExportedSessionData } from '../peer/index.ts';

const SMALL = 200;
const LARGE = 5000;
const password = 'restore e2e password';
const phrase = 'correct horse battery staple, restored';
const legacyPhrase = 'the passphrase of an old backup';

interface Account {
  user: SynapseUser;
  direct: HomeserverClient;
  backup: PeerWrittenBackup;
  storage?: ElementSecretStorage;
  /** An earlier backup version of the account, replaced by `backup`. */
  older?: { version: string; recoveryKey: string };
}

describe('restore from the server backup, through the popup', () => {
  const synapse = sharedSynapse();
  const browsers: ExtensionBrowser[] = [];
  const dirs: string[] = [];
  let proxy: FaultProxy;
  /** A slow link, for the restore whose worker is killed. */
  let throttle: ThrottleProxy | undefined;
  /** Security Key (secret storage without a phrase). */
  let S: Account;
  /** Security Phrase (secret storage from a phrase); also the lock / restart / scan account. */
  let P: Account;
  /** The raw backup recovery key, no secret storage, an older version before it; the bad-input account. */
  let R: Account;
  /** A legacy backup whose key is PBKDF2 of a passphrase. */
  let L: Account;
  /** Faults and corrupt entries. */
  let F: Account;
  let corrupt: CorruptEntry[];
  /** P's browser, kept for the lock / restart test. */
  let pExt: ExtensionBrowser;
  let pPopup: Page;
  let pDir: string;
  /** R's browser: bad inputs first, then the restore. */
  let rExt: ExtensionBrowser;
  let rPopup: Page;

  async function newAccount(prefix: string): Promise<{ user: SynapseUser; direct: HomeserverClient }> {
    const user = await synapse.registerUser(uniqueLocalpart(prefix), password);
    return { user, direct: new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken }) };
  }

  async function launch(userDataDir?: string): Promise<ExtensionBrowser> {
    const ext = await launchExtension(userDataDir ? { userDataDir } : {});
    browsers.push(ext);
    return ext;
  }

  async function close(ext: ExtensionBrowser): Promise<void> {
    const i = browsers.indexOf(ext);
    if (i !== -1) browsers.splice(i, 1);
    await ext.close();
  }

  /** A fresh browser signed in to `a` (through the proxy when asked), its popup on the locked screen. */
  async function signedIn(a: Account, options: { viaProxy?: boolean; homeserver?: string; userDataDir?: string } = {}): Promise<{ ext: ExtensionBrowser; popup: Page }> {
    const ext = await launch(options.userDataDir);
    const popup = await signInViaPopup(ext, options.homeserver ?? (options.viaProxy ? proxy.baseUrl : synapse.serverName), a.user.userId, password);
    await expect.poll(() => popup.locator('main').getAttribute('data-screen'), { timeout: 30_000 }).toBe('locked');
    await recoveryField(popup).waitFor();
    return { ext, popup };
  }

  /** The vault holds exactly the backed-up sessions, and decrypting them gives what the peer exported. */
  async function expectVaultHolds(page: Page, expected: readonly ExportedSessionData[]): Promise<void> {
    const status = await workerStatus(page);
    expect(status.upload).toMatchObject({ stored: expected.length, pending: 0 });
    const out = await exportAll(page);
    expect(out).toMatchObject({ skipped: 0, total: expected.length });
    expect(out.sessions).toHaveLength(expected.length);
    const byId = new Map(expected.map((s) => [s.session_id, s]));
    expect(new Set(out.sessions.map((s) => s.session_id)).size).toBe(expected.length);
    for (const s of out.sessions) {
      const want = byId.get(s.session_id as string);
      expect(want, `exported ${String(s.session_id)} is a backed-up session`).toBeDefined();
      expect({
        room_id: s.room_id, session_id: s.session_id, session_key: s.session_key, sender_key: s.sender_key,
        algorithm: s.algorithm, sender_claimed_keys: s.sender_claimed_keys,
      }).toEqual({
        room_id: want!.room_id, session_id: want!.session_id, session_key: want!.session_key, sender_key: want!.sender_key,
        algorithm: want!.algorithm, sender_claimed_keys: want!.sender_claimed_keys,
      });
    }
  }

  beforeAll(async () => {
    const t0 = Date.now();
    proxy = await startFaultProxy(synapse.baseUrl, {}, { hideWellKnown: true });
    {
      const a = await newAccount('rs-seckey');
      const backup = await createPeerWrittenBackup(a.direct, { sessions: SMALL, rooms: 5 });
      S = { ...a, backup, storage: await writeElementSecretStorage(a.direct, a.user.userId, backup.privateKey) };
    }
    {
      const a = await newAccount('rs-phrase');
      const backup = await createPeerWrittenBackup(a.direct, { sessions: SMALL, rooms: 5 });
      P = { ...a, backup, storage: await writeElementSecretStorage(a.direct, a.user.userId, backup.privateKey, { passphrase: phrase }) };
    }
    {
      const a = await newAccount('rs-rawkey');
      const olderKey = randomKey();
      const older = await createServerBackup(a.direct, olderKey);
      const backup = await createPeerWrittenBackup(a.direct, { sessions: SMALL, rooms: 5 });
      R = { ...a, backup, older: { version: older.version, recoveryKey: encodeRecoveryKey(olderKey) } };
    }
    {
      const a = await newAccount('rs-legacy');
      L = { ...a, backup: await createPeerWrittenBackup(a.direct, { sessions: SMALL, rooms: 5, legacyPassphrase: legacyPhrase }) };
    }
    {
      const a = await newAccount('rs-faults');
      const backup = await createPeerWrittenBackup(a.direct, { sessions: SMALL, rooms: 5 });
      F = { ...a, backup };
      corrupt = await putCorruptEntries(a.direct, backup.version, backup.publicKey);
    }
    console.log(`restore e2e: fixtures in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  afterAll(async () => {
    for (const ext of [...browsers]) await ext.close().catch(() => {});
    await proxy?.stop();
    await throttle?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('shows each bad input its own message, keeps nothing, and slows down repeated attempts', async () => {
    // The signed-out popup, before anything.
    rExt = await launch();
    const first = await rExt.openPage('popup.html');
    await expect.poll(() => first.locator('main').getAttribute('data-screen')).toBe('signed-out');
    await screenshotAndAxe(first, 'restore-popup-signed-out');
    await first.close();

    // R signs in through the (quiet) proxy, so the requests of each attempt can be counted.
    proxy.setPlan({});
    rPopup = await signInViaPopup(rExt, proxy.baseUrl, R.user.userId, password);
    await expect.poll(() => rPopup.locator('main').getAttribute('data-screen'), { timeout: 30_000 }).toBe('locked');
    expect(await rPopup.getByTestId('join').textContent()).toContain(`version ${R.backup.version}`);
    await screenshotAndAxe(rPopup, 'restore-popup-locked');

    // Nothing to send: Unlock stays disabled, and the field says why for the paste.
    const field = recoveryField(rPopup);
    const format = rPopup.getByTestId('recovery-format');
    await field.fill('');
    expect(await unlockButton(rPopup).isDisabled(), 'empty: Unlock disabled').toBe(true);
    await field.fill('   \n\t  ');
    expect(await unlockButton(rPopup).isDisabled(), 'whitespace: Unlock disabled').toBe(true);
    expect(await format.getAttribute('data-format')).toBe('empty');
    await field.fill('k'.repeat(1_000_000));
    expect(await format.getAttribute('data-format')).toBe('too-long');
    expect(await format.textContent()).toContain('1,000,000 characters');
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    expect(await unlockButton(rPopup).isDisabled(), '1 MB paste: Unlock disabled').toBe(true);
    await field.press('Enter');
    expect(await rPopup.getByTestId('join').getByRole('alert').count(), 'Enter sends nothing either').toBe(0);

    // Each attempt the worker answers, with its own kind and words. The limiter lets three through
    // at once, then asks to wait: a patient person waits and presses Unlock again.
    const otherBase58 = base58.encode(crypto.getRandomValues(new Uint8Array(35))); // 48 base58 characters, not a key
    const cases: Array<{ name: string; input: string; kind: string; words: RegExp; format?: string }> = [
      { name: 'another base58 string', input: otherBase58, kind: 'not-a-key', words: /not a recovery key/, format: 'bad-key' },
      { name: 'a Bitcoin address', input: '1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2', kind: 'not-a-key', words: /too short or too long/, format: 'bad-key' },
      { name: "another account's backup key", input: S.backup.recoveryKey, kind: 'wrong-key', words: /belongs neither to your secret storage nor to your backup/, format: 'key' },
      { name: 'the key of an older backup version', input: R.older!.recoveryKey, kind: 'older-backup-key', words: new RegExp(`older backup \\(version ${R.older!.version}\\)`), format: 'key' },
      { name: 'a phrase without secret storage', input: 'my cat eats green bananas', kind: 'no-secret-storage', words: /no secret storage/, format: 'phrase' },
    ];
    const seen = new Set<string>();
    for (const c of cases) {
      await field.fill(c.input);
      if (c.format) expect(await format.getAttribute('data-format'), c.name).toBe(c.format);
      const alert = await attemptUnlock(rPopup, c.input, { waitOutRateLimit: true });
      expect(alert, c.name).not.toBeNull();
      expect(alert!.kind, c.name).toBe(c.kind);
      expect(alert!.text, c.name).toMatch(c.words);
      seen.add(alert!.text);
    }
    expect(seen.size, 'every message is its own').toBe(cases.length);

    // One more at once: the rate-limit message instead of a request.
    const before = proxy.events().length;
    const limited = await attemptUnlock(rPopup, 'EsT0 wrong');
    expect(limited?.kind).toBe('rate-limited');
    expect(limited?.text).toMatch(/Too many attempts\. Wait \d+ s/);
    await sleep(300);
    const sent = proxy.events().slice(before).filter((e) => /room_keys|account_data/.test(e.path));
    expect(sent, 'no request while rate-limited').toEqual([]);

    // Nothing was kept: no pin, not unlocked, nothing stored.
    const status = await workerStatus(rPopup);
    expect(status.backup).toBeNull();
    expect(status.unlocked).toBeNull();
    expect(status.upload.stored).toBe(0);

    // A wrong Security Phrase, and a phrase where secret storage has none: other accounts, own messages.
    // P's profile is kept in a folder of ours: the last test restarts the browser on it.
    pDir = mkdtempSync(join(tmpdir(), 'mkv-restore-profile-'));
    dirs.push(pDir);
    ({ ext: pExt, popup: pPopup } = await signedIn(P, { userDataDir: pDir }));
    const wrongPhrase = await attemptUnlock(pPopup, 'not the phrase at all, sorry');
    expect(wrongPhrase).toMatchObject({ kind: 'wrong-phrase' });
    expect(wrongPhrase!.text).toContain('This is not your Security Phrase');
    expect((await workerStatus(pPopup)).backup).toBeNull();

    const s = await signedIn(S);
    const noPhrase = await attemptUnlock(s.popup, 'a phrase for a key that has none');
    expect(noPhrase).toMatchObject({ kind: 'no-phrase' });
    expect(noPhrase!.text).toContain('set up without a Security Phrase');
    await close(s.ext);
  });

  it('restores with a Security Key: the vault holds exactly the peer\'s sessions', async () => {
    const { ext, popup } = await signedIn(S);
    await unlockViaPopup(popup, S.storage!.securityKey, 'security-key');
    expect(await popup.getByRole('status').filter({ hasText: 'Unlocked with your Security Key' }).count()).toBe(1);
    await screenshotAndAxe(popup, 'restore-popup-unlocked');
    const summary = await restoreViaPopup(popup);
    expect(summary).toMatchObject({ phase: 'done', restored: SMALL, alreadyPresent: 0, failed: 0, serverCount: SMALL });
    expect(await popup.getByTestId('restore-restored').textContent()).toBe(String(SMALL));
    expect(await popup.getByRole('progressbar', { name: 'Restore progress' }).getAttribute('aria-valuenow')).toBe(String(SMALL));
    await expectVaultHolds(popup, S.backup.sessions);

    // The export page, unlocked: its form, and a file of every key.
    const page = await ext.openPage('export.html');
    await page.getByTestId('export-form').waitFor();
    await screenshotAndAxe(page, 'restore-export-page');
    await page.getByTestId('passphrase').fill('export passphrase');
    await page.getByTestId('confirm').fill('export passphrase');
    await page.getByText('Advanced').click();
    await page.getByTestId('rounds').fill('1000');
    await page.getByTestId('export').click();
    await page.getByTestId('export-result').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('export-result').getAttribute('data-count')).toBe(String(SMALL));
    expect(await page.getByTestId('export-result').getAttribute('data-skipped')).toBe('0');
    // The file it offers opens with the passphrase and holds the peer's sessions.
    const href = await page.getByTestId('download').getAttribute('href');
    const file = await page.evaluate(async (url) => (await fetch(url!)).text(), href);
    const fromFile = JSON.parse(await decryptKeyFile(file, 'export passphrase')) as ExportedSessionData[];
    const want = new Map(S.backup.sessions.map((x) => [x.session_id, x.session_key]));
    expect(fromFile).toHaveLength(SMALL);
    for (const x of fromFile) expect(x.session_key, x.session_id).toBe(want.get(x.session_id));
    // Element's crypto reads it too, and imports every session from it.
    await initPeer();
    const byPeer = readKeyFileWithPeer(file, 'export passphrase');
    expect(byPeer.map((x) => x.session_id).sort()).toEqual([...want.keys()].sort());
    expect(await importExportedIntoFreshMachine(byPeer)).toMatchObject({ importedCount: SMALL, totalCount: SMALL });
    await close(ext);
  });

  it('restores with a Security Phrase', async () => {
    await unlockViaPopup(pPopup, phrase, 'security-phrase');
    const summary = await restoreViaPopup(pPopup);
    expect(summary).toMatchObject({ phase: 'done', restored: SMALL, failed: 0 });
    await expectVaultHolds(pPopup, P.backup.sessions);
    // P's browser stays open for the lock / restart test.
  });

  it('restores with the raw backup recovery key', async () => {
    // R's worker remembers the failed attempts: the unlock waits out the limit first.
    await unlockViaPopup(rPopup, R.backup.recoveryKey, 'recovery-key');
    const summary = await restoreViaPopup(rPopup);
    expect(summary).toMatchObject({ phase: 'done', restored: SMALL, failed: 0 });
    await expectVaultHolds(rPopup, R.backup.sessions);
    expect((await workerStatus(rPopup)).backup).toMatchObject({ version: R.backup.version, publicKey: R.backup.publicKey, source: 'proved' });
    await close(rExt);
  });

  it('restores with the passphrase of a legacy backup', async () => {
    const { ext, popup } = await signedIn(L);
    await unlockViaPopup(popup, legacyPhrase, 'legacy-phrase');
    const summary = await restoreViaPopup(popup);
    expect(summary).toMatchObject({ phase: 'done', restored: SMALL, failed: 0 });
    await expectVaultHolds(popup, L.backup.sessions);
    await close(ext);
  });

  it(`restores ${LARGE.toLocaleString('en')} keys while the worker is killed again and again`, async () => {
    const t0 = Date.now();
    const a = await newAccount('rs-kills');
    const backup = await createPeerWrittenBackup(a.direct, { sessions: LARGE, rooms: 50 });
    console.log(`restore e2e: ${LARGE} keys written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // Through a slow link (the download takes seconds), so kills land mid-stream, between chunks. The
    // link, not the CPU, must set the pace: at 1 MB/s a restore of 5,000 keys (4.4 MB) ended before
    // its fifth kill once the decryption helper came.
    const LINK = 500_000;
    throttle = await startThrottleProxy(synapse.baseUrl, { bytesPerSecond: LINK, match: /\/room_keys\/keys/ });
    const { ext, popup } = await signedIn({ ...a, backup }, { homeserver: throttle.baseUrl });
    await unlockViaPopup(popup, backup.recoveryKey, 'recovery-key');
    const probe = await ext.openPage('popup.html');

    await popup.getByRole('button', { name: 'Restore', exact: true }).click();
    await popup.getByTestId('restore').waitFor();
    const started = Date.now();
    const kills: Array<{ before: string; after: string; doneBefore: number; phaseAfter: string }> = [];
    const bootIds = new Set<string>();
    const deadline = Date.now() + 4 * 60_000;
    let screenshot = false;
    for (;;) {
      const now = await workerStatus(probe);
      bootIds.add(now.worker.bootId);
      const r = now.restore!;
      if (r.phase === 'done') break;
      expect(['running', 'waiting'], JSON.stringify(r)).toContain(r.phase);
      if (Date.now() > deadline) throw new Error(`the restore did not finish: ${JSON.stringify(r)}`);
      if (kills.length >= 6) { await sleep(200); continue; }
      // A kill right after the worker stored a chunk, then two at random moments (a resumed download
      // streams again what is done, so these mostly land before the next chunk), and again.
      if (kills.length % 3 === 0) {
        const until = Date.now() + 10_000;
        while (Date.now() < until && ((await workerStatus(probe)).restore?.done ?? 0) === r.done) await sleep(50);
      } else {
        await sleep(300 + Math.random() * 1500);
      }
      if (!screenshot) {
        // The popup mid-restore, its progress bar part-way (before the first kill: the link is slow enough).
        screenshot = true;
        expect(await popup.locator('main').getAttribute('data-screen')).toBe('restoring');
        await expect.poll(async () => Number(await popup.getByRole('progressbar', { name: 'Restore progress' }).getAttribute('aria-valuenow'))).toBeGreaterThan(0);
        throttle.setBytesPerSecond(30_000); // hold the restore mid-way while the picture is taken
        await screenshotAndAxe(popup, 'restore-popup-restoring-running');
        throttle.setBytesPerSecond(LINK);
      }
      const before = await workerStatus(probe);
      if (before.restore?.phase !== 'running' && before.restore?.phase !== 'waiting') continue;
      await ext.stopWorker();
      const after = await workerStatus(probe); // the message wakes a new worker
      expect(after.worker.bootId, 'the worker was really restarted').not.toBe(before.worker.bootId);
      bootIds.add(after.worker.bootId);
      kills.push({ before: before.worker.bootId, after: after.worker.bootId, doneBefore: before.restore!.done, phaseAfter: after.restore!.phase });
    }
    console.log(`restore e2e: ${LARGE} keys restored in ${((Date.now() - started) / 1000).toFixed(1)} s with ${kills.length} kills at ${kills.map((k) => k.doneBefore).join(', ')}`);
    expect(kills.length).toBeGreaterThanOrEqual(5);
    expect(bootIds.size).toBeGreaterThan(kills.length);
    expect(kills.some((k) => k.doneBefore > 0 && k.doneBefore < LARGE), 'a kill interrupted a restore part-way').toBe(true);
    // The key survives a worker kill (storage.session): each new worker went on, none waited for unlock.
    for (const k of kills) expect(['running', 'waiting', 'done']).toContain(k.phaseAfter);

    const status = await workerStatus(probe);
    expect(status.restore).toMatchObject({ phase: 'done', restored: LARGE, alreadyPresent: 0, failed: 0, serverCount: LARGE, done: LARGE });
    // One row per session: nothing stored twice, nothing queued for upload again.
    expect(status.upload).toMatchObject({ stored: LARGE, pending: 0 });
    await popup.reload();
    await expect.poll(() => popup.getByTestId('restore').getAttribute('data-phase')).toBe('done');
    expect(await popup.getByTestId('restore-restored').textContent()).toBe('5,000');
    expect(await popup.getByTestId('restore-failed').textContent()).toBe('0');
    const out = await exportAll(probe);
    expect(out.sessions).toHaveLength(LARGE);
    expect(new Set(out.sessions.map((s) => s.session_id)).size).toBe(LARGE);
    const keys = new Map(backup.sessions.map((s) => [s.session_id, s.session_key]));
    for (const s of out.sessions) expect(s.session_key).toBe(keys.get(s.session_id as string));
    expect(throttle.throttledBytes(), 'the downloads went through the slow link').toBeGreaterThan(LARGE * 500);
    await close(ext);
  });

  let fExt: ExtensionBrowser;
  let fPopup: Page;

  it('restores through rate limits, server errors, dropped connections and a stall', async () => {
    proxy.setPlan({});
    ({ ext: fExt, popup: fPopup } = await signedIn(F, { viaProxy: true }));
    await unlockViaPopup(fPopup, F.backup.recoveryKey, 'recovery-key');
    // Ordered so the backoff stays short: 429 (retry_after_ms) last, when the backoff would be longest.
    const faults: FaultKind[] = ['status-500', 'drop-before', 'stall', 'limit-body'];
    proxy.resetCounts();
    proxy.setPlan({ match: { method: 'GET', path: /\/room_keys\/keys\?version=/ }, script: faults, retryAfterMs: 1000, stallMs: 3000 });

    await fPopup.getByRole('button', { name: 'Restore', exact: true }).click();
    // The popup and the restore page while it waits out a fault.
    await expect.poll(() => fPopup.getByTestId('restore').getAttribute('data-phase'), { timeout: 30_000 }).toBe('waiting');
    expect(await fPopup.locator('main').getAttribute('data-screen')).toBe('restoring');
    expect(await fPopup.getByTestId('restore-status').textContent()).toContain('paused after an error');
    expect(await fPopup.getByRole('button', { name: 'Cancel', exact: true }).isVisible()).toBe(true);
    await screenshotAndAxe(fPopup, 'restore-popup-restoring');

    await expect.poll(() => fPopup.getByTestId('restore').getAttribute('data-phase'), { timeout: 120_000, interval: 500 }).toBe('done');
    const counts = proxy.counts();
    for (const kind of faults) expect(counts.injected[kind], kind).toBe(1);
    proxy.setPlan({});
    const status = await workerStatus(fPopup);
    expect(status.restore).toMatchObject({ phase: 'done', restored: SMALL, serverCount: SMALL + corrupt.length });
    expect(status.upload).toMatchObject({ stored: SMALL, pending: 0 });
  });

  it('counts corrupt entries by reason, lists them in the popup, and restores everything else', async () => {
    const status = await workerStatus(fPopup);
    const r = status.restore!;
    expect(r).toMatchObject({ restored: SMALL, alreadyPresent: 0, failed: corrupt.length });
    const expectedKinds: Record<string, number> = {};
    for (const c of corrupt) expectedKinds[c.kind] = (expectedKinds[c.kind] ?? 0) + 1;
    expect(r.failuresByKind).toEqual(expectedKinds);

    // The popup: the summary, the counts by reason, and each entry with its reason.
    expect(await fPopup.locator('main').getAttribute('data-screen')).toBe('done');
    expect(await fPopup.getByTestId('restore-failed').textContent()).toBe(String(corrupt.length));
    expect(await fPopup.getByTestId('restore-restored').textContent()).toBe(String(SMALL));
    const failures = fPopup.getByTestId('restore-failures');
    await failures.getByTestId('restore-failure-list').waitFor();
    for (const [kind, n] of Object.entries(expectedKinds)) {
      expect(await failures.locator(`[data-kind-count="${kind}"]`).textContent(), kind).toMatch(new RegExp(`: ${n}$`));
    }
    const rows = await failures.getByTestId('restore-failure-list').locator('tbody tr').allTextContents();
    expect(rows).toHaveLength(corrupt.length);
    for (const c of corrupt) expect(rows.some((row) => row.includes(c.sessionId)), `${c.kind} entry listed`).toBe(true);

    const listed = await fPopup.evaluate(() => chrome.runtime.sendMessage({ type: 'restore.failures', limit: 100 })) as { ok: true; value: RestoreFailureSummary[] };
    expect(listed.value.map((f) => `${f.sessionId}:${f.kind}`).sort()).toEqual(corrupt.map((c) => `${c.sessionId}:${c.kind}`).sort());
    for (const f of listed.value) expect(f.reason.length, f.kind).toBeGreaterThan(5);

    await screenshotAndAxe(fPopup, 'restore-popup-done-with-failures');
    const page = await fExt.openPage('restore.html');
    await page.getByTestId('restore-failure-list').waitFor();
    expect(await page.getByTestId('restore').getAttribute('data-phase')).toBe('done');
    await screenshotAndAxe(page, 'restore-page');
    await expectVaultHolds(fPopup, F.backup.sessions);
    await close(fExt);
  });

  it('keeps no key or plaintext session key outside storage.session, after locking and after a browser restart', async () => {
    const privateKey = P.backup.privateKey;
    const secrets: Secret[] = [
      { name: 'backup private key', bytes: privateKey },
      { name: 'backup private key, base64', text: encodeBase64(privateKey) },
      { name: 'backup recovery key text', text: P.backup.recoveryKey },
      { name: 'Security Key', text: P.storage!.securityKey },
      { name: 'secret storage key', bytes: P.storage!.secretStorageKey },
      { name: 'Security Phrase', text: phrase },
      ...P.backup.sessions.map((s) => ({ name: `session key ${s.session_id}`, text: s.session_key })),
      ...P.backup.sessions.slice(0, 50).map((s) => ({ name: `session key bytes ${s.session_id}`, bytes: decodeBase64(s.session_key) })),
    ];
    const keySecrets = secrets.slice(0, 6);

    // Unlocked: the private key is in storage.session (the scan finds it there), and nowhere else.
    let areas = await dumpStorageAreas(pPopup);
    expect(scanFor(keySecrets, areas.session).map((f) => f.secret), 'the scan sees the unlocked key').toContain('backup private key');
    expect(scanFor(secrets, [...areas.indexedDB, ...areas.local])).toEqual([]);

    // Lock: gone from storage.session too.
    await pPopup.getByRole('button', { name: 'Lock', exact: true }).click();
    await expect.poll(() => pPopup.locator('main').getAttribute('data-screen')).toBe('locked');
    expect((await workerStatus(pPopup)).unlocked).toBeNull();
    areas = await dumpStorageAreas(pPopup);
    expect(scanFor(secrets, [...areas.indexedDB, ...areas.local, ...areas.session])).toEqual([]);
    expect(scanFor(secrets, profileStorageFiles(pExt.userDataDir, pExt.extensionId))).toEqual([]);

    // A browser restart with the same profile: locked, and nothing on disk anywhere in the profile.
    await close(pExt);
    const ext = await launch(pDir);
    const popup = await ext.openPage('popup.html');
    await expect.poll(() => popup.locator('main').getAttribute('data-screen'), { timeout: 30_000 }).toBe('locked');
    await recoveryField(popup).waitFor();
    const status = await workerStatus(popup);
    expect(status.unlocked).toBeNull();
    expect(status.account?.userId).toBe(P.user.userId);
    expect(status.upload.stored).toBe(SMALL);
    expect(status.restore?.phase).toBe('done');
    areas = await dumpStorageAreas(popup);
    expect(scanFor(secrets, [...areas.indexedDB, ...areas.local, ...areas.session])).toEqual([]);
    expect(scanFor(secrets, profileStorageFiles(ext.userDataDir, ext.extensionId))).toEqual([]);
    const everything = wholeProfileFiles(pDir);
    expect(everything.length).toBeGreaterThan(10);
    expect(scanFor(keySecrets, everything)).toEqual([]);
    await close(ext);
  });
});
