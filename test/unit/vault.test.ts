/** The vault contract on fake-indexeddb. The same cases run in Chromium in test/e2e. */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { Vault } from '../../src/platform/vault.ts';
import { runVaultContract, vaultContract } from '../contract/vault-contract.ts';

let n = 0;
describe('vault contract (fake-indexeddb)', () => {
  for (const c of vaultContract) {
    it(c.name, async () => {
      const name = `vault-unit-${n++}`;
      await c.run(() => Vault.open(name));
    });
  }

  it('the runner reports a broken contract', async () => {
    // A vault whose putSessions claims to store but keeps nothing must fail the contract.
    const failures = await runVaultContract(async (name) => {
      const v = await Vault.open(name);
      v.putSessions = async (rows) => rows.map(() => 'stored' as const);
      return v;
    });
    expect(failures.length).toBeGreaterThan(0);
  });
});
