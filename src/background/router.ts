/**
 * Routes requests by how much the sender is trusted. The tier comes from the browser-supplied
 * `sender`, never from the message: extension pages may do everything; content scripts (the page
 * API, a later addition) get nothing yet; everything else is refused.
 */
import type { MessageSender } from '../platform/extension.ts';
import type { Request, Result, SiteSummary, VaultStatus } from '../shared/messages.ts';
import type { SiteGrant } from '../platform/vault.ts';
import { requireClient, signInWithPassword, signInWithToken, signOut } from './account.ts';
import { createBackup, joinBackup, pinSummary } from './backup.ts';
import { AppError, toWireError } from './errors.ts';
import { requireArray, requireString } from './fields.ts';
import { ingestSessions } from './ingest.ts';
import { exportBatch, MAX_EXPORT_BATCH, moveEarlierSessions } from './keys-out.ts';
import type { UnlockedKey } from '../platform/unlock-store.ts';
import type { Services } from './services.ts';
import { restoreSummary, uploadSummary, vaultStatus } from './status.ts';
import { unlockVault } from './unlock.ts';
import { pageStatus } from './page-api.ts';
import { normaliseScopes } from './sites.ts';
import { parseSiteOrigin } from '../platform/sites.ts';

export type SenderTier = 'extension-page' | 'untrusted';

export function senderTier(sender: MessageSender, extensionId: string, extensionOrigin: string): SenderTier {
  if (sender.id !== extensionId) return 'untrusted';
  const url = typeof sender.url === 'string' ? sender.url : '';
  // Pages of ours, in the popup or in a tab: same extension id and a URL at our origin.
  return url.startsWith(extensionOrigin) ? 'extension-page' : 'untrusted';
}

/** Sessions per `sessions.import` request: a key file is sent in parts, each one transaction. */
export const MAX_SESSIONS_PER_REQUEST = 2000;

/** Requests after which the allowed sites' open tabs hear that the vault's status changed. */
const changesPageStatus: ReadonlySet<Request['type']> = new Set<Request['type']>([
  'account.login', 'account.useToken', 'account.signOut', 'backup.create', 'backup.join', 'vault.unlock', 'vault.lock',
]);

export async function route(services: Services, request: Request): Promise<Result<unknown>> {
  try {
    const value = await dispatch(services, request);
    if (changesPageStatus.has(request.type)) services.notifyPages((grant) => pageStatus(services, grant));
    return { ok: true, value };
  } catch (e) {
    return { ok: false, error: toWireError(e) };
  }
}

function siteSummary(services: Services, grant: SiteGrant): SiteSummary {
  return { origin: grant.origin, scopes: grant.scopes, grantedAt: grant.grantedAt, connectClient: grant.connectClient === true, client: services.sites.reportOf(grant.origin) };
}

function requireSiteOrigin(request: object): string {
  const text = requireString(request, 'origin', 300);
  const origin = parseSiteOrigin(text);
  if (origin === null || origin !== text) throw new AppError('bad-request', 'A site is its origin: https://host[:port] (plain http only on this computer\'s own addresses).');
  return origin;
}

async function dispatch(services: Services, request: Request): Promise<unknown> {
  const { vault, driver } = services;
  switch (request.type) {
    case 'status.get': {
      const status: VaultStatus = await vaultStatus(vault, services.unlockStore, services.worker(), driver.isRunning, request.refresh === true);
      const storage = services.storageProblem();
      return storage ? { ...status, storage } : status;
    }
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
    case 'account.signOut': {
      await services.restore.cancel();
      await services.unlockStore.clear();
      services.sessions.forget();
      return signOut(vault);
    }
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
    case 'vault.unlock': {
      const { client, userId } = await requireClient(vault);
      const unlocked = await unlockVault({ vault, client, userId, store: services.unlockStore, limiter: services.unlockLimiter, now: Date.now },
        requireString(request, 'input', 1_000_000));
      services.sessions.forget();
      services.kickUpload();
      services.kickRestore(); // a restore that waited for the key (after a browser restart) goes on
      return unlocked;
    }
    case 'vault.lock':
      await services.unlockStore.clear();
      services.sessions.forget();
      services.restore.interrupt(); // a running restore stops with the key; unlocking resumes it
      return null;
    case 'restore.start': {
      const state = await services.restore.start();
      services.sessions.clearMisses();
      services.kickRestore();
      return restoreSummary(state, await services.unlockStore.get(), Date.now());
    }
    case 'restore.cancel': {
      const state = await services.restore.cancel();
      return state ? restoreSummary(state, await services.unlockStore.get(), Date.now()) : null;
    }
    case 'restore.failures': {
      const limit = typeof request.limit === 'number' && request.limit > 0 ? Math.min(request.limit, 1000) : 100;
      const rows = await vault.restoreFailures(limit);
      return rows.map(({ roomId, sessionId, kind, reason }) => ({ roomId, sessionId, kind, reason }));
    }
    case 'vault.exportBatch': {
      const key = await requireUnlocked(services);
      const limit = typeof request.limit === 'number' && request.limit > 0 ? Math.min(request.limit, MAX_EXPORT_BATCH) : 500;
      return exportBatch(vault, key, parseAfter(request.after), limit);
    }
    case 'earlier.unlock': {
      const { client, userId } = await requireClient(vault);
      const input = requireString(request, 'input', 1024);
      const publicKey = requireString(request, 'publicKey', 100);
      // The same limit as unlocking: a wrong key typed again and again waits longer each time.
      services.unlockLimiter.check();
      let moved: { moved: number; failed: number };
      try {
        moved = await moveEarlierSessions(vault, client, userId, input, publicKey);
      } catch (e) {
        if (e instanceof AppError && (e.kind === 'wrong-key' || e.kind === 'not-a-key' || e.kind === 'no-secret-storage')) services.unlockLimiter.failed();
        else services.unlockLimiter.ended();
        throw e;
      }
      services.unlockLimiter.succeeded();
      if (moved.moved > 0) services.kickUpload();
      return moved;
    }
    case 'vault.eraseAccount': {
      const userId = requireString(request, 'userId', 512);
      const account = await vault.getAccount();
      if (account?.userId === userId) throw new AppError('bad-request', 'These are the keys of the account signed in now; sign out first to erase them.');
      return { erased: await vault.eraseKeysOf(userId) };
    }
    case 'sites.list':
      return (await services.sites.list()).map((g) => siteSummary(services, g));
    case 'sites.intend':
      await services.sites.intend(requireSiteOrigin(request), normaliseScopes(request.scopes));
      return null;
    case 'sites.cancelIntent':
      services.sites.cancelIntent(requireSiteOrigin(request));
      return null;
    case 'sites.allow': {
      const { grant, injected } = await services.sites.grant(requireSiteOrigin(request), normaliseScopes(request.scopes));
      services.notifyPages((g) => pageStatus(services, g));
      return { site: siteSummary(services, grant), injected };
    }
    case 'sites.connectClient': {
      if (typeof request.on !== 'boolean') throw new AppError('bad-request', '"on" must be true or false.');
      return siteSummary(services, await services.sites.connectClient(requireSiteOrigin(request), request.on));
    }
    case 'sites.revoke':
      return { revoked: await services.sites.revoke(requireSiteOrigin(request)) };
    case 'approval.get': {
      const pending = services.sites.approval(requireString(request, 'id', 100));
      return pending ? { origin: pending.origin, scopes: pending.scopes } : null;
    }
    case 'approval.answer':
      if (typeof request.allow !== 'boolean') throw new AppError('bad-request', '"allow" must be true or false.');
      return { answered: services.sites.answer(requireString(request, 'id', 100), request.allow) };
    case 'upload.retry': {
      const state = await vault.getUploadState();
      if (state.stopped) throw new AppError('bad-request', 'Uploading is stopped until the problem shown in the popup is resolved.');
      await vault.setUploadState({ ...state, retryAt: null });
      services.kickUpload();
      return uploadSummary(vault, true);
    }
  }
}

async function requireUnlocked(services: Services): Promise<UnlockedKey> {
  const [key, account] = await Promise.all([services.unlockStore.get(), services.vault.getAccount()]);
  if (!key || !account || key.userId !== account.userId) throw new AppError('locked', 'The vault is locked: unlock it with your recovery key first.');
  return key;
}

function parseAfter(value: unknown): [string, string] | null {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'string' && v.length <= 1024)) return [value[0], value[1]];
  throw new AppError('bad-request', '"after" must be a [roomId, sessionId] pair.');
}
