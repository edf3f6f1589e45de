/**
 * The Element-crypto test peer: `@matrix-org/matrix-sdk-crypto-wasm` (what Element Web runs) wrapped
 * for tests and benchmarks. It writes what the extension must read (backups, key files) and reads
 * what the extension writes. Every helper frees the wasm objects it creates; machines it returns are
 * the caller's to close with `closePeerMachine`.
 */
export { initPeer } from './wasm.ts';
export { PeerError, type PeerErrorKind } from './errors.ts';
export { createPeerMachine, closePeerMachine, defaultPeerUserId } from './machine.ts';
export { createSessions, createSessionsInRooms, type CreateSessionsOptions, type CreatedSessions } from './sessions.ts';
export { createPeerBackup, type PeerBackupOptions, type PeerBackup } from './bulk.ts';
export { exportSessions, keyFileFromPeer, readKeyFileWithPeer, importExportedIntoFreshMachine, type ImportResult } from './keyExport.ts';
export {
  peerBackupRequests, backupEntries, peerBackupDecryptor, peerDecryptBackupEntry, peerBackupPublicKey,
  importBackupIntoFreshMachine, groupByRoom,
  type PeerBackupRequest, type PeerBackupEntry, type PeerBackupDecryptor, type DecryptedBackup, type BackupImportResult,
} from './backup.ts';
export { decryptEvent, type DecryptedPeerEvent } from './events.ts';
export type { BackedUpSessionData, ExportedSessionData, EncryptedSessionData, KeyBackupData, KeysBackupBody, PeerEvent, PeerSession } from './types.ts';
export { referenceRecoveryKey } from './recoveryKey.ts';
