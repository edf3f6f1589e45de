/**
 * The peer's synchronous helpers before the wasm is loaded: a clear error, not the package's own
 * "The WASM module is being loaded asynchronously" race. Its own file, so the module is still
 * unloaded when the first test runs (vitest isolates test files).
 */
import { expect, it } from 'vitest';
import { initPeer, peerBackupPublicKey, readKeyFileWithPeer } from '../peer/index.ts';

it('refuses with kind not-initialised until initPeer() resolves, then works', async () => {
  const privateKey = crypto.getRandomValues(new Uint8Array(32));
  expect(() => peerBackupPublicKey(privateKey)).toThrow(expect.objectContaining({ kind: 'not-initialised' }));
  expect(() => readKeyFileWithPeer('', 'p')).toThrow(expect.objectContaining({ kind: 'not-initialised' }));
  await Promise.all([initPeer(), initPeer()]);
  expect(peerBackupPublicKey(privateKey)).toMatch(/^[A-Za-z0-9+/]{43}$/);
});
