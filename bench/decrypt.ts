/**
 * Restore throughput: the core's backup decryptor against Element's crypto
 * (@matrix-org/matrix-sdk-crypto-wasm `BackupDecryptionKey.decryptV1`) on the same entries, in the
 * same process; and the upload path's encryption.
 *
 *   npx tsx bench/decrypt.ts [entries]              Node (default 5,000 entries; ~1.5 min on 2 cores)
 *   npx tsx bench/decrypt.ts [entries] --chromium   also in a Chromium page (this file, bundled)
 *
 * Every case runs once per round, all cases interleaved, after a warm-up. A ratio is taken between
 * two cases of the SAME round and the median over rounds is printed: the machine is shared, and a
 * busy moment then slows both sides of a ratio instead of one. Rates are medians too, with the
 * slowest–fastest round beside them to show how noisy the machine was.
 *
 * Besides the platform's default paths (marked ▶) the tables keep the alternatives that were
 * measured when the split was chosen, so that the choice can be re-checked on another machine, Node
 * or browser: the other HKDF/AES-CBC implementation (src/core/backup-symmetric.ts), the previous
 * path (X25519 and AES-CBC in WebCrypto, HKDF in JS, 16 independent lanes; rebuilt here from the
 * same primitives), independent lanes instead of batches, and other batch sizes.
 *
 * Everything down to `runBench` is portable (WebCrypto, the core, the wasm package); only `main`
 * and `inChromium` use Node, and they load what they need with dynamic imports so that the browser
 * bundle of this file leaves them out.
 */
import { BackupDecryptionKey, initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base64 as scureBase64, base64nopad as scureBase64NoPad } from '@scure/base';
import { DEFAULT_BATCH_SIZE } from '../src/core/backup-cipher.ts';
import { defaultSymmetric, deriveEntryKeys, type SymmetricImplementation } from '../src/core/backup-symmetric.ts';
import {
  BackupEncryptor,
  createBackupDecryptor,
  decodeBase64,
  encodeBase64,
  encryptSessionData,
  hasNativeX25519,
  type BackedUpSessionData,
  type EncryptedSessionData,
} from '../src/core/index.ts';

const ROUNDS = 7;
const NOBLE_SHARE = 10; // pure-JS X25519 is slow: it runs on a tenth of the entries
const UPLOAD_CHUNK = 64; // src/background/ingest.ts encrypts this many sessions at a time
const randomBytes = (n: number): Uint8Array<ArrayBuffer> => crypto.getRandomValues(new Uint8Array(n));

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

// --- measuring -----------------------------------------------------------------------------------

interface Case { name: string; count: number; run: () => Promise<unknown> | unknown; chosen?: boolean }
/** One measured case: plain data, so that it survives the trip out of a browser page. */
export interface Row { name: string; count: number; chosen: boolean; times: number[] }

async function timeIt(run: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

async function measure(cases: Case[], rounds = ROUNDS): Promise<Row[]> {
  for (const c of cases) await c.run(); // warm-up: JIT, wasm instance, WebCrypto threads
  const rows: Row[] = cases.map((c) => ({ name: c.name, count: c.count, chosen: c.chosen ?? false, times: [] }));
  for (let round = 0; round < rounds; round++) {
    for (const [i, c] of cases.entries()) rows[i]!.times.push(await timeIt(c.run));
  }
  return rows;
}

// --- the previous path, rebuilt for comparison ---------------------------------------------------
// Until this bench chose otherwise, the core did X25519 AND AES-CBC in WebCrypto: per entry four
// calls to decrypt (import the ephemeral key, deriveBits, import the AES key, decrypt), six to
// encrypt, with 16 independent lanes in flight.

const X25519 = { name: 'X25519' } as const;
const PKCS8_X25519_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20];
const EMPTY = new Uint8Array(0);

async function webCryptoSharedSecret(privateKey: CryptoKey, peer: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const peerKey = await crypto.subtle.importKey('raw', peer, X25519, false, []);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: peerKey }, privateKey, 256));
}

async function previousDecrypt(privateKey: CryptoKey, entry: EncryptedSessionData): Promise<unknown> {
  const keys = deriveEntryKeys(await webCryptoSharedSecret(privateKey, decodeBase64(entry.ephemeral) as Uint8Array<ArrayBuffer>));
  if (encodeBase64(hmac(sha256, keys.macKey, EMPTY).subarray(0, 8)) !== entry.mac) throw new Error('MAC mismatch');
  const aesKey = await crypto.subtle.importKey('raw', keys.aesKey as Uint8Array<ArrayBuffer>, 'AES-CBC', false, ['decrypt']);
  const plaintext = await crypto.subtle.decrypt({ name: 'AES-CBC', iv: keys.iv as Uint8Array<ArrayBuffer> }, aesKey, decodeBase64(entry.ciphertext) as Uint8Array<ArrayBuffer>);
  return JSON.parse(new TextDecoder().decode(plaintext));
}

async function previousEncrypt(backupKey: Uint8Array<ArrayBuffer>, data: BackedUpSessionData): Promise<EncryptedSessionData> {
  const pair = (await crypto.subtle.generateKey(X25519, false, ['deriveBits'])) as CryptoKeyPair;
  const ephemeral = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const keys = deriveEntryKeys(await webCryptoSharedSecret(pair.privateKey, backupKey));
  const aesKey = await crypto.subtle.importKey('raw', keys.aesKey as Uint8Array<ArrayBuffer>, 'AES-CBC', false, ['encrypt']);
  const plaintext = new TextEncoder().encode(JSON.stringify(data));
  const ciphertext = await crypto.subtle.encrypt({ name: 'AES-CBC', iv: keys.iv as Uint8Array<ArrayBuffer> }, aesKey, plaintext);
  return { ephemeral: encodeBase64(ephemeral), ciphertext: encodeBase64(new Uint8Array(ciphertext)), mac: encodeBase64(hmac(sha256, keys.macKey, EMPTY).subarray(0, 8)) };
}

/** `lanes` independent workers, each awaiting one entry at a time (the previous schedule). */
async function inLanes<T>(items: readonly T[], lanes: number, run: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: lanes }, lane));
}

/** Chunks of `size` started together, one chunk after the other (what ingest.ts does). */
async function inChunks<T>(items: readonly T[], size: number, run: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(run));
}

async function oneAtATime<T>(items: readonly T[], run: (item: T) => Promise<unknown>): Promise<void> {
  for (const item of items) await run(item);
}

// --- the bench (portable) ------------------------------------------------------------------------

export interface BenchResult { notes: string[]; decrypt: Row[]; encrypt: Row[]; base64: Row[] }

export async function runBench(entryCount: number): Promise<BenchResult> {
  await initAsync();
  const chosen = defaultSymmetric();
  const other: SymmetricImplementation = chosen === 'js' ? 'webcrypto' : 'js';
  const notes = [`native X25519: ${(await hasNativeX25519()) ? 'yes' : 'NO'}; HKDF and AES-CBC by default: ${chosen}`];
  const privateKey = randomBytes(32);
  const nativeDecryptor = await createBackupDecryptor(privateKey, { x25519: 'native' });
  const otherDecryptor = await createBackupDecryptor(privateKey, { x25519: 'native', symmetric: other });
  const nobleDecryptor = await createBackupDecryptor(privateKey, { x25519: 'noble' });
  const plaintexts = Array.from({ length: entryCount }, (_, i) => sessionData(i));
  const encryptor = new BackupEncryptor(nativeDecryptor.publicKey, { x25519: 'native' });
  const entries: EncryptedSessionData[] = [];
  for (let i = 0; i < entryCount; i += UPLOAD_CHUNK) entries.push(...(await Promise.all(plaintexts.slice(i, i + UPLOAD_CHUNK).map((p) => encryptor.encrypt(p)))));
  const plaintextBytes = new TextEncoder().encode(JSON.stringify(plaintexts[0])).length;
  const ciphertextChars = entries.reduce((n, e) => n + e.ciphertext.length, 0) / entryCount;
  notes.push(`${entryCount.toLocaleString('en')} entries: plaintext ≈ ${plaintextBytes} bytes, ciphertext ≈ ${Math.round(ciphertextChars)} base64 chars`);

  // Same key, same blobs: Element's crypto and every path measured must agree on every entry.
  const wasmKey = BackupDecryptionKey.fromBase64(encodeBase64(privateKey));
  if (wasmKey.megolmV1PublicKey.publicKeyBase64 !== nativeDecryptor.publicKey) throw new Error('public keys differ');
  const webCryptoKey = await crypto.subtle.importKey('pkcs8', new Uint8Array([...PKCS8_X25519_PREFIX, ...privateKey]), X25519, false, ['deriveBits']);
  const [results, otherResults] = [await nativeDecryptor.decryptMany(entries), await otherDecryptor.decryptMany(entries)];
  for (let i = 0; i < entryCount; i++) {
    const theirs = JSON.stringify(JSON.parse(wasmKey.decryptV1(entries[i]!.ephemeral, entries[i]!.mac, entries[i]!.ciphertext)));
    if (theirs !== JSON.stringify(plaintexts[i])) throw new Error(`wasm: entry ${i} differs`);
    for (const ours of [results[i]!, otherResults[i]!]) {
      if (!ours.ok) throw ours.error;
      if (JSON.stringify(ours.value) !== theirs) throw new Error(`entry ${i} differs`);
    }
    if (i % 50 === 0 && JSON.stringify(await previousDecrypt(webCryptoKey, entries[i]!)) !== theirs) throw new Error(`previous path: entry ${i} differs`);
  }
  const nobleSlice = entries.slice(0, Math.ceil(entryCount / NOBLE_SHARE));
  for (const [i, r] of (await nobleDecryptor.decryptMany(nobleSlice)).entries()) {
    if (!r.ok || JSON.stringify(r.value) !== JSON.stringify(plaintexts[i])) throw new Error(`noble: entry ${i} differs`);
  }
  const backupKeyBytes = decodeBase64(nativeDecryptor.publicKey) as Uint8Array<ArrayBuffer>;
  const sealedByEach = [
    await encryptSessionData(nativeDecryptor.publicKey, plaintexts[0]!),
    await encryptSessionData(nativeDecryptor.publicKey, plaintexts[0]!, { symmetric: other }),
    await previousEncrypt(backupKeyBytes, plaintexts[0]!),
  ];
  for (const sealed of sealedByEach) {
    if (wasmKey.decryptV1(sealed.ephemeral, sealed.mac, sealed.ciphertext) !== JSON.stringify(plaintexts[0])) throw new Error('encryption check failed');
  }
  notes.push('check: wasm decryptV1, the core (both X25519, both HKDF/AES implementations) and the previous path agree on every entry');

  const sweep = [16, 256].filter((size) => size !== DEFAULT_BATCH_SIZE);
  const decrypt = await measure([
    { name: 'wasm BackupDecryptionKey.decryptV1 (Element\'s crypto)', count: entryCount, run: () => { for (const e of entries) wasmKey.decryptV1(e.ephemeral, e.mac, e.ciphertext); } },
    { name: `core decryptMany (HKDF+AES ${chosen}: default), batches of ${DEFAULT_BATCH_SIZE}`, count: entryCount, chosen: true, run: () => nativeDecryptor.decryptMany(entries) },
    { name: `core decryptMany (HKDF+AES ${other})`, count: entryCount, run: () => otherDecryptor.decryptMany(entries) },
    { name: 'core decrypt, one at a time', count: entryCount, run: () => oneAtATime(entries, (e) => nativeDecryptor.decrypt(e)) },
    { name: 'core decryptMany, noble X25519 (the fallback)', count: nobleSlice.length, run: () => nobleDecryptor.decryptMany(nobleSlice) },
    { name: 'previous: X25519+AES-CBC WebCrypto, HKDF JS, 16 lanes', count: entryCount, run: () => inLanes(entries, 16, (e) => previousDecrypt(webCryptoKey, e)) },
    { name: 'default split, 16 lanes instead of batches', count: entryCount, run: () => inLanes(entries, 16, (e) => nativeDecryptor.decrypt(e)) },
    ...sweep.map((size) => ({ name: `default split, batches of ${size}`, count: entryCount, run: () => nativeDecryptor.decryptMany(entries, { batchSize: size }) })),
  ]);

  const nobleEncryptor = new BackupEncryptor(nativeDecryptor.publicKey, { x25519: 'noble' });
  const plaintextSlice = plaintexts.slice(0, Math.ceil(entryCount / NOBLE_SHARE));
  const encrypt = await measure([
    { name: `previous: all WebCrypto (6 calls), ${UPLOAD_CHUNK} at a time`, count: entryCount, run: () => inChunks(plaintexts, UPLOAD_CHUNK, (p) => previousEncrypt(backupKeyBytes, p)) },
    { name: `core encryptSessionData (${chosen}: default), ${UPLOAD_CHUNK} at a time`, count: entryCount, chosen: true, run: () => inChunks(plaintexts, UPLOAD_CHUNK, (p) => encryptSessionData(nativeDecryptor.publicKey, p)) },
    { name: `core encryptSessionData (${other}), ${UPLOAD_CHUNK} at a time`, count: entryCount, run: () => inChunks(plaintexts, UPLOAD_CHUNK, (p) => encryptSessionData(nativeDecryptor.publicKey, p, { symmetric: other })) },
    { name: 'core BackupEncryptor.encrypt, one at a time', count: entryCount, run: () => oneAtATime(plaintexts, (p) => encryptor.encrypt(p)) },
    { name: 'core BackupEncryptor.encrypt, noble X25519, one at a time', count: plaintextSlice.length, run: () => oneAtATime(plaintextSlice, (p) => nobleEncryptor.encrypt(p)) },
  ], 5);

  const ciphertexts = entries.map((e) => e.ciphertext);
  const base64 = await measure([
    { name: 'core decodeBase64 (unpadded)', count: entryCount, run: () => { for (const c of ciphertexts) decodeBase64(c); } },
    { name: '@scure/base base64nopad.decode', count: entryCount, run: () => { for (const c of ciphertexts) scureBase64NoPad.decode(c); } },
    { name: '@scure/base base64.decode (padded input)', count: entryCount, run: () => { for (const c of ciphertexts) scureBase64.decode(c.padEnd(Math.ceil(c.length / 4) * 4, '=')); } },
  ], 3);
  return { notes, decrypt, encrypt, base64 };
}

// --- printing ------------------------------------------------------------------------------------

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const perSecond = (count: number, ms: number): number => (count / ms) * 1000;
const formatRate = (rate: number): string => Math.round(rate).toLocaleString('en');

/** Median over rounds of (rate of row) / (rate of base), both from the same round. */
function ratio(row: Row, base: Row): number {
  return median(row.times.map((t, i) => perSecond(row.count, t) / perSecond(base.count, base.times[i]!)));
}

function printTable(title: string, rows: Row[], base: Row, versus: string): void {
  console.log(title);
  for (const row of rows) {
    const rates = row.times.map((t) => perSecond(row.count, t));
    const spread = `(${formatRate(Math.min(...rates))}–${formatRate(Math.max(...rates))})`;
    const mark = row.chosen ? '▶' : ' ';
    console.log(`${mark} ${row.name.padEnd(62)} ${formatRate(median(rates)).padStart(9)} /s ${spread.padEnd(19)} ${ratio(row, base).toFixed(2).padStart(5)}× ${versus}`);
  }
  console.log('');
}

function printResult(result: BenchResult): void {
  for (const note of result.notes) console.log(note);
  console.log('');
  printTable('decrypt (entries/s; × wasm = median over rounds of the same-round ratio)', result.decrypt, result.decrypt[0]!, 'wasm');
  printTable('encrypt (entries/s; × previous = same-round ratio to the previous all-WebCrypto path)', result.encrypt, result.encrypt[0]!, 'previous');
  printTable('base64 decode of a ciphertext field (fields/s)', result.base64, result.base64[0]!, 'core');
}

// --- Node driver ---------------------------------------------------------------------------------

async function machineLoad(): Promise<string> {
  const { loadavg } = await import('node:os');
  const [one, five] = loadavg();
  return `load average ${one!.toFixed(2)} (1 min), ${five!.toFixed(2)} (5 min)`;
}

/** Bundles this file for the browser, runs `runBench` in a Chromium page and returns its result. */
async function inChromium(entryCount: number): Promise<{ version: string; cores: number; result: BenchResult }> {
  const { build } = await import('vite');
  const { chromium } = await import('playwright-core');
  const { fileURLToPath } = await import('node:url');
  const output = await build({
    configFile: false,
    logLevel: 'warn',
    publicDir: false,
    build: {
      write: false,
      minify: false,
      target: 'es2022',
      // ES format keeps import.meta.url, from which the wasm package finds its (inlined) module.
      lib: { entry: fileURLToPath(import.meta.url), formats: ['es'], fileName: 'bench' },
      rolldownOptions: { external: [/^node:/, 'vite', 'playwright-core'] },
    },
  });
  const chunk = (Array.isArray(output) ? output : [output]).flatMap((o) => ('output' in o ? o.output : [])).find((o) => o.type === 'chunk');
  if (!chunk || chunk.type !== 'chunk') throw new Error('the browser bundle of the bench is empty');
  const origin = 'http://bench.localhost';
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/lib/chromium/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    // Served from memory; nothing listens on a port. The page is a secure context (localhost).
    await page.route(`${origin}/**`, (route) => route.request().url().endsWith('/bench.js')
      ? route.fulfill({ contentType: 'text/javascript', body: chunk.code })
      : route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }));
    await page.goto(`${origin}/`);
    const result = await page.evaluate(async ([url, count]) => {
      const bench = (await import(url)) as { runBench(n: number): Promise<BenchResult> };
      return bench.runBench(count);
    }, [`${origin}/bench.js`, entryCount] as const);
    const { version, cores } = await page.evaluate(() => ({ version: navigator.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? navigator.userAgent, cores: navigator.hardwareConcurrency }));
    return { version, cores, result };
  } finally {
    await browser.close();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const entryCount = Number(args.find((a) => /^\d+$/.test(a)) ?? 5000);
  const { cpus } = await import('node:os');
  const cpu = cpus();
  console.log(`Node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${ROUNDS} rounds; at start: ${await machineLoad()}`);
  printResult(await runBench(entryCount));
  console.log(`at end: ${await machineLoad()}\n`);
  if (args.includes('--chromium')) {
    const { version, cores, result } = await inChromium(entryCount);
    console.log(`${version} page (main thread), ${cores} cores, ${ROUNDS} rounds; at start: (see above)`);
    printResult(result);
    console.log(`at end: ${await machineLoad()}`);
  }
}

// Run only as a program in Node, not when the browser bundle is imported.
const isMain = typeof process !== 'undefined' && process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (isMain) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
