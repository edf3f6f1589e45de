/**
 * The page API, in the page's own world (MAIN) of an allowed site. It holds nothing secret and
 * decides nothing: it turns `provider.request()` calls into messages to the bridge and the answers
 * back into promises. Everything it receives it could have been sent by the page itself, and the
 * worker checks everything again. No extension API is reachable from here.
 *
 * Discovery is EIP-6963 style: when the bridge says this origin may use the vault, and whenever the
 * page dispatches `matrix-key-vault:request`, a `matrix-key-vault:announce` CustomEvent carries a
 * frozen `{ info, provider }`.
 */
import {
  ANNOUNCE_EVENT, BRIDGE_TARGET, ErrorCode, PAGE_TARGET, REQUEST_EVENT,
  type Announcement, type BridgeRequest, type PageEvent, type PageVaultStatus, type ProviderRpcErrorShape, type VaultProvider,
} from '../../shared/page-api.ts';

/** The error a provider's promises reject with (EIP-1193's ProviderRpcError). */
class ProviderRpcError extends Error {
  readonly code: number;
  readonly data?: unknown;
  constructor(error: ProviderRpcErrorShape) {
    super(error.message);
    this.name = 'ProviderRpcError';
    this.code = error.code;
    if (error.data !== undefined) this.data = error.data;
  }
}

/** How long a request waits for its answer: an approval waits for a person. */
const TIMEOUT_MS = 120_000;
const APPROVAL_TIMEOUT_MS = 6 * 60_000;

const flag = Symbol.for('matrix-key-vault.page');

function startPageApi(): void {
  const scope = globalThis as Record<symbol, unknown>;
  if (scope[flag]) return;
  Object.defineProperty(scope, flag, { value: true });

  // Taken now, at document start: page code that later replaces these does not change our behaviour.
  const post = window.postMessage.bind(window);
  const dispatch = window.dispatchEvent.bind(window);
  const freeze = Object.freeze;
  const origin = location.origin;
  const uuid = crypto.randomUUID();

  let version: string | null = null; // set once the bridge says this origin may use the vault
  let nextId = 0;
  const pending = new Map<string, { resolve(value: unknown): void; reject(error: Error): void; timer: ReturnType<typeof setTimeout> }>();
  const listeners = new Set<(status: PageVaultStatus) => void>();

  const rejectAll = (error: ProviderRpcErrorShape): void => {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      pending.delete(id);
      p.reject(new ProviderRpcError(error));
    }
  };

  const provider: VaultProvider = freeze({
    request(args: { method: string; params?: unknown }): Promise<never> {
      return new Promise((resolve, reject) => {
        if (typeof args !== 'object' || args === null || typeof args.method !== 'string') {
          return reject(new ProviderRpcError({ code: ErrorCode.invalidParams, message: 'request() takes { method, params }.' }));
        }
        if (version === null) {
          return reject(new ProviderRpcError({ code: ErrorCode.disconnected, message: 'This site is not connected to the vault.' }));
        }
        const id = `${uuid}:${nextId++}`;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new ProviderRpcError({ code: ErrorCode.disconnected, message: 'The vault did not answer in time.' }));
        }, args.method === 'vault_requestScopes' ? APPROVAL_TIMEOUT_MS : TIMEOUT_MS);
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
        const message: BridgeRequest = { target: BRIDGE_TARGET, id, method: args.method, ...(args.params !== undefined ? { params: args.params } : {}) };
        try {
          post(message, origin);
        } catch {
          // Params the browser cannot clone (functions, DOM nodes) never leave the page.
          clearTimeout(timer);
          pending.delete(id);
          reject(new ProviderRpcError({ code: ErrorCode.invalidParams, message: 'params must be plain JSON data.' }));
        }
      });
    },
    on(event: PageEvent, listener: (status: PageVaultStatus) => void): void {
      if (event === 'statusChanged' && typeof listener === 'function') listeners.add(listener);
    },
    removeListener(event: PageEvent, listener: (status: PageVaultStatus) => void): void {
      if (event === 'statusChanged') listeners.delete(listener);
    },
  }) as VaultProvider;

  const announce = (): void => {
    if (version === null) return;
    const detail: Announcement = freeze({ info: freeze({ name: 'Matrix Key Vault' as const, version, uuid }), provider });
    dispatch(new CustomEvent(ANNOUNCE_EVENT, { detail }));
  };

  window.addEventListener(REQUEST_EVENT, announce);

  window.addEventListener('message', (event: MessageEvent) => {
    if (event.source !== window || event.origin !== origin) return;
    const data = event.data as { target?: unknown; kind?: unknown } | null;
    if (typeof data !== 'object' || data === null || data.target !== PAGE_TARGET) return;
    switch (data.kind) {
      case 'ready': {
        const v = (data as { version?: unknown }).version;
        if (typeof v !== 'string') return;
        const first = version === null;
        version = v;
        if (first) announce();
        return;
      }
      case 'response': {
        const { id, result, error } = data as { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
        const p = typeof id === 'string' ? pending.get(id) : undefined;
        if (!p) return;
        clearTimeout(p.timer);
        pending.delete(id as string);
        if (error && typeof error.code === 'number') p.reject(new ProviderRpcError({ code: error.code, message: String(error.message ?? '') }));
        else p.resolve(result);
        return;
      }
      case 'event': {
        const status = (data as { data?: unknown }).data as PageVaultStatus;
        for (const listener of [...listeners]) {
          try {
            listener(status);
          } catch (e) {
            // A page's listener that throws must not stop the others; the page sees its own error.
            setTimeout(() => { throw e; });
          }
        }
        return;
      }
      case 'revoked':
        version = null;
        rejectAll({ code: ErrorCode.disconnected, message: 'This site is no longer allowed to use the vault.' });
        for (const listener of [...listeners]) {
          try {
            listener({ state: 'locked', scopes: [], userId: null, backup: false });
          } catch (e) {
            setTimeout(() => { throw e; });
          }
        }
        return;
    }
  });
}

startPageApi();
