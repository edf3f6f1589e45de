/**
 * Signatures on a backup's `auth_data` (spec appendix "Signing JSON", reference §2.1, §7.3):
 * Ed25519 over the canonical JSON of the object without `signatures` and `unsigned`.
 */
import { decodeBase64 } from './base64.ts';
import { isJsonObject, utf8Encode } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import { CoreError, isCoreError } from './errors.ts';
import { verifyEd25519 } from './ed25519.ts';

/**
 * Whether `authData` carries a valid signature by `userId`'s key `keyId` (e.g. `ed25519:DEVICE`)
 * with the given Ed25519 public key. A missing or malformed signature is `false`; a malformed
 * public key (the caller's trusted input) throws kind `base64`/`length`.
 */
export function verifyAuthDataSignature(authData: unknown, userId: string, keyId: string, ed25519PublicKeyBase64: string): boolean {
  if (typeof ed25519PublicKeyBase64 !== 'string') throw new CoreError('field', 'the Ed25519 public key must be a base64 string');
  const publicKey = decodeBase64(ed25519PublicKeyBase64, 'the Ed25519 public key');
  if (publicKey.length !== 32) throw new CoreError('length', `the Ed25519 public key must be 32 bytes, got ${publicKey.length}`);
  if (!isJsonObject(authData)) return false;
  const signature = ownMember(ownMember(authData.signatures, userId), keyId);
  if (typeof signature !== 'string') return false;
  let signatureBytes: Uint8Array;
  try {
    signatureBytes = decodeBase64(signature, 'the signature');
  } catch (error) {
    if (isCoreError(error, 'base64')) return false; // server-supplied garbage is simply not a signature
    throw error;
  }
  const { signatures: _signatures, unsigned: _unsigned, ...signed } = authData;
  let message: Uint8Array;
  try {
    message = utf8Encode(canonicalJson(signed));
  } catch (error) {
    if (isCoreError(error, 'json')) return false; // e.g. a float: nobody can have signed it canonically
    throw error;
  }
  return verifyEd25519(signatureBytes, message, publicKey);
}

function ownMember(record: unknown, key: string): unknown {
  return isJsonObject(record) && Object.hasOwn(record, key) ? record[key] : undefined;
}
