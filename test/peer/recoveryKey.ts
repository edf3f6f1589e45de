/**
 * Element's recovery-key text, restated independently for cross-checks.
 *
 * wasm 18.9 exposes no base58 (its `BackupDecryptionKey` speaks base64 only; Element Web formats
 * recovery keys in matrix-js-sdk's `encodeRecoveryKey`). So this is the spec's algorithm (appendix
 * "Cryptographic key representation") written from scratch with BigInt arithmetic, deliberately not
 * sharing the core's base58 library: 0x8B 0x01 ‖ key ‖ XOR parity → Bitcoin base58 → groups of 4.
 */
const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function referenceRecoveryKey(key: Uint8Array): string {
  const bytes = [0x8b, 0x01, ...key];
  bytes.push(bytes.reduce((parity, b) => parity ^ b, 0));
  let value = bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
  let text = '';
  while (value > 0n) {
    text = ALPHABET[Number(value % 58n)]! + text;
    value /= 58n;
  }
  // The first byte is 0x8B, never 0x00, so no leading-zero '1's are needed.
  return text.replace(/(.{4})(?=.)/g, '$1 ');
}
