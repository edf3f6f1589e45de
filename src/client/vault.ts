/**
 * `KeyVault`: the announced provider with typed methods. It splits requests into the page API's
 * batches of 100 (one at a time, so one page never fills the bridge's in-flight limit), checks every
 * answer's shape, and turns every rejection into a `KeyVaultError`.
 */
import {
  ErrorCode, MAX_SESSIONS_PER_PAGE_REQUEST, type Announcement, type BackupResult, type PageMethod, type PageMethods,
  type PageVaultStatus, type RequestArguments, type RoomKeyResult, type Scope, type SessionRef, type VaultInfo,
  type VaultProvider,
} from '../shared/page-api.ts';
import { checkBackupResults, checkRoomKeys, checkScopes, checkStatus } from './answers.ts';
import { KeyVaultError, toKeyVaultError } from './errors.ts';

export interface KeyVaultOptions {
  /**
   * How long a request may go unanswered before it fails with `disconnected` (default 60 s), so an
   * extension that went away mid-request cannot stall the page forever. `requestScopes` waits for
   * the user and has no limit.
   */
  requestTimeoutMs?: number;
}

export type StatusListener = (status: PageVaultStatus) => void;

export class KeyVault {
  readonly info: VaultInfo;
  readonly #provider: VaultProvider;
  readonly #timeoutMs: number;

  constructor(announcement: Announcement, options: KeyVaultOptions = {}) {
    this.info = announcement.info;
    this.#provider = announcement.provider;
    this.#timeoutMs = options.requestTimeoutMs ?? 60_000;
  }

  /** The provider's `request`, with errors as `KeyVaultError` (answers are passed on unchecked). */
  request<M extends PageMethod>(args: RequestArguments<M>): Promise<PageMethods[M]['result']> {
    return this.#call(args, args.method === 'vault_requestScopes' ? 0 : this.#timeoutMs);
  }

  async status(): Promise<PageVaultStatus> {
    return checkStatus(await this.request({ method: 'vault_status' }), 'vault_status');
  }

  /** Asks for scopes (opening the extension's approval window for new ones); resolves with all held. */
  async requestScopes(scopes: readonly Scope[]): Promise<Scope[]> {
    const answer = await this.request({ method: 'vault_requestScopes', params: { scopes: [...scopes] } });
    return checkScopes(answer, 'vault_requestScopes');
  }

  /** Keys for any number of sessions, asked 100 at a time; one result per session the vault answered for. */
  async getRoomKeys(refs: readonly SessionRef[]): Promise<RoomKeyResult[]> {
    const out: RoomKeyResult[] = [];
    for (const batch of batches(refs)) {
      const sessions = batch.map(({ roomId, sessionId }) => ({ roomId, sessionId }));
      const answer = await this.request({ method: 'vault_getRoomKeys', params: { sessions } });
      out.push(...checkRoomKeys(answer, sessions, 'vault_getRoomKeys'));
    }
    return out;
  }

  /**
   * Hands sessions (key-export shape) to the vault's backup, 100 at a time. Each result's `index` is
   * the session's position in `sessions`, across batches.
   */
  async backupRoomKeys(sessions: readonly unknown[]): Promise<BackupResult[]> {
    const out: BackupResult[] = [];
    let offset = 0;
    for (const batch of batches(sessions)) {
      const answer = await this.request({ method: 'vault_backupRoomKeys', params: { sessions: batch } });
      for (const result of checkBackupResults(answer, batch.length, 'vault_backupRoomKeys')) {
        out.push({ ...result, index: result.index + offset });
      }
      offset += batch.length;
    }
    return out;
  }

  /** Calls `listener` whenever the vault is unlocked or locked or this site's scopes change. */
  onStatusChanged(listener: StatusListener): () => void {
    // Only well-formed statuses reach the app; a malformed one is dropped rather than thrown into
    // the provider's event loop, where nobody could catch it.
    const checked = (status: PageVaultStatus): void => {
      let valid: PageVaultStatus;
      try {
        valid = checkStatus(status, 'statusChanged');
      } catch {
        return;
      }
      listener(valid);
    };
    this.#provider.on('statusChanged', checked);
    return () => this.#provider.removeListener('statusChanged', checked);
  }

  async #call<M extends PageMethod>(args: RequestArguments<M>, timeoutMs: number): Promise<PageMethods[M]['result']> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const answer = this.#provider.request(args);
      if (timeoutMs <= 0) return await answer;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new KeyVaultError(ErrorCode.disconnected,
          `${args.method} failed (${ErrorCode.disconnected}): the vault did not answer within ${timeoutMs / 1000} s`,
          { method: args.method })), timeoutMs);
      });
      return await Promise.race([answer, timeout]);
    } catch (error) {
      throw toKeyVaultError(error, args.method);
    } finally {
      clearTimeout(timer);
    }
  }
}

function* batches<T>(items: readonly T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += MAX_SESSIONS_PER_PAGE_REQUEST) {
    yield items.slice(i, i + MAX_SESSIONS_PER_PAGE_REQUEST);
  }
}
