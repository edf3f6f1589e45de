/**
 * A whole IndexedDB database as JSON and back: schema (stores, key paths, indexes) and records.
 * Vault fixtures made by a release are kept in this form (test/fixtures/vault-v*.json), so every
 * later migration is tested against real old data. Works on fake-indexeddb and in browsers alike.
 * Binary values (Uint8Array) are written as { "$bytes": base64 } and CryptoKeys are left out.
 */
export interface DumpedStore {
  keyPath: string | string[] | null;
  indexes: Array<{ name: string; keyPath: string | string[]; unique: boolean; multiEntry: boolean }>;
  records: Array<{ key?: IDBValidKey; value: unknown }>;
}

export interface DatabaseDump {
  version: number;
  stores: Record<string, DumpedStore>;
}

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: btoa(String.fromCharCode(...value)) };
  if (typeof CryptoKey !== 'undefined' && value instanceof CryptoKey) return undefined;
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]).filter(([, v]) => v !== undefined));
  }
  return value;
}

function fromJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value && typeof value === 'object') {
    const bytes = (value as { $bytes?: unknown }).$bytes;
    if (typeof bytes === 'string') return Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

export async function dumpDatabase(name: string): Promise<DatabaseDump> {
  const db = await promised(indexedDB.open(name));
  try {
    const names = [...db.objectStoreNames];
    const stores: Record<string, DumpedStore> = {};
    const tx = db.transaction(names, 'readonly');
    for (const storeName of names) {
      const store = tx.objectStore(storeName);
      const [keys, values] = await Promise.all([promised(store.getAllKeys()), promised(store.getAll())]);
      stores[storeName] = {
        keyPath: store.keyPath,
        indexes: [...store.indexNames].map((n) => {
          const index = store.index(n);
          return { name: n, keyPath: index.keyPath, unique: index.unique, multiEntry: index.multiEntry };
        }),
        records: values
          .map((value, i) => ({ ...(store.keyPath === null ? { key: keys[i] } : {}), value: toJson(value) }))
          .filter((r) => r.value !== undefined),
      };
    }
    return { version: db.version, stores };
  } finally {
    db.close();
  }
}

/** Recreates a dumped database under `name` at its version (which must not exist yet). */
export async function loadDatabase(name: string, dump: DatabaseDump): Promise<void> {
  const open = indexedDB.open(name, dump.version);
  open.onupgradeneeded = () => {
    const db = open.result;
    for (const [storeName, store] of Object.entries(dump.stores)) {
      const created = db.createObjectStore(storeName, store.keyPath === null ? {} : { keyPath: store.keyPath });
      for (const index of store.indexes) created.createIndex(index.name, index.keyPath, { unique: index.unique, multiEntry: index.multiEntry });
      for (const record of store.records) {
        if (store.keyPath === null) created.put(fromJson(record.value), record.key);
        else created.put(fromJson(record.value));
      }
    }
  };
  const db = await promised(open);
  db.close();
}
