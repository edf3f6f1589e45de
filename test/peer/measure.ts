/**
 * How fast the peer makes test data. Run: `npx tsx test/peer/measure.ts [sessions…] [--single-machine-backup]`
 * (default sizes 5000 10000). Prints one line per step; nothing secret is printed.
 */
import { BackupDecryptionKey } from '@matrix-org/matrix-sdk-crypto-wasm';
import {
  backupEntries, closePeerMachine, createPeerBackup, createPeerMachine, createSessions, exportSessions, initPeer,
  keyFileFromPeer, peerBackupDecryptor, peerBackupRequests, readKeyFileWithPeer,
} from './index.ts';

const args = process.argv.slice(2);
const singleMachineBackup = args.includes('--single-machine-backup');
const sizes = args.filter((a) => !a.startsWith('--')).map(Number);
const passphrase = 'measure-only passphrase';

async function timed<T>(label: string, step: () => Promise<T> | T): Promise<T> {
  const start = performance.now();
  const value = await step();
  console.log(`${label.padEnd(60)} ${(performance.now() - start).toFixed(0).padStart(7)} ms`);
  return value;
}

await timed('initPeer (load wasm)', initPeer);
const backupKey = BackupDecryptionKey.createRandomKey();
const privateKey = Buffer.from(backupKey.toBase64(), 'base64');
const publicKey = backupKey.megolmV1PublicKey.publicKeyBase64;
backupKey.free();

for (const total of sizes.length > 0 ? sizes : [5000, 10_000]) {
  const withEvents = await createPeerMachine();
  await timed(`${total} sessions: create, 100 rooms, 1 event each`, () =>
    createSessions(withEvents, { rooms: 100, sessionsPerRoom: total / 100, eventsPerSession: 1 }));
  closePeerMachine(withEvents);

  const machine = await createPeerMachine();
  await timed(`${total} sessions: create, 100 rooms, no events`, () =>
    createSessions(machine, { rooms: 100, sessionsPerRoom: total / 100, eventsPerSession: 0 }));
  const keys = await timed(`${total} sessions: exportRoomKeys`, () => exportSessions(machine));
  const file = await timed(`${total} sessions: key file, 1,000 rounds`, () => keyFileFromPeer(keys, passphrase, 1000));
  await timed(`${total} sessions: read that key file`, () => readKeyFileWithPeer(file, passphrase));
  await timed(`${total} sessions: key file, 500,000 rounds`, () => keyFileFromPeer(keys, passphrase, 500_000));
  if (singleMachineBackup) {
    await timed(`${total} sessions: backup requests from ONE machine (quadratic)`, () => peerBackupRequests(machine, publicKey, '1'));
  }
  closePeerMachine(machine);

  const backup = await timed(`${total} sessions: createPeerBackup (create + back up, 200/machine)`, () =>
    createPeerBackup({ sessions: total }, publicKey, '1'));
  const decryptor = peerBackupDecryptor(privateKey);
  await timed(`${total} sessions: decryptV1 every entry`, () => {
    for (const entry of backupEntries(backup.requests)) decryptor.decrypt(entry.keyBackupData.session_data);
  });
  decryptor.free();
}
console.log(`rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
