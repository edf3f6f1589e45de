/**
 * The bridge: a content script in the isolated world of an allowed site's top frame. It carries the
 * page API between the page-world script (window.postMessage, this origin only) and the worker
 * (runtime messaging). It is a narrow pipe, not a gate: the worker decides everything from the
 * browser-supplied sender. The bridge only keeps junk out: it forwards the page-API methods and
 * nothing else, within size and rate limits, as fresh plain data.
 *
 * Until the worker confirms that this exact origin is allowed, the bridge says nothing at all to the
 * page, so a page on an origin without a grant (another port under Firefox, whose patterns ignore
 * ports) cannot tell the extension is installed.
 */
import { extensionVersion, onWorkerMessage, sendToWorker } from '../platform/messaging.ts';
import {
  BRIDGE_TARGET, ErrorCode, isPageMethod, isPlainJson, MAX_PAGE_REQUEST_BYTES, MAX_PAGE_REQUESTS_IN_FLIGHT, PAGE_TARGET, REQUEST_EVENT,
  type PageMessage, type ProviderRpcErrorShape,
} from '../shared/page-api.ts';

type State = 'checking' | 'allowed' | 'refused' | 'revoked' | 'unreachable';

const flag = Symbol.for('matrix-key-vault.bridge');

function startBridge(): void {
  const scope = globalThis as Record<symbol, unknown>;
  // Injected again into an open page (the site was allowed again after a revoke): ask the worker anew.
  const running = scope[flag];
  if (typeof running === 'function') return void (running as () => void)();

  const origin = location.origin;
  let state: State = 'checking';
  let inFlight = 0;

  const toPage = (message: PageMessage): void => window.postMessage(message, origin);
  const ready = (): void => toPage({ target: PAGE_TARGET, kind: 'ready', version: extensionVersion() });

  const hello = (): void => {
    state = 'checking';
    sendToWorker({ type: 'page.hello' }, { repeatable: true }).then((answer) => {
      const result = answer as { ok?: boolean; error?: { code?: unknown } } | undefined;
      if (result?.ok === true) {
        state = 'allowed';
        ready();
      } else {
        // No grant: stay silent for good. Anything else (the worker failed to start) may pass.
        state = result?.error?.code === ErrorCode.unauthorized ? 'refused' : 'unreachable';
      }
    }, () => { state = 'unreachable'; });
  };

  // A page that asks for vaults after the bridge said it is ready (or whose page-world script started
  // after this one) hears "ready" again; an unreachable worker is asked again.
  window.addEventListener(REQUEST_EVENT, () => {
    if (state === 'allowed') ready();
    else if (state === 'unreachable') hello();
  });

  window.addEventListener('message', (event: MessageEvent) => {
    if (state !== 'allowed' && state !== 'revoked') return;
    if (event.source !== window || event.origin !== origin) return;
    const data: unknown = event.data;
    if (typeof data !== 'object' || data === null || (data as { target?: unknown }).target !== BRIDGE_TARGET) return;
    const { id, method, params } = data as { id?: unknown; method?: unknown; params?: unknown };
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) return; // nothing to answer to
    const answer = (body: { result: unknown } | { error: ProviderRpcErrorShape }): void =>
      toPage({ target: PAGE_TARGET, kind: 'response', id, ...body });
    const refuse = (code: number, message: string): void => answer({ error: { code, message } });

    if (state === 'revoked') return refuse(ErrorCode.disconnected, 'This site is no longer allowed to use the vault.');
    if (!isPageMethod(method)) return refuse(ErrorCode.unsupportedMethod, 'The vault has no such method.');
    if (params !== undefined && !isPlainJson(params)) return refuse(ErrorCode.invalidParams, 'params must be plain JSON data.');
    let body: string;
    try {
      body = JSON.stringify(params ?? {});
    } catch {
      return refuse(ErrorCode.invalidParams, 'params must be plain JSON data.');
    }
    if (body.length > MAX_PAGE_REQUEST_BYTES) return refuse(ErrorCode.invalidParams, `The request is larger than ${MAX_PAGE_REQUEST_BYTES} bytes; send it in parts.`);
    if (inFlight >= MAX_PAGE_REQUESTS_IN_FLIGHT) return refuse(ErrorCode.limitExceeded, 'Too many requests at once: wait for some to finish.');

    inFlight++;
    // Fresh data from the text: nothing of the page's objects reaches the extension.
    // Every method but an approval may be asked twice: a worker stopped mid-answer is asked again.
    sendToWorker({ type: 'page.call', method, params: JSON.parse(body) as unknown }, { repeatable: method !== 'vault_requestScopes' }).then(
      (result) => {
        const r = result as { ok?: unknown; value?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
        if (r?.ok === true) answer({ result: r.value });
        else if (r?.ok === false && typeof r.error?.code === 'number') refuse(r.error.code, String(r.error.message ?? 'The vault refused.'));
        else refuse(ErrorCode.disconnected, 'The vault did not answer.');
      },
      () => refuse(ErrorCode.disconnected, 'The vault cannot be reached (the extension may have been reloaded): reload the page.'),
    ).finally(() => { inFlight--; });
  });

  onWorkerMessage((message) => {
    const m = message as { type?: unknown; status?: unknown };
    if (m?.type === 'page.revoked') {
      state = 'revoked';
      toPage({ target: PAGE_TARGET, kind: 'revoked' });
    } else if (m?.type === 'page.client-off') {
      toPage({ target: PAGE_TARGET, kind: 'client-off' });
    } else if (m?.type === 'page.status' && state === 'allowed') {
      toPage({ target: PAGE_TARGET, kind: 'event', event: 'statusChanged', data: m.status as never });
    }
  });

  scope[flag] = (): void => { if (state !== 'allowed') hello(); };
  hello();
}

startBridge();
