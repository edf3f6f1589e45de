/**
 * The adapter for a site's own Matrix client, in the page's world, only on a site where the user
 * turned "Connect to the Matrix client on this site" on. Element Web keeps its client reachable as
 * `window.mxMatrixClientPeg` (`get()` answers its matrix-js-sdk MatrixClient, or null before sign-in).
 * The adapter waits for a started client signed in as the vault's own account, then attaches the
 * client kit to it: missing keys fetched from the vault, new sessions handed over. Another account,
 * or a client missing a part the kit needs, is left alone, and the popup hears why.
 *
 * It loads no matrix-js-sdk and trusts nothing on the page: every part it touches is checked first
 * (src/client/client-shape.ts), and a failure stays here instead of throwing inside the client.
 */
import { attachKeyVault, checkClient, findKeyVault, type Attachment, type KeyVault } from '../../client/index.ts';
import { PAGE_TARGET, type ClientReport, type PageVaultStatus } from '../../shared/page-api.ts';

/** How often the page is looked at for a (new) client: a local check, no message to the extension. */
const POLL_MS = 1000;

const flag = Symbol.for('matrix-key-vault.client');

function clientOnPage(): unknown {
  try {
    const peg = (window as unknown as { mxMatrixClientPeg?: { get?: unknown } }).mxMatrixClientPeg;
    return typeof peg?.get === 'function' ? ((peg.get as () => unknown).call(peg) ?? null) : null;
  } catch {
    return null; // a getter that throws (signed out midway) is the same as no client yet
  }
}

function call<T>(target: unknown, name: string): T | undefined {
  try {
    const fn = (target as Record<string, unknown>)[name];
    return typeof fn === 'function' ? (fn as () => T).call(target) : undefined;
  } catch {
    return undefined;
  }
}

/** Started: its first sync is done (matrix-js-sdk's `isInitialSyncComplete()`), so crypto is set up. */
function isStarted(client: unknown): boolean {
  return call<boolean>(client, 'isInitialSyncComplete') === true;
}

function startAdapter(): void {
  const scope = globalThis as Record<symbol, unknown>;
  // Put into the page again (the connection turned off, then on): the running adapter starts again.
  const running = scope[flag];
  if (typeof running === 'function') return void (running as () => void)();

  let vault: KeyVault | null = null;
  let status: PageVaultStatus | null = null;
  let client: unknown = null;
  let attachment: Attachment | null = null;
  let stopped = false;
  let looking = false;
  let lastSent = '';
  // A vault that does not answer is looked for again later and later (2 s doubling to 1 min).
  let lookAgainAt = 0;
  let lookDelay = 0;

  const send = (report: ClientReport): void => {
    const text = JSON.stringify(report);
    if (!vault || text === lastSent) return;
    lastSent = text;
    vault.request({ method: 'vault_reportClient', params: report }).catch((e: Error) => {
      lastSent = ''; // said again with the next change
      console.warn('Matrix Key Vault: could not report to the extension:', e.message);
    });
  };

  const reportAttached = (userId: string | null): void => {
    if (!attachment) return;
    const off = [attachment.fetching, attachment.handOver].filter((d): d is { off: string } => d !== 'on').map((d) => d.off);
    send({
      state: 'attached', clientUserId: userId, reason: off.length > 0 ? off.join(' ') : null,
      keysFetched: attachment.stats.keysImported, sessionsHandedOver: attachment.stats.sessionsHandedOver,
    });
  };

  const stop = (): void => {
    stopped = true;
    attachment?.detach();
    attachment = null;
  };

  const consider = (): void => {
    if (stopped || !vault || !status) return;
    const current = clientOnPage();
    if (current !== client) {
      // Signed out, or signed in again: a new client object.
      attachment?.detach();
      attachment = null;
      client = current;
    }
    if (attachment) return;
    if (!client) {
      return send({ state: 'waiting', clientUserId: null, reason: 'No Matrix client has started on this page yet: sign in to it.', keysFetched: 0, sessionsHandedOver: 0 });
    }
    const userId = call<unknown>(client, 'getUserId');
    const clientUserId = typeof userId === 'string' ? userId : null;
    if (!isStarted(client)) {
      return send({ state: 'waiting', clientUserId, reason: 'The Matrix client on this page is still starting.', keysFetched: 0, sessionsHandedOver: 0 });
    }
    if (status.userId === null) {
      return send({ state: 'waiting', clientUserId, reason: 'The vault is not signed in to an account.', keysFetched: 0, sessionsHandedOver: 0 });
    }
    if (clientUserId !== status.userId) {
      return send({
        state: 'other-account', clientUserId,
        reason: `This page's Matrix client is signed in as ${clientUserId ?? 'an unknown account'}, the vault as ${status.userId}: nothing is connected.`,
        keysFetched: 0, sessionsHandedOver: 0,
      });
    }
    const check = checkClient(client);
    if (!check.ok) return send({ state: 'unusable', clientUserId, reason: check.message, keysFetched: 0, sessionsHandedOver: 0 });
    try {
      attachment = attachKeyVault(client, vault, { onError: (e) => console.warn('Matrix Key Vault:', e.message) });
    } catch (e) {
      return send({ state: 'unusable', clientUserId, reason: e instanceof Error ? e.message : String(e), keysFetched: 0, sessionsHandedOver: 0 });
    }
    attachment.onChange(() => reportAttached(clientUserId));
    reportAttached(clientUserId);
  };

  const tick = async (): Promise<void> => {
    if (stopped) return;
    if (!vault) {
      if (looking || Date.now() < lookAgainAt) return;
      looking = true;
      try {
        vault = await findKeyVault({ timeoutMs: 500 });
        if (!vault) {
          lookDelay = Math.min(lookDelay === 0 ? 2000 : lookDelay * 2, 60_000);
          lookAgainAt = Date.now() + lookDelay;
          return;
        }
        lookDelay = 0;
        status = await vault.status();
        vault.onStatusChanged((next) => {
          status = next;
          lastSent = ''; // the popup may have missed the last report while the worker slept
          consider();
        });
      } catch (e) {
        vault = null;
        console.warn('Matrix Key Vault: the vault did not answer:', e instanceof Error ? e.message : e);
        return;
      } finally {
        looking = false;
      }
    }
    consider();
  };

  window.addEventListener('message', (event: MessageEvent) => {
    if (event.source !== window || event.origin !== location.origin) return;
    const data = event.data as { target?: unknown; kind?: unknown } | null;
    if (data?.target === PAGE_TARGET && (data.kind === 'client-off' || data.kind === 'revoked')) stop();
  });

  let timer: ReturnType<typeof setInterval> | null = null;
  const run = (): void => {
    stopped = false;
    lastSent = '';
    if (timer === null) {
      timer = setInterval(() => {
        if (!stopped) return void tick();
        clearInterval(timer!);
        timer = null;
      }, POLL_MS);
    }
    void tick();
  };
  scope[flag] = run;
  run();
}

startAdapter();
