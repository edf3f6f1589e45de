/**
 * The decryption helper's page (an offscreen document, Chrome): opens the restore entries the worker
 * sends, on this page's own thread (src/platform/decrypt-helper.ts). The key comes with each request
 * and is dropped with its decryptor when the request is answered.
 */
import { createBackupDecryptor, decodeBase64 } from '../core/index.ts';
import { openEntries } from '../core/restore/open-entries.ts';
import { serveHelper } from '../platform/decrypt-helper-page.ts';

void serveHelper(async (privateKey, entries) => {
  const bytes = decodeBase64(privateKey, 'the unlocked key');
  const decryptor = await createBackupDecryptor(bytes).finally(() => bytes.fill(0));
  return openEntries(decryptor, entries);
}).catch((e: unknown) => {
  // The worker's request then times out and the restore goes on without this page.
  console.error('Matrix Key Vault: the decryption helper could not reach the worker:', e instanceof Error ? e.message : e);
});
