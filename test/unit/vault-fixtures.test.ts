/**
 * Vaults left by earlier releases, opened by this one: every migration runs against real old data.
 * - schema 1 (release of the backup issue), written out by hand from its migration: public keys
 *   spelled with "=" padding, which migration 2 normalises;
 * - schema 2 (release 0.1.0) and schema 3 (rows laid out for disk, src/platform/vault-rows.ts), each
 *   made by its own release's code (test/fixtures/make-vault-fixture.ts).
 * - schema 4 (restored sessions in pages, src/platform/vault-pages.ts): the same, with 6 of the
 *   sessions stored by the restore.
 * A later schema adds its fixture here, made by the release that introduces it.
 */
import 'fake-indexeddb/auto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBackupDecryptor, decodeBase64 } from '../../src/core/index.ts';
import { Vault } from '../../src/platform/vault.ts';
import { dumpDatabase, loadDatabase, type DatabaseDump } from '../harness/vault-dump.ts';

const KEY = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo';
let n = 0;

function v1Row(sessionId: string, uploadedEpoch: number) {
  return {
    roomId: '!room:example.org', sessionId, firstMessageIndex: 0, forwardedCount: 1, senderKey: 'sender',
    publicKey: `${KEY}=`, sessionData: { ephemeral: 'e', ciphertext: 'c', mac: 'm' }, uploadedEpoch, revision: sessionId, storedAt: 0,
  };
}

const schema1: DatabaseDump = {
  version: 1,
  stores: {
    sessions: {
      keyPath: ['roomId', 'sessionId'],
      indexes: [{ name: 'pending', keyPath: ['publicKey', 'uploadedEpoch'], unique: false, multiEntry: false }],
      records: [{ value: v1Row('waiting', 0) }, { value: v1Row('uploaded', 1) }],
    },
    kv: {
      keyPath: null,
      indexes: [],
      records: [
        { key: 'pin', value: { userId: '@old:example.org', version: '1', publicKey: `${KEY}=`, epoch: 1, source: 'proved', pinnedAt: 0 } },
        { key: 'upload', value: { attempt: 0, retryAt: null, stopped: null, lastSuccessAt: 5, lastError: null, serverCount: 1, serverEtag: '1', notice: null, batchLimit: null } },
      ],
    },
  },
};

describe('vaults of earlier releases', () => {
  it('schema 1: migration 2 gives the padded key its one spelling, so its pending session still uploads', async () => {
    const name = `fixture-v1-${n++}`;
    await loadDatabase(name, schema1);
    const vault = await Vault.open(name);
    expect(await vault.getPin()).toMatchObject({ publicKey: KEY, epoch: 1 });
    expect(await vault.countSessions()).toBe(2);
    expect(await vault.countPending(KEY, 1)).toBe(1);
    expect((await vault.pendingBatch(KEY, 1, 10)).map((r) => [r.sessionId, r.publicKey])).toEqual([['waiting', KEY]]);
    expect((await vault.getUploadState()).lastSuccessAt).toBe(5);
    expect(await vault.getRestoreState()).toBeUndefined();
    vault.close();
  });

  it('schema 2 with more rows than one migration batch: every row is rewritten, once, and counted', async () => {
    const rows = Array.from({ length: 2_501 }, (_, i) => ({
      value: { ...v1Row(`s${String(i).padStart(5, '0')}`, i % 2), publicKey: KEY, roomId: `!room${i % 7}:example.org` },
    }));
    const dump: DatabaseDump = {
      version: 2,
      stores: {
        ...schema1.stores,
        sessions: { ...schema1.stores.sessions!, records: rows },
        kv: { ...schema1.stores.kv!, records: [{ key: 'pin', value: { userId: '@old:example.org', version: '1', publicKey: KEY, epoch: 1, source: 'proved', pinnedAt: 0 } }] },
        restoreFailures: { keyPath: ['roomId', 'sessionId'], indexes: [], records: [] },
      },
    };
    const name = `fixture-v2-many-${n++}`;
    await loadDatabase(name, dump);
    const vault = await Vault.open(name);
    expect(await vault.countSessions()).toBe(2_501);
    expect(await vault.countPending(KEY, 1)).toBe(1_251);
    expect(await vault.countForKey(KEY)).toBe(2_501);
    vault.close();
    const stored = (await dumpDatabase(name)).stores.sessions!.records.map((r) => r.value as Record<string, unknown>);
    expect(stored.filter((r) => r.k === 0 && !('publicKey' in r))).toHaveLength(2_501);
  });

  it('a row whose public key number the list does not hold is reported as damage, not read as no key', async () => {
    const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/vault-v3.json'), 'utf8')) as { dump: DatabaseDump };
    const kv = fixture.dump.stores.kv!;
    const damaged: DatabaseDump = { ...fixture.dump, stores: { ...fixture.dump.stores, kv: { ...kv, records: kv.records.filter((r) => r.key !== 'publicKeys') } } };
    const name = `fixture-v3-damaged-${n++}`;
    await loadDatabase(name, damaged);
    const vault = await Vault.open(name);
    await expect(vault.sessionsAfter(null, 5)).rejects.toMatchObject({ kind: 'storage-unavailable', message: expect.stringMatching(/damaged/) });
    vault.close();
  });

  it.each([2, 3, 4])('schema %i: opens with its pin, earlier key, restore summary and failures, and its sessions decrypt', async (schema) => {
    const fixture = JSON.parse(readFileSync(join(import.meta.dirname, `../fixtures/vault-v${schema}.json`), 'utf8')) as {
      keys: { current: string; earlier: string };
      expect: { sessions: number; pendingForCurrent: number; forEarlier: number; restoreFailures: number; packed?: number };
      dump: DatabaseDump;
    };
    expect(fixture.dump.version).toBe(schema);
    const name = `fixture-v${schema}-${n++}`;
    await loadDatabase(name, fixture.dump);
    const vault = await Vault.open(name);
    const pin = (await vault.getPin())!;
    expect(pin).toMatchObject({ version: '2', epoch: 2 });
    expect(await vault.countSessions()).toBe(fixture.expect.sessions);
    expect(await vault.countPending(pin.publicKey, pin.epoch)).toBe(fixture.expect.pendingForCurrent);
    const [earlier] = await vault.getEarlierPins();
    expect(await vault.countForKey(earlier!.publicKey)).toBe(fixture.expect.forEarlier);
    expect(await vault.getRestoreState()).toMatchObject({ id: 'fixture-restore', phase: 'done', failed: 1 });
    expect(await vault.restoreFailures(10)).toHaveLength(fixture.expect.restoreFailures);

    const current = await createBackupDecryptor(decodeBase64(fixture.keys.current));
    const old = await createBackupDecryptor(decodeBase64(fixture.keys.earlier));
    for (const row of await vault.sessionsAfter(null, 100)) {
      const decryptor = row.publicKey === pin.publicKey ? current : old;
      const plain = await decryptor.decrypt(row.sessionData);
      expect(plain.algorithm).toBe('m.megolm.v1.aes-sha2');
    }
    // The pending ones still upload: read as a batch, marked by their revision.
    const batch = await vault.pendingBatch(pin.publicKey, pin.epoch, 100);
    expect(batch).toHaveLength(fixture.expect.pendingForCurrent);
    expect(await vault.markUploaded(batch, pin.epoch)).toBe(batch.length);
    expect(await vault.countPending(pin.publicKey, pin.epoch)).toBe(0);
    vault.close();
    // Laid out for disk (schema 3): every real row's ciphertext and sender key are bytes on disk;
    // what a restore stored is in pages (schema 4).
    const dumped = await dumpDatabase(name);
    const rows = dumped.stores.sessions!.records.map((r) => r.value as Record<string, unknown>);
    const packed = (dumped.stores.packed?.records ?? []).map((r) => r.value as { c: number; x: unknown[] });
    expect(packed.reduce((n, p) => n + p.c, 0)).toBe(fixture.expect.packed ?? 0);
    expect(rows).toHaveLength(fixture.expect.sessions - (fixture.expect.packed ?? 0));
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['d', 'e', 'f', 'i', 'k', 'roomId', 's', 'sessionId', 't', 'v', ...('r' in row ? ['r'] : [])].sort());
      expect(row.d).toHaveProperty('$bytes');
      expect(row.s).toHaveProperty('$bytes');
    }
  });
});
