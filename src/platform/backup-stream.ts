/**
 * Reads `GET /room_keys/keys` as it arrives: a streaming JSON parser (`@streamparser/json`) emits
 * each `rooms.<roomId>.sessions.<sessionId>` entry and drops it from its stack, so memory holds one
 * chunk of entries, not the backup (≈ 500 bytes of JSON per key: 50 MB for 10⁵ keys, which
 * `JSON.parse` would hold two to four times over). Backpressure is the reader: the next network
 * chunk is read only after the caller has handled the entries already parsed.
 */
import { JSONParser } from '@streamparser/json';
import { ConnectionError, HomeserverError } from './homeserver.ts';

export interface RawBackupEntry {
  roomId: string;
  sessionId: string;
  /** The entry as the server sent it: checked by the caller (parseKeyBackupData). */
  value: unknown;
  /** The entry sits where the spec puts none (e.g. `sessions` is a list): a malformed entry. */
  misplaced?: true;
}

const WHOLE = 'GET /room_keys/keys';
const ROOM = 'GET /room_keys/keys/{roomId}';

function malformed(endpoint: string, message: string, cause?: unknown): HomeserverError {
  return new HomeserverError({ status: 200, endpoint, message: `${endpoint}: the homeserver's answer does not match the spec: ${message}`, cause });
}

/**
 * Yields the entries of a backup download in chunks of about `chunkSize`. Throws HomeserverError
 * (status 200) when the body is not a backup, ConnectionError when it stops arriving for
 * `idleTimeoutMs` or ends before the JSON does. With `roomId`, the body is one room's
 * (`GET /room_keys/keys/{roomId}`: `{"sessions": {...}}`), and its entries are that room's.
 */
export async function* backupEntryChunks(
  stream: ReadableStream<Uint8Array>,
  options: { chunkSize: number; idleTimeoutMs: number; roomId?: string },
): AsyncGenerator<RawBackupEntry[]> {
  const room = options.roomId;
  const endpoint = room === undefined ? WHOLE : ROOM;
  const parser = new JSONParser({ paths: [room === undefined ? '$.rooms.*.sessions.*' : '$.sessions.*'], keepStack: false });
  let queue: RawBackupEntry[] = [];
  let ended = false;
  let shapeError: HomeserverError | null = null;
  parser.onValue = ({ value, key, stack }) => {
    const roomId = room ?? stack[2]?.key;
    if (room === undefined ? stack[1]?.key !== 'rooms' || stack[3]?.key !== 'sessions' : stack[1]?.key !== 'sessions') {
      shapeError ??= malformed(endpoint, room === undefined
        ? '"rooms" must map room ids to objects whose "sessions" map session ids to entries'
        : '"sessions" must map session ids to entries');
      return;
    }
    // One room whose "rooms" or "sessions" is a list instead of a map: its entries are counted as
    // malformed, and the rest of the backup is restored.
    if (typeof key !== 'string' || typeof roomId !== 'string') {
      queue.push({ roomId: String(roomId), sessionId: `#${String(key)}`, value, misplaced: true });
      return;
    }
    queue.push({ roomId, sessionId: key, value });
  };
  parser.onEnd = () => { ended = true; };
  parser.onError = (e) => { shapeError ??= malformed(endpoint, `the body is not JSON (${e.message})`, e); };

  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await readWithin(reader, options.idleTimeoutMs, endpoint);
      if (done) break;
      if (!ended) parser.write(value);
      if (shapeError) throw shapeError;
      if (queue.length >= options.chunkSize) {
        const chunk = queue;
        queue = [];
        yield chunk;
      }
    }
    if (!ended) throw new ConnectionError('network', endpoint, `${endpoint}: the download ended before the backup did`);
    if (queue.length > 0) yield queue;
  } finally {
    // Stopping early (an error, a cancel, a kill of the loop) ends the download too.
    reader.cancel().catch(() => undefined);
  }
}

async function readWithin(reader: ReadableStreamDefaultReader<Uint8Array>, ms: number, endpoint: string): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectionError('timeout', endpoint, `${endpoint}: the download stalled for ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([reader.read(), idle]);
  } catch (e) {
    if (e instanceof ConnectionError) throw e;
    throw new ConnectionError('network', endpoint, `${endpoint}: the download broke off (${e instanceof Error ? e.message : String(e)})`, e);
  } finally {
    clearTimeout(timer);
  }
}
