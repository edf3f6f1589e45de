/**
 * Unlock (DESIGN flow 2): from what the user has to the backup private key, proved against the
 * server's current backup before anything is kept. Tried in DESIGN's order: a key-shaped input as a
 * Security Key (secret storage: key check, then the `m.megolm_backup.v1` secret), then as the backup
 * key itself; a phrase through the secret-storage passphrase, then the legacy
 * `auth_data.private_key_salt`. The proof pins the key when none is pinned (today's "join"), and the
 * private key goes to memory-only storage.
 */
import {
  backupKeyFromSecretStorage, backupKeyMatches, backupPublicKey, derivePassphraseKey, encodeBase64, isCoreError,
  MEGOLM_BACKUP_SECRET_NAME, secretStorageKeyFromPassphrase, type SecretStorageAccountData, type SecretStorageKeyDescription,
} from '../core/index.ts';
import { classifyRecoveryInput, describeKeyFormatError } from '../core/recovery-input.ts';
import { samePublicKey } from '../core/upload/pin.ts';
import type { SupportedBackupVersion } from '../core/wire.ts';
import type { HomeserverClient } from '../platform/homeserver.ts';
import type { UnlockedKey, UnlockStore } from '../platform/unlock-store.ts';
import type { Vault } from '../platform/vault.ts';
import type { UnlockMethod, UnlockSummary } from '../shared/messages.ts';
import { AppError } from './errors.ts';
import { pinProvedKey } from './backup.ts';

/** A proved key: the 32 private bytes and how the user gave them. */
export interface ProvedKey {
  privateKey: Uint8Array;
  via: UnlockMethod;
}

/** The account's secret storage, read once per attempt. */
export interface SecretStorage {
  keyId: string;
  description: SecretStorageKeyDescription;
  accountData: SecretStorageAccountData;
  hasPassphrase: boolean;
}

export async function readSecretStorage(client: HomeserverClient, userId: string): Promise<SecretStorage | null> {
  const defaultKey = await client.getAccountData(userId, 'm.secret_storage.default_key');
  const keyId = typeof defaultKey?.key === 'string' ? defaultKey.key : undefined;
  if (!keyId) return null;
  const [description, megolmBackup] = await Promise.all([
    client.getAccountData(userId, `m.secret_storage.key.${keyId}`),
    client.getAccountData(userId, MEGOLM_BACKUP_SECRET_NAME),
  ]);
  if (!description) return null;
  const desc = description as unknown as SecretStorageKeyDescription;
  return {
    keyId,
    description: desc,
    accountData: { defaultKeyId: keyId, keys: { [keyId]: desc }, megolmBackup: megolmBackup ?? undefined },
    hasPassphrase: typeof (description as { passphrase?: unknown }).passphrase === 'object' && (description as { passphrase?: unknown }).passphrase !== null,
  };
}

/** Why a secret-storage key produced no backup key: the key was not this account's, or the store has none. */
type FromSecretStorage = { key: Uint8Array } | { miss: 'key-check' | 'no-secret' } | { damaged: string };

export async function backupKeyVia(storage: SecretStorage, ssssKey: Uint8Array): Promise<FromSecretStorage> {
  try {
    return { key: await backupKeyFromSecretStorage(ssssKey, storage.accountData) };
  } catch (e) {
    if (isCoreError(e, 'key-check') || isCoreError(e, 'mac')) return { miss: 'key-check' };
    if (isCoreError(e, 'no-secret')) return { miss: 'no-secret' };
    if (!isCoreError(e)) throw e; // a bug, not the user's key
    return { damaged: e.message };
  }
}

/**
 * Earlier backups' public keys (the server's previous versions, and keys this vault pinned before):
 * a valid key that matches one of them is "the key of an older backup", which is worth saying.
 */
async function olderBackupVersion(client: HomeserverClient, vault: Vault, current: SupportedBackupVersion, publicKeys: readonly string[]): Promise<string | null> {
  for (const earlier of await vault.getEarlierPins()) {
    if (publicKeys.some((k) => samePublicKey(k, earlier.publicKey))) return earlier.version;
  }
  const n = Number(current.version);
  if (!Number.isSafeInteger(n)) return null;
  // Synapse numbers versions 1, 2, 3…; look a few back, no further (one small GET each).
  for (let v = n - 1; v >= Math.max(1, n - 5); v--) {
    try {
      const info = await client.getBackupVersion(String(v), { timeoutMs: 10_000 });
      if (info.state === 'supported' && publicKeys.some((k) => samePublicKey(k, info.publicKey))) return info.version;
    } catch {
      // Deleted (404) or unreachable: this only refines the message about a wrong key, so the
      // answer is then simply "wrong key", not an error about an older version.
      continue;
    }
  }
  return null;
}

/**
 * Derives the backup private key from `input` and proves it against `info`. Throws AppError kinds
 * empty-input, not-a-key, wrong-key, older-backup-key, no-secret-storage, no-phrase, wrong-phrase.
 */
export async function proveRecoveryInput(
  client: HomeserverClient, vault: Vault, userId: string, info: SupportedBackupVersion, input: string,
): Promise<ProvedKey> {
  const classified = classifyRecoveryInput(input);
  const target = info.publicKey;
  const scratch: Uint8Array[] = [];
  // A key of the wrong length (a legacy backup with private_key_bits other than 256) matches nothing.
  const matches = async (key: Uint8Array): Promise<boolean> => key.length === 32 && backupKeyMatches(key, target);
  try {
    switch (classified.shape) {
      case 'empty':
        throw new AppError('empty-input', 'Enter your Security Key, Security Phrase or backup recovery key.');
      case 'too-long':
        throw new AppError('not-a-key', `This is not a recovery key or a phrase: it is ${classified.length.toLocaleString('en')} characters long.`);
      case 'key': {
        const key = classified.key;
        scratch.push(key);
        const storage = await readSecretStorage(client, userId);
        const candidates: Uint8Array[] = [];
        let note: string | undefined;
        if (storage) {
          const via = await backupKeyVia(storage, key);
          if ('key' in via) {
            scratch.push(via.key);
            if (await matches(via.key)) return { privateKey: via.key.slice(), via: 'security-key' };
            candidates.push(via.key);
          } else if ('damaged' in via) {
            note = `Your secret storage could not be read with this key: ${via.damaged}`;
          } else if (via.miss === 'no-secret') {
            note = 'This is your Security Key, but your secret storage holds no backup key, and it is not the backup\'s own recovery key either.';
          }
        }
        if (await matches(key)) return { privateKey: key.slice(), via: 'recovery-key' };
        candidates.push(key);
        const older = await olderBackupVersion(client, vault, info, await Promise.all(candidates.map((k) => backupPublicKey(k))));
        if (older !== null) {
          throw new AppError('older-backup-key', `This is the key of an older backup (version ${older}), not of your current backup (version ${info.version}). ` +
            'Enter the recovery key of the current backup, or the Security Key that holds it.');
        }
        throw new AppError('wrong-key', note ?? `This recovery key is valid, but it belongs neither to your secret storage nor to your backup (version ${info.version}).`);
      }
      case 'bad-key':
      case 'phrase': {
        const storage = await readSecretStorage(client, userId);
        const legacy = info.auth_data.private_key_salt !== undefined;
        if (!storage?.hasPassphrase && !legacy) {
          if (classified.shape === 'bad-key') {
            throw new AppError('not-a-key', `This is not a recovery key: ${describeKeyFormatError(classified.error)}.`);
          }
          throw storage
            ? new AppError('no-phrase', 'Your secret storage was set up without a Security Phrase, so a phrase cannot unlock it. Enter your Security Key instead.')
            : new AppError('no-secret-storage', 'This account has no secret storage, so a Security Phrase cannot work. Enter the backup\'s recovery key instead.');
        }
        const phrase = classified.phrase;
        if (storage?.hasPassphrase) {
          const ssssKey = await secretStorageKeyFromPassphrase(phrase, storage.description);
          scratch.push(ssssKey);
          const via = await backupKeyVia(storage, ssssKey);
          if ('key' in via) {
            scratch.push(via.key);
            if (await matches(via.key)) return { privateKey: via.key.slice(), via: 'security-phrase' };
            const older = await olderBackupVersion(client, vault, info, [await backupPublicKey(via.key)]);
            throw new AppError(older !== null ? 'older-backup-key' : 'wrong-key',
              `This Security Phrase unlocks your secret storage, but the backup key stored there belongs to ${older !== null ? `an older backup (version ${older})` : 'another backup'}, ` +
              `not to your current backup (version ${info.version}). Enter the recovery key of the current backup.`);
          }
          if ('damaged' in via) throw new AppError('wrong-key', `Your secret storage could not be read with this phrase: ${via.damaged}`);
          if (via.miss === 'no-secret' && !legacy) {
            throw new AppError('wrong-key', 'This is your Security Phrase, but your secret storage holds no backup key. Enter the backup\'s recovery key instead.');
          }
        }
        if (legacy) {
          const authData = info.auth_data;
          const key = await derivePassphraseKey(phrase, authData.private_key_salt!, authData.private_key_iterations ?? 500_000, authData.private_key_bits ?? 256);
          scratch.push(key);
          if (await matches(key)) return { privateKey: key.slice(), via: 'legacy-phrase' };
        }
        if (classified.shape === 'bad-key') {
          throw new AppError('not-a-key', `This is not a recovery key: ${describeKeyFormatError(classified.error)}. Tried as a phrase, it did not work either.`);
        }
        throw new AppError('wrong-phrase', storage?.hasPassphrase
          ? 'This is not your Security Phrase. Check it, or enter your Security Key instead.'
          : 'This is not the passphrase of your backup. Check it, or enter the backup\'s recovery key instead.');
      }
      default: {
        const unknown: never = classified;
        throw new Error(`unhandled input shape ${JSON.stringify(unknown)}`);
      }
    }
  } finally {
    for (const k of scratch) k.fill(0);
  }
}

/**
 * Repeated failed attempts wait longer each time (1 s doubling to 30 s after the third), so a wrong
 * key typed again and again does not become a storm of requests and PBKDF2 runs. In memory: a new
 * worker starts afresh, which costs an attacker a kill per three tries and gains nothing remotely.
 */
export class AttemptLimiter {
  #failures = 0;
  #notBefore = 0;
  #inFlight = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** Starts an attempt; refused while another runs (parallel attempts would slip past the limit). */
  check(): void {
    if (this.#inFlight) throw new AppError('rate-limited', 'The previous attempt is still being checked. Wait for its answer.');
    const wait = this.#notBefore - this.now();
    if (wait > 0) {
      throw new AppError('rate-limited', `Too many attempts. Wait ${Math.ceil(wait / 1000)} s before trying again.`);
    }
    this.#inFlight = true;
  }

  /** The attempt ended without saying anything about the input (e.g. the server was unreachable). */
  ended(): void {
    this.#inFlight = false;
  }

  failed(): void {
    this.#inFlight = false;
    this.#failures++;
    const delay = this.#failures < 3 ? 0 : Math.min(30_000, 1000 * 2 ** (this.#failures - 3));
    this.#notBefore = this.now() + delay;
  }

  succeeded(): void {
    this.#inFlight = false;
    this.#failures = 0;
    this.#notBefore = 0;
  }
}

/** Failures that say something about the input, and so count against the limiter. */
const INPUT_FAILURES = new Set(['not-a-key', 'wrong-key', 'older-backup-key', 'wrong-phrase', 'no-phrase', 'no-secret-storage']);

export async function unlockVault(
  deps: { vault: Vault; client: HomeserverClient; userId: string; store: UnlockStore; limiter: AttemptLimiter; now: () => number },
  input: string,
): Promise<UnlockSummary> {
  const { vault, client, userId, store, limiter, now } = deps;
  limiter.check();
  let proved: ProvedKey;
  let info: SupportedBackupVersion;
  try {
    const latest = await client.getLatestBackupVersion();
    if (!latest) throw new AppError('no-server-backup', 'Your account has no backup on the server. Create one from the popup instead.');
    if (latest.state !== 'supported') {
      throw new AppError('unsupported-algorithm', `The backup on the server (version ${latest.version}) uses ${latest.algorithm}, which this extension does not support.`);
    }
    info = latest;
    proved = await proveRecoveryInput(client, vault, userId, info, input);
  } catch (e) {
    if (e instanceof AppError && INPUT_FAILURES.has(e.kind)) limiter.failed();
    else limiter.ended();
    throw e;
  }
  limiter.succeeded();
  try {
    await pinProvedKey(vault, userId, info.version, info.publicKey);
    const unlocked: UnlockedKey = {
      userId, version: info.version, publicKey: info.publicKey, privateKey: encodeBase64(proved.privateKey), via: proved.via, at: now(),
    };
    await store.set(unlocked);
    return summarizeUnlock(unlocked);
  } finally {
    proved.privateKey.fill(0);
  }
}

export function summarizeUnlock(key: UnlockedKey): UnlockSummary {
  return { version: key.version, publicKey: key.publicKey, via: key.via, at: key.at };
}
