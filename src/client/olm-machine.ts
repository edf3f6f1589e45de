/**
 * The one place the kit reaches into matrix-js-sdk's internals.
 *
 * matrix-js-sdk has no public event for "a new megolm session exists" (its own backup learns of them
 * from the Rust `OlmMachine`). The machine is the PRIVATE field `olmMachine` of the `RustCrypto`
 * object `client.getCrypto()` returns (matrix-js-sdk 43, src/rust-crypto/rust-crypto.ts). A later
 * release may rename or hide it: then hand-over turns off with the reason below and fetching keys,
 * which uses only public API, goes on working.
 */

/** `RoomKeyInfo` from @matrix-org/matrix-sdk-crypto-wasm: `roomId` is a `RoomId` object. */
export interface KitRoomKeyInfo {
  readonly sessionId: string;
  readonly roomId: { toString(): string };
}

/** `InboundGroupSession` as `exportRoomKeys`' predicate sees it; `free` releases its wasm memory. */
export interface KitInboundGroupSession {
  readonly sessionId: string;
  free?(): void;
}

/** The two methods of the Rust `OlmMachine` hand-over uses (crypto-wasm 18's signatures). */
export interface KitOlmMachine {
  /** Fires for new outbound, received and imported sessions; may fire again for one session. */
  registerRoomKeyUpdatedCallback(callback: (keys: KitRoomKeyInfo[]) => Promise<void>): void;
  /** Calls the predicate once per stored session (a pass over all keys); resolves with the chosen ones as a JSON list in key-export shape. */
  exportRoomKeys(predicate: (session: KitInboundGroupSession) => boolean): Promise<string>;
}

export type MachineLookup = { ok: true; machine: KitOlmMachine } | { ok: false; missing: string; message: string };

const TAIL = 'new sessions are not handed to the vault; fetching keys still works';

/**
 * Reads the PRIVATE FIELD `crypto.olmMachine` of matrix-js-sdk's Rust crypto (the only private access
 * in the kit) and checks it has what hand-over calls. Never throws: hand-over is off if it fails.
 */
export function reachOlmMachine(crypto: object): MachineLookup {
  let machine: unknown;
  try {
    // PRIVATE FIELD (matrix-js-sdk RustCrypto.olmMachine): see the top of this file.
    machine = (crypto as { olmMachine?: unknown }).olmMachine;
  } catch (error) {
    return { ok: false, missing: 'olmMachine', message: `reading getCrypto().olmMachine threw (${String(error)}): ${TAIL}` };
  }
  if (typeof machine !== 'object' || machine === null) {
    return {
      ok: false,
      missing: 'olmMachine',
      message: `getCrypto() has no olmMachine (a private field of matrix-js-sdk's Rust crypto, renamed or removed in this release, or another crypto backend): ${TAIL}`,
    };
  }
  const m = machine as Record<string, unknown>;
  if (typeof m.registerRoomKeyUpdatedCallback !== 'function') {
    return { ok: false, missing: 'registerRoomKeyUpdatedCallback', message: `getCrypto().olmMachine has no registerRoomKeyUpdatedCallback(): ${TAIL}` };
  }
  if (typeof m.exportRoomKeys !== 'function') {
    return { ok: false, missing: 'exportRoomKeys', message: `getCrypto().olmMachine has no exportRoomKeys(): ${TAIL}` };
  }
  return { ok: true, machine: machine as KitOlmMachine };
}
