/**
 * The popup as a pure reducer: `reduce(state, event) → state`, no I/O. The component sends requests,
 * turns their outcomes into events, and renders whichever screen the state is on.
 *
 *   loading → signed-out → no-backup → locked → unlocked → restoring → done
 *
 * Every screen after the first status carries the last status (`Known`); the screen itself is
 * derived from it, so a status from the worker and a local event can never disagree for long.
 */
import type {
  EarlierKeySummary, OtherAccountSummary, RestoreSummary, ServerBackupSummary, SignOutOutcome, UnlockSummary, VaultStatus,
} from '../shared/messages.ts';

/** The actions whose progress and errors the popup shows next to their controls. */
export type PopupAction = 'unlock' | 'lock' | 'restore' | 'cancel';

export interface Known {
  status: VaultStatus;
  /** The server's backup, from the last status that asked the server. */
  server: ServerBackupSummary | undefined;
  /** Sessions waiting for an earlier backup's key, from the last status that asked the server. */
  earlier: EarlierKeySummary[];
  /** Sessions another account left here, from the last status that asked the server. */
  otherAccounts: OtherAccountSummary[];
  /** The last status request failed (the worker did not answer): shown above the last known state. */
  loadError: unknown;
  /** The action under way. */
  busy: PopupAction | null;
  /** The last action that failed, and why (cleared when another starts). */
  failure: { action: PopupAction; error: unknown } | null;
  /** Status answers to requests sent before this time are stale: an action changed things since. */
  freshAfter: number;
  /** Signing out could not reach the homeserver: the session may still be listed elsewhere. */
  signOutNote: SignOutOutcome | null;
}

export type PopupState =
  | { screen: 'loading' }
  /** No status yet: the worker did not answer. */
  | { screen: 'error'; error: unknown }
  | (Known & { screen: 'signed-out' })
  /** No usable backup: none on the server, an unsupported one, or not known yet (see `server`). */
  | (Known & { screen: 'no-backup' })
  /**
   * A backup whose key the vault does not hold in memory. `changed`: the pinned backup was replaced
   * on the server and uploading stopped until the user proves the new one's key.
   */
  | (Known & { screen: 'locked'; version: string; count: number | null; changed: boolean })
  | (Known & { screen: 'unlocked'; unlocked: UnlockSummary })
  /** A restore is running, waiting to retry, or waiting for the user to unlock (`unlocked` null). */
  | (Known & { screen: 'restoring'; restore: RestoreSummary; unlocked: UnlockSummary | null })
  /** Unlocked, and the last restore finished (done, cancelled or failed): its summary. */
  | (Known & { screen: 'done'; restore: RestoreSummary; unlocked: UnlockSummary });

export type Screen = PopupState['screen'];

export type PopupEvent =
  /** `sentAt`: when the request was sent, to drop answers overtaken by an action. */
  | { type: 'status'; status: VaultStatus; sentAt: number }
  | { type: 'status-error'; error: unknown; sentAt: number }
  | { type: 'started'; action: PopupAction }
  | { type: 'failed'; action: PopupAction; error: unknown }
  | { type: 'unlocked'; unlocked: UnlockSummary; at: number }
  | { type: 'locked'; at: number }
  | { type: 'restore-started'; restore: RestoreSummary; at: number }
  | { type: 'restore-cancelled'; restore: RestoreSummary | null; at: number }
  | { type: 'signed-in'; at: number }
  | { type: 'signed-out'; outcome: SignOutOutcome; at: number };

export const initialState: PopupState = { screen: 'loading' };

const ACTIVE: ReadonlySet<RestoreSummary['phase']> = new Set(['running', 'waiting', 'locked']);
export const restoreActive = (r: RestoreSummary): boolean => ACTIVE.has(r.phase);

export function known(state: PopupState): Known | null {
  return state.screen === 'loading' || state.screen === 'error' ? null : state;
}

/** The screen a status calls for. */
export function derive(k: Known): PopupState {
  const base: Known = {
    status: k.status, server: k.server, earlier: k.earlier, otherAccounts: k.otherAccounts, loadError: k.loadError, busy: k.busy,
    failure: k.failure, freshAfter: k.freshAfter, signOutNote: k.signOutNote,
  };
  const { status, server } = base;
  if (!status.account) return { ...base, screen: 'signed-out' };

  const stop = status.upload.stopped;
  if (status.backup && stop?.kind === 'backup-changed') {
    if (stop.currentVersion === null) return { ...base, screen: 'no-backup' };
    const count = server?.state === 'present' && server.version === stop.currentVersion ? server.count : null;
    return { ...base, screen: 'locked', version: stop.currentVersion, count, changed: true };
  }

  const restore = status.restore;
  if (restore && restoreActive(restore)) return { ...base, screen: 'restoring', restore, unlocked: status.unlocked };
  if (status.unlocked) {
    return restore
      ? { ...base, screen: 'done', restore, unlocked: status.unlocked }
      : { ...base, screen: 'unlocked', unlocked: status.unlocked };
  }

  if (status.backup) {
    const version = status.backup.version;
    const count = server?.state === 'present' && server.version === version ? server.count : status.upload.serverCount;
    return { ...base, screen: 'locked', version, count, changed: false };
  }
  if (server?.state === 'present' && server.supported) {
    return { ...base, screen: 'locked', version: server.version, count: server.count, changed: false };
  }
  return { ...base, screen: 'no-backup' };
}

function fresh(status: VaultStatus): Known {
  return {
    status, server: status.server, earlier: status.earlier ?? [], otherAccounts: status.otherAccounts ?? [], loadError: null, busy: null, failure: null, freshAfter: 0, signOutNote: null,
  };
}

function patch(k: Known, status: Partial<VaultStatus>, extra: Partial<Known>): PopupState {
  return derive({ ...k, ...extra, status: { ...k.status, ...status } });
}

export function reduce(state: PopupState, event: PopupEvent): PopupState {
  const k = known(state);
  switch (event.type) {
    case 'status': {
      if (!k) return derive(fresh(event.status));
      if (event.sentAt < k.freshAfter) return state;
      return derive({
        ...k, status: event.status, server: event.status.server ?? k.server, earlier: event.status.earlier ?? k.earlier, otherAccounts: event.status.otherAccounts ?? k.otherAccounts, loadError: null,
      });
    }
    case 'status-error':
      if (!k) return { screen: 'error', error: event.error };
      if (event.sentAt < k.freshAfter) return state;
      return { ...state, loadError: event.error } as PopupState;
  }
  if (!k) return state; // actions need a status to act on
  switch (event.type) {
    case 'started':
      return derive({ ...k, busy: event.action, failure: null });
    case 'failed':
      return derive({ ...k, busy: null, failure: { action: event.action, error: event.error } });
    case 'unlocked':
      return patch(k, { unlocked: event.unlocked }, { busy: null, failure: null, freshAfter: event.at });
    case 'locked':
      return patch(k, { unlocked: null }, { busy: null, failure: null, freshAfter: event.at });
    case 'restore-started':
      return patch(k, { restore: event.restore }, { busy: null, failure: null, freshAfter: event.at });
    case 'restore-cancelled':
      return patch(k, { restore: event.restore ?? k.status.restore }, { busy: null, failure: null, freshAfter: event.at });
    case 'signed-in':
      return derive({ ...k, signOutNote: null, failure: null, freshAfter: event.at });
    case 'signed-out':
      return patch(k, { account: null, unlocked: null, restore: null }, {
        busy: null, failure: null, freshAfter: event.at, server: undefined, earlier: [], otherAccounts: [],
        signOutNote: event.outcome === 'server-unreachable' ? event.outcome : null,
      });
  }
}

/** The error to show next to an action's control, if its last run failed. */
export function failureOf(state: PopupState, action: PopupAction): unknown {
  const k = known(state);
  return k?.failure?.action === action ? k.failure.error : null;
}
