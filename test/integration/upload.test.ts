/**
 * The upload engine against a real Synapse: everything handed over reaches the backup, encrypted to
 * the pinned key, through rate limits, server errors, dropped connections and stalls; version
 * changes are followed only when the key is ours; nothing is ever sent to a key we did not prove.
 */
import { getWholeBackup } from '../harness/whole-backup.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupDecryptor } from '../../src/core/index.ts';
import { ingestSessions } from '../../src/background/ingest.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';
import { backupServer, createServerBackup, freshVault, peerSessions, pinFor, randomKey, uploadRig } from '../harness/upload-rig.ts';
import type { ExportedSessionData } from '../peer/index.ts';

const synapse = sharedSynapse();

async function newUser(): Promise<{ user: SynapseUser; client: HomeserverClient }> {
  const user = await synapse.registerUser(uniqueLocalpart('upload'), 'correct horse battery');
  return { user, client: new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken }) };
}

/** Every entry of the server backup decrypted with the private key, by session id. */
async function serverPlaintexts(client: HomeserverClient, version: string, privateKey: Uint8Array) {
  const backup = await getWholeBackup(client, version);
  const decryptor = await createBackupDecryptor(privateKey);
  const out = new Map<string, { roomId: string; data: Record<string, unknown>; entry: { first_message_index: number; forwarded_count: number; is_verified: boolean } }>();
  for (const [roomId, room] of Object.entries(backup.rooms)) {
    for (const [sessionId, entry] of Object.entries(room.sessions)) {
      out.set(sessionId, { roomId, data: await decryptor.decrypt(entry.session_data) as Record<string, unknown>, entry });
    }
  }
  return out;
}

function expectSameSessions(server: Awaited<ReturnType<typeof serverPlaintexts>>, exported: ExportedSessionData[]) {
  expect(server.size).toBe(exported.length);
  for (const s of exported) {
    const got = server.get(s.session_id);
    expect(got, s.session_id).toBeDefined();
    expect(got!.roomId).toBe(s.room_id);
    expect(got!.data.session_key).toBe(s.session_key);
    expect(got!.data.sender_key).toBe(s.sender_key);
    expect(got!.data.sender_claimed_keys).toEqual(s.sender_claimed_keys);
    expect(got!.entry.is_verified).toBe(false);
    expect(got!.entry.forwarded_count).toBeGreaterThanOrEqual(1);
  }
}

describe('upload engine against Synapse', () => {
  let sessions: ExportedSessionData[];
  beforeAll(async () => { sessions = await peerSessions(600, 6); });

  it('uploads every session, encrypted to the pinned key, and re-imports change nothing', async () => {
    const { user, client } = await newUser();
    const key = randomKey();
    const { version, publicKey } = await createServerBackup(client, key);
    const vault = await freshVault();
    await vault.setPin(pinFor(user, version, publicKey));

    const first = await ingestSessions(vault, sessions);
    expect(first).toEqual({ stored: 600, unchanged: 0, rejected: [] });
    const rig = uploadRig(vault, async () => backupServer(client), { batchSize: 250 });
    expect(await rig.runUntilSettled()).toBe('idle');
    expect(rig.puts()).toBe(3);
    expect(await vault.countPending(publicKey, 1)).toBe(0);
    const state = await vault.getUploadState();
    expect(state.serverCount).toBe(600);
    expect(state.lastSuccessAt).not.toBeNull();
    expectSameSessions(await serverPlaintexts(client, version, key), sessions);

    // The same file again: nothing stored, nothing pending, nothing sent.
    expect(await ingestSessions(vault, sessions)).toEqual({ stored: 0, unchanged: 600, rejected: [] });
    expect(await rig.runUntilSettled()).toBe('idle');
    expect(rig.puts()).toBe(3);
    vault.close();
  });

  it('refuses sessions until a backup key is pinned', async () => {
    const vault = await freshVault();
    await expect(ingestSessions(vault, sessions.slice(0, 3))).rejects.toMatchObject({ kind: 'no-backup', message: expect.stringMatching(/create a backup or enter the recovery key/) });
    expect(await vault.countSessions()).toBe(0);
    vault.close();
  });

  it('rejects malformed sessions one by one while the good ones go ahead', async () => {
    const { user, client } = await newUser();
    const { version, publicKey } = await createServerBackup(client, randomKey());
    const vault = await freshVault();
    await vault.setPin(pinFor(user, version, publicKey));
    const good = sessions.slice(0, 5);
    const key = good[0]!.session_key;
    const bytes = Buffer.from(key, 'base64');
    const wrongVersion = Buffer.from(bytes); wrongVersion[0] = 3;
    const bad: unknown[] = [
      { ...good[0], session_key: wrongVersion.toString('base64').replace(/=+$/, '') },
      { ...good[0], session_key: bytes.subarray(0, 100).toString('base64').replace(/=+$/, '') },
      { ...good[0], session_id: good[1]!.session_id },
      { ...good[0], room_id: undefined },
      { ...good[0], algorithm: 'm.olm.v1.curve25519-aes-sha2' },
      'not an object',
      null,
      { ...good[0], session_id: good[2]!.session_id, session_key: good[2]!.session_key, padding: 'x'.repeat(20_000) },
    ];
    const result = await ingestSessions(vault, [...good, ...bad]);
    expect(result.stored).toBe(5);
    expect(result.rejected.map((r) => r.index)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect(result.rejected.map((r) => r.kind)).toEqual(['session-version', 'length', 'session-id', 'field', 'algorithm', 'field', 'field', 'too-large']);
    for (const r of result.rejected) expect(r.reason.length).toBeGreaterThan(10);
    expect(result.rejected[2]).toMatchObject({ roomId: good[0]!.room_id, sessionId: good[1]!.session_id });
    const rig = uploadRig(vault, async () => backupServer(client));
    expect(await rig.runUntilSettled()).toBe('idle');
    expect((await client.getLatestBackupVersion())!.count).toBe(5);
    vault.close();
  });

  describe('through a fault-injecting proxy', () => {
    let proxy: FaultProxy;
    beforeAll(async () => { proxy = await startFaultProxy(synapse.baseUrl); });
    afterAll(async () => { await proxy?.stop(); });

    it('delivers every session through 429s, 5xx, dropped connections and stalls', async () => {
      const { user, client } = await newUser();
      const key = randomKey();
      const { version, publicKey } = await createServerBackup(client, key);
      const vault = await freshVault();
      await vault.setPin(pinFor(user, version, publicKey));
      await ingestSessions(vault, sessions);

      proxy.resetCounts();
      proxy.setPlan({
        match: { method: 'PUT', path: /\/room_keys\/keys/ },
        script: ['limit-body', 'limit-header', 'status-500', 'status-502', 'status-503', 'drop-before', 'drop-after', 'stall'],
        random: { seed: 7, rates: { 'limit-body': 0.1, 'status-500': 0.1, 'status-503': 0.05, 'drop-before': 0.1, 'drop-after': 0.1, stall: 0.05 } },
        maxFaults: 30,
        retryAfterMs: 1500,
        stallMs: 2500,
      });
      const viaProxy = new HomeserverClient({ baseUrl: proxy.baseUrl, accessToken: user.accessToken });
      const rig = uploadRig(vault, async () => backupServer(viaProxy, 1000), { batchSize: 50 });
      expect(await rig.runUntilSettled()).toBe('idle');

      const counts = proxy.counts();
      for (const kind of ['limit-body', 'limit-header', 'status-500', 'status-502', 'status-503', 'drop-before', 'drop-after', 'stall'] as const) {
        expect(counts.injected[kind], kind).toBeGreaterThan(0);
      }
      expect(await vault.countPending(publicKey, 1)).toBe(0);
      expectSameSessions(await serverPlaintexts(client, version, key), sessions);
      const state = await vault.getUploadState();
      expect(state.attempt).toBe(0);
      expect(state.lastError).not.toBeNull();
      // Retry-after was honoured: the 429s moved the clock by at least their 1.5 s each.
      expect(rig.skew()).toBeGreaterThanOrEqual(2 * 1500);
      vault.close();
    });
  });

  it('halves the batch after a timeout, so a slow link still gets every session through', async () => {
    const { user, client } = await newUser();
    const { version, publicKey } = await createServerBackup(client, randomKey());
    const vault = await freshVault();
    await vault.setPin(pinFor(user, version, publicKey));
    await ingestSessions(vault, sessions.slice(0, 300));
    const proxy = await startFaultProxy(synapse.baseUrl, { match: { method: 'PUT' }, script: ['stall', 'stall'], stallMs: 2000 });
    try {
      const viaProxy = new HomeserverClient({ baseUrl: proxy.baseUrl, accessToken: user.accessToken });
      const rig = uploadRig(vault, async () => backupServer(viaProxy, 500), { batchSize: 100 });
      expect(await rig.runUntilSettled()).toBe('idle');
      expect(proxy.counts().injected.stall).toBe(2);
      expect(rig.batchSizes().slice(0, 5)).toEqual([100, 50, 25, 50, 100]);
      expect((await vault.getUploadState()).batchLimit).toBeNull();
      expect((await client.getBackupVersion(version)).count).toBe(300);
    } finally {
      await proxy.stop();
    }
  });

  it('follows a new version with the same key and re-uploads everything to it', async () => {
    const { user, client } = await newUser();
    const key = randomKey();
    const first = await createServerBackup(client, key);
    const vault = await freshVault();
    await vault.setPin(pinFor(user, first.version, first.publicKey));
    await ingestSessions(vault, sessions.slice(0, 120));
    const rig = uploadRig(vault, async () => backupServer(client));
    expect(await rig.runUntilSettled()).toBe('idle');

    const second = await createServerBackup(client, key); // another client re-created it with our key
    await ingestSessions(vault, sessions.slice(120, 130));
    expect(await rig.runUntilSettled()).toBe('idle');
    const pin = await vault.getPin();
    expect(pin).toMatchObject({ version: second.version, epoch: 2, publicKey: first.publicKey });
    expect((await vault.getUploadState()).notice?.message).toMatch(new RegExp(`version ${first.version} to ${second.version}`));
    expect((await client.getBackupVersion(second.version)).count).toBe(130);
    expect(await vault.countPending(first.publicKey, 2)).toBe(0);
  });

  it('sends nothing to a version whose key it was never given (key swap) and says why', async () => {
    const { user, client } = await newUser();
    const ours = await createServerBackup(client, randomKey());
    const vault = await freshVault();
    await vault.setPin(pinFor(user, ours.version, ours.publicKey));
    await ingestSessions(vault, sessions.slice(0, 50));
    const rig = uploadRig(vault, async () => backupServer(client));
    expect(await rig.runUntilSettled()).toBe('idle');

    const attacker = await createServerBackup(client, randomKey());
    await ingestSessions(vault, sessions.slice(50, 80));
    expect(await rig.runUntilSettled()).toBe('stopped');
    const state = await vault.getUploadState();
    expect(state.stopped).toEqual({ kind: 'backup-changed', pinnedVersion: ours.version, currentVersion: attacker.version, errcode: 'M_WRONG_ROOM_KEYS_VERSION' });
    expect((await client.getBackupVersion(attacker.version)).count).toBe(0);
    expect(await vault.getPin()).toMatchObject({ version: ours.version, publicKey: ours.publicKey });
    expect(await vault.countPending(ours.publicKey, 1)).toBe(30);
    // Stopped means stopped: another run sends nothing.
    const before = rig.puts();
    expect(await rig.driver.run()).toBe('stopped');
    expect(rig.puts()).toBe(before);
  });

  it('stops when the backup is deleted', async () => {
    const { user, client } = await newUser();
    const ours = await createServerBackup(client, randomKey());
    const vault = await freshVault();
    await vault.setPin(pinFor(user, ours.version, ours.publicKey));
    await client.deleteBackupVersion(ours.version);
    await ingestSessions(vault, sessions.slice(0, 5));
    const rig = uploadRig(vault, async () => backupServer(client));
    expect(await rig.runUntilSettled()).toBe('stopped');
    expect((await vault.getUploadState()).stopped).toEqual({ kind: 'backup-changed', pinnedVersion: ours.version, currentVersion: null, errcode: 'M_NOT_FOUND' });
  });

  it('stops when the access token is no longer accepted', async () => {
    const { user, client } = await newUser();
    const ours = await createServerBackup(client, randomKey());
    const vault = await freshVault();
    await vault.setPin(pinFor(user, ours.version, ours.publicKey));
    await ingestSessions(vault, sessions.slice(0, 5));
    await client.logout();
    const rig = uploadRig(vault, async () => backupServer(client));
    expect(await rig.runUntilSettled()).toBe('stopped');
    expect((await vault.getUploadState()).stopped).toEqual({ kind: 'signed-out', errcode: 'M_UNKNOWN_TOKEN' });
  });
});
