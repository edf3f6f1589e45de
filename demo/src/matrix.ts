/**
 * The Matrix side of the demo: a new device per sign-in, matrix-js-sdk 43 with its Rust crypto
 * (memory store: nothing outlives the tab), and the first encrypted room's whole history.
 */
import {
  ClientEvent, createClient, EventTimeline, SyncState, type MatrixClient, type MatrixEvent, type Room,
} from 'matrix-js-sdk';
import type { Logger } from 'matrix-js-sdk/lib/logger.js';

export const DEVICE_NAME = 'Key vault demo client';

/**
 * `https://…` or `http://…` as typed; a bare name gets `https://`, except loopback addresses, which
 * get `http://` (a local homeserver such as `npm start`'s listens on plain HTTP).
 */
export function homeserverUrl(typed: string): string {
  const text = typed.trim().replace(/\/+$/, '');
  if (/^https?:\/\//i.test(text)) return text;
  const host = text.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  return `${loopback ? 'http' : 'https'}://${text}`;
}

/** The SDK's logger, quiet below warnings: its debug lines would bury anything worth reading in the console. */
function quietLogger(prefix = 'matrix'): Logger {
  const warn = (...args: unknown[]): void => console.warn(`[${prefix}]`, ...args);
  const error = (...args: unknown[]): void => console.error(`[${prefix}]`, ...args);
  const none = (): void => {};
  return { trace: none, debug: none, info: none, warn, error, getChild: (child: string) => quietLogger(`${prefix}-${child}`) };
}

export class SignInError extends Error {
  override readonly name = 'SignInError';
}

/** Password login as a new device; then a client with Rust crypto, not yet syncing. */
export async function signIn(typedHomeserver: string, user: string, password: string): Promise<MatrixClient> {
  const baseUrl = homeserverUrl(typedHomeserver);
  const logger = quietLogger();
  const anonymous = createClient({ baseUrl, logger });
  let login: { user_id: string; device_id: string; access_token: string };
  try {
    login = await anonymous.loginRequest({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user },
      password,
      initial_device_display_name: DEVICE_NAME,
    });
  } catch (e) {
    const err = e as { errcode?: string; message?: string };
    throw new SignInError(err.errcode ? `${err.errcode}: ${err.message ?? ''}` : `could not reach ${baseUrl} (${err.message ?? String(e)})`);
  } finally {
    anonymous.stopClient();
  }
  const client = createClient({ baseUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id, logger });
  await client.initRustCrypto({ useIndexedDB: false });
  return client;
}

/** Starts syncing and resolves once the first sync is in (SyncState.Prepared). */
export function startSyncing(client: MatrixClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const onSync = (state: SyncState, _prev: SyncState | null, data?: { error?: Error }): void => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        client.off(ClientEvent.Sync, onSync);
        resolve();
      } else if (state === SyncState.Error && data?.error) {
        client.off(ClientEvent.Sync, onSync);
        reject(data.error);
      }
    };
    client.on(ClientEvent.Sync, onSync);
    void client.startClient({ initialSyncLimit: 30, lazyLoadMembers: true });
  });
}

/** The encrypted room created first (the demo account has one), or null. */
export function firstEncryptedRoom(client: MatrixClient): Room | null {
  const created = (room: Room): number => room.currentState.getStateEvents('m.room.create', '')?.getTs() ?? Number.MAX_SAFE_INTEGER;
  const rooms = client.getRooms().filter((room) => room.getMyMembership() === 'join' && room.hasEncryptionStateEvent());
  rooms.sort((a, b) => created(a) - created(b));
  return rooms[0] ?? null;
}

/** Paginates back until the room's creation (the SDK has no more pagination token), reporting progress. */
export async function loadWholeHistory(client: MatrixClient, room: Room, onPage: () => void): Promise<void> {
  const timeline = room.getLiveTimeline();
  for (let pages = 0; pages < 1000; pages++) {
    if (timeline.getPaginationToken(EventTimeline.BACKWARDS) === null) return;
    const before = timeline.getEvents().length;
    await client.scrollback(room, 500);
    onPage();
    if (timeline.getEvents().length === before && timeline.getPaginationToken(EventTimeline.BACKWARDS) !== null) {
      // Nothing came back but the server says there is more: ask once more, then give up quietly.
      await client.scrollback(room, 500);
      if (timeline.getEvents().length === before) return;
    }
  }
}

export type RowState = 'decrypted' | 'failed' | 'pending';

/** A message of the timeline as the list shows it. */
export interface MessageRow {
  eventId: string;
  encrypted: boolean;
  state: RowState;
  /** What the list shows: the body, "Decrypting…", or "Unable to decrypt (CODE)". */
  text: string;
  /** For a failure: the SDK's DecryptionFailureCode. */
  failureCode: string | null;
  sessionId: string | null;
  sender: string;
  ts: number;
}

/** The messages (encrypted or not) of the room's live timeline, oldest first. */
export function messageRows(room: Room): MessageRow[] {
  const rows: MessageRow[] = [];
  for (const event of room.getLiveTimeline().getEvents()) {
    const row = messageRow(event);
    if (row) rows.push(row);
  }
  return rows;
}

function messageRow(event: MatrixEvent): MessageRow | null {
  const encrypted = event.isEncrypted();
  if (!encrypted && event.getType() !== 'm.room.message') return null;
  const sessionId = encrypted ? (event.getWireContent() as { session_id?: unknown }).session_id : undefined;
  const base = {
    eventId: event.getId() ?? '', encrypted, sessionId: typeof sessionId === 'string' ? sessionId : null,
    sender: event.getSender() ?? '', ts: event.getTs(), failureCode: null,
  };
  if (event.isDecryptionFailure()) {
    const code = event.decryptionFailureReason ?? 'UNKNOWN_ERROR';
    return { ...base, state: 'failed', text: `Unable to decrypt (${code})`, failureCode: code };
  }
  if (event.isBeingDecrypted() || (encrypted && event.getType() === 'm.room.encrypted')) {
    return { ...base, state: 'pending', text: 'Decrypting…' };
  }
  if (event.getType() !== 'm.room.message') return null; // an encrypted event of another type
  const body = (event.getContent() as { body?: unknown }).body;
  return { ...base, state: 'decrypted', text: typeof body === 'string' ? body : '(a message without text)' };
}
