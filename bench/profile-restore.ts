/**
 * Where the service worker's time goes during a restore in the BUILT extension: a CPU profile of the
 * worker (CDP `Profiler` on its target) from `restore.start` to done, summed by function (self time)
 * and by source file, with garbage collection and idle shown apart. Run:
 * `npx tsx bench/profile-restore.ts --keys 100000 [--rooms R]` (the backup is bench/scale-fill.ts's,
 * cached). The build is unminified (esbuild keeps names), into `.cache/bench-profile/build`. No kills,
 * no heap sampling: one restore, profiled. Nothing secret is printed.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import type { RestoreSummary, Result, VaultStatus } from '../src/shared/messages.ts';
import { buildExtension } from '../scripts/build.ts';
import { launchExtension, repoRoot } from '../test/harness/browser.ts';
import { fillScaleBackup } from './scale-fill.ts';

const log = (line: string): void => { process.stderr.write(`  … ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

/** A CDP session on the extension's service worker, through a page's session (see bench/heap-probe.ts). */
async function workerSession(context: BrowserContext, page: Page, extensionId: string): Promise<{ send(method: string, params?: object): Promise<any>; close(): Promise<void> }> {
  const cdp: CDPSession = await context.newCDPSession(page);
  const { targetInfos } = await cdp.send('Target.getTargets');
  const worker = targetInfos.find((t) => t.type === 'service_worker' && t.url.startsWith(`chrome-extension://${extensionId}/`));
  if (!worker) throw new Error(`no service worker target for ${extensionId}`);
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false });
  let nextId = 0;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  cdp.on('Target.receivedMessageFromTarget', (event) => {
    if (event.sessionId !== sessionId) return;
    const message = JSON.parse(event.message) as { id?: number; result?: unknown; error?: { message: string } };
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id!);
    if (message.error) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  });
  return {
    async send(method, params = {}) {
      const id = ++nextId;
      const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
      return answer;
    },
    close: () => cdp.detach(),
  };
}

function summarize(profile: Profile): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = (profile.endTime - profile.startTime) / 1000;
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const file = url ? url.replace(/^chrome-extension:\/\/[^/]+\//, '') : '(native)';
    const name = `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us / 1000);
    byFile.set(file, (byFile.get(file) ?? 0) + us / 1000);
  }
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  console.log(`profile: ${(total / 1000).toFixed(1)} s, ${profile.samples.length} samples`);
  console.log('self time by function (ms, % of the profile):');
  for (const [name, ms] of top(byFunction, 30)) console.log(`  ${ms.toFixed(0).padStart(8)}  ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
  console.log('self time by file:');
  for (const [name, ms] of top(byFile, 10)) console.log(`  ${ms.toFixed(0).padStart(8)}  ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { keys: { type: 'string', default: '100000' }, rooms: { type: 'string' }, 'no-build': { type: 'boolean', default: false } } });
  const keys = Number(values.keys);
  const rooms = values.rooms === undefined ? (keys >= 1_000_000 ? 1000 : 100) : Number(values.rooms);
  const out = join(repoRoot, '.cache/bench-profile/build');
  if (!values['no-build']) await buildExtension(out);
  const backup = await fillScaleBackup({ keys, rooms, log });
  const ext = await launchExtension({ extensionPath: join(out, 'chrome') });
  try {
    const page = await ext.openPage('popup.html');
    const call = async <T>(message: Record<string, unknown>): Promise<T> => {
      const answer = await page.evaluate((m) => chrome.runtime.sendMessage(m), message) as Result<T> | undefined;
      if (!answer?.ok) throw new Error(`${String(message.type)} failed: ${answer ? answer.error.message : 'no answer'}`);
      return answer.value;
    };
    await call({ type: 'account.login', homeserver: backup.synapse.baseUrl, user: backup.user.localpart, password: backup.user.password });
    await call({ type: 'vault.unlock', input: backup.recoveryKey });
    const worker = await workerSession(ext.context, page, ext.extensionId);
    await worker.send('Profiler.enable');
    await worker.send('Profiler.setSamplingInterval', { interval: 500 });
    await worker.send('Profiler.start');
    const started = performance.now();
    await call<RestoreSummary>({ type: 'restore.start' });
    let restore: RestoreSummary | null = null;
    for (;;) {
      await sleep(1000);
      restore = (await call<VaultStatus>({ type: 'status.get' })).restore;
      if (restore && restore.phase !== 'running' && restore.phase !== 'waiting') break;
    }
    const wall = performance.now() - started;
    const { profile } = await worker.send('Profiler.stop') as { profile: Profile };
    await worker.close();
    console.log(`restore of ${keys.toLocaleString('en')} keys: ${restore.phase}, restored ${restore.restored}, failed ${restore.failed}, ${(wall / 1000).toFixed(1)} s`);
    if (restore.timings) console.log(`timings: download ${(restore.timings.download / 1000).toFixed(1)} s, lookup ${(restore.timings.lookup / 1000).toFixed(1)} s, decrypt ${(restore.timings.decrypt / 1000).toFixed(1)} s, store ${(restore.timings.store / 1000).toFixed(1)} s`);
    summarize(profile);
  } finally {
    await ext.context.close();
    await backup.synapse.stop();
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
