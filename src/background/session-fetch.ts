/**
 * One session on demand (DESIGN flow 5): what a web client asks for when it cannot decrypt an
 * event. From the vault when it holds the session; else `GET /room_keys/keys/{roomId}/{sessionId}`
 * from the backup, checked like a restored entry and kept in the vault. A session the backup does
 * not have is not asked for again for a while (a negative cache whose time grows with repeated
 * misses), and concurrent asks for one session share one request.
 */
import { createBackupDecryptor, decodeBase64, parseExportedSession, type BackupDecryptor } from '../core/index.ts';
import type { KeyBackupData } from '../core/wire.ts';
import { HomeserverError } from '../platform/homeserver.ts';
import type { UnlockedKey } from '../platform/unlock-store.ts';
import { newRevision, sessionKey, type StoredSession, type Vault } from '../platform/vault.ts';
import { AppError } from './errors.ts';

/** A session in key-export form (what key files and `importRoomKeys` take), `algorithm` included. */
export type ExportedRoomKey = Record<string, unknown> & { room_id: string; session_id: string; algorithm: string; session_key: string };

export interface SessionFetchDeps {
  vault: Vault;
  unlocked(): Promise<UnlockedKey | null>;
  getBackupSession(version: string, roomId: string, sessionId: string): Promise<KeyBackupData>;
  now(): number;
}

/** A miss is not asked for again for 1 min, doubling with each repeated miss up to 1 h. */
export const MISS_BASE_MS = 60_000;
export const MISS_CAP_MS = 60 * 60_000;
/** Misses remembered at most; the oldest are forgotten first. */
export const MISS_CACHE_SIZE = 10_000;

export class SessionFetcher {
  readonly #misses = new Map<string, { until: number; count: number }>();
  readonly #inFlight = new Map<string, Promise<ExportedRoomKey | null>>();
  #decryptor: { publicKey: string; decryptor: Promise<BackupDecryptor> } | null = null;

  constructor(private readonly deps: SessionFetchDeps) {}

  /** The session, or null when neither the vault nor the backup has it. Needs the vault unlocked. */
  async get(roomId: string, sessionId: string): Promise<ExportedRoomKey | null> {
    const key = await this.deps.unlocked();
    if (!key) throw new AppError('locked', 'The vault is locked: unlock it in the extension popup.');
    const id = sessionKey(roomId, sessionId);
    const pending = this.#inFlight.get(id);
    if (pending) return pending;
    const request = this.#get(key, roomId, sessionId, id).finally(() => this.#inFlight.delete(id));
    this.#inFlight.set(id, request);
    return request;
  }

  async #get(key: UnlockedKey, roomId: string, sessionId: string, id: string): Promise<ExportedRoomKey | null> {
    const decryptor = await this.#decryptorFor(key);
    const stored = await this.deps.vault.getSession(roomId, sessionId);
    if (stored && stored.publicKey === key.publicKey) return toExported(stored.roomId, stored.sessionId, await decryptor.decrypt(stored.sessionData));

    const miss = this.#misses.get(id);
    if (miss && miss.until > this.deps.now()) return null;
    let data: KeyBackupData;
    try {
      data = await this.deps.getBackupSession(key.version, roomId, sessionId);
    } catch (e) {
      if (e instanceof HomeserverError && e.status === 404 && e.errcode === 'M_NOT_FOUND') {
        this.#remember(id, miss?.count ?? 0);
        return null;
      }
      throw e;
    }
    this.#misses.delete(id);
    const plaintext = await decryptor.decrypt(data.session_data);
    const parsed = parseExportedSession({ ...plaintext, room_id: roomId, session_id: sessionId });
    const pin = await this.deps.vault.getPin();
    if (pin && pin.publicKey === key.publicKey) {
      const row: StoredSession = {
        roomId, sessionId: parsed.sessionId, firstMessageIndex: parsed.firstMessageIndex, forwardedCount: data.forwarded_count,
        senderKey: parsed.senderKey, publicKey: key.publicKey, sessionData: data.session_data,
        // It came from the backup: uploaded already when it is the pinned version.
        uploadedEpoch: pin.version === key.version ? pin.epoch : 0,
        revision: newRevision(), storedAt: this.deps.now(),
      };
      await this.deps.vault.putSessions([row]);
    }
    return toExported(roomId, parsed.sessionId, plaintext);
  }

  #remember(id: string, previousMisses: number): void {
    const count = previousMisses + 1;
    this.#misses.delete(id); // re-insert at the end: the Map's order is the eviction order
    this.#misses.set(id, { until: this.deps.now() + Math.min(MISS_CAP_MS, MISS_BASE_MS * 2 ** (count - 1)), count });
    while (this.#misses.size > MISS_CACHE_SIZE) this.#misses.delete(this.#misses.keys().next().value!);
  }

  /**
   * The sessions the vault holds under the unlocked key, in one lookup and one batch of decryption;
   * `undefined` for the others (ask `get` for those: it goes to the backup).
   */
  async getHeld(refs: ReadonlyArray<{ roomId: string; sessionId: string }>): Promise<Array<ExportedRoomKey | undefined>> {
    const key = await this.deps.unlocked();
    if (!key) throw new AppError('locked', 'The vault is locked: unlock it in the extension popup.');
    const decryptor = await this.#decryptorFor(key);
    const rows = await this.deps.vault.getSessions(refs.map((r) => [r.roomId, r.sessionId] as const));
    const held = rows.map((row) => (row && row.publicKey === key.publicKey ? row : undefined));
    const present = held.filter((row): row is StoredSession => row !== undefined);
    const opened = await decryptor.decryptMany(present.map((row) => row.sessionData));
    const byKey = new Map<string, ExportedRoomKey>();
    present.forEach((row, i) => {
      const result = opened[i]!;
      // A row that does not decrypt (damaged) is left to `get`, which asks the backup.
      if (result.ok) byKey.set(sessionKey(row.roomId, row.sessionId), toExported(row.roomId, row.sessionId, result.value));
    });
    return refs.map((r) => byKey.get(sessionKey(r.roomId, r.sessionId)));
  }

  /** Drops the decryptor (and with it the imported private key): the vault was locked. */
  forget(): void {
    this.#decryptor = null;
  }

  /** Forgets misses (e.g. after a restore or a new backup version: the backup may have them now). */
  clearMisses(): void {
    this.#misses.clear();
  }

  #decryptorFor(key: UnlockedKey): Promise<BackupDecryptor> {
    if (this.#decryptor?.publicKey !== key.publicKey) {
      const bytes = decodeBase64(key.privateKey, 'the unlocked key');
      this.#decryptor = { publicKey: key.publicKey, decryptor: createBackupDecryptor(bytes).finally(() => bytes.fill(0)) };
    }
    return this.#decryptor.decryptor;
  }
}

export function toExported(roomId: string, sessionId: string, plaintext: object): ExportedRoomKey {
  return { ...(plaintext as Record<string, unknown>), room_id: roomId, session_id: sessionId } as ExportedRoomKey;
}
