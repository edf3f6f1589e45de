/**
 * The message protocol between the extension's contexts. Every request is a tagged object; every
 * answer is a Result, because class instances (errors included) do not survive runtime messaging.
 */
import type { StopReason, UploadError } from '../core/upload/state.ts';
import type { ClientReport, Scope } from './page-api.ts';

/** An error as it crosses a context boundary: a kind to switch on, a message for people. */
export interface WireError {
  kind: string;
  message: string;
  /** The homeserver's errcode, when the homeserver said no. */
  errcode?: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: WireError };

export interface WorkerStatus {
  product: 'Matrix Key Vault';
  version: string;
  /** Changes every time the worker starts; lets tests prove a worker was really restarted. */
  bootId: string;
  startedAt: number;
}

export interface AccountSummary {
  userId: string;
  deviceId: string;
  homeserverUrl: string;
}

/** What happened to the server-side session when signing out. */
export type SignOutOutcome = 'session-ended' | 'session-kept' | 'server-unreachable';

export interface PinSummary {
  version: string;
  publicKey: string;
  source: 'created' | 'proved';
  pinnedAt: number;
}

/** The server's current backup as the popup shows it. */
export type ServerBackupSummary =
  | { state: 'none' }
  | { state: 'present'; version: string; algorithm: string; count: number; usesPinnedKey: boolean; supported: boolean }
  | { state: 'unreachable'; error: WireError };

export interface UploadSummary {
  /** uploading: a run is in progress; waiting: a retry is scheduled; stopped: the user must act. */
  phase: 'idle' | 'uploading' | 'waiting' | 'stopped';
  pending: number;
  stored: number;
  serverCount: number | null;
  lastSuccessAt: number | null;
  lastError: UploadError | null;
  retryAt: number | null;
  stopped: StopReason | null;
  notice: { message: string; at: number } | null;
}

/** How the user proved the backup key when unlocking. */
export type UnlockMethod = 'security-key' | 'security-phrase' | 'recovery-key' | 'legacy-phrase';

/** The vault is unlocked: the backup private key is held in memory-only extension storage. */
export interface UnlockSummary {
  version: string;
  publicKey: string;
  via: UnlockMethod;
  at: number;
}

/** Why one backup entry could not be restored. */
export type RestoreFailureKind =
  | 'malformed' // the entry does not match the spec (missing fields, wrong types)
  | 'base64' | 'mac' | 'padding' | 'json' // the ciphertext
  | 'algorithm' // the plaintext is not an m.megolm.v1.aes-sha2 session
  | 'session-key' // the session key does not parse
  | 'session-id' // the session id does not match its key
  | 'too-large';

export interface RestoreFailureSummary {
  roomId: string;
  sessionId: string;
  kind: RestoreFailureKind;
  reason: string;
}

/**
 * A restore of the server's backup into the vault. running: a pass is going or will resume by
 * itself; waiting: paused after a server or network error until retryAt; locked: resumes once the
 * user unlocks again (after a browser restart); cancelled/done/failed: finished.
 */
export interface RestoreSummary {
  id: string;
  version: string;
  phase: 'running' | 'waiting' | 'locked' | 'cancelled' | 'done' | 'failed';
  /** The server's count when the restore started (and after each pass). */
  serverCount: number;
  /** Entries handled by this restore: restored + alreadyPresent + failed. */
  done: number;
  restored: number;
  /** Held before the restore began, as good or better. */
  alreadyPresent: number;
  failed: number;
  failuresByKind: Partial<Record<RestoreFailureKind, number>>;
  rooms: number;
  startedAt: number;
  finishedAt: number | null;
  /** Keys per second over the restore's running time, and the estimated seconds left. */
  rate: number | null;
  secondsLeft: number | null;
  retryAt: number | null;
  lastError: { kind: string; message: string; at: number } | null;
  /**
   * Milliseconds spent downloading and parsing, looking up, decrypting and storing; `helped`: the
   * entries the decryption helper opened on its own thread.
   */
  timings?: { download: number; lookup: number; decrypt: number; store: number; helped?: number };
}

/** Sessions another account left here: never uploaded to or served for the signed-in one. */
export interface OtherAccountSummary {
  userId: string;
  count: number;
}

/** Sessions in the vault encrypted to a key that is no longer pinned: they wait for that key. */
export interface EarlierKeySummary {
  publicKey: string;
  version: string;
  count: number;
}

export interface VaultStatus {
  worker: WorkerStatus;
  account: AccountSummary | null;
  backup: PinSummary | null;
  upload: UploadSummary;
  unlocked: UnlockSummary | null;
  restore: RestoreSummary | null;
  /** Present when the request asked to refresh (it costs a count per earlier key). */
  earlier?: EarlierKeySummary[];
  /** Keys another account left in this browser (present when the request asked to refresh). */
  otherAccounts?: OtherAccountSummary[];
  /** A background run could not write to the browser's storage (e.g. the disk is full). */
  storage?: { kind: string; message: string; at: number };
  /** Present when the request asked to refresh from the server. */
  server?: ServerBackupSummary;
}

/** A session refused on import, and why: the others go ahead. */
export interface RejectedSessionSummary {
  /** Position in the list handed over. */
  index: number;
  roomId?: string;
  sessionId?: string;
  kind: string;
  reason: string;
}

export interface ImportSummary {
  /** New sessions, or better copies of known ones, now stored and pending upload. */
  stored: number;
  /** Already held as good or better: nothing to do. */
  unchanged: number;
  rejected: RejectedSessionSummary[];
}

/** Requests extension pages may send to the worker, with the value each answers. */
export interface RequestMap {
  'status.get': { request: { refresh?: boolean }; response: VaultStatus };
  'account.login': { request: { homeserver: string; user: string; password: string }; response: AccountSummary };
  'account.useToken': { request: { homeserver: string; accessToken: string }; response: AccountSummary };
  'account.signOut': { request: Record<never, never>; response: SignOutOutcome };
  /** Create a backup from a key the page generated and showed the user (reference §2). */
  'backup.create': { request: { recoveryKey: string }; response: PinSummary };
  /** Join the server's current backup with its recovery key, proved before anything is pinned. */
  'backup.join': { request: { recoveryKey: string }; response: PinSummary };
  /** Hand over sessions in key-export form (ExportedSessionData); validated one by one. */
  'sessions.import': { request: { sessions: unknown[] }; response: ImportSummary };
  /** Retry uploading now, ignoring the backoff. */
  'upload.retry': { request: Record<never, never>; response: UploadSummary };
  /**
   * Unlock with what the user has (Security Key, Security Phrase, raw backup key, legacy phrase),
   * proved against the server's current backup; pins its key when none is pinned.
   */
  'vault.unlock': { request: { input: string }; response: UnlockSummary };
  /** Forget the private key. */
  'vault.lock': { request: Record<never, never>; response: null };
  /** Restore the whole current backup into the vault (needs the vault unlocked). */
  'restore.start': { request: Record<never, never>; response: RestoreSummary };
  'restore.cancel': { request: Record<never, never>; response: RestoreSummary | null };
  /** The latest restore's failures, with reasons (at most `limit`). */
  'restore.failures': { request: { limit?: number }; response: RestoreFailureSummary[] };
  /** Decrypted sessions for a key file, in vault order after `after` (needs the vault unlocked). */
  'vault.exportBatch': { request: { after?: [string, string] | null; limit?: number }; response: ExportBatch };
  /** Prove an earlier backup's key and move its waiting sessions to the current backup. */
  'earlier.unlock': { request: { input: string; publicKey: string }; response: { moved: number; failed: number } };
  /** Sites allowed to use the page API. */
  'sites.list': { request: Record<never, never>; response: SiteSummary[] };
  /** The popup is asking the browser for a site's permission: allow it when the permission arrives. */
  'sites.intend': { request: { origin: string; scopes: Scope[] }; response: null };
  /** The browser's prompt said no: forget the intent. */
  'sites.cancelIntent': { request: { origin: string }; response: null };
  /** Allow a site (after the browser granted its host permission in the popup's click). */
  'sites.allow': { request: { origin: string; scopes: Scope[] }; response: { site: SiteSummary; injected: number } };
  /** Turn "Connect to the Matrix client on this site" on or off. */
  'sites.connectClient': { request: { origin: string; on: boolean }; response: SiteSummary };
  /** Take a site's grant away: refused at once, also in its open tabs. */
  'sites.revoke': { request: { origin: string }; response: { revoked: boolean } };
  /** What an approval window asks (a site's `vault_requestScopes`); null when it is no longer waiting. */
  'approval.get': { request: { id: string }; response: { origin: string; scopes: Scope[] } | null };
  'approval.answer': { request: { id: string; allow: boolean }; response: { answered: boolean } };
  /** Erase the sessions another account left in this browser (after the user confirmed). */
  'vault.eraseAccount': { request: { userId: string }; response: { erased: number } };
}

/** A site allowed to use the page API, and what it may do. */
export interface SiteSummary {
  origin: string;
  scopes: Scope[];
  grantedAt: number;
  /** "Connect to the Matrix client on this site" is on. */
  connectClient: boolean;
  /** What the adapter for the site's own Matrix client last said (while it is on), and when. */
  client: (ClientReport & { at: number }) | null;
}

export interface ExportBatch {
  /** Sessions in key-export form (what `importRoomKeys` and key files take). */
  sessions: unknown[];
  /** Pass as `after` for the next batch; null when this was the last. */
  next: [string, string] | null;
  /** Rows that could not be decrypted with the unlocked key (another key's, or damaged). */
  skipped: number;
  total: number;
}

export type RequestType = keyof RequestMap;
export type RequestOf<T extends RequestType> = { type: T } & RequestMap[T]['request'];
/** Any request: a union discriminated by `type`. */
export type Request = { [T in RequestType]: RequestOf<T> }[RequestType];
export type ResponseValue<T extends RequestType> = RequestMap[T]['response'];

const requestTypes: ReadonlySet<string> = new Set<RequestType>([
  'status.get', 'account.login', 'account.useToken', 'account.signOut',
  'backup.create', 'backup.join', 'sessions.import', 'upload.retry',
  'vault.unlock', 'vault.lock', 'restore.start', 'restore.cancel', 'restore.failures', 'vault.exportBatch', 'earlier.unlock',
  'vault.eraseAccount', 'sites.list', 'sites.intend', 'sites.cancelIntent', 'sites.allow', 'sites.connectClient', 'sites.revoke', 'approval.get', 'approval.answer',
]);

/** Narrowing guard for anything that arrives over runtime messaging; fields are checked by handlers. */
export function isRequest(value: unknown): value is Request {
  return typeof value === 'object' && value !== null &&
    typeof (value as { type?: unknown }).type === 'string' &&
    requestTypes.has((value as { type: string }).type);
}
