/**
 * Connecting an account (DESIGN flow 1): discovery, then a password login that creates a device
 * named after the extension, or a pasted access token. The token is kept sealed so that backup runs
 * in the background; the password is used once and kept nowhere.
 */
import { discoverHomeserver } from '../platform/discovery.ts';
import { HomeserverClient, loginWithPassword } from '../platform/homeserver.ts';
import { openToken, sealToken } from '../platform/token-box.ts';
import type { StoredAccount, Vault } from '../platform/vault.ts';
import type { AccountSummary, SignOutOutcome } from '../shared/messages.ts';
import { AppError } from './errors.ts';

export function summarize(account: StoredAccount): AccountSummary {
  return { userId: account.userId, deviceId: account.deviceId, homeserverUrl: account.homeserverUrl };
}

async function refuseIfSignedIn(vault: Vault): Promise<void> {
  const current = await vault.getAccount();
  if (current) throw new AppError('bad-request', `Already signed in as ${current.userId}; sign out first.`);
}

async function remember(vault: Vault, account: Omit<StoredAccount, 'accessToken' | 'connectedAt'>, accessToken: string): Promise<AccountSummary> {
  const stored: StoredAccount = { ...account, accessToken: await sealToken(vault, accessToken), connectedAt: Date.now() };
  await vault.connectAccount(stored);
  return summarize(stored);
}

export async function signInWithPassword(vault: Vault, homeserver: string, user: string, password: string): Promise<AccountSummary> {
  await refuseIfSignedIn(vault);
  const server = await discoverHomeserver(homeserver);
  const login = await loginWithPassword(server.baseUrl, user, password);
  return remember(vault, { homeserverUrl: server.baseUrl, userId: login.userId, deviceId: login.deviceId, ownsDevice: true }, login.accessToken);
}

export async function signInWithToken(vault: Vault, homeserver: string, accessToken: string): Promise<AccountSummary> {
  await refuseIfSignedIn(vault);
  const server = await discoverHomeserver(homeserver);
  const whoami = await new HomeserverClient({ baseUrl: server.baseUrl, accessToken }).whoami();
  return remember(vault, {
    homeserverUrl: server.baseUrl,
    userId: whoami.user_id,
    deviceId: whoami.device_id ?? '',
    // The token came from elsewhere (another client's session): signing out must not end it.
    ownsDevice: false,
  }, accessToken);
}

async function clientForAccount(vault: Vault, account: StoredAccount): Promise<HomeserverClient> {
  return new HomeserverClient({ baseUrl: account.homeserverUrl, accessToken: await openToken(vault, account.accessToken) });
}

/** A client for the signed-in account, or null. */
export async function clientFor(vault: Vault): Promise<HomeserverClient | null> {
  const account = await vault.getAccount();
  return account ? clientForAccount(vault, account) : null;
}

export async function requireClient(vault: Vault): Promise<{ client: HomeserverClient; userId: string }> {
  const account = await vault.getAccount();
  if (!account) throw new AppError('not-signed-in', 'Sign in to your Matrix account first.');
  return { client: await clientForAccount(vault, account), userId: account.userId };
}

/**
 * Forgets the account here. The device the extension created is logged out on the server too; a
 * pasted token's session is left alone. If the server cannot be reached the account is still
 * forgotten here, and the answer says the server-side session may remain.
 */
export async function signOut(vault: Vault): Promise<SignOutOutcome> {
  const account = await vault.getAccount();
  if (!account) throw new AppError('not-signed-in', 'No account is signed in.');
  let outcome: SignOutOutcome = 'session-kept';
  if (account.ownsDevice) {
    try {
      await (await clientForAccount(vault, account)).logout({ timeoutMs: 10_000 });
      outcome = 'session-ended';
    } catch (e) {
      const status = (e as { status?: number }).status;
      // 401: the token is already dead, which is what logging out wanted.
      outcome = status === 401 ? 'session-ended' : 'server-unreachable';
    }
  }
  await vault.clearAccount();
  return outcome;
}
