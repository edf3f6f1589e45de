/**
 * Homeserver answers the browser can read. A reverse proxy's error page carries no CORS headers, and
 * Synapse's CORS headers do not expose Retry-After: without a host permission for the homeserver the
 * worker sees a bare network error for the one and no wait for the other. With the permission (which
 * the popup offers after sign-in) it reads both. Chromium's permission prompt is a native dialog no
 * headless test can answer, so: the worker's side runs with the permission granted in the manifest
 * of a copy of the build, and the popup's side with `permissions.request` answered by the test.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromeDist, launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, importKeyFileViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';
import { peerSessions } from '../harness/upload-rig.ts';
import { keyFileFromPeer } from '../peer/index.ts';

const password = 'a long and unguessable password';
const passphrase = 'access test passphrase';

/**
 * A reverse proxy in front of Synapse. `mode` 'pass' forwards; 'page' answers key uploads with an
 * HTML 502 and no CORS headers (a proxy's own error page); 'limit' answers them 429 with only a
 * Retry-After header (Synapse's CORS headers expose no Retry-After). Everything else passes.
 */
async function startStrippingProxy(upstream: string): Promise<{ baseUrl: string; setMode(m: 'pass' | 'page' | 'limit'): void; stop(): Promise<void> }> {
  const target = new URL(upstream);
  let mode: 'pass' | 'page' | 'limit' = 'pass';
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/.well-known/matrix/client')) {
      res.writeHead(404, { 'access-control-allow-origin': '*' });
      res.end('{}');
      return;
    }
    const upload = req.method === 'PUT' && /\/room_keys\/keys/.test(req.url ?? '');
    if (upload && mode === 'page') {
      req.resume();
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body><h1>502 Bad Gateway</h1>nginx</body></html>');
      return;
    }
    if (upload && mode === 'limit') {
      req.resume();
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '40', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests' }));
      return;
    }
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    setMode(m) { mode = m; },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('homeserver answers the browser can read', () => {
  const synapse = sharedSynapse();
  let tmp: string;
  let keyFile: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkv-access-'));
    keyFile = join(tmp, 'keys.txt');
    writeFileSync(keyFile, await keyFileFromPeer(await peerSessions(40, 2), passphrase, 1000));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  async function uploadThrough(grant: boolean): Promise<{ page: { kind?: string; message?: string }; limitWaitS: number | null }> {
    const dir = join(tmp, grant ? 'granted' : 'plain');
    cpSync(chromeDist, dir, { recursive: true });
    if (grant) {
      const manifestPath = join(dir, 'manifest.json');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
      manifest.host_permissions = ['http://127.0.0.1/*'];
      writeFileSync(manifestPath, JSON.stringify(manifest));
    }
    const proxy = await startStrippingProxy(synapse.baseUrl);
    let ext: ExtensionBrowser | undefined;
    try {
      ext = await launchExtension({ extensionPath: dir });
      const localpart = uniqueLocalpart(grant ? 'access-yes' : 'access-no');
      await synapse.registerUser(localpart, password);
      const popup = await signInViaPopup(ext, proxy.baseUrl, localpart, password);
      await createBackupViaPage(ext, popup);
      proxy.setMode('page');
      await importKeyFileViaPage(ext, keyFile, passphrase);
      await expect.poll(async () => (await workerStatus(popup)).upload.lastError?.message ?? '', { timeout: 30_000 }).not.toBe('');
      const pageError = (await workerStatus(popup)).upload.lastError!;
      proxy.setMode('limit');
      await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'upload.retry' }));
      await expect.poll(async () => (await workerStatus(popup)).upload.lastError?.status ?? pageError.status, { timeout: 30_000 })
        .not.toBe(pageError.status ?? -1);
      const limited = (await workerStatus(popup)).upload;
      const limitWaitS = limited.lastError?.status === 429 && limited.retryAt ? Math.round((limited.retryAt - limited.lastError.at) / 1000) : null;
      return { page: { kind: pageError.kind, message: pageError.message }, limitWaitS };
    } finally {
      await ext?.close();
      await proxy.stop();
    }
  }

  it('without the permission, a proxy\'s error page is a network error and Retry-After is invisible', async () => {
    const seen = await uploadThrough(false);
    expect(seen.page).toMatchObject({ kind: 'connection', message: expect.stringMatching(/could not reach the homeserver/) });
    // 429 with only a header: the browser hides the header, so the wait is the backoff's, not 40 s.
    expect(seen.limitWaitS).not.toBe(40);
  });

  it('with the permission, the worker reads the error page\'s status and honours Retry-After', async () => {
    const seen = await uploadThrough(true);
    expect(seen.page).toMatchObject({ kind: 'homeserver', message: expect.stringMatching(/HTTP 502/) });
    expect(seen.limitWaitS).toBe(40);
  });

  it('the popup offers the permission after sign-in, says why, and takes a refusal', async () => {
    const ext = await launchExtension();
    try {
      const localpart = uniqueLocalpart('access-offer');
      await synapse.registerUser(localpart, password);
      const popup = await signInViaPopup(ext, synapse.baseUrl, localpart, password);
      const offer = popup.getByTestId('homeserver-access');
      await offer.waitFor();
      expect(await offer.textContent()).toMatch(/error pages|wait/i);
      // The prompt is the browser's: answer it here, first with a refusal.
      await popup.evaluate(() => { (chrome.permissions as { request: unknown }).request = async () => false; });
      await offer.getByRole('button', { name: /Allow/ }).click();
      await expect.poll(() => offer.getAttribute('data-state')).toBe('declined');
      await popup.evaluate(() => { (chrome.permissions as { request: unknown }).request = async () => true; });
      await offer.getByRole('button', { name: /Allow/ }).click();
      await expect.poll(() => offer.getAttribute('data-state')).toBe('granted');
    } finally {
      await ext.close();
    }
  });
});
