/**
 * The Matrix Key Vault client kit, for web-client developers (doc/client-kit.md): find the vault a
 * user installed, ask it for keys, and attach it to a matrix-js-sdk client so missing keys are
 * fetched and new sessions backed up. It imports no package, matrix-js-sdk included: it works on the
 * page's own client by its shape.
 */
export { findKeyVault, announcementOf, type DiscoveryTarget, type FindKeyVaultOptions } from './discovery.ts';
export { KeyVault, type KeyVaultOptions, type StatusListener } from './vault.ts';
export { KeyVaultError, isKeyVaultError, type KeyVaultErrorOptions } from './errors.ts';
export { checkClient, type ClientCheck, type ClientParts, type KitCrypto } from './client-shape.ts';
export type { KitInboundGroupSession, KitOlmMachine, KitRoomKeyInfo, MachineLookup } from './olm-machine.ts';
export { attachKeyVault, ClientShapeError, DECRYPTED_EVENT, type AttachOptions, type Attachment, type Direction } from './attach.ts';
export type { AttachmentStats, Rejection, StatsListener } from './stats.ts';
export { HISTORICAL_FAILURE_PREFIX, MISSING_KEY_FAILURES, isMissingKeyFailure, missingSessionOf } from './failures.ts';
export {
  ANNOUNCE_EVENT, ErrorCode, MAX_SESSIONS_PER_PAGE_REQUEST, REQUEST_EVENT, SCOPES,
  type Announcement, type BackupResult, type ErrorCodeValue, type ExportedRoomKey, type PageMethod, type PageMethods,
  type PageVaultStatus, type ProviderRpcErrorShape, type RequestArguments, type RoomKeyResult, type Scope, type SessionRef,
  type VaultInfo, type VaultProvider,
} from '../shared/page-api.ts';
