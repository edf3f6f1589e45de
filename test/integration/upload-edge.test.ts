/**
 * The upload engine's edges against a real Synapse: a revoked sign-in and signing in again, a
 * re-check of the server's backup that fails or finds nothing changed, a key proved while a request
 * is in flight, another account signing in, and the worker's requests end to end through its router.
 */
import { memoryUnlockStore } from '../../src/platform/unlock-store.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBase64, encodeRecoveryKey, createSecretStorageKeyCheck, MEGOLM_BACKUP_SECRET_NAME, SECRET_STORAGE_ALGORITHM } from '../../src/core/index.ts';
import { requireClient, signInWithPassword, signOut } from '../../src/background/account.ts';
import { joinBackup } from '../../src/background/backup.ts';
import { ingestSessions } from '../../src/background/ingest.ts';
import { route } from '../../src/background/router.ts';
import { createServices, type Services } from '../../src/background/services.ts';
import type { BackupServer } from '../../src/background/upload-driver.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import type { Vault } from '../../src/platform/vault.ts';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { backupServer, createServerBackup, freshVault, peerSessions, pinFor, randomKey, uploadRig } from '../harness/upload-rig.ts';
import type { ExportedSessionData } from '../peer/index.ts';
import { memorySitePlatform } from '../harness/memory-sites.ts';

const synapse = sharedSynapse();
const password = 'edge password';
let sessions: ExportedSessionData[];
let proxy: FaultProxy;

beforeAll(async () => {
  sessions = await peerSessions(60, 3);
  proxy = await startFaultProxy(synapse.baseUrl, {}, { hideWellKnown: true });
});
afterAll(() => proxy.stop());

async function signedInVault(homeserver = synapse.serverName) {
  const localpart = uniqueLocalpart('edge');
  await synapse.registerUser(localpart, password);
  const vault = await freshVault();
  await signInWithPassword(vault, homeserver, localpart, password);
  const { client, userId } = await requireClient(vault);
  return { vault, client, userId, localpart };
}

async function waitFor<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('signing in again', () => {
  it('resumes uploading after a revoked sign-in once the user signs in again', async () => {
    const { vault, client, userId, localpart } = await signedInVault();
    const key = randomKey();
    const { version, publicKey } = await createServerBackup(client, key);
    await vault.setPin(pinFor({ userId } as never, version, publicKey));
    await ingestSessions(vault, sessions.slice(0, 20));
    await client.logout(); // e.g. the user removed the "Matrix Key Vault" session in Element
    const server = async () => { const c = await requireClient(vault).catch(() => null); return c ? backupServer(c.client) : null; };
    const rig = uploadRig(vault, server);
    expect(await rig.runUntilSettled()).toBe('stopped');
    expect((await vault.getUploadState()).stopped?.kind).toBe('signed-out');

    expect(await signOut(vault)).toBe('session-ended'); // the token was already dead
    await signInWithPassword(vault, synapse.serverName, localpart, password);
    expect((await vault.getUploadState()).stopped).toBeNull();
    expect(await rig.runUntilSettled()).toBe('idle');
    const { client: renewed } = await requireClient(vault);
    expect((await renewed.getBackupVersion(version)).count).toBe(20);
  });

  it('drops the pin of another account, so its sessions are never sent to the new account\'s backup', async () => {
    const first = await signedInVault();
    const { version, publicKey } = await createServerBackup(first.client, randomKey());
    await first.vault.setPin(pinFor({ userId: first.userId } as never, version, publicKey));
    await signOut(first.vault);
    const other = uniqueLocalpart('edge');
    await synapse.registerUser(other, password);
    await signInWithPassword(first.vault, synapse.serverName, other, password);
    expect(await first.vault.getPin()).toBeUndefined();
    await expect(ingestSessions(first.vault, sessions.slice(0, 2))).rejects.toMatchObject({ kind: 'no-backup' });
  });

  it('reports a homeserver it cannot reach when signing out, and forgets the account anyway', async () => {
    const { vault } = await signedInVault(proxy.baseUrl);
    proxy.setPlan({ match: { method: 'POST', path: /\/logout$/ }, script: ['drop-before'] });
    expect(await signOut(vault)).toBe('server-unreachable');
    expect(proxy.counts().injected['drop-before']).toBeGreaterThan(0);
    expect(await vault.getAccount()).toBeUndefined();
    proxy.setPlan({});
  });
});

describe('re-checking the server backup', () => {
  it('waits when the re-check itself fails, then follows the new version', async () => {
    const { vault, userId } = await signedInVault(proxy.baseUrl);
    const { client: viaProxy } = await requireClient(vault);
    const key = randomKey();
    const v1 = await createServerBackup(viaProxy, key);
    await vault.setPin(pinFor({ userId } as never, v1.version, v1.publicKey));
    const v2 = await createServerBackup(viaProxy, key);
    await ingestSessions(vault, sessions.slice(0, 10));
    proxy.resetCounts();
    proxy.setPlan({ match: { method: 'GET', path: /\/room_keys\/version$/ }, script: ['status-502'] });
    const rig = uploadRig(vault, async () => backupServer(viaProxy));
    expect(await rig.driver.run()).toBe('waiting');
    expect(proxy.counts().injected['status-502']).toBe(1);
    expect(await vault.getPin()).toMatchObject({ version: v1.version });
    expect(await rig.runUntilSettled()).toBe('idle');
    expect(await vault.getPin()).toMatchObject({ version: v2.version, epoch: 2 });
    expect((await viaProxy.getBackupVersion(v2.version)).count).toBe(10);
    proxy.setPlan({});
  });

  it('retries later when the server refuses a version that is still current', async () => {
    const { vault, userId } = await signedInVault(proxy.baseUrl);
    const { client: viaProxy } = await requireClient(vault);
    const v1 = await createServerBackup(viaProxy, randomKey());
    await vault.setPin(pinFor({ userId } as never, v1.version, v1.publicKey));
    await ingestSessions(vault, sessions.slice(0, 10));
    proxy.setPlan({ match: { method: 'PUT' }, script: ['wrong-version'] });
    const rig = uploadRig(vault, async () => backupServer(viaProxy));
    expect(await rig.driver.run()).toBe('waiting');
    expect((await vault.getUploadState()).stopped).toBeNull();
    expect(await rig.runUntilSettled()).toBe('idle');
    expect(await vault.getPin()).toMatchObject({ version: v1.version, epoch: 1 });
    proxy.setPlan({});
  });

  it('does not undo a key the user proves while a request is in flight', async () => {
    const { vault, client, userId } = await signedInVault();
    const oldKey = randomKey();
    const old = await createServerBackup(client, oldKey);
    await vault.setPin(pinFor({ userId } as never, old.version, old.publicKey));
    await ingestSessions(vault, sessions.slice(0, 10));

    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const real = backupServer(client);
    let first = true;
    const gated: BackupServer = {
      ...real,
      putRoomKeys: async (v, b) => { if (first) { first = false; await gate; } return real.putRoomKeys(v, b); },
    };
    const rig = uploadRig(vault, async () => gated);
    const running = rig.driver.run();
    await waitFor('the first PUT to start', async () => first, (f) => !f);

    // Meanwhile: the user replaced the backup in Element and proves the new key here.
    const newKey = randomKey();
    const replacement = await createServerBackup(client, newKey);
    await joinBackup(vault, client, userId, encodeRecoveryKey(newKey));
    release();
    expect(await running).toBe('idle');
    const state = await vault.getUploadState();
    expect(state.stopped).toBeNull();
    expect(await vault.getPin()).toMatchObject({ version: replacement.version, publicKey: replacement.publicKey });
    // The old sessions are encrypted to the old key: they wait for it and go nowhere else.
    expect((await client.getBackupVersion(replacement.version)).count).toBe(0);
    await ingestSessions(vault, sessions.slice(10, 15));
    expect(await rig.runUntilSettled()).toBe('idle');
    expect((await client.getBackupVersion(replacement.version)).count).toBe(5);
  });
});

describe('joining: unusual server state', () => {
  it('refuses a backup of an algorithm it does not support, and pins nothing', async () => {
    const { vault, client, userId } = await signedInVault();
    await client.createBackupVersion({ algorithm: 'org.example.future.v9', auth_data: { anything: true } });
    await expect(joinBackup(vault, client, userId, encodeRecoveryKey(randomKey()))).rejects.toMatchObject({ kind: 'unsupported-algorithm', message: /org\.example\.future\.v9/ });
    expect(await vault.getPin()).toBeUndefined();
  });

  it('says secret storage could not be read when its stored backup key is damaged', async () => {
    const { vault, client, userId } = await signedInVault();
    await createServerBackup(client, randomKey());
    const ssssKey = randomKey();
    await client.putAccountData(userId, 'm.secret_storage.key.k', { algorithm: SECRET_STORAGE_ALGORITHM, ...(await createSecretStorageKeyCheck(ssssKey)) });
    await client.putAccountData(userId, 'm.secret_storage.default_key', { key: 'k' });
    await client.putAccountData(userId, MEGOLM_BACKUP_SECRET_NAME, { encrypted: { k: { iv: encodeBase64(new Uint8Array(16)), ciphertext: 'not base64!!', mac: encodeBase64(new Uint8Array(32)) } } });
    await expect(joinBackup(vault, client, userId, encodeRecoveryKey(ssssKey))).rejects.toMatchObject({ kind: 'wrong-key', message: /secret storage could not be read/ });
  });
});

describe('the worker\'s requests, through its router', () => {
  let vault: Vault;
  let services: Services;
  beforeAll(async () => {
    vault = await freshVault();
    services = createServices(vault, {
      sitePlatform: memorySitePlatform(),
      scheduleWake: async () => {}, scheduleRestoreWake: async () => {}, unlockStore: memoryUnlockStore(), keepAlive: async () => {}, report: (e) => { throw e; },
      worker: () => ({ product: 'Matrix Key Vault', version: 'test', bootId: 'b', startedAt: 0 }),
    });
  });

  it('signs in, creates a backup, imports, and retries on request', async () => {
    const localpart = uniqueLocalpart('router');
    await synapse.registerUser(localpart, password);
    expect(await route(services, { type: 'account.login', homeserver: proxy.baseUrl, user: localpart, password })).toMatchObject({ ok: true });
    const created = await route(services, { type: 'backup.create', recoveryKey: encodeRecoveryKey(randomKey()) });
    expect(created).toMatchObject({ ok: true, value: { source: 'created' } });

    proxy.resetCounts();
    proxy.setPlan({ match: { method: 'PUT' }, script: ['status-500'] });
    expect(await route(services, { type: 'sessions.import', sessions: sessions.slice(0, 25) })).toMatchObject({ ok: true, value: { stored: 25 } });
    await waitFor('the failed upload', () => vault.getUploadState(), (s) => s.retryAt !== null && !services.driver.isRunning);
    const waiting = await route(services, { type: 'status.get' });
    expect(waiting).toMatchObject({ ok: true, value: { upload: { phase: 'waiting', pending: 25 } } });

    expect(await route(services, { type: 'upload.retry' })).toMatchObject({ ok: true });
    await waitFor('the retried upload', () => vault.getUploadState(), (s) => s.serverCount === 25 && !services.driver.isRunning);
    expect(await route(services, { type: 'status.get' })).toMatchObject({ ok: true, value: { upload: { phase: 'idle', pending: 0, serverCount: 25 } } });
    expect(proxy.counts().injected['status-500']).toBe(1);
    proxy.setPlan({});
  });

  it('refuses to retry while uploading is stopped', async () => {
    const state = await vault.getUploadState();
    await vault.setUploadState({ ...state, stopped: { kind: 'signed-out', errcode: 'M_UNKNOWN_TOKEN' } });
    expect(await route(services, { type: 'upload.retry' })).toMatchObject({ ok: false, error: { kind: 'bad-request' } });
    await vault.setUploadState(state);
  });

  it('answers status with the server\'s backup when asked to refresh', async () => {
    const status = await route(services, { type: 'status.get', refresh: true });
    expect(status).toMatchObject({ ok: true, value: { server: { state: 'present', usesPinnedKey: true, supported: true, count: 25 } } });
  });
});
