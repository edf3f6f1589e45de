/**
 * The message protocol between the extension's contexts. Every request is a tagged object; every
 * answer is a Result, because class instances (errors included) do not survive runtime messaging.
 */
import type { StopReason, UploadError } from '../core/upload/state.ts';

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

export interface VaultStatus {
  worker: WorkerStatus;
  account: AccountSummary | null;
  backup: PinSummary | null;
  upload: UploadSummary;
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
}

export type RequestType = keyof RequestMap;
export type RequestOf<T extends RequestType> = { type: T } & RequestMap[T]['request'];
/** Any request: a union discriminated by `type`. */
export type Request = { [T in RequestType]: RequestOf<T> }[RequestType];
export type ResponseValue<T extends RequestType> = RequestMap[T]['response'];

const requestTypes: ReadonlySet<string> = new Set<RequestType>([
  'status.get', 'account.login', 'account.useToken', 'account.signOut',
  'backup.create', 'backup.join', 'sessions.import', 'upload.retry',
]);

/** Narrowing guard for anything that arrives over runtime messaging; fields are checked by handlers. */
export function isRequest(value: unknown): value is Request {
  return typeof value === 'object' && value !== null &&
    typeof (value as { type?: unknown }).type === 'string' &&
    requestTypes.has((value as { type: string }).type);
}
