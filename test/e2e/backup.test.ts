/**
 * The first promise of the product, end to end in Chromium against a real Synapse: a new user signs
 * in from the popup, creates a backup in its page, and imports 5,000 sessions that Element's crypto
 * wrote to a key file; every one reaches the server backup, encrypted to the user's key, while a
 * proxy injects rate limits, server errors, dropped connections and a stall, and the service worker
 * is killed again and again. Then the server swaps in a foreign key and gets nothing, and nothing
 * secret is found in the extension's storage.
 */
import { getWholeBackup } from '../harness/whole-backup.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupDecryptor, decodeBase64, decodeRecoveryKey, type EncryptedSessionData } from '../../src/core/index.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { launchExtension, repoRoot, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, importKeyFileViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { startFaultProxy, type FaultKind, type FaultProxy } from '../harness/fault-proxy.ts';
import { dumpExtensionStorage, profileStorageFiles, scanFor, type Secret } from '../harness/secret-scan.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { createServerBackup, peerSessions, randomKey } from '../harness/upload-rig.ts';
import { keyFileFromPeer, type ExportedSessionData } from '../peer/index.ts';

const SESSIONS = 5000;
const password = 'a long and unguessable password';
const passphrase = 'export passphrase 🔑';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`${SESSIONS} sessions from Element's key file reach the server backup`, () => {
  const synapse = sharedSynapse();
  let user: SynapseUser;
  let direct: HomeserverClient;
  let sessions: ExportedSessionData[];
  let tmp: string;
  let keyFilePath: string;
  let proxy: FaultProxy;
  let ext: ExtensionBrowser;
  let popup: Page;
  let recoveryKey: string;
  let probe: Page;

  beforeAll(async () => {
    const localpart = uniqueLocalpart('e2e');
    user = await synapse.registerUser(localpart, password);
    direct = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    sessions = await peerSessions(SESSIONS, 50);
    tmp = mkdtempSync(join(tmpdir(), 'mkv-e2e-keys-'));
    keyFilePath = join(tmp, 'element-keys.txt');
    // Element's default: 500,000 PBKDF2 rounds.
    writeFileSync(keyFilePath, await keyFileFromPeer(sessions, passphrase, 500_000));
    proxy = await startFaultProxy(synapse.baseUrl, {}, { hideWellKnown: true });
    ext = await launchExtension();
    probe = await ext.openPage('popup.html');
  });

  afterAll(async () => {
    await ext?.close();
    await proxy?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('a new user signs in from the popup and creates a backup in its page', async () => {
    popup = await signInViaPopup(ext, proxy.baseUrl, user.userId, password);
    expect(await popup.getByTestId('user-id').textContent()).toBe(user.userId);
    await popup.getByTestId('open-create').waitFor();
    recoveryKey = await createBackupViaPage(ext, popup);
    const info = await direct.getLatestBackupVersion();
    expect(info?.state).toBe('supported');
    const status = await workerStatus(probe);
    expect(status.backup).toMatchObject({ version: info!.version, source: 'created' });
  });

  it('imports the key file and uploads every session through faults and repeated worker kills', async () => {
    const faults: FaultKind[] = ['limit-body', 'status-500', 'drop-after', 'limit-header', 'status-502', 'drop-before', 'status-503', 'stall'];
    proxy.resetCounts();
    proxy.setPlan({
      match: { method: 'PUT', path: /\/room_keys\/keys/ },
      // A success between faults keeps the backoff short; the seeded random faults come after.
      script: faults.flatMap((f) => [f, 'pass' as const]),
      random: { seed: 42, rates: { 'limit-body': 0.1, 'status-500': 0.1, 'drop-before': 0.1, 'drop-after': 0.1 } },
      maxFaults: 16,
      retryAfterMs: 1500,
      stallMs: 25_000,
    });

    const { page, summary } = await importKeyFileViaPage(ext, keyFilePath, passphrase);
    expect(summary).toMatchObject({ stored: SESSIONS, unchanged: 0, total: SESSIONS });
    await page.close();

    const bootIds = new Set<string>();
    let killsDuringUpload = 0;
    const deadline = Date.now() + 8 * 60_000;
    for (;;) {
      const before = await workerStatus(probe);
      bootIds.add(before.worker.bootId);
      if (before.upload.pending === 0 && before.upload.phase === 'idle') break;
      expect(before.upload.phase).not.toBe('stopped');
      if (killsDuringUpload < 10) {
        await ext.stopWorker();
        const after = await workerStatus(probe); // the message wakes a new worker
        expect(after.worker.bootId, 'the worker was really restarted').not.toBe(before.worker.bootId);
        bootIds.add(after.worker.bootId);
        killsDuringUpload++;
      }
      if (Date.now() > deadline) throw new Error(`upload did not finish: ${JSON.stringify(before.upload)}`);
      await sleep(500 + Math.random() * 700);
    }
    expect(killsDuringUpload).toBeGreaterThanOrEqual(5);
    expect(bootIds.size).toBeGreaterThan(killsDuringUpload);

    const counts = proxy.counts();
    for (const kind of faults) expect(counts.injected[kind], kind).toBeGreaterThan(0);

    const status = await workerStatus(probe);
    // One entry per session in the vault: none twice in the queue, none left pending; engine idle.
    expect(status.upload).toMatchObject({ phase: 'idle', pending: 0, stored: SESSIONS, serverCount: SESSIONS });
  });

  it('the server holds exactly the exported sessions, readable with the recovery key', async () => {
    const info = await direct.getLatestBackupVersion();
    expect(info?.count).toBe(SESSIONS);
    const backup = await getWholeBackup(direct, info!.version);
    expect(backup.invalid).toEqual([]);
    const decryptor = await createBackupDecryptor(decodeRecoveryKey(recoveryKey));
    const entries: Array<{ roomId: string; sessionId: string; sd: EncryptedSessionData; fmi: number; fc: number; verified: boolean }> = [];
    for (const [roomId, room] of Object.entries(backup.rooms)) {
      for (const [sessionId, e] of Object.entries(room.sessions)) {
        entries.push({ roomId, sessionId, sd: e.session_data, fmi: e.first_message_index, fc: e.forwarded_count, verified: e.is_verified });
      }
    }
    expect(entries.length).toBe(SESSIONS);
    const plain = await decryptor.decryptMany(entries.map((e) => e.sd));
    const byId = new Map(sessions.map((s) => [s.session_id, s]));
    entries.forEach((e, i) => {
      const result = plain[i]!;
      if (!result.ok) throw new Error(`entry ${e.sessionId} did not decrypt: ${result.error.message}`);
      const exported = byId.get(e.sessionId)!;
      expect(exported, e.sessionId).toBeDefined();
      expect(e.roomId).toBe(exported.room_id);
      const { room_id: _r, session_id: _s, ...expected } = exported;
      expect(result.value).toEqual(expected);
      expect([e.fmi, e.verified]).toEqual([0, false]);
      expect(e.fc).toBeGreaterThanOrEqual(1);
    });
  });

  it('the popup shows the finished backup', async () => {
    await popup.reload();
    await expect.poll(() => popup.getByTestId('pending-count').textContent()).toBe('0');
    expect(await popup.getByTestId('server-count').textContent()).toBe(String(SESSIONS));
    expect(await popup.getByTestId('upload-phase').textContent()).toBe('All keys are backed up.');
    await popup.screenshot({ path: join(repoRoot, 'test-results', 'popup-backed-up.png') });
  });

  it('gives nothing to a version the server swapped in with a foreign key, and says why', async () => {
    const pinned = (await workerStatus(probe)).backup!;
    const attacker = await createServerBackup(direct, randomKey());
    const more = await peerSessions(20, 2);
    const file = join(tmp, 'more-keys.txt');
    writeFileSync(file, await keyFileFromPeer(more, passphrase, 1000));
    proxy.setPlan({});
    const { page, summary } = await importKeyFileViaPage(ext, file, passphrase);
    expect(summary.stored).toBe(20);
    await page.close();

    await popup.reload();
    await expect.poll(() => popup.getByTestId('upload-phase').getAttribute('data-phase'), { timeout: 30_000 }).toBe('stopped');
    const text = await popup.getByTestId('upload-phase').textContent();
    expect(text).toContain('The backup changed on the server');
    expect(text).toContain(`replaced by version ${attacker.version}`);
    await popup.getByTestId('join').waitFor(); // the way out: prove the new backup's key
    await popup.screenshot({ path: join(repoRoot, 'test-results', 'popup-backup-changed.png') });

    expect((await direct.getBackupVersion(attacker.version)).count).toBe(0);
    const status = await workerStatus(probe);
    expect(status.backup).toMatchObject({ version: pinned.version, publicKey: pinned.publicKey });
    expect(status.upload.pending).toBe(20);
    // Every session the vault holds is encrypted to the pinned key, none to the attacker's.
    const keys = await probe.evaluate(async () => {
      const read = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
      const db = await read(indexedDB.open('matrix-key-vault'));
      const tx = db.transaction(['sessions', 'packed', 'kv']);
      // Rows and pages as stored (src/platform/vault-rows.ts, vault-pages.ts): the public key is its
      // number in `publicKeys`.
      const rows = [...await read(tx.objectStore('sessions').getAll()), ...await read(tx.objectStore('packed').getAll())] as Array<{ k: number }>;
      const publicKeys = await read(tx.objectStore('kv').get('publicKeys')) as string[];
      db.close();
      return [...new Set(rows.map((r) => publicKeys[r.k]))];
    });
    expect(keys).toEqual([pinned.publicKey]);
  });

  it('keeps no recovery key, private key, password, access token or plaintext session key', async () => {
    // The access token the extension holds, unsealed the way someone controlling the profile could.
    const accessToken = await probe.evaluate(async () => {
      const read = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
      const db = await read(indexedDB.open('matrix-key-vault'));
      const kv = db.transaction('kv').objectStore('kv');
      const key = await read(kv.get('tokenKey')) as CryptoKey;
      const account = await read(kv.get('account')) as { accessToken: { iv: Uint8Array<ArrayBuffer>; ciphertext: Uint8Array<ArrayBuffer> } };
      db.close();
      const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: account.accessToken.iv, additionalData: new TextEncoder().encode('matrix-key-vault access token v1') }, key, account.accessToken.ciphertext);
      return new TextDecoder().decode(plain);
    });
    expect(accessToken.length).toBeGreaterThan(10);

    // First prove the scan finds a secret planted on purpose, in each form it looks for.
    const { encodeRecoveryKey } = await import('../../src/core/index.ts');
    const plant = (name: string, form: string, secret: Omit<Secret, 'name'>, stored: (s: Secret) => string | number[]) => {
      const full = { name, ...secret };
      return { secret: full, form, stored: stored(full) };
    };
    const planted = [
      plant('planted raw key', 'raw bytes', { bytes: randomKey() }, (c) => [...c.bytes!]),
      plant('planted padded base64 key', 'base64', { bytes: randomKey() }, (c) => Buffer.from(c.bytes!).toString('base64')),
      plant('planted unpadded base64 key', 'base64 unpadded', { bytes: randomKey() }, (c) => Buffer.from(c.bytes!).toString('base64').replace(/=+$/, '')),
      plant('planted hex key', 'hex', { bytes: randomKey() }, (c) => Buffer.from(c.bytes!).toString('hex')),
      plant('planted recovery key', 'recovery key', { bytes: randomKey() }, (c) => encodeRecoveryKey(c.bytes!)),
      plant('planted recovery key without spaces', 'recovery key without spaces', { bytes: randomKey() }, (c) => encodeRecoveryKey(c.bytes!).replace(/ /g, '')),
      plant('planted token', 'text', { text: `syt_planted_${crypto.randomUUID()}` }, (c) => c.text!),
      // Not Latin-1, so V8 keeps it as a two-byte string: on disk it is UTF-16.
      plant('planted two-byte token', 'text as UTF-16', { text: `syt_✓_${crypto.randomUUID()}` }, (c) => c.text!),
    ];
    await probe.evaluate(async (values) => {
      const read = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
      const db = await read(indexedDB.open('matrix-key-vault'));
      const tx = db.transaction('kv', 'readwrite');
      tx.objectStore('kv').put(values.map((v) => (Array.isArray(v) ? new Uint8Array(v) : v)), 'planted-canary');
      await new Promise((ok) => { tx.oncomplete = ok; });
      db.close();
      await chrome.storage.local.set({ plantedToken: values[6] });
    }, planted.map((p) => p.stored));
    const canaries = planted.map((p) => p.secret);
    const plantedFound = scanFor(canaries, await dumpExtensionStorage(probe));
    for (const p of planted.slice(0, 7)) {
      expect(plantedFound.some((f) => f.secret === p.secret.name && f.form === p.form), `${p.secret.name} found as ${p.form}`).toBe(true);
    }
    const onDisk = scanFor(canaries, profileStorageFiles(ext.userDataDir, ext.extensionId));
    expect(onDisk.some((f) => f.secret === 'planted raw key' && f.form === 'raw bytes'), 'the disk scan reads the IndexedDB files').toBe(true);
    expect(onDisk.some((f) => f.secret === 'planted two-byte token' && f.form === 'text as UTF-16'), 'the disk scan finds two-byte strings').toBe(true);
    expect(onDisk.some((f) => f.secret === 'planted token' && /Local Extension Settings/.test(f.where)), 'the disk scan reads extension storage').toBe(true);
    await probe.evaluate(async () => {
      const read = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
      const db = await read(indexedDB.open('matrix-key-vault'));
      const tx = db.transaction('kv', 'readwrite');
      tx.objectStore('kv').delete('planted-canary');
      await new Promise((ok) => { tx.oncomplete = ok; });
      db.close();
      await chrome.storage.local.remove('plantedToken');
    });

    const secrets: Secret[] = [
      { name: 'backup private key (recovery key)', bytes: decodeRecoveryKey(recoveryKey) },
      { name: 'recovery key text', text: recoveryKey },
      { name: 'access token', text: accessToken },
      { name: 'account password', text: password },
      { name: 'key file passphrase', text: passphrase },
      // Every session key as text, and a sample as raw bytes and hex (the byte forms cost more to search).
      ...sessions.map((s) => ({ name: `session key ${s.session_id}`, text: s.session_key })),
      ...sessions.slice(0, 200).map((s) => ({ name: `session key bytes ${s.session_id}`, bytes: decodeBase64(s.session_key) })),
    ];
    expect(scanFor(secrets, await dumpExtensionStorage(probe))).toEqual([]);
    const files = profileStorageFiles(ext.userDataDir, ext.extensionId);
    expect(files.length).toBeGreaterThan(0);
    // Only the strongest forms on disk, where the files are large: the keys, token and password.
    expect(scanFor(secrets.slice(0, 5), files)).toEqual([]);
  });
});
