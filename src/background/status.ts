/** What the popup shows: account, pinned backup, upload progress, and (on request) the server's backup. */
import type { Vault } from '../platform/vault.ts';
import type { UploadSummary, VaultStatus, WorkerStatus } from '../shared/messages.ts';
import { clientFor, summarize } from './account.ts';
import { inspectServerBackup, pinSummary } from './backup.ts';

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

export async function vaultStatus(vault: Vault, worker: WorkerStatus, uploading: boolean, refresh: boolean): Promise<VaultStatus> {
  const [account, pin, upload] = await Promise.all([vault.getAccount(), vault.getPin(), uploadSummary(vault, uploading)]);
  const status: VaultStatus = { worker, account: account ? summarize(account) : null, backup: pin ? pinSummary(pin) : null, upload };
  if (refresh && account) {
    const client = await clientFor(vault);
    if (client) status.server = await inspectServerBackup(client, pin);
  }
  return status;
}
