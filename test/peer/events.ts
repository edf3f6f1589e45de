/** Decrypting room events the way Element's timeline does (`OlmMachine.decryptRoomEvent`). */
import type { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import { DecryptionSettings, RoomId, TrustRequirement } from '@matrix-org/matrix-sdk-crypto-wasm';
import { PeerError, describeWasmError } from './errors.ts';

export interface DecryptedPeerEvent {
  type: string;
  content: Record<string, unknown>;
  /** The Curve25519 key of the device that created the session. */
  senderCurve25519Key: string;
  senderClaimedEd25519Key: string | undefined;
}

/**
 * Decrypt one `m.room.encrypted` event (the whole event JSON, as PeerEvent.encrypted holds it).
 *
 * `trust` defaults to `Untrusted`: sessions restored from a backup or a key file carry no proof of who
 * created them (spec: the backup MAC authenticates nothing), and a stricter requirement makes the rust
 * SDK refuse them. Throws kind `event-decrypt` with the wasm's `DecryptionErrorCode` as `code`.
 */
export async function decryptEvent(machine: OlmMachine, encryptedEvent: string, roomId: string, trust = TrustRequirement.Untrusted): Promise<DecryptedPeerEvent> {
  const room = new RoomId(roomId);
  const settings = new DecryptionSettings(trust);
  try {
    const decrypted = await machine.decryptRoomEvent(encryptedEvent, room, settings);
    const event = JSON.parse(decrypted.event) as { type: string; content: Record<string, unknown> };
    const result = {
      type: event.type,
      content: event.content,
      senderCurve25519Key: decrypted.senderCurve25519Key,
      senderClaimedEd25519Key: decrypted.senderClaimedEd25519Key,
    };
    decrypted.free();
    return result;
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? Number((error as { code: unknown }).code) : undefined;
    throw new PeerError('event-decrypt', `Element's crypto could not decrypt the event: ${describeWasmError(error)}`, code === undefined ? { cause: error } : { cause: error, code });
  } finally {
    room.free();
    settings.free();
  }
}
