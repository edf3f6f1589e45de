/**
 * Signing in, creating a backup and joining one, as the worker does them, against a real Synapse.
 * Joining accepts the backup's own recovery key or the account's Security Key (secret storage), and
 * pins nothing unless the derived public key is the backup's.
 */
import { describe, expect, it } from 'vitest';
import {
  createSecretStorageKeyCheck, encodeBase64, encodeRecoveryKey, encryptSecret, MEGOLM_BACKUP_SECRET_NAME, SECRET_STORAGE_ALGORITHM,
} from '../../src/core/index.ts';
import { signInWithPassword, signInWithToken, signOut, requireClient } from '../../src/background/account.ts';
import { createBackup, joinBackup } from '../../src/background/backup.ts';
import { HomeserverClient } from '../../src/platform/homeserver.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { createServerBackup, freshVault, randomKey } from '../harness/upload-rig.ts';

const synapse = sharedSynapse();
const password = 'correct horse battery';

async function signedIn() {
  const localpart = uniqueLocalpart('flows');
  const registered = await synapse.registerUser(localpart, password);
  const vault = await freshVault();
  // What a user types: the server name, which .well-known resolves.
  const account = await signInWithPassword(vault, synapse.serverName, localpart, password);
  const { client, userId } = await requireClient(vault);
  return { vault, account, client, userId, registered };
}

describe('signing in', () => {
  it('signs in with a password through .well-known and keeps the token sealed', async () => {
    const { vault, account, client } = await signedIn();
    expect(account.userId).toMatch(/^@flows/);
    expect(account.homeserverUrl).toBe(synapse.baseUrl.replace(/\/$/, ''));
    expect((await client.whoami()).user_id).toBe(account.userId);
    const stored = await vault.getAccount();
    expect(stored?.ownsDevice).toBe(true);
    expect(JSON.stringify(stored)).not.toContain('syt_');
    await expect(signInWithPassword(vault, synapse.serverName, 'x', 'y')).rejects.toMatchObject({ kind: 'bad-request' });
    expect(await signOut(vault)).toBe('session-ended');
    await expect(client.whoami()).rejects.toMatchObject({ kind: 'homeserver', status: 401 });
    expect(await vault.getAccount()).toBeUndefined();
  });

  it('refuses a wrong password with the homeserver\'s error', async () => {
    const localpart = uniqueLocalpart('flows');
    await synapse.registerUser(localpart, password);
    const vault = await freshVault();
    await expect(signInWithPassword(vault, synapse.serverName, localpart, 'wrong')).rejects.toMatchObject({ kind: 'homeserver', status: 403, errcode: 'M_FORBIDDEN' });
    expect(await vault.getAccount()).toBeUndefined();
  });

  it('signs in with a pasted token and leaves that session alone on sign-out', async () => {
    const user = await synapse.registerUser(uniqueLocalpart('flows'), password);
    const vault = await freshVault();
    const account = await signInWithToken(vault, synapse.baseUrl, user.accessToken);
    expect(account.userId).toBe(user.userId);
    expect(await signOut(vault)).toBe('session-kept');
    const still = new HomeserverClient({ baseUrl: synapse.baseUrl, accessToken: user.accessToken });
    expect((await still.whoami()).user_id).toBe(user.userId);
  });

  it('refuses a token the server does not accept', async () => {
    const vault = await freshVault();
    await expect(signInWithToken(vault, synapse.baseUrl, 'syt_not_a_token')).rejects.toMatchObject({ kind: 'homeserver', status: 401 });
    expect(await vault.getAccount()).toBeUndefined();
  });

  it('refuses plain http to a host that is not this computer', async () => {
    const vault = await freshVault();
    await expect(signInWithPassword(vault, 'http://matrix.example.org', 'a', 'b')).rejects.toMatchObject({ kind: 'discovery', reason: 'insecure' });
  });
});

describe('creating a backup', () => {
  it('creates, pins the derived key, and refuses a second one', async () => {
    const { vault, client, userId } = await signedIn();
    const key = randomKey();
    const pin = await createBackup(vault, client, userId, encodeRecoveryKey(key));
    const info = await client.getLatestBackupVersion();
    expect(info).toMatchObject({ state: 'supported', version: pin.version, auth_data: { public_key: pin.publicKey } });
    expect(pin).toMatchObject({ source: 'created', epoch: 1, userId });
    await expect(createBackup(vault, client, userId, encodeRecoveryKey(randomKey()))).rejects.toMatchObject({ kind: 'backup-exists' });
    expect((await client.getLatestBackupVersion())!.version).toBe(pin.version);
  });

  it('refuses text that is not a recovery key, before touching the server', async () => {
    const { vault, client, userId } = await signedIn();
    await expect(createBackup(vault, client, userId, 'EsTc LW2K PGiF wKEA')).rejects.toMatchObject({ kind: 'not-a-key', message: /too short or too long/ });
    expect(await client.getLatestBackupVersion()).toBeNull();
  });
});

describe('joining a backup', () => {
  it('pins a backup proved with its own recovery key', async () => {
    const { vault, client, userId } = await signedIn();
    const key = randomKey();
    const server = await createServerBackup(client, key);
    const pin = await joinBackup(vault, client, userId, encodeRecoveryKey(key).replace(/ /g, '  '));
    expect(pin).toMatchObject({ version: server.version, publicKey: server.publicKey, source: 'proved' });
  });

  it('pins a backup proved with the account\'s Security Key (secret storage)', async () => {
    const { vault, client, userId } = await signedIn();
    const backupKey = randomKey();
    const server = await createServerBackup(client, backupKey);
    const ssssKey = randomKey();
    const keyId = 'testkeyid';
    await client.putAccountData(userId, `m.secret_storage.key.${keyId}`, { algorithm: SECRET_STORAGE_ALGORITHM, ...(await createSecretStorageKeyCheck(ssssKey)) });
    await client.putAccountData(userId, 'm.secret_storage.default_key', { key: keyId });
    await client.putAccountData(userId, MEGOLM_BACKUP_SECRET_NAME, { encrypted: { [keyId]: await encryptSecret(ssssKey, MEGOLM_BACKUP_SECRET_NAME, encodeBase64(backupKey)) } });
    const pin = await joinBackup(vault, client, userId, encodeRecoveryKey(ssssKey));
    expect(pin).toMatchObject({ version: server.version, publicKey: server.publicKey });
    // The backup key itself still works too.
    const again = await joinBackup(vault, client, userId, encodeRecoveryKey(backupKey));
    expect(again.epoch).toBe(pin.epoch);
  });

  it('says so when the Security Key protects the key of an older backup', async () => {
    const { vault, client, userId } = await signedIn();
    const oldBackupKey = randomKey();
    const old = await createServerBackup(client, oldBackupKey);
    const current = await createServerBackup(client, randomKey());
    const ssssKey = randomKey();
    await client.putAccountData(userId, 'm.secret_storage.key.k', { algorithm: SECRET_STORAGE_ALGORITHM, ...(await createSecretStorageKeyCheck(ssssKey)) });
    await client.putAccountData(userId, 'm.secret_storage.default_key', { key: 'k' });
    await client.putAccountData(userId, MEGOLM_BACKUP_SECRET_NAME, { encrypted: { k: await encryptSecret(ssssKey, MEGOLM_BACKUP_SECRET_NAME, encodeBase64(oldBackupKey)) } });
    await expect(joinBackup(vault, client, userId, encodeRecoveryKey(ssssKey))).rejects.toMatchObject({
      kind: 'older-backup-key', message: new RegExp(`older backup \\(version ${old.version}\\), not of your current backup \\(version ${current.version}\\)`),
    });
    expect(await vault.getPin()).toBeUndefined();
  });

  it('refuses a valid key of another backup and pins nothing', async () => {
    const { vault, client, userId } = await signedIn();
    const server = await createServerBackup(client, randomKey());
    await expect(joinBackup(vault, client, userId, encodeRecoveryKey(randomKey()))).rejects.toMatchObject({ kind: 'wrong-key', message: new RegExp(`version ${server.version}`) });
    expect(await vault.getPin()).toBeUndefined();
  });

  it.each([
    ['EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4e', /check digit/],
    ['EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE40', /characters a recovery key never has/],
  ])('refuses %j as not a recovery key', async (text, message) => {
    const { vault, client, userId } = await signedIn();
    await createServerBackup(client, randomKey());
    await expect(joinBackup(vault, client, userId, text)).rejects.toMatchObject({ kind: 'not-a-key', message });
  });

  it('takes "hunter2" as a phrase, and says a phrase cannot work on an account without secret storage', async () => {
    const { vault, client, userId } = await signedIn();
    await createServerBackup(client, randomKey());
    await expect(joinBackup(vault, client, userId, 'hunter2')).rejects.toMatchObject({ kind: 'no-secret-storage', message: /no secret storage, so a Security Phrase cannot work/ });
  });

  it('says there is nothing to join when the account has no backup', async () => {
    const { vault, client, userId } = await signedIn();
    await expect(joinBackup(vault, client, userId, encodeRecoveryKey(randomKey()))).rejects.toMatchObject({ kind: 'no-server-backup' });
  });

  it('bumps the epoch when joining a new version, so everything is uploaded again', async () => {
    const { vault, client, userId } = await signedIn();
    const key = randomKey();
    await createServerBackup(client, key);
    const first = await joinBackup(vault, client, userId, encodeRecoveryKey(key));
    await createServerBackup(client, key);
    const second = await joinBackup(vault, client, userId, encodeRecoveryKey(key));
    expect(second.epoch).toBe(first.epoch + 1);
  });
});
