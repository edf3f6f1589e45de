/** Entry for the browser bundle of the vault contract (test/e2e/vault-chromium.test.ts). */
import { Vault } from '../../src/platform/vault.ts';
import { runVaultContract, vaultContract } from './vault-contract.ts';

export const caseCount = vaultContract.length;
export function run(): Promise<Array<{ name: string; error: string }>> {
  return runVaultContract((name) => Vault.open(name));
}
