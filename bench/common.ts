/** Pieces the benchmarks share: a Synapse client-server API call from Node, synthetic session keys. */
import { randomBytes, randomFillSync } from 'node:crypto';

/** A Synapse answer that was not 2xx: the route (without ids) and the start of its body. */
export class SynapseApiError extends Error {
  override readonly name = 'SynapseApiError';
  readonly kind = 'synapse';
}

/** `/_matrix/client/v3{path}` with the user's token; the JSON answer, or a SynapseApiError. */
export async function synapseApi<T>(baseUrl: string, accessToken: string, method: string, path: string, body?: unknown, timeoutMs = 600_000): Promise<T> {
  const response = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  if (!response.ok) throw new SynapseApiError(`${method} ${path.split('?')[0]} answered HTTP ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/**
 * A valid export-format megolm key for `publicKey` (session-key.ts): 0x01 ‖ index (u32 BE) ‖ 4×32
 * random ratchet bytes ‖ the Ed25519 public key. 70 % start at index 0, one in ten was forwarded.
 */
export function syntheticSessionKey(publicKey: Uint8Array): { key: Buffer; firstMessageIndex: number; forwarded: boolean } {
  const random = randomBytes(4);
  const firstMessageIndex = random[0]! < 179 ? 0 : 1 + (random.readUInt16BE(1) % 500);
  const key = Buffer.alloc(165);
  key[0] = 0x01;
  key.writeUInt32BE(firstMessageIndex, 1);
  randomFillSync(key, 5, 128);
  key.set(publicKey, 133);
  return { key, firstMessageIndex, forwarded: random[3]! < 26 };
}
