/** Ed25519 signature checks (RFC 8032) for session keys and signed JSON, via @noble/curves. */
import { ed25519 } from '@noble/curves/ed25519.js';

/**
 * Whether `signature` is `publicKey`'s signature of `message`. Wrong lengths and points off the
 * curve make noble throw; for untrusted input that simply means "not signed by this key".
 */
export function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
