/**
 * The vault: the extension's IndexedDB database. Sessions are kept only in backup-encrypted form
 * (`session_data` for the pinned backup key) with the routing metadata the upload needs; nothing in
 * it is a plaintext key. Only the service worker writes it (doc/architecture.md).
 *
 * Transactions are short and never await anything but their own requests: callers compute (encrypt,
 * fetch) first and write after.
 */
import { openDB, unwrap, type DBSchema, type IDBPDatabase, type IDBPObjectStore, type IDBPTransaction, type StoreNames } from 'idb';
import { unpadBase64 } from '../core/base64.ts';
import { type RestoreFailureKind, type RestoreState } from '../core/restore/state.ts';
import type { BackupPin } from '../core/upload/pin.ts';
import type { Scope } from '../shared/page-api.ts';
import type { EncryptedSessionDataWire, UploadableSession } from '../core/upload/request.ts';
import { initialUploadState, onSignedIn, type UploadState } from '../core/upload/state.ts';
import { isPackable, PAGE_SIZE, packRows, pageKey, pageWithout, rowOf, type PackedPage } from './vault-pages.ts';
import { decodeRow, encodeRow, newRevision, type SessionRow } from './vault-rows.ts';

export const VAULT_DB_NAME = 'matrix-key-vault';

export { newRevision } from './vault-rows.ts';

export interface StoredSession extends UploadableSession {
  senderKey: string;
  /** The public key sessionData is encrypted to (the pin's, when it was stored). */
  publicKey: string;
  sessionData: EncryptedSessionDataWire;
  /** The pin epoch this copy was last uploaded at; 0 = never. Pending while below the pin's epoch. */
  uploadedEpoch: number;
  /** Changes whenever the row is replaced, so an upload that raced a better copy does not mark it (newRevision). */
  revision: number;
  storedAt: number;
  /** The last restore that handled this session (stored it, or found it already held). */
  restoreId?: string;
}

/** A backup entry a restore could not use, and why; keyed like sessions. */
export interface RestoreFailureRow {
  roomId: string;
  sessionId: string;
  restoreId: string;
  kind: RestoreFailureKind;
  reason: string;
}

/** An entry of the server's backup that the vault holds as good or better, found before decrypting. */
export interface PresentEntry {
  roomId: string;
  sessionId: string;
  serverFirstMessageIndex: number;
}

/** A key that was pinned before: sessions encrypted to it wait until the user proves it again. */
export interface EarlierPin {
  publicKey: string;
  version: string;
  userId: string;
  unpinnedAt: number;
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

/** A site the user allowed to use the page API, and what it may do (DESIGN.md "Per-origin grants"). */
export interface SiteGrant {
  /** `scheme://host[:port]`, exactly as the browser reports a sender's origin. */
  origin: string;
  scopes: Scope[];
  grantedAt: number;
  /** "Connect to the Matrix client on this site" (Element Web's own client): off unless turned on. */
  connectClient?: boolean;
}

interface KvValues {
  account: StoredAccount;
  pin: BackupPin;
  upload: UploadState;
  tokenKey: CryptoKey;
  restore: RestoreState;
  /** A room-by-room restore's room list, taken once per restore (its state counts the rooms done). */
  restoreRooms: { restoreId: string; rooms: string[] };
  earlierPins: EarlierPin[];
  counters: Counters;
  sites: SiteGrant[];
  /** The public keys rows are encrypted to; a row holds its key's index here (vault-rows.ts). Append-only. */
  publicKeys: string[];
}
type KvKey = keyof KvValues;

interface VaultSchema extends DBSchema {
  sessions: {
    key: [string, string];
    value: SessionRow;
    indexes: { pending: [number, number] };
  };
  /** Restored sessions, PAGE_SIZE to a record (vault-pages.ts). */
  packed: {
    key: [string, number];
    value: PackedPage;
    indexes: { ids: [string, string]; pending: [number, number, number] };
  };
  kv: { key: KvKey; value: KvValues[KvKey] };
  restoreFailures: { key: [string, string]; value: RestoreFailureRow };
}

type UpgradeTx = IDBPTransaction<VaultSchema, StoreNames<VaultSchema>[], 'versionchange'>;
type KvStore = IDBPTransaction<VaultSchema, ['kv'], 'readwrite'>['store'];

/**
 * Append-only: a released migration is never edited; a change is a new entry. Each runs after the
 * one before has finished (they may walk the sessions), in the one upgrade transaction.
 */
const migrations: Array<(db: IDBPDatabase<VaultSchema>, tx: UpgradeTx) => void | Promise<void>> = [
  (db) => {
    const sessions = db.createObjectStore('sessions', { keyPath: ['roomId', 'sessionId'] });
    // [publicKey, uploadedEpoch]: the pending sessions for a pin are one key range, and sessions
    // encrypted to another key (an earlier pin) never show up as pending for this one.
    sessions.createIndex('pending', ['publicKey', 'uploadedEpoch']);
    db.createObjectStore('kv');
  },
  (db, tx) => {
    db.createObjectStore('restoreFailures', { keyPath: ['roomId', 'sessionId'] });
    // Public keys are compared as spelled (the pending index is an exact-string range), so one key
    // must have one spelling: unpadded base64, as the spec writes it. Earlier versions pinned the
    // server's spelling, which may carry "=" padding.
    return normalisePublicKeys(tx);
  },
  // Rows laid out for disk (vault-rows.ts): the index becomes [key number, uploadedEpoch].
  (_db, tx) => compactRows(tx),
  // Restored sessions in pages (vault-pages.ts); rows stay where they are.
  (db) => {
    const packed = db.createObjectStore('packed', { keyPath: ['roomId', 'p'] });
    packed.createIndex('ids', 'x', { multiEntry: true });
    // [key number, epoch, count]: the pages of a key and epoch are one range, as the rows' `pending`
    // index, and counting their sessions reads the index alone.
    packed.createIndex('pending', ['k', 'e', 'c']);
  },
];

/** Row shapes of schemas 1 and 2, as their migrations (above) see them. */
interface SessionRowV2 extends Omit<StoredSession, 'revision'> { revision: string }

/** Runs migrations `from`.. in order; a failed one aborts the upgrade (half a migration must not commit). */
function migrate(db: IDBPDatabase<VaultSchema>, tx: UpgradeTx, from: number): void {
  // Synchronous steps run at once, still inside the upgrade event; the next after an asynchronous
  // one runs when its last request has succeeded, while the transaction is still active.
  const from_ = (v: number): Promise<void> | undefined => {
    for (; v < migrations.length; v++) {
      const pending = migrations[v]!(db, tx);
      if (pending) return pending.then(() => from_(v + 1));
    }
    return undefined;
  };
  from_(from)?.catch(() => tx.abort());
}

async function normalisePublicKeys(tx: UpgradeTx): Promise<void> {
  const kv = tx.objectStore('kv');
  const pin = (await kv.get('pin')) as BackupPin | undefined;
  if (pin && pin.publicKey !== unpadBase64(pin.publicKey)) await kv.put({ ...pin, publicKey: unpadBase64(pin.publicKey) }, 'pin');
  let cursor = await tx.objectStore('sessions').openCursor();
  while (cursor) {
    const row = cursor.value as unknown as SessionRowV2;
    if (row.publicKey.endsWith('=')) await cursor.update({ ...row, publicKey: unpadBase64(row.publicKey) } as unknown as SessionRow);
    cursor = await cursor.continue();
  }
}

/** Rows read and rewritten per round trip by migration 3 (one cursor step per row took 1.2 ms a row). */
const COMPACT_BATCH = 1000;

async function compactRows(tx: UpgradeTx): Promise<void> {
  const sessions = tx.objectStore('sessions');
  sessions.deleteIndex('pending');
  sessions.createIndex('pending', ['k', 'e']);
  const keys: string[] = [];
  let after: [string, string] | undefined;
  for (;;) {
    const rows = (await sessions.getAll(after && IDBKeyRange.lowerBound(after, true), COMPACT_BATCH)) as unknown as SessionRowV2[];
    if (rows.length === 0) break;
    await Promise.all(rows.map((old) => {
      let n = keys.indexOf(old.publicKey);
      if (n < 0) n = keys.push(old.publicKey) - 1;
      return sessions.put(encodeRow({ ...old, revision: newRevision() }, n));
    }));
    const last = rows[rows.length - 1]!;
    after = [last.roomId, last.sessionId];
  }
  await tx.objectStore('kv').put(keys, 'publicKeys');
}

export type PutOutcome = 'stored' | 'kept';

/** The vault's contents contradict themselves (reported as storage-unavailable). */
export class VaultDamagedError extends Error {
  override readonly name = 'VaultDamagedError';
  readonly kind = 'storage-unavailable';
}

/**
 * Session counts kept in the vault, so the popup's poll does not cost a count over 10⁵+ rows:
 * counted once, then adjusted in the same transaction as every write to the sessions. (Kept in
 * memory they went wrong: a killed worker's last transaction can commit after the next worker has
 * counted.) A pin change clears the pending count, which is then counted again once.
 */
interface Counters {
  total: number | null;
  /** Pending for `basis` (`publicKey|epoch`); null = count again. */
  pending: { basis: string; count: number } | null;
}

/** What the pending count needs of a row. */
type Pending = Pick<StoredSession, 'publicKey' | 'uploadedEpoch'>;
type SessionChange = { before: Pending | undefined; after: Pending | undefined };

function adjusted(counters: Counters, changes: readonly SessionChange[]): Counters {
  let total = counters.total;
  const pending = counters.pending ? { ...counters.pending } : null;
  for (const { before, after } of changes) {
    if (total !== null) total += (after ? 1 : 0) - (before ? 1 : 0);
    if (pending) pending.count += (pendingFor(after, pending.basis) ? 1 : 0) - (pendingFor(before, pending.basis) ? 1 : 0);
  }
  return { total, pending };
}

function basisOf(pin: Pick<BackupPin, 'publicKey' | 'epoch'>): string {
  return `${pin.publicKey}|${pin.epoch}`;
}

function pendingFor(row: Pick<StoredSession, 'publicKey' | 'uploadedEpoch'> | undefined, basis: string): boolean {
  if (!row) return false;
  const bar = basis.lastIndexOf('|');
  return row.publicKey === basis.slice(0, bar) && row.uploadedEpoch < Number(basis.slice(bar + 1));
}

/** The key-value store of a transaction that includes it. */
type KvStoreOf = { get(key: KvKey): Promise<unknown>; put(value: KvValues[KvKey], key: KvKey): Promise<unknown> };

/** Inside a write transaction: adjusts the kept counts by what it changed. */
async function countChanges(kv: KvStoreOf, changes: readonly SessionChange[]): Promise<void> {
  if (changes.length === 0) return;
  const counters = (await kv.get('counters')) as Counters | undefined;
  if (counters) await kv.put(adjusted(counters, changes), 'counters');
}

/** Inside a kv write transaction that moves the pin: the pending count is for the old pin. */
async function forgetPendingCount(kv: KvStoreOf): Promise<void> {
  const counters = (await kv.get('counters')) as Counters | undefined;
  if (counters?.pending) await kv.put({ ...counters, pending: null }, 'counters');
}

/** The `publicKeys` list, read in a transaction that may extend it. */
async function readKeys(kv: KvStoreOf): Promise<string[]> {
  return [...(((await kv.get('publicKeys')) as string[] | undefined) ?? [])];
}

/** Numbers public keys against `list`, appending the new ones; `added` says whether to write it back. */
function numberer(list: string[]): { number(publicKey: string): number; readonly added: boolean } {
  let added = false;
  return {
    number(publicKey) {
      const n = list.indexOf(publicKey);
      if (n >= 0) return n;
      added = true;
      return list.push(publicKey) - 1;
    },
    get added() { return added; },
  };
}

function copyOf(row: SessionRow, keys: readonly string[]): StoredCopy {
  return { firstMessageIndex: row.i, publicKey: keys[row.k]! };
}

function pendingOf(row: SessionRow, keys: readonly string[]): Pending {
  return { publicKey: keys[row.k]!, uploadedEpoch: row.e };
}

/** Every row of key number `n`, whatever its epoch, on the `pending` index. */
function allFor(n: number): IDBKeyRange {
  return IDBKeyRange.bound([n, -Infinity], [n, Infinity]);
}

export class Vault {
  private constructor(private readonly db: IDBPDatabase<VaultSchema>) {}

  /** The `publicKeys` list as last read; a row numbered past it sends the vault to read it again. */
  #keys: readonly string[] = [];

  async #reloadKeys(): Promise<readonly string[]> {
    this.#keys = (await this.get('publicKeys')) ?? [];
    return this.#keys;
  }

  /** The list that names every row's key, read again if one is numbered past what is known. */
  async #keysFor(rows: ReadonlyArray<SessionRow | undefined>): Promise<readonly string[]> {
    const unnamed = (keys: readonly string[]): boolean => rows.some((r) => r !== undefined && !(r.k >= 0 && r.k < keys.length));
    if (!unnamed(this.#keys)) return this.#keys;
    // A row whose key the list does not name cannot be read as encrypted to anything: say so.
    if (unnamed(await this.#reloadKeys())) throw new VaultDamagedError('The vault is damaged: a stored session names a public key its key list does not hold. Export what can be read and restore from your backup.');
    return this.#keys;
  }

  async #decode(rows: ReadonlyArray<SessionRow | undefined>): Promise<Array<StoredSession | undefined>> {
    const keys = await this.#keysFor(rows);
    return rows.map((row) => row && decodeRow(row, keys[row.k]!));
  }

  /** A public key's number, or undefined when no row was ever stored under it. */
  async #numberOf(publicKey: string): Promise<number | undefined> {
    let n = this.#keys.indexOf(publicKey);
    if (n < 0) n = (await this.#reloadKeys()).indexOf(publicKey);
    return n < 0 ? undefined : n;
  }

  #terminated = false;

  static async open(name = VAULT_DB_NAME): Promise<Vault> {
    let vault: Vault | undefined;
    const db = await openDB<VaultSchema>(name, migrations.length, {
      upgrade(database, oldVersion, _newVersion, tx) {
        migrate(database, tx, oldVersion);
      },
      // The browser closed the connection itself: it does so when a write hits a full disk, and when
      // the user clears the site's data. This connection is dead; the worker opens a new one.
      terminated() {
        if (vault) vault.#terminated = true;
      },
    });
    vault = new Vault(db);
    return vault;
  }

  /** The browser closed this connection (see open): every call fails until a new Vault is opened. */
  get terminated(): boolean {
    return this.#terminated;
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

  async getSites(): Promise<SiteGrant[]> { return (await this.get('sites')) ?? []; }

  /** Changes the site grants in one transaction (two popups granting at once both count). */
  async updateSites(update: (sites: SiteGrant[]) => SiteGrant[]): Promise<SiteGrant[]> {
    const tx = this.db.transaction('kv', 'readwrite');
    const next = update(((await tx.store.get('sites')) as SiteGrant[] | undefined) ?? []);
    await Promise.all([tx.store.put(next, 'sites'), tx.done]);
    return next;
  }

  /**
   * Stores the signed-in account in one transaction with what signing in means for the backup: a pin
   * of another account is dropped (an account never inherits another's backup key), and a stop that
   * asked the same account to sign in again is lifted.
   */
  async connectAccount(account: StoredAccount): Promise<void> {
    const tx = this.db.transaction('kv', 'readwrite');
    const [pin, upload, earlier] = await Promise.all([
      tx.store.get('pin') as Promise<BackupPin | undefined>,
      tx.store.get('upload') as Promise<UploadState | undefined>,
      tx.store.get('earlierPins') as Promise<EarlierPin[] | undefined>,
    ]);
    const writes: Array<Promise<unknown>> = [tx.store.put(account, 'account')];
    if (pin && pin.userId !== account.userId) {
      // The other account's sessions stay (encrypted to its key, never uploaded to or served for
      // this one) until the user erases them; remembering its pin says whose they are.
      const list = (earlier ?? []).filter((e) => e.publicKey !== pin.publicKey);
      list.unshift({ publicKey: pin.publicKey, version: pin.version, userId: pin.userId, unpinnedAt: account.connectedAt });
      writes.push(tx.store.delete('pin'), tx.store.put(initialUploadState, 'upload'), tx.store.delete('restore'), forgetPendingCount(tx.store),
        tx.store.put(list.slice(0, 20), 'earlierPins'));
    } else if (upload) {
      writes.push(tx.store.put(onSignedIn({ ...initialUploadState, ...upload }), 'upload'));
    }
    await Promise.all([...writes, tx.done]);
  }

  async clearAccount(): Promise<void> { await this.db.delete('kv', 'account'); }

  getPin(): Promise<BackupPin | undefined> { return this.get('pin'); }
  async setPin(pin: BackupPin): Promise<void> {
    const tx = this.db.transaction('kv', 'readwrite');
    await Promise.all([tx.store.put(pin, 'pin'), forgetPendingCount(tx.store), tx.done]);
  }

  /** Keys pinned before the current one, newest first. */
  async getEarlierPins(): Promise<EarlierPin[]> { return (await this.get('earlierPins')) ?? []; }

  async getUploadState(): Promise<UploadState> {
    return { ...initialUploadState, ...(await this.get('upload')) };
  }
  setUploadState(state: UploadState): Promise<void> { return this.set('upload', state); }

  /** Pin and upload state change together (a newly proved key starts with a fresh state). */
  async setPinAndUploadState(pin: BackupPin, state: UploadState, now = Date.now()): Promise<void> {
    const tx = this.db.transaction('kv', 'readwrite');
    const [previous, earlier] = await Promise.all([
      tx.store.get('pin') as Promise<BackupPin | undefined>,
      tx.store.get('earlierPins') as Promise<EarlierPin[] | undefined>,
    ]);
    const writes: Array<Promise<unknown>> = [tx.store.put(pin, 'pin'), tx.store.put(state, 'upload'), forgetPendingCount(tx.store)];
    // Sessions stay encrypted to the key they were stored under: remember it, so the popup can say
    // how many wait for it and offer to take it.
    if (previous && previous.publicKey !== pin.publicKey) {
      const list = (earlier ?? []).filter((e) => e.publicKey !== previous.publicKey && e.publicKey !== pin.publicKey);
      list.unshift({ publicKey: previous.publicKey, version: previous.version, userId: previous.userId, unpinnedAt: now });
      writes.push(tx.store.put(list.slice(0, 20), 'earlierPins'));
    }
    await Promise.all([...writes, tx.done]);
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
    return this.ifPinned(from, (store) => [store.put(to, 'pin'), store.put(state, 'upload'), forgetPendingCount(store)]);
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
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const { rows } = await readStored(tx.objectStore('sessions'), packedOf(tx), keys);
    await tx.done;
    const keyList = await this.#keysFor(rows);
    const out = new Map<string, StoredCopy>();
    for (const row of rows) {
      if (row) out.set(sessionKey(row.roomId, row.sessionId), { firstMessageIndex: row.i, publicKey: keyList[row.k]! });
    }
    return out;
  }

  /**
   * Stores sessions that are better than what is stored: a lower firstMessageIndex decrypts more.
   * An equal or worse copy is kept out, so re-importing a file changes nothing and re-sends nothing.
   * A stored copy encrypted to another key (an earlier pin) can never be uploaded to this backup, so
   * any copy for the current key replaces it.
   */
  /**
   * Stores each row unless an equal or better copy is held. With `onlyNew`, a held copy is never
   * replaced, however much better the new one claims to be (sessions from a web page, which could
   * forge an earlier message index over a real key).
   */
  async putSessions(rows: readonly StoredSession[], options: { onlyNew?: boolean } = {}): Promise<PutOutcome[]> {
    const encoded = rows.map((r) => encodeRow(r, -1)); // numbered in the transaction
    const tx = this.db.transaction(['sessions', 'packed', 'kv'], 'readwrite');
    const store = tx.objectStore('sessions');
    const packed = packedOf(tx);
    const kv = tx.objectStore('kv');
    const [{ rows: existing, hits }, keyList] = await Promise.all([readStored(store, packed, rows.map((r) => [r.roomId, r.sessionId] as const)), readKeys(kv)]);
    const lifted: PageHit[] = [];
    const numbering = numberer(keyList);
    const outcomes: PutOutcome[] = [];
    const writes: Array<Promise<unknown>> = [];
    // Two copies of one session in the same call: the better one wins.
    const best = new Map<string, SessionRow>();
    const changes: SessionChange[] = [];
    rows.forEach((row, i) => {
      const key = sessionKey(row.roomId, row.sessionId);
      const stored = best.get(key) ?? existing[i];
      if (stored && (options.onlyNew || !isBetterCopy(row, copyOf(stored, keyList)))) {
        outcomes.push('kept');
        return;
      }
      const after = encoded[i]!;
      after.k = numbering.number(row.publicKey);
      // A better copy of a session a restore has handled stays handled by it (a resumed pass must
      // not count it again).
      if (stored?.r !== undefined && after.r === undefined) after.r = stored.r;
      if (!best.has(key) && hits[i]) lifted.push(hits[i]); // replaced: out of its page
      best.set(key, after);
      writes.push(store.put(after));
      changes.push({ before: stored && pendingOf(stored, keyList), after: pendingOf(after, keyList) });
      outcomes.push('stored');
    });
    if (numbering.added) writes.push(kv.put(keyList, 'publicKeys'));
    await Promise.all([...writes, ...liftOut(packed, lifted), countChanges(kv, changes), tx.done]);
    this.#keys = keyList;
    return outcomes;
  }

  /** Up to `limit` sessions encrypted to `publicKey` and not yet uploaded at `epoch`, room by room. */
  async pendingBatch(publicKey: string, epoch: number, limit: number): Promise<StoredSession[]> {
    const n = await this.#numberOf(publicKey);
    if (n === undefined) return [];
    const range = IDBKeyRange.bound([n, 0], [n, epoch], false, true);
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const rows = await tx.objectStore('sessions').index('pending').getAll(range, limit);
    if (rows.length < limit) {
      // Then restored sessions (pending again once the pin moved): whole pages, as many as needed.
      const packed = packedOf(tx);
      const wanted: Array<[string, number]> = [];
      let more = limit - rows.length;
      let cursor = await packed.index('pending').openKeyCursor(range);
      while (cursor && more > 0) {
        wanted.push(cursor.primaryKey);
        more -= cursor.key[2];
        cursor = await cursor.continue();
      }
      for (const page of await Promise.all(wanted.map((key) => packed.get(key)))) {
        if (page) for (let i = 0; i < page.c && rows.length < limit; i++) rows.push(rowOf(page, i));
      }
    }
    await tx.done;
    return rows.map((row) => decodeRow(row, publicKey));
  }

  /** Pending sessions for a pin: counted once, then kept by the writes (see Counters). */
  async countPending(publicKey: string, epoch: number): Promise<number> {
    const basis = basisOf({ publicKey, epoch });
    const kept = await this.get('counters');
    if (kept?.pending?.basis === basis) return kept.pending.count;
    const n = await this.#numberOf(publicKey);
    return this.#recount((c, count) => ({ ...c, pending: { basis, count } }),
      async (sessions, packed) => {
        if (n === undefined) return 0;
        const range = IDBKeyRange.bound([n, 0], [n, epoch], false, true);
        const [rows, inPages] = await Promise.all([sessions.index('pending').count(range), countInPages(packed, range)]);
        return rows + inPages;
      });
  }

  async countSessions(): Promise<number> {
    const kept = await this.get('counters');
    if (kept && kept.total !== null) return kept.total;
    return this.#recount((c, total) => ({ ...c, total }), async (sessions, packed) => {
      const [rows, inPages] = await Promise.all([sessions.count(), countInPages(packed)]);
      return rows + inPages;
    });
  }

  /** Counts in one transaction with keeping the count, so no write slips between the two. */
  async #recount(keep: (c: Counters, n: number) => Counters, count: (sessions: IDBPObjectStore<VaultSchema, Array<'sessions' | 'packed' | 'kv'>, 'sessions', 'readwrite'>, packed: PackedStore) => Promise<number>): Promise<number> {
    const tx = this.db.transaction(['sessions', 'packed', 'kv'] as Array<'sessions' | 'packed' | 'kv'>, 'readwrite');
    const kv = tx.objectStore('kv');
    const [n, current] = await Promise.all([count(tx.objectStore('sessions'), packedOf(tx)), kv.get('counters') as Promise<Counters | undefined>]);
    await Promise.all([kv.put(keep(current ?? { total: null, pending: null }, n), 'counters'), tx.done]);
    return n;
  }

  /**
   * Erases the sessions of another account (every key it pinned here), and forgets its pins.
   * Refused for the signed-in account's own keys. Returns how many sessions were erased.
   */
  async eraseKeysOf(userId: string, batch = 1000): Promise<number> {
    const [account, pin, earlier] = await Promise.all([this.getAccount(), this.getPin(), this.getEarlierPins()]);
    if (account?.userId === userId) throw new RangeError('refusing to erase the signed-in account\'s keys');
    const keys = earlier.filter((e) => e.userId === userId && e.publicKey !== pin?.publicKey).map((e) => e.publicKey);
    let erased = 0;
    for (const publicKey of keys) {
      const n = await this.#numberOf(publicKey);
      if (n === undefined) continue;
      for (;;) {
        const tx = this.db.transaction(['sessions', 'kv'], 'readwrite');
        const sessions = tx.objectStore('sessions');
        const rows = await sessions.index('pending').getAll(allFor(n), batch);
        await Promise.all([...rows.map((r) => sessions.delete([r.roomId, r.sessionId])),
          countChanges(tx.objectStore('kv'), rows.map((r) => ({ before: { publicKey, uploadedEpoch: r.e }, after: undefined }))), tx.done]);
        erased += rows.length;
        if (rows.length < batch) break;
      }
      for (;;) {
        const tx = this.db.transaction(['packed', 'kv'], 'readwrite');
        const packed = packedOf(tx);
        const count = Math.max(1, Math.floor(batch / PAGE_SIZE));
        const pages = await packed.index('pending').getAll(allFor(n), count);
        const gone = pages.flatMap((p) => p.x.map(() => ({ before: { publicKey, uploadedEpoch: p.e }, after: undefined })));
        await Promise.all([...pages.map((p) => packed.delete(pageKey(p))), countChanges(tx.objectStore('kv'), gone), tx.done]);
        erased += gone.length;
        if (pages.length < count) break;
      }
    }
    const tx = this.db.transaction('kv', 'readwrite');
    const current = ((await tx.store.get('earlierPins')) as EarlierPin[] | undefined) ?? [];
    await Promise.all([tx.store.put(current.filter((e) => e.userId !== userId), 'earlierPins'), tx.done]);
    return erased;
  }

  /** Sessions encrypted to `publicKey` (an earlier pin's), whatever their upload state. */
  async countForKey(publicKey: string): Promise<number> {
    const n = await this.#numberOf(publicKey);
    if (n === undefined) return 0;
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const [rows, inPages] = await Promise.all([tx.objectStore('sessions').index('pending').count(allFor(n)), countInPages(packedOf(tx), allFor(n)), tx.done]);
    return rows + inPages;
  }

  /** The ids of the sessions encrypted to `publicKey`. */
  async keysForPublicKey(publicKey: string): Promise<Array<[string, string]>> {
    const n = await this.#numberOf(publicKey);
    if (n === undefined) return [];
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const packed = packedOf(tx);
    const [rows, pageKeys] = await Promise.all([tx.objectStore('sessions').index('pending').getAllKeys(allFor(n)), packed.index('pending').getAllKeys(allFor(n))]);
    // Pages a few at a time, keeping only their ids (10⁶ restored sessions are ≈ 800 MB of pages).
    const keys: Array<[string, string]> = [...rows];
    for (let at = 0; at < pageKeys.length; at += PAGES_PER_READ) {
      for (const page of await Promise.all(pageKeys.slice(at, at + PAGES_PER_READ).map((key) => packed.get(key)))) {
        if (page) for (const [r, s] of page.x) keys.push([r, s]);
      }
    }
    await tx.done;
    return keys;
  }

  async getSessions(keys: ReadonlyArray<readonly [string, string]>): Promise<Array<StoredSession | undefined>> {
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const { rows } = await readStored(tx.objectStore('sessions'), packedOf(tx), keys);
    await tx.done;
    return this.#decode(rows);
  }

  async getSession(roomId: string, sessionId: string): Promise<StoredSession | undefined> {
    return (await this.getSessions([[roomId, sessionId]]))[0];
  }

  /** Up to `limit` sessions in key order, after `after` (exclusive): the export walks the vault. */
  async sessionsAfter(after: readonly [string, string] | null, limit: number): Promise<StoredSession[]> {
    const range = after ? IDBKeyRange.lowerBound([after[0], after[1]], true) : undefined;
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const packed = packedOf(tx);
    // The next `limit` of each kind, merged in key order: packed sessions in the `ids` index's
    // order, each page read once per call.
    const [rows, packedKeys] = await Promise.all([tx.objectStore('sessions').getAll(range, limit), (async () => {
      const keys: Array<[string, string]> = [];
      let cursor = await packed.index('ids').openKeyCursor(range ?? IDBKeyRange.lowerBound(['']));
      while (cursor && keys.length < limit) {
        keys.push(cursor.key);
        cursor = await cursor.continue();
      }
      return keys;
    })()]);
    const hits = await findInPages(packed, packedKeys);
    await tx.done;
    const inPages = hits.flatMap((hit) => (hit ? [rowOf(hit.page, hit.n)] : []));
    const merged: SessionRow[] = [];
    let a = 0;
    let b = 0;
    while (merged.length < limit && (a < rows.length || b < inPages.length)) {
      const row = rows[a];
      const packedRow = inPages[b];
      if (row && (!packedRow || compareRows(row, packedRow) <= 0)) {
        merged.push(row);
        a++;
      } else {
        merged.push(packedRow!);
        b++;
      }
    }
    return this.#decode(merged) as Promise<StoredSession[]>;
  }

  /**
   * Marks uploaded what the server accepted. A row replaced since the batch was read (another
   * revision) stays pending: the server has the older copy, not this one.
   */
  async markUploaded(batch: ReadonlyArray<Pick<StoredSession, 'roomId' | 'sessionId' | 'revision'>>, epoch: number): Promise<number> {
    const tx = this.db.transaction(['sessions', 'packed', 'kv'], 'readwrite');
    const store = tx.objectStore('sessions');
    const packed = packedOf(tx);
    // The key list is read in this transaction: awaiting anything else would let it commit.
    const [{ rows, hits }, keyList] = await Promise.all([readStored(store, packed, batch.map((b) => [b.roomId, b.sessionId] as const)), readKeys(tx.objectStore('kv'))]);
    const writes: Array<Promise<unknown>> = [];
    const changes: SessionChange[] = [];
    const lifted: PageHit[] = [];
    const marked = new Set<string>();
    rows.forEach((row, i) => {
      const key = sessionKey(batch[i]!.roomId, batch[i]!.sessionId);
      if (row && row.v === batch[i]!.revision && row.e < epoch && !marked.has(key)) {
        marked.add(key);
        // A restored session that was uploaded again (under a new backup) becomes a row of its own.
        if (hits[i]) lifted.push(hits[i]);
        const after = { ...row, e: epoch };
        writes.push(store.put(after));
        changes.push({ before: pendingOf(row, keyList), after: pendingOf(after, keyList) });
      }
    });
    await Promise.all([...writes, ...liftOut(packed, lifted), countChanges(tx.objectStore('kv'), changes), tx.done]);
    return writes.length;
  }

  // --- restore ---------------------------------------------------------------------------------

  getRestoreState(): Promise<RestoreState | undefined> { return this.get('restore'); }

  /** Starts a restore: its state replaces any earlier one, whose failure list goes with it. */
  async startRestore(state: RestoreState): Promise<void> {
    const tx = this.db.transaction(['kv', 'restoreFailures'], 'readwrite');
    await Promise.all([tx.objectStore('restoreFailures').clear(), tx.objectStore('kv').put(state, 'restore'), tx.objectStore('kv').delete('restoreRooms'), tx.done]);
  }

  /** Restore `id`'s room list, or null when it has none yet. */
  async getRestoreRooms(id: string): Promise<string[] | null> {
    const list = await this.get('restoreRooms');
    return list && list.restoreId === id ? list.rooms : null;
  }

  /**
   * Keeps restore `id`'s room list and rewrites its state in one transaction (compare-and-set, as
   * updateRestore): a worker killed between the two cannot leave one without the other.
   */
  async setRestoreRooms(id: string, rooms: readonly string[], update: (state: RestoreState) => RestoreState | null): Promise<RestoreState | null> {
    const tx = this.db.transaction('kv', 'readwrite');
    const current = (await tx.store.get('restore')) as RestoreState | undefined;
    const next = current && current.id === id ? update(current) : null;
    await Promise.all([...(next ? [tx.store.put(next, 'restore'), tx.store.put({ restoreId: id, rooms: [...rooms] }, 'restoreRooms')] : []), tx.done]);
    return next;
  }

  /**
   * The rooms the vault holds sessions for under `publicKey` (this account's backup key), at one
   * cursor step per room: the `pending` index orders one [publicKey, epoch]'s rows by
   * [roomId, sessionId], so the cursor jumps from each room to the next ([roomId, []] sorts after
   * every [roomId, string]).
   */
  async roomsHeldFor(publicKey: string): Promise<string[]> {
    const n = await this.#numberOf(publicKey);
    if (n === undefined) return [];
    const tx = this.db.transaction(['sessions', 'packed'], 'readonly');
    const rooms = new Set<string>();
    let cursor = await tx.objectStore('sessions').index('pending').openKeyCursor(allFor(n));
    while (cursor) {
      const [roomId] = cursor.primaryKey;
      rooms.add(roomId);
      cursor = await cursor.continuePrimaryKey(cursor.key, [roomId, []] as unknown as [string, string]);
    }
    for (const [roomId] of await tx.objectStore('packed').index('pending').getAllKeys(allFor(n))) rooms.add(roomId);
    await tx.done;
    return [...rooms];
  }

  /**
   * Rewrites the restore state if it is still restore `id` (compare-and-set); `update` returns the
   * new state, or null to leave it. Returns the state written, or null.
   */
  async updateRestore(id: string, update: (state: RestoreState) => RestoreState | null): Promise<RestoreState | null> {
    const tx = this.db.transaction('kv', 'readwrite');
    const current = (await tx.store.get('restore')) as RestoreState | undefined;
    const next = current && current.id === id ? update(current) : null;
    await Promise.all([...(next ? [tx.store.put(next, 'restore')] : []), tx.done]);
    return next;
  }

  /**
   * What the vault holds for these entries, as a restore needs to know before decrypting them.
   * `withFailures`: also look in the failure list (only a restore that has recorded failures needs to).
   */
  async restoreLookup(keys: ReadonlyArray<readonly [string, string]>, withFailures = true): Promise<Array<{ row?: StoredCopy & { restoreId?: string }; failedBy?: string }>> {
    const tx = this.db.transaction(['sessions', 'packed', 'restoreFailures'], 'readonly');
    const sessions = tx.objectStore('sessions');
    const failures = tx.objectStore('restoreFailures');
    const [{ rows }, failed] = await Promise.all([
      readStored(sessions, packedOf(tx), keys, true),
      withFailures ? getExisting(failures, keys) : keys.map(() => undefined),
    ]);
    await tx.done;
    const keyList = await this.#keysFor(rows);
    return keys.map((_, i) => {
      const row = rows[i];
      const failure = failed[i];
      return {
        ...(row ? { row: { ...copyOf(row, keyList), ...(row.r ? { restoreId: row.r } : {}) } } : {}),
        ...(failure ? { failedBy: failure.restoreId } : {}),
      };
    });
  }

  /**
   * One restore chunk in one transaction: the decrypted-and-checked rows (kept out where the vault
   * holds a better copy), the entries found already held (marked as handled), the failures, and the
   * state with the chunk's counts. Nothing is written when the restore was cancelled or replaced
   * meanwhile, or the pin moved to another key. Returns the state written, or null.
   *
   * `issued` is called once the transaction has read what it needs and made every write (or found
   * it has nothing to write): from then on it needs nothing of this thread. A caller that has other
   * work (the next chunk's decryption) waits for that first, so the reads' answers are not queued
   * behind thousands of its own tasks while the transaction stays open.
   */
  async commitRestoreChunk(
    id: string,
    chunk: { rows: readonly StoredSession[]; present: readonly PresentEntry[]; failures: readonly RestoreFailureRow[]; rooms: number },
    apply: (state: RestoreState, outcome: { restored: number; alreadyPresent: number; failures: RestoreFailureKind[]; rooms: number }) => RestoreState,
    issued: () => void = () => undefined,
  ): Promise<RestoreState | null> {
    try {
      return await this.#commitRestoreChunk(id, chunk, apply, issued);
    } finally {
      issued();
    }
  }

  async #commitRestoreChunk(
    id: string,
    chunk: { rows: readonly StoredSession[]; present: readonly PresentEntry[]; failures: readonly RestoreFailureRow[]; rooms: number },
    apply: (state: RestoreState, outcome: { restored: number; alreadyPresent: number; failures: RestoreFailureKind[]; rooms: number }) => RestoreState,
    issued: () => void,
  ): Promise<RestoreState | null> {
    // Relaxed: a chunk's rows and its counters commit together either way; a power cut may lose the
    // last chunks, which the next pass then does again. Strict durability costs a disk flush per chunk.
    const encoded = chunk.rows.map((r) => encodeRow(r, -1)); // numbered in the transaction
    const tx = this.db.transaction(['sessions', 'packed', 'restoreFailures', 'kv'], 'readwrite', { durability: 'relaxed' });
    const sessions = tx.objectStore('sessions');
    const packed = packedOf(tx);
    const kv = tx.objectStore('kv');
    const failureStore = tx.objectStore('restoreFailures');
    const [state, pin, counters, keyList, existing, present, failedBefore] = await Promise.all([
      kv.get('restore') as Promise<RestoreState | undefined>,
      kv.get('pin') as Promise<BackupPin | undefined>,
      kv.get('counters') as Promise<Counters | undefined>,
      readKeys(kv),
      readStored(sessions, packed, chunk.rows.map((r) => [r.roomId, r.sessionId] as const), true),
      readStored(sessions, packed, chunk.present.map((p) => [p.roomId, p.sessionId] as const)),
      getExisting(failureStore, chunk.failures.map((f) => [f.roomId, f.sessionId] as const)),
    ]);
    if (!state || state.id !== id || state.phase !== 'running' || !pin || pin.publicKey !== state.publicKey) {
      issued();
      await tx.done;
      return null;
    }
    const writes: Array<Promise<unknown>> = [];
    // Rows are put without idb's promise and two listeners per request: a failed one aborts the
    // transaction, and tx.done rejects with its error.
    const rawSessions = unwrap(sessions);
    const rawPacked = unwrap(tx.objectStore('packed'));
    const changes: SessionChange[] = [];
    const numbering = numberer(keyList);
    const pinned = numbering.number(pin.publicKey);
    let restored = 0;
    let alreadyPresent = 0;
    /** What this chunk stores: packed into pages where it can be, as rows otherwise. */
    const toStore: SessionRow[] = [];
    /** Sessions taken out of their pages (replaced, or stored again marked). */
    const lifted: PageHit[] = [];
    /** Rows replaced by a packed copy: deleted, so each session stays in one place. */
    const unrowed: Array<[string, string]> = [];
    const handled = new Set<string>();
    const store = (after: SessionRow, before: { row: SessionRow; hit: PageHit | undefined } | undefined): void => {
      if (before?.hit) lifted.push(before.hit);
      if (isPackable(after)) {
        if (before && !before.hit) unrowed.push([before.row.roomId, before.row.sessionId]);
        toStore.push(after);
      } else {
        rawSessions.put(after);
      }
      changes.push({ before: before && pendingOf(before.row, keyList), after: pendingOf(after, keyList) });
    };
    const mark = (row: SessionRow, hit: PageHit | undefined, uploaded: boolean): void => {
      // Handled by this restore: a resumed pass skips it without decrypting it again. An equal copy
      // is the one the server has: nothing to upload. A row stays a row; a packed one is packed again.
      const after: SessionRow = { ...row, r: id, ...(uploaded ? { e: Math.max(row.e, pin.epoch) } : {}) };
      if (hit) {
        store(after, { row, hit });
      } else {
        rawSessions.put(after);
        changes.push({ before: pendingOf(row, keyList), after: pendingOf(after, keyList) });
      }
    };
    chunk.rows.forEach((row, i) => {
      const key = sessionKey(row.roomId, row.sessionId);
      if (handled.has(key)) return; // the same entry twice in one chunk: once is enough
      handled.add(key);
      const stored = existing.rows[i];
      const hit = existing.hits[i];
      // Handled already by this restore (a killed worker's last write landing late): count it once.
      if (stored?.r === id) return;
      if (stored && !isBetterCopy(row, copyOf(stored, keyList))) {
        alreadyPresent++;
        mark(stored, hit, stored.k === pinned && stored.i === row.firstMessageIndex);
        return;
      }
      restored++;
      const after = encoded[i]!;
      after.k = numbering.number(row.publicKey);
      after.r = id;
      store(after, stored && { row: stored, hit });
    });
    chunk.present.forEach((entry, i) => {
      const key = sessionKey(entry.roomId, entry.sessionId);
      const row = present.rows[i];
      // Gone since the lookup, or handled already by this restore: nothing to mark, nothing to count.
      if (!row || row.r === id || handled.has(key)) return;
      handled.add(key);
      alreadyPresent++;
      mark(row, present.hits[i], row.k === pinned && row.i === entry.serverFirstMessageIndex);
    });
    for (const key of unrowed) rawSessions.delete(key);
    writes.push(...liftOut(packed, lifted));
    // `add`: a page number already taken in the room (48 random bits) fails the chunk, which the next
    // pass writes again with new numbers, instead of overwriting another page.
    for (const page of packRows(toStore)) rawPacked.add(page);
    if (numbering.added) writes.push(kv.put(keyList, 'publicKeys'));
    const failures = chunk.failures.filter((_, i) => failedBefore[i]?.restoreId !== id);
    for (const failure of failures) writes.push(failureStore.put(failure));
    const next = apply(state, { restored, alreadyPresent, failures: failures.map((f) => f.kind), rooms: chunk.rooms });
    writes.push(kv.put(next, 'restore'));
    if (counters && changes.length > 0) writes.push(kv.put(adjusted(counters, changes), 'counters'));
    // Every request is made: commit now, not once this worker has handled each put's success (a
    // thousand events behind the next chunk's decryption).
    tx.commit();
    issued();
    await Promise.all([...writes, tx.done]);
    this.#keys = keyList;
    return next;
  }

  async restoreFailures(limit: number): Promise<RestoreFailureRow[]> {
    return this.db.getAll('restoreFailures', undefined, limit);
  }
}

/** Keys a range probe may return before the probe gives up and looks each key up instead. */
const PROBE_FACTOR = 4;

/**
 * The rows for `keys` (undefined where none), in order. A restore asks for a thousand keys of one or
 * a few rooms at a time, mostly absent: one key-only range read per room finds which exist (a miss
 * costs nothing more), and only those are read. A room whose range holds many other rows is looked
 * up key by key.
 */
async function getExisting<V>(
  store: { getAllKeys(query: IDBKeyRange, count?: number): Promise<IDBValidKey[]>; get(key: [string, string]): Promise<V | undefined> },
  keys: ReadonlyArray<readonly [string, string]>,
): Promise<Array<V | undefined>> {
  const exists = new Set<string>();
  await Promise.all([...byRoom(keys)].map(async ([roomId, sessionIds]) => {
    const [low, high] = bounds(sessionIds);
    const limit = sessionIds.length * PROBE_FACTOR;
    const found = await store.getAllKeys(IDBKeyRange.bound([roomId, low], [roomId, high]), limit);
    if (found.length >= limit) {
      for (const id of sessionIds) exists.add(sessionKey(roomId, id)); // too crowded to tell: read each
      return;
    }
    for (const key of found) {
      const [r, s] = key as [string, string];
      exists.add(sessionKey(r, s));
    }
  }));
  return Promise.all(keys.map(([r, s]) => (exists.has(sessionKey(r, s)) ? store.get([r, s]) : undefined)));
}

/** What the vault helpers need of the `packed` store, in any transaction that includes it. */
interface PackedStore {
  get(key: [string, number]): Promise<PackedPage | undefined>;
  put(page: PackedPage): Promise<unknown>;
  delete(key: [string, number]): Promise<unknown>;
  index(name: 'ids'): {
    getKey(key: [string, string]): Promise<[string, number] | undefined>;
    count(range: IDBKeyRange): Promise<number>;
    openKeyCursor(range: IDBKeyRange): Promise<KeyCursor<[string, string], [string, number]> | null>;
  };
  index(name: 'pending'): {
    openKeyCursor(range?: IDBKeyRange): Promise<KeyCursor<[number, number, number], [string, number]> | null>;
    getAll(range: IDBKeyRange, count?: number): Promise<PackedPage[]>;
    getAllKeys(range: IDBKeyRange, count?: number): Promise<Array<[string, number]>>;
  };
}

interface KeyCursor<K, P> {
  key: K;
  primaryKey: P;
  continue(): Promise<KeyCursor<K, P> | null>;
}

function packedOf(tx: { objectStore(name: 'packed'): unknown }): PackedStore {
  return tx.objectStore('packed') as PackedStore;
}

/** A session found in a page: the page as read, and the session's place in it. */
interface PageHit {
  page: PackedPage;
  n: number;
}

/** Pages read per request where every page of a key is wanted. */
const PAGES_PER_READ = 20;

/** Looked up one by one up to this many per room; more are found with one walk of the room's range. */
const FEW_PER_ROOM = 8;

/** Where each key's session is packed, if it is: one index lookup per key, or a walk per room. */
async function findInPages(store: PackedStore, keys: ReadonlyArray<readonly [string, string]>): Promise<Array<PageHit | undefined>> {
  const where = new Map<string, [string, number]>();
  const ids = store.index('ids');
  await Promise.all([...byRoom(keys)].map(async ([roomId, sessionIds]) => {
    const one = async (id: string): Promise<void> => {
      const key = await ids.getKey([roomId, id]);
      if (key) where.set(sessionKey(roomId, id), key);
    };
    if (sessionIds.length <= FEW_PER_ROOM) {
      await Promise.all(sessionIds.map(one));
      return;
    }
    const [low, high] = bounds(sessionIds);
    const range = IDBKeyRange.bound([roomId, low], [roomId, high]);
    // Mostly none (a restore's next room): one count says so without a walk.
    if (await ids.count(range) === 0) return;
    const wanted = new Set(sessionIds);
    // A walk that meets many other sessions (a large room) gives way to one lookup per key.
    let steps = sessionIds.length * PROBE_FACTOR;
    let cursor = await ids.openKeyCursor(range);
    while (cursor) {
      if (--steps < 0) {
        await Promise.all(sessionIds.map(one));
        return;
      }
      const id = cursor.key[1];
      if (wanted.has(id)) where.set(sessionKey(roomId, id), cursor.primaryKey);
      cursor = await cursor.continue();
    }
  }));
  const pages = new Map<string, Promise<PackedPage | undefined>>();
  const pageOf = (key: [string, number]): Promise<PackedPage | undefined> => {
    const name = `${key[0]}\u0000${key[1]}`;
    let page = pages.get(name);
    if (!page) pages.set(name, page = store.get(key));
    return page;
  };
  return Promise.all(keys.map(async ([roomId, sessionId]) => {
    const key = where.get(sessionKey(roomId, sessionId));
    const page = key && await pageOf(key);
    if (!page) return undefined;
    const n = page.x.findIndex(([r, s]) => r === roomId && s === sessionId);
    return n < 0 ? undefined : { page, n };
  }));
}

/**
 * The stored copy of each key, a row or a page's session (as a row), and the page hit where it is
 * packed. `probe`: find rows with one key-only range read per room (a restore's mostly absent keys).
 */
async function readStored(
  sessions: { getAllKeys(query: IDBKeyRange, count?: number): Promise<IDBValidKey[]>; get(key: [string, string]): Promise<SessionRow | undefined> },
  packed: PackedStore,
  keys: ReadonlyArray<readonly [string, string]>,
  probe = false,
): Promise<{ rows: Array<SessionRow | undefined>; hits: Array<PageHit | undefined> }> {
  const [rows, hits] = await Promise.all([
    probe ? getExisting(sessions, keys) : Promise.all(keys.map(([r, s]) => sessions.get([r, s]))),
    findInPages(packed, keys),
  ]);
  return {
    rows: rows.map((row, i) => row ?? (hits[i] ? rowOf(hits[i].page, hits[i].n) : undefined)),
    // A session is a row or in a page, never both; were it both, the row is the one read and changed.
    hits: hits.map((hit, i) => (rows[i] ? undefined : hit)),
  };
}

/** Inside a write transaction: rewrites each page without the sessions lifted out of it. */
function liftOut(store: PackedStore, hits: ReadonlyArray<PageHit>): Array<Promise<unknown>> {
  const byPage = new Map<string, { page: PackedPage; ids: Set<string> }>();
  for (const { page, n } of hits) {
    const name = `${page.roomId}\u0000${page.p}`;
    const entry = byPage.get(name) ?? { page, ids: new Set<string>() };
    entry.ids.add(page.x[n]![1]);
    byPage.set(name, entry);
  }
  return [...byPage.values()].map(({ page, ids }) => {
    const rest = pageWithout(page, ids);
    return rest ? store.put(rest) : store.delete(pageKey(page));
  });
}

/** The sessions counted by the pages on an index range ([k, e, c] keys: the index alone is read). */
async function countInPages(store: PackedStore, range?: IDBKeyRange): Promise<number> {
  let count = 0;
  let cursor = await store.index('pending').openKeyCursor(range);
  while (cursor) {
    count += cursor.key[2];
    cursor = await cursor.continue();
  }
  return count;
}

/** IndexedDB's order of [roomId, sessionId] keys (strings compare by UTF-16 code unit, as `<` does). */
function compareRows(x: Pick<SessionRow, 'roomId' | 'sessionId'>, y: Pick<SessionRow, 'roomId' | 'sessionId'>): number {
  if (x.roomId !== y.roomId) return x.roomId < y.roomId ? -1 : 1;
  return x.sessionId < y.sessionId ? -1 : x.sessionId > y.sessionId ? 1 : 0;
}

function byRoom(keys: ReadonlyArray<readonly [string, string]>): Map<string, string[]> {
  const rooms = new Map<string, string[]>();
  for (const [roomId, sessionId] of keys) {
    const list = rooms.get(roomId);
    if (list) list.push(sessionId);
    else rooms.set(roomId, [sessionId]);
  }
  return rooms;
}

function bounds(ids: readonly string[]): [string, string] {
  let low = ids[0]!;
  let high = low;
  for (const id of ids) {
    if (id < low) low = id;
    if (id > high) high = id;
  }
  return [low, high];
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
