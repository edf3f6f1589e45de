/**
 * Routes requests by how much the sender is trusted. The tier comes from the browser-supplied
 * `sender`, never from the message: extension pages may do everything; content scripts (the page
 * API, a later addition) get nothing yet; everything else is refused.
 */
import type { MessageSender } from '../platform/extension.ts';
import type { Request, Result, VaultStatus } from '../shared/messages.ts';
import { requireClient, signInWithPassword, signInWithToken, signOut } from './account.ts';
import { createBackup, joinBackup, pinSummary } from './backup.ts';
import { AppError, toWireError } from './errors.ts';
import { requireArray, requireString } from './fields.ts';
import { ingestSessions } from './ingest.ts';
import type { Services } from './services.ts';
import { uploadSummary, vaultStatus } from './status.ts';

export type SenderTier = 'extension-page' | 'untrusted';

export function senderTier(sender: MessageSender, extensionId: string, extensionOrigin: string): SenderTier {
  if (sender.id !== extensionId) return 'untrusted';
  const url = typeof sender.url === 'string' ? sender.url : '';
  // Pages of ours, in the popup or in a tab: same extension id and a URL at our origin.
  return url.startsWith(extensionOrigin) ? 'extension-page' : 'untrusted';
}

/** Sessions per `sessions.import` request: a key file is sent in parts, each one transaction. */
export const MAX_SESSIONS_PER_REQUEST = 2000;

export async function route(services: Services, request: Request): Promise<Result<unknown>> {
  try {
    return { ok: true, value: await dispatch(services, request) };
  } catch (e) {
    return { ok: false, error: toWireError(e) };
  }
}

async function dispatch(services: Services, request: Request): Promise<unknown> {
  const { vault, driver } = services;
  switch (request.type) {
    case 'status.get':
      return vaultStatus(vault, services.worker(), driver.isRunning, request.refresh === true) satisfies Promise<VaultStatus>;
    case 'account.login': {
      const account = await signInWithPassword(vault, requireString(request, 'homeserver', 512), requireString(request, 'user', 512), requireString(request, 'password'));
      services.kickUpload();
      return account;
    }
    case 'account.useToken': {
      const account = await signInWithToken(vault, requireString(request, 'homeserver', 512), requireString(request, 'accessToken'));
      services.kickUpload();
      return account;
    }
    case 'account.signOut':
      return signOut(vault);
    case 'backup.create': {
      const { client, userId } = await requireClient(vault);
      const pin = await createBackup(vault, client, userId, requireString(request, 'recoveryKey', 256));
      services.kickUpload();
      return pinSummary(pin);
    }
    case 'backup.join': {
      const { client, userId } = await requireClient(vault);
      const pin = await joinBackup(vault, client, userId, requireString(request, 'recoveryKey', 256));
      services.kickUpload();
      return pinSummary(pin);
    }
    case 'sessions.import': {
      const result = await ingestSessions(vault, requireArray(request, 'sessions', MAX_SESSIONS_PER_REQUEST));
      if (result.stored > 0) services.kickUpload();
      return result;
    }
    case 'upload.retry': {
      const state = await vault.getUploadState();
      if (state.stopped) throw new AppError('bad-request', 'Uploading is stopped until the problem shown in the popup is resolved.');
      await vault.setUploadState({ ...state, retryAt: null });
      services.kickUpload();
      return uploadSummary(vault, true);
    }
  }
}
