/**
 * The vault: the extension's IndexedDB database. Sessions are kept only in backup-encrypted form
 * (`session_data` for the pinned backup key) with the routing metadata the upload needs; nothing in
 * it is a plaintext key. Only the service worker writes it (doc/architecture.md).
 *
 * Transactions are short and never await anything but their own requests: callers compute (encrypt,
 * fetch) first and write after.
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import type { BackupPin } from '../core/upload/pin.ts';
import type { EncryptedSessionDataWire, UploadableSession } from '../core/upload/request.ts';
import { initialUploadState, onSignedIn, type UploadState } from '../core/upload/state.ts';

export const VAULT_DB_NAME = 'matrix-key-vault';

export interface StoredSession extends UploadableSession {
  senderKey: string;
  /** The public key sessionData is encrypted to (the pin's, when it was stored). */
  publicKey: string;
  sessionData: EncryptedSessionDataWire;
  /** The pin epoch this copy was last uploaded at; 0 = never. Pending while below the pin's epoch. */
  uploadedEpoch: number;
  /** Changes whenever the row is replaced, so an upload that raced a better copy does not mark it. */
  revision: string;
  storedAt: number;
}

/** The access token, sealed with a non-extractable AES-GCM key that never leaves this database. */
export interface SealedSecret {
  iv: Uint8Array<ArrayBuffer>;
  ciphertext: Uint8Array<ArrayBuffer>;
}

export interface StoredAccount {
  homeserverUrl: string;
  userId: string;
  deviceId: string;
  accessToken: SealedSecret;
  /** Whether the extension created this login (and so may log it out). */
  ownsDevice: boolean;
  connectedAt: number;
}

interface KvValues {
  account: StoredAccount;
  pin: BackupPin;
  upload: UploadState;
  tokenKey: CryptoKey;
}
type KvKey = keyof KvValues;

interface VaultSchema extends DBSchema {
  sessions: {
    key: [string, string];
    value: StoredSession;
    indexes: { pending: [string, number] };
  };
  kv: { key: KvKey; value: KvValues[KvKey] };
}

type UpgradeTx = IDBPTransaction<VaultSchema, StoreNames<VaultSchema>[], 'versionchange'>;
type KvStore = IDBPTransaction<VaultSchema, ['kv'], 'readwrite'>['store'];

/** Append-only: a released migration is never edited; a change is a new entry. */
const migrations: Array<(db: IDBPDatabase<VaultSchema>, tx: UpgradeTx) => void> = [
  (db) => {
    const sessions = db.createObjectStore('sessions', { keyPath: ['roomId', 'sessionId'] });
    // [publicKey, uploadedEpoch]: the pending sessions for a pin are one key range, and sessions
    // encrypted to another key (an earlier pin) never show up as pending for this one.
    sessions.createIndex('pending', ['publicKey', 'uploadedEpoch']);
    db.createObjectStore('kv');
  },
];

export type PutOutcome = 'stored' | 'kept';

export class Vault {
  private constructor(private readonly db: IDBPDatabase<VaultSchema>) {}

  static async open(name = VAULT_DB_NAME): Promise<Vault> {
    const db = await openDB<VaultSchema>(name, migrations.length, {
      upgrade(database, oldVersion, _newVersion, tx) {
        for (let v = oldVersion; v < migrations.length; v++) migrations[v]!(database, tx);
      },
    });
    return new Vault(db);
  }

  close(): void {
    this.db.close();
  }

  private async get<K extends KvKey>(key: K): Promise<KvValues[K] | undefined> {
    return (await this.db.get('kv', key)) as KvValues[K] | undefined;
  }

  private async set<K extends KvKey>(key: K, value: KvValues[K]): Promise<void> {
    await this.db.put('kv', value, key);
  }

  getAccount(): Promise<StoredAccount | undefined> { return this.get('account'); }

  /**
   * Stores the signed-in account in one transaction with what signing in means for the backup: a pin
   * of another account is dropped (an account never inherits another's backup key), and a stop that
   * asked the same account to sign in again is lifted.
   */
  async connectAccount(account: StoredAccount): Promise<void> {
    const tx = this.db.transaction('kv', 'readwrite');
    const [pin, upload] = await Promise.all([tx.store.get('pin') as Promise<BackupPin | undefined>, tx.store.get('upload') as Promise<UploadState | undefined>]);
    const writes: Array<Promise<unknown>> = [tx.store.put(account, 'account')];
    if (pin && pin.userId !== account.userId) {
      writes.push(tx.store.delete('pin'), tx.store.put(initialUploadState, 'upload'));
    } else if (upload) {
      writes.push(tx.store.put(onSignedIn({ ...initialUploadState, ...upload }), 'upload'));
    }
    await Promise.all([...writes, tx.done]);
  }

  async clearAccount(): Promise<void> { await this.db.delete('kv', 'account'); }

  getPin(): Promise<BackupPin | undefined> { return this.get('pin'); }
  setPin(pin: BackupPin): Promise<void> { return this.set('pin', pin); }

  async getUploadState(): Promise<UploadState> {
    return { ...initialUploadState, ...(await this.get('upload')) };
  }
  setUploadState(state: UploadState): Promise<void> { return this.set('upload', state); }

  /** Pin and upload state change together (a newly proved key starts with a fresh state). */
  async setPinAndUploadState(pin: BackupPin, state: UploadState): Promise<void> {
    const tx = this.db.transaction('kv', 'readwrite');
    await Promise.all([tx.store.put(pin, 'pin'), tx.store.put(state, 'upload'), tx.done]);
  }

  /**
   * Writes the upload state only if `pin` is still the pinned backup (compare-and-set): a run that
   * started before the user proved another key must not overwrite that key's fresh state.
   */
  async setUploadStateIfPinned(pin: BackupPin, state: UploadState): Promise<boolean> {
    return this.ifPinned(pin, (store) => [store.put(state, 'upload')]);
  }

  /** Moves the pin to a followed version (same key), if `from` is still the pinned backup. */
  async followPin(from: BackupPin, to: BackupPin, state: UploadState): Promise<boolean> {
    return this.ifPinned(from, (store) => [store.put(to, 'pin'), store.put(state, 'upload')]);
  }

  private async ifPinned(pin: BackupPin, write: (store: KvStore) => Array<Promise<unknown>>): Promise<boolean> {
    const tx = this.db.transaction('kv', 'readwrite');
    const current = (await tx.store.get('pin')) as BackupPin | undefined;
    const same = current !== undefined && current.userId === pin.userId && current.version === pin.version &&
      current.publicKey === pin.publicKey && current.epoch === pin.epoch;
    await Promise.all([...(same ? write(tx.store) : []), tx.done]);
    return same;
  }

  /** The key that seals the access token: generated once, non-extractable, kept here. */
  async tokenKey(): Promise<CryptoKey> {
    const existing = await this.get('tokenKey');
    if (existing) return existing;
    const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    // Read again inside the write transaction, so two racing first callers end up with one key.
    const tx = this.db.transaction('kv', 'readwrite');
    const raced = (await tx.store.get('tokenKey')) as CryptoKey | undefined;
    if (!raced) await tx.store.put(key, 'tokenKey');
    await tx.done;
    return raced ?? key;
  }

  /** The stored copies' quality and key, keyed by `sessionKey(roomId, sessionId)`. */
  async storedCopies(keys: ReadonlyArray<readonly [string, string]>): Promise<Map<string, StoredCopy>> {
    const tx = this.db.transaction('sessions', 'readonly');
    const rows = await Promise.all(keys.map(([r, s]) => tx.store.get([r, s])));
    await tx.done;
    const out = new Map<string, StoredCopy>();
    for (const row of rows) {
      if (row) out.set(sessionKey(row.roomId, row.sessionId), { firstMessageIndex: row.firstMessageIndex, publicKey: row.publicKey });
    }
    return out;
  }

  /**
   * Stores sessions that are better than what is stored: a lower firstMessageIndex decrypts more.
   * An equal or worse copy is kept out, so re-importing a file changes nothing and re-sends nothing.
   * A stored copy encrypted to another key (an earlier pin) can never be uploaded to this backup, so
   * any copy for the current key replaces it.
   */
  async putSessions(rows: readonly StoredSession[]): Promise<PutOutcome[]> {
    const tx = this.db.transaction('sessions', 'readwrite');
    const existing = await Promise.all(rows.map((r) => tx.store.get([r.roomId, r.sessionId])));
    const outcomes: PutOutcome[] = [];
    const writes: Array<Promise<unknown>> = [];
    // Two copies of one session in the same call: the better one wins.
    const best = new Map<string, StoredCopy>();
    rows.forEach((row, i) => {
      const key = sessionKey(row.roomId, row.sessionId);
      const stored = best.get(key) ?? existing[i];
      if (stored && !isBetterCopy(row, stored)) {
        outcomes.push('kept');
        return;
      }
      best.set(key, row);
      writes.push(tx.store.put(row));
      outcomes.push('stored');
    });
    await Promise.all([...writes, tx.done]);
    return outcomes;
  }

  /** Up to `limit` sessions encrypted to `publicKey` and not yet uploaded at `epoch`, room by room. */
  async pendingBatch(publicKey: string, epoch: number, limit: number): Promise<StoredSession[]> {
    const range = IDBKeyRange.bound([publicKey, 0], [publicKey, epoch], false, true);
    return this.db.getAllFromIndex('sessions', 'pending', range, limit);
  }

  async countPending(publicKey: string, epoch: number): Promise<number> {
    return this.db.countFromIndex('sessions', 'pending', IDBKeyRange.bound([publicKey, 0], [publicKey, epoch], false, true));
  }

  async countSessions(): Promise<number> {
    return this.db.count('sessions');
  }

  /**
   * Marks uploaded what the server accepted. A row replaced since the batch was read (another
   * revision) stays pending: the server has the older copy, not this one.
   */
  async markUploaded(batch: ReadonlyArray<Pick<StoredSession, 'roomId' | 'sessionId' | 'revision'>>, epoch: number): Promise<number> {
    const tx = this.db.transaction('sessions', 'readwrite');
    const rows = await Promise.all(batch.map((b) => tx.store.get([b.roomId, b.sessionId])));
    const writes: Array<Promise<unknown>> = [];
    rows.forEach((row, i) => {
      if (row && row.revision === batch[i]!.revision && row.uploadedEpoch < epoch) {
        writes.push(tx.store.put({ ...row, uploadedEpoch: epoch }));
      }
    });
    await Promise.all([...writes, tx.done]);
    return writes.length;
  }
}

export interface StoredCopy {
  firstMessageIndex: number;
  publicKey: string;
}

/** Whether `candidate` should replace `stored`: it is for another key, or it decrypts more messages. */
export function isBetterCopy(candidate: StoredCopy, stored: StoredCopy): boolean {
  return candidate.publicKey !== stored.publicKey || candidate.firstMessageIndex < stored.firstMessageIndex;
}

export function sessionKey(roomId: string, sessionId: string): string {
  return `${roomId}\u0000${sessionId}`;
}
