/**
 * Element's side of bench/restore.ts, run in a Chromium page (bundled by bench/restore.ts into one
 * classic script that defines `ElementRestore`). It restores a server-side backup the way Element Web
 * does through matrix-js-sdk's rust crypto (src/rust-crypto/backup.ts `restoreKeyBackup` and
 * rust-crypto.ts `importBackedUpRoomKeys`, as on matrix-js-sdk's develop branch):
 *
 *   GET /room_keys/version/{version} and check the key against its public key;
 *   GET /room_keys/keys?version=… as one JSON response (js-sdk `downloadKeyBackup`);
 *   walk it room by room in chunks of 200 sessions (`CHUNK_SIZE`); per chunk, per room,
 *   `BackupDecryptionKey.decryptV1` + JSON.parse each entry (`RustBackupDecryptor.decryptSessions`),
 *   then `OlmMachine.importBackedUpRoomKeys` with one `new RoomId()` per key, as js-sdk builds its map.
 *
 * The OlmMachine opens an IndexedDB store with a 32-byte store key, as Element Web does
 * (`StoreHandle.openWithKey` + `OlmMachine.initFromStore`). Nothing here prints a secret.
 */
import {
  BackupDecryptionKey, DeviceId, initAsync, OlmMachine, RoomId, StoreHandle, UserId,
} from '@matrix-org/matrix-sdk-crypto-wasm';

export interface ElementRestoreInput {
  baseUrl: string;
  accessToken: string;
  userId: string;
  deviceId: string;
  version: string;
  /** The backup private key, standard base64 (what `BackupDecryptionKey.fromBase64` takes). */
  privateKeyBase64: string;
  storeName: string;
  storeKey: number[];
  /** Where the page's server serves the wasm (application/wasm, for instantiateStreaming). */
  wasmUrl: string;
}

export interface ElementRestoreResult {
  total: number;
  imported: number;
  /** Entries js-sdk would have logged and skipped (decrypt) or counted as failures (import). */
  decryptFailures: number;
  importFailures: number;
  /** performance.now() deltas in the page, from the first request to the last import. */
  wallMs: number;
  steps: { versionAndKeyCheckMs: number; downloadMs: number; decryptMs: number; importMs: number; openStoreMs: number };
  responseBytes: number;
  /** The wasm module's linear memory at the end (it never shrinks: this is its peak). */
  wasmMemoryBytes: number;
}

interface KeyBackupSession {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: { ephemeral: string; ciphertext: string; mac: string };
}
type KeyBackupRoomSessions = Record<string, KeyBackupSession>;
interface KeyBackup { rooms: Record<string, { sessions: KeyBackupRoomSessions }> }
type MegolmSessionData = Record<string, unknown> & { room_id: string; session_id: string };

let wasmMemory: WebAssembly.Memory | undefined;

/** Loads the wasm once, keeping a handle on its memory so its size can be reported. */
async function loadWasm(url: string): Promise<void> {
  if (wasmMemory) return;
  const instantiateStreaming = WebAssembly.instantiateStreaming.bind(WebAssembly);
  WebAssembly.instantiateStreaming = async (source, imports) => {
    const result = await instantiateStreaming(source, imports);
    wasmMemory = result.instance.exports.memory as WebAssembly.Memory;
    return result;
  };
  try {
    await initAsync(url);
  } finally {
    WebAssembly.instantiateStreaming = instantiateStreaming;
  }
  if (!wasmMemory) throw new Error('the wasm module was not instantiated through instantiateStreaming');
}

async function authedGet(input: ElementRestoreInput, path: string): Promise<{ json: unknown; bytes: number }> {
  const response = await fetch(`${input.baseUrl}/_matrix/client/v3${path}`, { headers: { authorization: `Bearer ${input.accessToken}` } });
  // Read as text to count the bytes; js-sdk parses the same JSON in one go too.
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${path.split('?')[0]} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
  return { json: JSON.parse(text) as unknown, bytes: text.length };
}

export async function restore(input: ElementRestoreInput): Promise<ElementRestoreResult> {
  await loadWasm(input.wasmUrl);

  let t = performance.now();
  const userId = new UserId(input.userId);
  const deviceId = new DeviceId(input.deviceId);
  const handle = await StoreHandle.openWithKey(input.storeName, new Uint8Array(input.storeKey));
  const machine = await OlmMachine.initFromStore(userId, deviceId, handle);
  handle.free();
  userId.free();
  deviceId.free();
  const openStoreMs = performance.now() - t;

  const start = performance.now();
  t = start;
  const { json: info } = await authedGet(input, `/room_keys/version/${encodeURIComponent(input.version)}`);
  const decryptionKey = BackupDecryptionKey.fromBase64(input.privateKeyBase64);
  const publicKey = (info as { auth_data?: { public_key?: string } }).auth_data?.public_key;
  if (publicKey !== decryptionKey.megolmV1PublicKey.publicKeyBase64) throw new Error('the backup key does not match the backup version');
  const versionAndKeyCheckMs = performance.now() - t;

  t = performance.now();
  const { json, bytes } = await authedGet(input, `/room_keys/keys?version=${encodeURIComponent(input.version)}`);
  const keyBackup = json as KeyBackup;
  const downloadMs = performance.now() - t;

  let decryptMs = 0;
  let importMs = 0;
  let total = 0;
  for (const { sessions } of Object.values(keyBackup.rooms)) total += Object.keys(sessions).length;
  let imported = 0;
  let decryptFailures = 0;
  let importFailures = 0;

  const decryptSessions = (ciphertexts: KeyBackupRoomSessions): MegolmSessionData[] => {
    const keys: MegolmSessionData[] = [];
    for (const [sessionId, sessionData] of Object.entries(ciphertexts)) {
      try {
        const decrypted = JSON.parse(decryptionKey.decryptV1(
          sessionData.session_data.ephemeral, sessionData.session_data.mac, sessionData.session_data.ciphertext,
        )) as MegolmSessionData;
        decrypted.session_id = sessionId;
        keys.push(decrypted);
      } catch {
        decryptFailures++;
      }
    }
    return keys;
  };

  const importBackedUpRoomKeys = async (keys: MegolmSessionData[]): Promise<void> => {
    // As js-sdk: a fresh RoomId per key, so the map has one entry per key.
    const keysByRoom = new Map<RoomId, Map<string, MegolmSessionData>>();
    for (const key of keys) {
      const roomId = new RoomId(key.room_id);
      if (!keysByRoom.has(roomId)) keysByRoom.set(roomId, new Map());
      keysByRoom.get(roomId)!.set(key.session_id, key);
    }
    const result = await machine.importBackedUpRoomKeys(keysByRoom, () => {}, input.version);
    result.free();
  };

  const handleChunk = async (roomChunks: Map<string, KeyBackupRoomSessions>): Promise<void> => {
    let t0 = performance.now();
    const currentChunk: MegolmSessionData[] = [];
    for (const roomId of roomChunks.keys()) {
      for (const session of decryptSessions(roomChunks.get(roomId)!)) {
        session.room_id = roomId;
        currentChunk.push(session);
      }
    }
    decryptMs += performance.now() - t0;
    t0 = performance.now();
    try {
      await importBackedUpRoomKeys(currentChunk);
      imported += currentChunk.length;
    } catch {
      importFailures += currentChunk.length;
    }
    importMs += performance.now() - t0;
  };

  const CHUNK_SIZE = 200;
  let groupChunkCount = 0;
  let chunkGroupByRoom = new Map<string, KeyBackupRoomSessions>();
  for (const [roomId, roomData] of Object.entries(keyBackup.rooms)) {
    if (!roomData.sessions) continue;
    chunkGroupByRoom.set(roomId, {});
    for (const [sessionId, session] of Object.entries(roomData.sessions)) {
      chunkGroupByRoom.get(roomId)![sessionId] = session;
      groupChunkCount += 1;
      if (groupChunkCount >= CHUNK_SIZE) {
        await handleChunk(chunkGroupByRoom);
        chunkGroupByRoom = new Map();
        chunkGroupByRoom.set(roomId, {});
        groupChunkCount = 0;
      }
    }
  }
  if (groupChunkCount > 0) await handleChunk(chunkGroupByRoom);
  const wallMs = performance.now() - start;

  decryptionKey.free();
  machine.close();
  return {
    total, imported, decryptFailures, importFailures, wallMs,
    steps: { versionAndKeyCheckMs, downloadMs, decryptMs, importMs, openStoreMs },
    responseBytes: bytes,
    wasmMemoryBytes: wasmMemory!.buffer.byteLength,
  };
}

/** How many sessions the store holds now (read after the run, not timed). */
export async function countStored(input: Pick<ElementRestoreInput, 'userId' | 'deviceId' | 'storeName' | 'storeKey' | 'wasmUrl'>): Promise<number> {
  await loadWasm(input.wasmUrl);
  const userId = new UserId(input.userId);
  const deviceId = new DeviceId(input.deviceId);
  const handle = await StoreHandle.openWithKey(input.storeName, new Uint8Array(input.storeKey));
  const machine = await OlmMachine.initFromStore(userId, deviceId, handle);
  handle.free();
  userId.free();
  deviceId.free();
  const counts = await machine.roomKeyCounts();
  const total = counts.total;
  counts.free();
  machine.close();
  return total;
}
