/**
 * Restore throughput: the core's backup decryptor against Element's crypto
 * (@matrix-org/matrix-sdk-crypto-wasm `BackupDecryptionKey.decryptV1`) on the same entries, in the
 * same process. Run: `npx tsx bench/decrypt.ts [entries]` (default 5,000).
 *
 * Each measurement is the median of several rounds after a warm-up; implementations are
 * interleaved within a round so that machine noise hits them alike.
 */
import { BackupDecryptionKey, initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import { base64 as scureBase64, base64nopad as scureBase64NoPad } from '@scure/base';
import {
  BackupEncryptor,
  createBackupDecryptor,
  decodeBase64,
  encodeBase64,
  hasNativeX25519,
  type BackedUpSessionData,
  type BackupDecryptor,
  type EncryptedSessionData,
} from '../src/core/index.ts';

const ENTRIES = Number(process.argv[2] ?? 5000);
const ROUNDS = 7;
const NOBLE_SHARE = 5; // pure-JS X25519 is slow: it runs on a fifth of the entries
const randomBytes = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));

/** A realistic backup plaintext: what Element's generator encrypts (~560 bytes, 165-byte session key). */
function sessionData(i: number): BackedUpSessionData {
  const sessionKey = randomBytes(165);
  sessionKey[0] = 0x01;
  sessionKey.set([0, 0, 0, i & 0xff], 1);
  return {
    algorithm: 'm.megolm.v1.aes-sha2',
    forwarding_curve25519_key_chain: [],
    'm.shared_history': true,
    room_id: `!bench${i % 97}:example.org`,
    sender_claimed_keys: { ed25519: encodeBase64(randomBytes(32)) },
    sender_key: encodeBase64(randomBytes(32)),
    session_id: encodeBase64(sessionKey.subarray(133)),
    session_key: encodeBase64(sessionKey),
  };
}

async function timeIt(run: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Row { name: string; count: number; times: number[] }

async function measure(rows: Row[], cases: Array<{ name: string; count: number; run: () => Promise<unknown> | unknown }>): Promise<void> {
  for (const c of cases) await c.run(); // warm-up: JIT, wasm instance, WebCrypto thread pool
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      const t = await timeIt(c.run);
      let row = rows.find((r) => r.name === c.name);
      if (!row) rows.push((row = { name: c.name, count: c.count, times: [] }));
      row.times.push(t);
    }
  }
}

function rate(row: Row): number {
  return (row.count / median(row.times)) * 1000;
}

async function sequential(decryptor: BackupDecryptor, list: EncryptedSessionData[]): Promise<void> {
  for (const sd of list) await decryptor.decrypt(sd);
}

async function main(): Promise<void> {
  await initAsync();
  const native = await hasNativeX25519();
  console.log(`Node ${process.version}, ${ENTRIES} entries, median of ${ROUNDS} rounds; native X25519: ${native ? 'yes' : 'NO'}`);

  const privateKey = randomBytes(32);
  const nativeDecryptor = await createBackupDecryptor(privateKey, { x25519: 'native' });
  const nobleDecryptor = await createBackupDecryptor(privateKey, { x25519: 'noble' });
  const plaintexts = Array.from({ length: ENTRIES }, (_, i) => sessionData(i));
  const encryptor = new BackupEncryptor(nativeDecryptor.publicKey, { x25519: 'native' });
  const entries: EncryptedSessionData[] = [];
  for (const p of plaintexts) entries.push(await encryptor.encrypt(p));
  const plaintextBytes = new TextEncoder().encode(JSON.stringify(plaintexts[0])).length;
  const ciphertextChars = entries.reduce((n, e) => n + e.ciphertext.length, 0) / ENTRIES;
  console.log(`plaintext ≈ ${plaintextBytes} bytes, ciphertext ≈ ${Math.round(ciphertextChars)} base64 chars`);

  // Same key, same blobs: Element's crypto and the core must agree on every entry.
  const wasmKey = BackupDecryptionKey.fromBase64(encodeBase64(privateKey));
  if (wasmKey.megolmV1PublicKey.publicKeyBase64 !== nativeDecryptor.publicKey) throw new Error('public keys differ');
  const results = await nativeDecryptor.decryptMany(entries);
  entries.forEach((e, i) => {
    const ours = results[i]!;
    if (!ours.ok) throw ours.error;
    const theirs = JSON.stringify(JSON.parse(wasmKey.decryptV1(e.ephemeral, e.mac, e.ciphertext)));
    if (theirs !== JSON.stringify(ours.value) || theirs !== JSON.stringify(plaintexts[i])) throw new Error(`entry ${i} differs`);
  });
  const nobleSlice = entries.slice(0, Math.ceil(ENTRIES / NOBLE_SHARE));
  for (const r of await nobleDecryptor.decryptMany(nobleSlice)) if (!r.ok) throw r.error;
  console.log('check: wasm decryptV1, core native and core noble give identical plaintexts for every entry\n');

  const decryptRows: Row[] = [];
  await measure(decryptRows, [
    { name: 'wasm BackupDecryptionKey.decryptV1', count: ENTRIES, run: () => { for (const e of entries) wasmKey.decryptV1(e.ephemeral, e.mac, e.ciphertext); } },
    { name: 'core native decrypt (sequential)', count: ENTRIES, run: () => sequential(nativeDecryptor, entries) },
    { name: 'core native decryptMany', count: ENTRIES, run: () => nativeDecryptor.decryptMany(entries) },
    { name: 'core noble decryptMany', count: nobleSlice.length, run: () => nobleDecryptor.decryptMany(nobleSlice) },
  ]);

  const nobleEncryptor = new BackupEncryptor(nativeDecryptor.publicKey, { x25519: 'noble' });
  const encryptSlice = plaintexts.slice(0, Math.ceil(ENTRIES / NOBLE_SHARE));
  const encryptRows: Row[] = [];
  await measure(encryptRows, [
    { name: 'core native encrypt (sequential)', count: ENTRIES, run: async () => { for (const p of plaintexts) await encryptor.encrypt(p); } },
    { name: 'core native encrypt (all in flight)', count: ENTRIES, run: () => Promise.all(plaintexts.map((p) => encryptor.encrypt(p))) },
    { name: 'core noble encrypt (sequential)', count: encryptSlice.length, run: async () => { for (const p of encryptSlice) await nobleEncryptor.encrypt(p); } },
  ]);

  const ciphertexts = entries.map((e) => e.ciphertext);
  const base64Rows: Row[] = [];
  await measure(base64Rows, [
    { name: 'core decodeBase64 (unpadded)', count: ENTRIES, run: () => { for (const c of ciphertexts) decodeBase64(c); } },
    { name: '@scure/base base64nopad.decode', count: ENTRIES, run: () => { for (const c of ciphertexts) scureBase64NoPad.decode(c); } },
    { name: '@scure/base base64.decode (padded input)', count: ENTRIES, run: () => { for (const c of ciphertexts) scureBase64.decode(c.padEnd(Math.ceil(c.length / 4) * 4, '=')); } },
  ]);

  const wasmRate = rate(decryptRows[0]!);
  const table = (title: string, rows: Row[], ratio: boolean): void => {
    console.log(title);
    for (const row of rows) {
      const perSecond = rate(row);
      const extra = ratio ? `${(perSecond / wasmRate).toFixed(2).padStart(6)}× wasm` : '';
      // The spread over rounds shows how noisy the machine was (other processes share the cores).
      const slowest = (row.count / Math.max(...row.times)) * 1000;
      const fastest = (row.count / Math.min(...row.times)) * 1000;
      const spread = `(${Math.round(slowest).toLocaleString('en')}–${Math.round(fastest).toLocaleString('en')})`;
      console.log(`  ${row.name.padEnd(44)} ${Math.round(perSecond).toLocaleString('en').padStart(9)} /s ${spread.padEnd(19)} ${extra}`);
    }
    console.log('');
  };
  table('decrypt (entries/s)', decryptRows, true);
  table('encrypt (entries/s)', encryptRows, false);
  table('base64 decode of a ciphertext field (fields/s)', base64Rows, false);
}

await main();
