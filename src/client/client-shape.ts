/**
 * What the kit needs from a matrix-js-sdk `MatrixClient` it did not load, checked at run time. The
 * kit must not import matrix-js-sdk (a second copy in a page throws "Multiple matrix-js-sdk
 * entrypoints detected"), so these are its own structural types, and every missing piece gets its
 * own message: the client may be Element Web's (`window.mxMatrixClientPeg.get()`), of any version.
 */
import type { ExportedRoomKey } from '../shared/page-api.ts';
import { reachOlmMachine, type MachineLookup } from './olm-machine.ts';

/** The `CryptoApi` method the kit calls (public API since matrix-js-sdk 29). */
export interface KitCrypto {
  importRoomKeys(keys: ExportedRoomKey[]): Promise<void>;
}

type Listener = (...args: never[]) => void;

/** The client's methods the kit calls, bound to the client. */
export interface ClientParts {
  on(event: string, listener: Listener): void;
  off(event: string, listener: Listener): void;
  getUserId(): string | null;
  /** `Room`s, each checked where it is read; throws a TypeError if the client returns no list. */
  getRooms(): unknown[];
  crypto: KitCrypto;
  /** The Rust machine for hand-over, or why hand-over is off. */
  machine: MachineLookup;
}

export type ClientCheck = { ok: true; parts: ClientParts } | { ok: false; missing: string; message: string };

const SDK = 'matrix-js-sdk ≥ 43 with Rust crypto';

function missing(name: string, message: string): ClientCheck {
  return { ok: false, missing: name, message };
}

/** Never throws: a client the kit cannot use comes back as `{ ok: false }` with what is missing and why. */
export function checkClient(client: unknown): ClientCheck {
  if (typeof client !== 'object' || client === null) {
    return missing('client', `no client: expected a matrix-js-sdk MatrixClient, got ${client === null ? 'null' : typeof client} (not signed in yet?)`);
  }
  const c = client as Record<string, unknown>;
  if (typeof c.on !== 'function') return missing('on', `the client has no on() to listen to its events: is it a ${SDK} MatrixClient?`);
  const off = typeof c.off === 'function' ? c.off : c.removeListener;
  if (typeof off !== 'function') return missing('off', 'the client has neither off() nor removeListener(): the kit could not stop listening on detach');
  if (typeof c.getUserId !== 'function') return missing('getUserId', 'the client has no getUserId(): the kit cannot tell whose keys these are');
  if (typeof c.getRooms !== 'function') return missing('getRooms', 'the client has no getRooms(): the kit cannot find events that failed before it was attached');
  if (typeof c.getCrypto !== 'function') return missing('getCrypto', `the client has no getCrypto(): ${SDK} is needed`);
  let crypto: unknown;
  try {
    crypto = (c.getCrypto as () => unknown).call(client);
  } catch (error) {
    return missing('crypto', `the client's getCrypto() threw: ${String(error)}`);
  }
  if (typeof crypto !== 'object' || crypto === null) {
    return missing('crypto', 'the client has no encryption set up: call `await client.initRustCrypto()` before attaching the vault');
  }
  const importRoomKeys = (crypto as Record<string, unknown>).importRoomKeys;
  if (typeof importRoomKeys !== 'function') {
    return missing('importRoomKeys', `getCrypto() has no importRoomKeys(): ${SDK} is needed`);
  }
  return {
    ok: true,
    parts: {
      on: (event, listener) => { (c.on as (e: string, l: Listener) => void).call(client, event, listener); },
      off: (event, listener) => { (off as (e: string, l: Listener) => void).call(client, event, listener); },
      getUserId: () => {
        const id: unknown = (c.getUserId as () => unknown).call(client);
        return typeof id === 'string' ? id : null;
      },
      getRooms: () => {
        const rooms: unknown = (c.getRooms as () => unknown).call(client);
        if (!Array.isArray(rooms)) throw new TypeError(`the client's getRooms() returned ${typeof rooms}, not a list of rooms`);
        return rooms;
      },
      crypto: { importRoomKeys: (keys) => (importRoomKeys as KitCrypto['importRoomKeys']).call(crypto, keys) },
      machine: reachOlmMachine(crypto),
    },
  };
}
