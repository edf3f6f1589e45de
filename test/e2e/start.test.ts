/** `npm start` as a newcomer runs it: everything starts, the worker answers, and it says how to sign in. */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/browser.ts';

const run = promisify(execFile);
const demoDir = mkdtempSync(join(tmpdir(), 'mkv-start-'));

async function start(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(join(repoRoot, 'node_modules/.bin/tsx'), ['scripts/start.ts', ...args], {
      cwd: repoRoot, env: { ...process.env, MKV_DEMO_DIR: demoDir, ...env }, timeout: 240_000, maxBuffer: 8 << 20,
    });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, out: (err.stdout ?? '') + (err.stderr ?? '') };
  }
}

describe('npm start', () => {
  afterAll(() => rmSync(demoDir, { recursive: true, force: true }));

  it('starts Synapse, the demo account and the extension, and says how to sign in', async () => {
    const { code, out } = await start(['--check']);
    expect(out).toContain('worker: answered the popup page');
    expect(code).toBe(0);
    expect(out).toMatch(/Homeserver\s+127\.0\.0\.1:\d+/);
    expect(out).toMatch(/Username\s+demo/);
    expect(out).toMatch(/Passphrase\s+demo-passphrase/);
    // An account as Element leaves it, to try unlock and restore: its Security Key is printed.
    expect(out).toMatch(/Username\s+element-user/);
    expect(out).toMatch(/Security Key\s+Es[1-9A-HJ-NP-Za-km-z]{2}( [1-9A-HJ-NP-Za-km-z]{4}){11}/);
    expect(out).toMatch(/element-user backup: .*backup version \d+ with 2000 keys and secret storage, made now/);
    expect(existsSync(join(demoDir, 'popup.png'))).toBe(true);
    expect(existsSync(join(demoDir, 'sample-keys.txt'))).toBe(true);
  });

  it('keeps the demo account and its state on a second start', async () => {
    const { code, out } = await start(['--check']);
    expect(code).toBe(0);
    expect(out).toMatch(/already there|kept from an earlier run/);
    expect(out).toMatch(/element-user backup: .*kept from an earlier run/);
  });

  it.each([
    [['--bogus'], {}, 'usage'],
    [['--check'], { CHROMIUM_PATH: '/nonexistent/chromium' }, 'chromium-missing'],
    [['--check'], { PYTHON: '/nonexistent/python3' }, 'python-missing'],
  ])('fails loudly with %j %j (%s)', async (args, env, kind) => {
    const { code, out } = await start(args, env);
    expect(code).toBe(1);
    expect(out).toContain(`npm start failed (${kind})`);
  });
});
