/**
 * Looks for secrets in what the extension stored: every record of every IndexedDB database, all of
 * extension storage (local and session), and the raw files of the extension's IndexedDB and storage
 * on disk. Each secret is searched in every form it could take: raw bytes, base64 (padded and
 * unpadded), hex (both cases), and for 32-byte keys the recovery-key form (with and without spaces).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { encodeRecoveryKey } from '../../src/core/index.ts';

export interface Secret {
  name: string;
  bytes?: Uint8Array;
  text?: string;
}

export interface Haystack {
  where: string;
  data: Buffer;
}

export interface Finding {
  secret: string;
  form: string;
  where: string;
}

function forms(secret: Secret): Array<{ form: string; needle: Buffer }> {
  const out: Array<{ form: string; needle: Buffer }> = [];
  const add = (form: string, value: Buffer | string) => out.push({ form, needle: Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8') });
  const encodings = (label: string, bytes: Buffer) => {
    const b64 = bytes.toString('base64');
    add(`${label}base64`, b64);
    if (b64.endsWith('=')) add(`${label}base64 unpadded`, b64.replace(/=+$/, ''));
    add(`${label}hex`, bytes.toString('hex'));
    add(`${label}HEX`, bytes.toString('hex').toUpperCase());
  };
  if (secret.bytes) {
    const bytes = Buffer.from(secret.bytes);
    add('raw bytes', bytes);
    encodings('', bytes);
    if (bytes.length === 32) {
      const recoveryKey = encodeRecoveryKey(secret.bytes);
      add('recovery key', recoveryKey);
      add('recovery key without spaces', recoveryKey.replace(/ /g, ''));
    }
  }
  if (secret.text) {
    add('text', secret.text);
    encodings('text as ', Buffer.from(secret.text, 'utf8'));
    // A secret stored as a JS string may sit on disk as UTF-16 (V8 two-byte strings).
    add('text as UTF-16', Buffer.from(secret.text, 'utf16le'));
  }
  return out.filter((f) => f.needle.length >= 8);
}

export function scanFor(secrets: readonly Secret[], haystacks: readonly Haystack[]): Finding[] {
  const findings: Finding[] = [];
  for (const secret of secrets) {
    for (const { form, needle } of forms(secret)) {
      for (const h of haystacks) {
        if (h.data.indexOf(needle) !== -1) findings.push({ secret: secret.name, form, where: h.where });
      }
    }
  }
  return findings;
}

/** Everything the extension keeps in IndexedDB and extension storage, read from one of its pages. */
export async function dumpExtensionStorage(page: Page): Promise<Haystack[]> {
  const dump = await page.evaluate(async () => {
    const strings: string[] = [];
    const bytes: string[] = [];
    const toB64 = (u: Uint8Array) => { let s = ''; for (const b of u) s += String.fromCharCode(b); return btoa(s); };
    const walk = (v: unknown): void => {
      if (typeof v === 'string') strings.push(v);
      else if (v === null || typeof v !== 'object') strings.push(String(v));
      else if (v instanceof ArrayBuffer) bytes.push(toB64(new Uint8Array(v)));
      else if (ArrayBuffer.isView(v)) bytes.push(toB64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
      else if (v instanceof CryptoKey) strings.push(`CryptoKey(${v.algorithm.name}, extractable=${v.extractable})`);
      else if (Array.isArray(v)) v.forEach(walk);
      else for (const [k, x] of Object.entries(v)) { strings.push(k); walk(x); }
    };
    const read = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
    const names: string[] = [];
    for (const info of await indexedDB.databases()) {
      if (!info.name) continue;
      names.push(info.name);
      const db = await read(indexedDB.open(info.name));
      for (const store of Array.from(db.objectStoreNames)) {
        const tx = db.transaction(store, 'readonly');
        walk(await read(tx.objectStore(store).getAllKeys()));
        walk(await read(tx.objectStore(store).getAll()));
      }
      db.close();
    }
    walk(await chrome.storage.local.get(null));
    walk(await chrome.storage.session.get(null));
    return { strings, bytes, names };
  });
  const text = Buffer.from(dump.strings.join('\n'), 'utf8');
  const binary = Buffer.concat(dump.bytes.map((b) => Buffer.from(b, 'base64')));
  return [
    { where: `IndexedDB (${dump.names.join(', ')}) and extension storage: values`, data: text },
    { where: 'IndexedDB and extension storage: binary values', data: binary },
  ];
}

/** The raw files behind the extension's IndexedDB and storage.local in a Chromium profile. */
export function profileStorageFiles(userDataDir: string, extensionId: string): Haystack[] {
  const roots = [
    join(userDataDir, 'Default', 'IndexedDB', `chrome-extension_${extensionId}_0.indexeddb.leveldb`),
    join(userDataDir, 'Default', 'IndexedDB', `chrome-extension_${extensionId}_0.indexeddb.blob`),
    join(userDataDir, 'Default', 'Local Extension Settings', extensionId),
  ];
  const out: Haystack[] = [];
  const visit = (path: string) => {
    let st;
    try { st = statSync(path); } catch { return; } // a root that does not exist holds nothing
    if (st.isDirectory()) for (const e of readdirSync(path)) visit(join(path, e));
    else out.push({ where: path.slice(userDataDir.length + 1), data: readFileSync(path) });
  };
  roots.forEach(visit);
  return out;
}
