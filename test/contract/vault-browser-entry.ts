/** Entry for the browser bundle of the vault contract (test/e2e/vault-chromium.test.ts). */
import { createBackupDecryptor, decodeBase64 } from '../../src/core/index.ts';
import { Vault } from '../../src/platform/vault.ts';
import { dumpDatabase, loadDatabase, type DatabaseDump } from '../harness/vault-dump.ts';
import { runVaultContract, vaultContract } from './vault-contract.ts';

export const caseCount = vaultContract.length;
export function run(): Promise<Array<{ name: string; error: string }>> {
  return runVaultContract((name) => Vault.open(name));
}

/**
 * A vault left by an earlier schema (test/fixtures/vault-v*.json), upgraded by this release in the
 * browser's own IndexedDB: what it then holds, and whether every row is in the current layout.
 */
export async function upgrade(fixture: { keys: { current: string; earlier: string }; dump: DatabaseDump }, name: string): Promise<{
  sessions: number; pending: number; forEarlier: number; decrypted: number; marked: number; compact: number;
}> {
  await loadDatabase(name, fixture.dump);
  const vault = await Vault.open(name);
  let result;
  try {
    const pin = (await vault.getPin())!;
    const [earlier] = await vault.getEarlierPins();
    const current = await createBackupDecryptor(decodeBase64(fixture.keys.current));
    const old = await createBackupDecryptor(decodeBase64(fixture.keys.earlier));
    let decrypted = 0;
    for (const row of await vault.sessionsAfter(null, 1000)) {
      const plain = await (row.publicKey === pin.publicKey ? current : old).decrypt(row.sessionData);
      if (plain.algorithm === 'm.megolm.v1.aes-sha2') decrypted++;
    }
    result = {
      sessions: await vault.countSessions(),
      pending: await vault.countPending(pin.publicKey, pin.epoch),
      forEarlier: await vault.countForKey(earlier!.publicKey),
      decrypted,
      marked: await vault.markUploaded(await vault.pendingBatch(pin.publicKey, pin.epoch, 1000), pin.epoch),
    };
  } finally {
    vault.close();
  }
  const rows = (await dumpDatabase(name)).stores.sessions!.records.map((r) => r.value as Record<string, unknown>);
  const compact = rows.filter((r) => typeof r.k === 'number' && typeof (r.d as { $bytes?: unknown } | undefined)?.$bytes === 'string').length;
  return { ...result, compact };
}
