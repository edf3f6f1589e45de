/**
 * Seals the access token with the vault's non-extractable AES-GCM key (what Element Web does with its
 * pickle key). This keeps the token out of plaintext storage; it does not stop someone who controls
 * the browser profile, who can ask the browser to use the key.
 */
import type { SealedSecret, Vault } from './vault.ts';

const AAD = new TextEncoder().encode('matrix-key-vault access token v1');

export async function sealToken(vault: Vault, token: string): Promise<SealedSecret> {
  const key = await vault.tokenKey();
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: AAD }, key, new TextEncoder().encode(token)),
  );
  return { iv, ciphertext };
}

export async function openToken(vault: Vault, sealed: SealedSecret): Promise<string> {
  const key = await vault.tokenKey();
  const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: sealed.iv, additionalData: AAD }, key, sealed.ciphertext);
  return new TextDecoder().decode(plain);
}
