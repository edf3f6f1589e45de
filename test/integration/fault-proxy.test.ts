/**
 * The test harness itself. The fault proxy, in front of the real Synapse: each fault kind is
 * observable as promised, scripts and seeded randomness are reproducible, the cap ends a run, and
 * stop() frees stalls. The Synapse harness: it fails loudly, with the log, instead of skipping.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FAULT_KINDS, FaultProxyError, startFaultProxy, type FaultKind, type FaultProxy } from '../harness/fault-proxy.ts';
import { sharedSynapse } from '../harness/synapse-global.ts';
import { registerUser, startSynapse, SynapseHarnessError, uniqueLocalpart, type SynapseUser } from '../harness/synapse.ts';

const synapse = sharedSynapse();
let proxy: FaultProxy;
let user: SynapseUser;

beforeAll(async () => {
  user = await synapse.registerUser(uniqueLocalpart('proxy'), 'proxy-password');
  proxy = await startFaultProxy(synapse.baseUrl);
});
afterAll(() => proxy.stop());
afterEach(() => { proxy.setPlan({}); proxy.resetCounts(); });

const versionsPath = '/_matrix/client/versions';

function accountDataPath(type: string): string {
  return `/_matrix/client/v3/user/${encodeURIComponent(user.userId)}/account_data/${type}`;
}

function auth(): Record<string, string> {
  return { authorization: `Bearer ${user.accessToken}`, 'content-type': 'application/json' };
}

/** Reads straight from Synapse, bypassing the proxy: what did the server really store? */
async function storedDirectly(type: string): Promise<number> {
  const res = await fetch(`${synapse.baseUrl}${accountDataPath(type)}`, { headers: auth() });
  await res.arrayBuffer();
  return res.status;
}

async function statusVia(path: string): Promise<number> {
  const res = await fetch(`${proxy.baseUrl}${path}`);
  await res.arrayBuffer();
  return res.status;
}

describe('fault proxy against Synapse', () => {
  it('forwards untouched when there is no plan', async () => {
    const direct = await (await fetch(`${synapse.baseUrl}${versionsPath}`)).json();
    const res = await fetch(`${proxy.baseUrl}${versionsPath}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(direct);
    const counts = proxy.counts();
    expect(counts.forwarded).toBe(1);
    expect(Object.values(counts.injected).every((n) => n === 0)).toBe(true);
  });

  it('forwards method, body and headers (a PUT with a token works through it)', async () => {
    const res = await fetch(`${proxy.baseUrl}${accountDataPath('org.example.through')}`, { method: 'PUT', headers: auth(), body: JSON.stringify({ n: 1 }) });
    expect(res.status).toBe(200);
    expect(await storedDirectly('org.example.through')).toBe(200);
  });

  it('applies a script in order to matching requests only, then passes', async () => {
    proxy.setPlan({ match: { method: 'GET', path: /\/versions$/ }, script: ['status-500', 'pass', 'status-503'] });
    const seen = [];
    seen.push(await statusVia(versionsPath));
    seen.push(await statusVia('/.well-known/matrix/client')); // not matched: passes, uses no step
    seen.push(await statusVia(versionsPath));
    seen.push(await statusVia(versionsPath));
    seen.push(await statusVia(versionsPath)); // script used up
    expect(seen).toEqual([500, 200, 200, 503, 200]);
    expect(proxy.counts()).toMatchObject({ matched: 4, injected: { 'status-500': 1, 'status-503': 1 } });
    expect(proxy.events().map((e) => e.fault)).toEqual(['status-500', 'pass', 'pass', 'status-503', 'pass']);
  });

  it('answers 429 with retry_after_ms in the body', async () => {
    proxy.setPlan({ script: ['limit-body'], retryAfterMs: 2500 });
    const res = await fetch(`${proxy.baseUrl}${versionsPath}`);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(await res.json()).toMatchObject({ errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 2500 });
    expect(proxy.counts().injected['limit-body']).toBe(1);
  });

  it('answers 429 with only a Retry-After header, in whole seconds rounded up', async () => {
    proxy.setPlan({ script: ['limit-header'], retryAfterMs: 2500 });
    const res = await fetch(`${proxy.baseUrl}${versionsPath}`);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('3');
    const body = await res.json() as Record<string, unknown>;
    expect(body.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(body).not.toHaveProperty('retry_after_ms');
  });

  it('answers 500 with a Matrix body, 502 with HTML and 503 with text and Retry-After', async () => {
    proxy.setPlan({ script: ['status-500', 'status-502', 'status-503'], retryAfterMs: 1000 });
    const r500 = await fetch(`${proxy.baseUrl}${versionsPath}`);
    expect([r500.status, ((await r500.json()) as { errcode: string }).errcode]).toEqual([500, 'M_UNKNOWN']);
    const r502 = await fetch(`${proxy.baseUrl}${versionsPath}`);
    expect([r502.status, await r502.text()]).toEqual([502, expect.stringContaining('Bad Gateway')]);
    const r503 = await fetch(`${proxy.baseUrl}${versionsPath}`);
    expect([r503.status, r503.headers.get('retry-after')]).toEqual([503, '1']);
    await r503.arrayBuffer();
    expect(proxy.counts().forwarded).toBe(0);
  });

  it('drop-before: the client gets no answer and the server never saw the request', async () => {
    proxy.setPlan({ script: ['drop-before'] });
    const put = fetch(`${proxy.baseUrl}${accountDataPath('org.example.dropbefore')}`, { method: 'PUT', headers: auth(), body: '{"x":1}' });
    await expect(put).rejects.toThrow(TypeError);
    expect(await storedDirectly('org.example.dropbefore')).toBe(404);
    expect(proxy.counts()).toMatchObject({ forwarded: 0, injected: { 'drop-before': 1 } });
  });

  it('drop-after: the client gets no answer but the server did the write', async () => {
    proxy.setPlan({ script: ['drop-after'] });
    const put = fetch(`${proxy.baseUrl}${accountDataPath('org.example.dropafter')}`, { method: 'PUT', headers: auth(), body: '{"x":1}' });
    await expect(put).rejects.toThrow(TypeError);
    expect(await storedDirectly('org.example.dropafter')).toBe(200);
    expect(proxy.counts()).toMatchObject({ forwarded: 1, injected: { 'drop-after': 1 } });
  });

  it('stall: holds the request for stallMs, then closes it without an answer', async () => {
    proxy.setPlan({ script: ['stall'], stallMs: 400 });
    const started = Date.now();
    await expect(fetch(`${proxy.baseUrl}${versionsPath}`)).rejects.toThrow(TypeError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    expect(proxy.counts()).toMatchObject({ forwarded: 0, injected: { stall: 1 } });
  });

  it('the same seed gives the same faults; another seed does not; rates hold roughly', async () => {
    const rates = { 'status-500': 0.3, 'limit-body': 0.2 };
    async function run(seed: number): Promise<string[]> {
      proxy.setPlan({ random: { seed, rates } });
      proxy.resetCounts();
      const before = proxy.events().length;
      for (let i = 0; i < 60; i++) await statusVia(versionsPath);
      return proxy.events().slice(before).map((e) => e.fault);
    }
    const a = await run(42);
    const b = await run(42);
    const c = await run(7);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    const faults = a.filter((f) => f !== 'pass').length;
    expect(faults).toBeGreaterThan(15); // expected 30 of 60
    expect(faults).toBeLessThan(45);
    expect(new Set(a)).toEqual(new Set(['pass', 'status-500', 'limit-body']));
  });

  it('stops injecting at maxFaults, so a run ends by itself', async () => {
    proxy.setPlan({ random: { seed: 1, rates: { 'status-500': 1 } }, maxFaults: 3 });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push(await statusVia(versionsPath));
    expect(statuses).toEqual([500, 500, 500, 200, 200, 200]);
    expect(proxy.counts().injected['status-500']).toBe(3);
  });

  it('stop() closes stalled sockets at once', async () => {
    const own = await startFaultProxy(synapse.baseUrl, { script: ['stall'], stallMs: 60_000 });
    const pending = fetch(`${own.baseUrl}${versionsPath}`);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await own.stop();
    await expect(pending).rejects.toThrow(TypeError);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(own.counts().injected.stall).toBe(1);
  });

  it('refuses a plan it cannot follow', () => {
    expect(() => proxy.setPlan({ script: ['explode' as FaultKind] })).toThrow(FaultProxyError);
    expect(() => proxy.setPlan({ random: { seed: 1, rates: { 'status-500': 0.7, stall: 0.5 } } })).toThrow(/more than 1/);
    expect(() => proxy.setPlan({ random: { seed: 1, rates: { 'status-500': -0.1 } } })).toThrow(/\[0, 1\]/);
    expect(() => proxy.setPlan({ random: { seed: 1, rates: { nope: 0.1 } as Record<string, number> } })).toThrow(/unknown fault kind/);
  });

  it('answers 403 M_WRONG_ROOM_KEYS_VERSION echoing the version sent, as Synapse does', async () => {
    proxy.setPlan({ script: ['wrong-version'] });
    const res = await fetch(`${proxy.baseUrl}/_matrix/client/v3/room_keys/keys?version=7`, { method: 'PUT', headers: auth(), body: '{"rooms":{}}' });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', current_version: '7' });
    expect(proxy.counts()).toMatchObject({ forwarded: 0, injected: { 'wrong-version': 1 } });
  });

  it('injected answers carry Synapse\'s CORS headers and nothing more', async () => {
    for (const kind of FAULT_KINDS.filter((k) => !['drop-before', 'drop-after', 'stall'].includes(k))) {
      proxy.setPlan({ script: [kind] });
      const res = await fetch(`${proxy.baseUrl}${versionsPath}`);
      await res.arrayBuffer();
      expect(res.headers.get('access-control-allow-origin'), kind).toBe('*');
      expect(res.headers.get('access-control-expose-headers'), kind).toBe('Synapse-Trace-Id, Server');
    }
    const real = await fetch(`${synapse.baseUrl}${versionsPath}`);
    await real.arrayBuffer();
    expect(real.headers.get('access-control-expose-headers')).toBe('Synapse-Trace-Id, Server');
  });

  it('can hide .well-known so that discovery keeps using the proxy', async () => {
    const hiding = await startFaultProxy(synapse.baseUrl, {}, { hideWellKnown: true });
    try {
      expect((await fetch(`${hiding.baseUrl}/.well-known/matrix/client`)).status).toBe(404);
      expect((await fetch(`${proxy.baseUrl}/.well-known/matrix/client`)).status).toBe(200);
    } finally {
      await hiding.stop();
    }
  });
});

describe('the Synapse harness', () => {
  it('registers through the shared secret, and refuses loudly with a wrong one', async () => {
    const localpart = uniqueLocalpart('harness');
    const made = await synapse.registerUser(localpart, 'pw', { admin: true });
    expect(made.userId).toBe(`@${localpart}:${synapse.serverName}`);
    const wrong = { ...synapse, registrationSharedSecret: 'not the secret' };
    await expect(registerUser(wrong, uniqueLocalpart('harness'), 'pw')).rejects.toThrow(SynapseHarnessError);
    await expect(registerUser(wrong, uniqueLocalpart('harness'), 'pw')).rejects.toThrow(/HTTP 403.*HMAC incorrect/);
  });

  it('logs an existing user in as a new device', async () => {
    const localpart = uniqueLocalpart('harness');
    const made = await synapse.registerUser(localpart, 'pw');
    const again = await synapse.login(localpart, 'pw');
    expect(again.userId).toBe(made.userId);
    expect(again.deviceId).not.toBe(made.deviceId);
  });

  it('fails with the log\'s tail when Synapse cannot start, and keeps the data dir for reading', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mkv-harness-test-'));
    try {
      const first = await startSynapse({ name: 'harness-test', dataDir, log: () => {} });
      await first.stop();
      // Point the kept config at the shared Synapse's port: the second start cannot bind.
      const configPath = join(dataDir, 'homeserver.yaml');
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as { listeners: Array<{ port: number }> };
      config.listeners[0]!.port = Number(new URL(synapse.baseUrl).port);
      writeFileSync(configPath, JSON.stringify(config));
      const failure = startSynapse({ name: 'harness-test', dataDir, log: () => {}, startTimeoutMs: 30_000 });
      await expect(failure).rejects.toThrow(SynapseHarnessError);
      await expect(failure).rejects.toThrow(/exited[\s\S]*homeserver\.log \(last lines\)[\s\S]*(Address already in use|Errno 98)/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
