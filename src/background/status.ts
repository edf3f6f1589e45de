/** What the popup shows: account, pinned backup, upload progress, and (on request) the server's backup. */
import { doneCount, restoreRate, type RestoreState } from '../core/restore/state.ts';
import type { UnlockStore } from '../platform/unlock-store.ts';
import type { Vault } from '../platform/vault.ts';
import type { EarlierKeySummary, OtherAccountSummary, RestoreSummary, UploadSummary, VaultStatus, WorkerStatus } from '../shared/messages.ts';
import { clientFor, summarize } from './account.ts';
import { inspectServerBackup, pinSummary } from './backup.ts';
import { summarizeUnlock } from './unlock.ts';

export async function uploadSummary(vault: Vault, running: boolean): Promise<UploadSummary> {
  const [pin, state, stored] = await Promise.all([vault.getPin(), vault.getUploadState(), vault.countSessions()]);
  const pending = pin ? await vault.countPending(pin.publicKey, pin.epoch) : 0;
  const phase: UploadSummary['phase'] = state.stopped ? 'stopped' : running && pending > 0 ? 'uploading' : state.retryAt !== null ? 'waiting' : 'idle';
  return {
    phase,
    pending,
    stored,
    serverCount: state.serverCount,
    lastSuccessAt: state.lastSuccessAt,
    lastError: state.lastError,
    retryAt: state.retryAt,
    stopped: state.stopped,
    notice: state.notice,
  };
}

/** The restore as the popup shows it; an active restore whose key is not unlocked waits for the user. */
export function restoreSummary(state: RestoreState, unlockedFor: { version: string; publicKey: string } | null, now: number): RestoreSummary {
  const active = state.phase === 'running' || state.phase === 'waiting';
  const locked = active && (!unlockedFor || unlockedFor.version !== state.version || unlockedFor.publicKey !== state.publicKey);
  const { rate, secondsLeft } = restoreRate(state, now);
  return {
    id: state.id, version: state.version, phase: locked ? 'locked' : state.phase, serverCount: state.serverCount,
    done: doneCount(state), restored: state.restored, alreadyPresent: state.alreadyPresent,
    failed: state.failed, failuresByKind: state.failuresByKind, rooms: state.rooms, startedAt: state.startedAt,
    finishedAt: state.finishedAt, rate, secondsLeft, retryAt: state.retryAt, lastError: state.lastError,
    timings: state.timings ?? { download: 0, lookup: 0, decrypt: 0, store: 0 },
  };
}

/**
 * Sessions waiting for an earlier pinned key of this account, and those another account left here:
 * counted only when the popup opens (refresh).
 */
async function earlierKeys(vault: Vault, userId: string, currentKey: string | undefined): Promise<{ earlier: EarlierKeySummary[]; otherAccounts: OtherAccountSummary[] }> {
  const earlier: EarlierKeySummary[] = [];
  const others = new Map<string, number>();
  for (const pin of await vault.getEarlierPins()) {
    if (pin.publicKey === currentKey) continue;
    const count = await vault.countForKey(pin.publicKey);
    if (count === 0) continue;
    if (pin.userId === userId) earlier.push({ publicKey: pin.publicKey, version: pin.version, count });
    else others.set(pin.userId, (others.get(pin.userId) ?? 0) + count);
  }
  return { earlier, otherAccounts: [...others].map(([id, count]) => ({ userId: id, count })) };
}

export async function vaultStatus(vault: Vault, unlockStore: UnlockStore, worker: WorkerStatus, uploading: boolean, refresh: boolean): Promise<VaultStatus> {
  const [account, pin, upload, unlocked, restore] = await Promise.all([
    vault.getAccount(), vault.getPin(), uploadSummary(vault, uploading), unlockStore.get(), vault.getRestoreState(),
  ]);
  const status: VaultStatus = {
    worker,
    account: account ? summarize(account) : null,
    backup: pin ? pinSummary(pin) : null,
    upload,
    unlocked: unlocked && account && unlocked.userId === account.userId ? summarizeUnlock(unlocked) : null,
    restore: restore && account && restore.userId === account.userId ? restoreSummary(restore, unlocked, Date.now()) : null,
    ...(refresh && account ? await earlierKeys(vault, account.userId, pin?.publicKey) : {}),
  };
  if (refresh && account) {
    const client = await clientFor(vault);
    if (client) status.server = await inspectServerBackup(client, pin);
  }
  return status;
}
