/**
 * Forged and random bridge messages from a hostile page on an allowed site: 1,200 of them, made by a
 * seeded generator in the page's own world (so anything a page can post — cycles, Maps, Dates, huge
 * strings, prototype keys, internal request types, look-alike targets — is posted as a page would).
 * Afterwards: the same worker (no crash), the vault, the grants and scopes, the lock state and the
 * upload state unchanged, approval windows only as the method allows (one at a time, none right after
 * a "no", none answered), every answer a known error code, and the site still served.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/shared/page-api.ts';
import { APPROVAL_COOLDOWN_MS } from '../../src/background/sites.ts';
import { chromeDist, launchExtension, type ExtensionBrowser } from '../harness/browser.ts';
import { createBackupViaPage, signInViaPopup, workerStatus } from '../harness/extension-ui.ts';
import { allowSiteViaPopup, callVault, findsProvider, grantedCopy, startSite, type Site } from '../harness/page-site.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { uniqueLocalpart } from '../harness/synapse.ts';

const SEED = 0x6d6b76; // "mkv": the same messages every run
const COUNT = 1200;

describe('hostile page messages', () => {
  const synapse = sharedSynapse();
  let tmp: string;
  let ext: ExtensionBrowser;
  let site: Site;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mkv-fuzz-'));
    ext = await launchExtension({ extensionPath: grantedCopy(chromeDist, join(tmp, 'ext')) });
    site = await startSite();
  });
  afterAll(async () => {
    await ext?.close();
    await site?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it(`${COUNT} seeded forged messages cause no privileged action, no crash and no change`, async () => {
    const localpart = uniqueLocalpart('fuzz');
    await synapse.registerUser(localpart, 'fuzz password, long enough');
    const popup = await signInViaPopup(ext, synapse.baseUrl, localpart, 'fuzz password, long enough');
    const recoveryKey = await createBackupViaPage(ext, popup);
    expect((await popup.evaluate((input) => chrome.runtime.sendMessage({ type: 'vault.unlock', input }), recoveryKey)).ok).toBe(true);
    // Only 'read': a forged request for 'backup' may open the approval window (that is what the
    // method is for), but nothing may grant it without a click in that window.
    await (await allowSiteViaPopup(ext, site.origin, ['read'])).close();

    const page = await ext.context.newPage();
    await page.goto(site.origin);
    expect(await findsProvider(page)).toBe(true);
    const before = await snapshot();
    const pagesBefore = ext.context.pages().length;
    const approvals: string[] = [];
    ext.context.on('page', (p) => { if (p.url().includes('approve.html')) approvals.push(p.url()); });
    const fuzzStarted = Date.now();

    const outcome = await page.evaluate(async ([seed, count]) => {
      // mulberry32: small, seeded, good enough to pick shapes.
      let s = seed >>> 0;
      const rnd = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
      const pick = <T,>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
      const str = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rnd() * 95))).join('');
      const methods = ['vault_status', 'vault_getRoomKeys', 'vault_backupRoomKeys', 'vault_requestScopes', 'page.hello', 'page.call',
        'vault.unlock', 'vault.lock', 'sites.allow', 'sites.revoke', 'account.signOut', 'vault.exportBatch', 'approval.answer', 'status.get',
        '__proto__', 'constructor', 'toString', '', 'VAULT_STATUS', 'vault_status ', 'eth_requestAccounts'];
      const value = (depth: number): unknown => {
        const kind = depth > 5 ? pick(['s', 'n', 'b', 'null']) : pick(['s', 'n', 'b', 'null', 'arr', 'obj', 'obj', 'proto', 'map', 'date', 'cycle', 'big', 'nan', 'undef']);
        switch (kind) {
          case 's': return str(Math.floor(rnd() * 40));
          case 'n': return pick([0, -1, 1e308, 4100, Number.MAX_SAFE_INTEGER, rnd()]);
          case 'b': return rnd() < 0.5;
          case 'null': return null;
          case 'arr': return Array.from({ length: Math.floor(rnd() * 5) }, () => value(depth + 1));
          case 'obj': return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 5) }, () => [pick(['roomId', 'sessionId', 'sessions', 'scopes', 'room_id', 'session_id', 'session_key', 'algorithm', 'origin', 'input', str(6)]), value(depth + 1)]));
          case 'proto': return JSON.parse(pick(['{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"sessions":[{"__proto__":{"roomId":"!r:x"}}]}']));
          case 'map': return new Map([[str(3), value(depth + 1)]]);
          case 'date': return new Date(0);
          case 'cycle': { const o: Record<string, unknown> = { a: 1 }; o.self = o; return o; }
          case 'big': return 'x'.repeat(1_100_000);
          case 'nan': return NaN;
          default: return undefined;
        }
      };
      const params = (method: string): unknown => {
        const r = rnd();
        if (r < 0.3) return value(0);
        if (method === 'vault_getRoomKeys' || method === 'vault_backupRoomKeys') {
          const n = pick([0, 1, 3, 100, 101, 5000]);
          return { sessions: Array.from({ length: n }, () => (rnd() < 0.5
            ? { roomId: pick(['!r:x', 'r', '', str(300)]), sessionId: pick(['s', '', str(300)]) }
            : { room_id: '!r:x', session_id: str(43), session_key: str(20), algorithm: pick(['m.megolm.v1.aes-sha2', 'x']), sender_key: str(43) })) };
        }
        if (method === 'vault_requestScopes') return { scopes: pick([['read'], ['backup'], ['read', 'backup'], ['admin'], [], 'read', [['read']]]) };
        if (method === 'sites.allow') return { origin: location.origin, scopes: ['read', 'backup'] };
        return value(1);
      };
      const answers: Array<{ code?: number; ok?: boolean }> = [];
      window.addEventListener('message', (e) => {
        const d = e.data as { target?: string; kind?: string; id?: unknown; error?: { code?: number } };
        if (d?.target === 'matrix-key-vault/page' && d.kind === 'response' && typeof d.id === 'string' && d.id.startsWith('fuzz-')) {
          answers.push(d.error ? { code: d.error.code } : { ok: true });
        }
      });
      let posted = 0;
      let refusedByBrowser = 0;
      for (let i = 0; i < count; i++) {
        const method = pick(methods);
        const shape = rnd();
        let message: unknown;
        if (shape < 0.6) message = { target: 'matrix-key-vault/bridge', id: `fuzz-${i}`, method, params: params(method) };
        else if (shape < 0.7) message = { target: 'matrix-key-vault/bridge', id: pick([i, null, '', 'x'.repeat(100), { id: 1 }]), method, params: params(method) };
        else if (shape < 0.78) message = { target: pick(['matrix-key-vault/page', 'matrix-key-vault', 'MATRIX-KEY-VAULT/BRIDGE', str(10)]), id: `fuzz-${i}`, method, params: params(method), kind: pick(['ready', 'response', 'event', 'revoked']) };
        else if (shape < 0.86) message = { type: method, ...(params(method) as object ?? {}) }; // an extension page's request, raw
        else if (shape < 0.93) message = value(0);
        else message = { target: 'matrix-key-vault/bridge', id: `fuzz-${i}`, method: 'vault_backupRoomKeys', params: { sessions: [{ room_id: '!r:x', session_id: 'a', session_key: 'x'.repeat(2_000_000) }] } };
        try {
          window.postMessage(message, pick([location.origin, '*']));
          posted++;
        } catch {
          refusedByBrowser++; // not cloneable: the browser itself refuses to post it
        }
        // Forged announcements and events cost the extension nothing, but a page may send them.
        if (rnd() < 0.05) window.dispatchEvent(new CustomEvent('matrix-key-vault:announce', { detail: value(1) }));
        if (i % 50 === 0) await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 5000));
      return { posted, refusedByBrowser, answers, polluted: ({} as Record<string, unknown>).polluted ?? null };
    }, [SEED, COUNT] as const);

    expect(outcome.posted + outcome.refusedByBrowser).toBe(COUNT);
    expect(outcome.posted).toBeGreaterThan(COUNT * 0.8);
    expect(outcome.polluted).toBeNull();
    // Every answer is a result or one of the documented codes.
    const known = new Set<number>(Object.values(ErrorCode));
    expect(outcome.answers.length).toBeGreaterThan(300);
    for (const a of outcome.answers) if (!a.ok) expect(known.has(a.code!), `unexpected code ${a.code}`).toBe(true);

    // Nothing changed and no worker restart. Approval windows: one at a time and none right after a
    // "no", so at most one per cooldown (each closed unanswered here, which counts as a "no").
    const fuzzSeconds = (Date.now() - fuzzStarted) / 1000;
    for (const p of ext.context.pages().filter((p) => p.url().includes('approve.html'))) await p.close();
    expect(approvals.length).toBeLessThanOrEqual(1 + Math.ceil(fuzzSeconds / (APPROVAL_COOLDOWN_MS / 1000)));
    expect(await snapshot()).toEqual(before);
    expect(ext.context.pages().length).toBe(pagesBefore);
    await new Promise((r) => setTimeout(r, 2500)); // the flood spent the site's request budget; it refills
    // The page's forged "revoked" disconnected its own provider; asking again finds the vault again.
    expect(await findsProvider(page)).toBe(true);
    const status = await callVault(page, 'vault_status');
    expect(status.error).toBeUndefined();
    expect(status.result).toMatchObject({ state: 'unlocked', scopes: ['read'] });
    await page.close();

    async function snapshot() {
      const status = await workerStatus(popup);
      const sites = await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'sites.list' }));
      const scripts = await ext.worker.evaluate(() => chrome.scripting.getRegisteredContentScripts().then((l) => l.map((s) => s.id).sort()));
      return {
        bootId: status.worker.bootId, account: status.account?.userId, unlocked: status.unlocked?.publicKey ?? null,
        stored: status.upload.stored, pending: status.upload.pending, stopped: status.upload.stopped,
        backup: status.backup?.version, sites: (sites.value as Array<{ origin: string; scopes: string[] }>).map((g) => `${g.origin} ${g.scopes.join(',')}`), scripts,
      };
    }
  });
});
