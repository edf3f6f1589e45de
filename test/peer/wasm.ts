/**
 * Loading Element's crypto (`@matrix-org/matrix-sdk-crypto-wasm`) once per process.
 *
 * In Node the package's `node.mjs` entry would also compile the wasm synchronously on first use, but
 * it throws if that happens while `initAsync()` is still running; awaiting `initPeer()` first in
 * every async helper (and checking `assertPeerReady()` in the synchronous ones) avoids that race.
 */
import { initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import { PeerError } from './errors.ts';

let loading: Promise<void> | undefined;
let ready = false;

/** Load and instantiate the wasm module. Safe to call any number of times, concurrently too. */
export function initPeer(): Promise<void> {
  loading ??= initAsync().then(() => { ready = true; });
  return loading;
}

export function assertPeerReady(): void {
  if (!ready) throw new PeerError('not-initialised', 'await initPeer() before calling the peer\'s synchronous helpers');
}
