/**
 * Errors the peer module throws. Like the core's, each carries a `kind` a test can switch on, and
 * keeps the wasm library's own error as `cause` (its message says what the Rust code refused).
 */
export type PeerErrorKind =
  | 'argument'        // a caller passed options the peer cannot honour
  | 'not-initialised' // a synchronous helper was called before `initPeer()` resolved
  | 'backup-loop'     // the machine kept handing out backup requests (see peerBackupRequests)
  | 'backup-decrypt'  // BackupDecryptionKey.decryptV1 refused an entry (wrong key, bad MAC, bad padding)
  | 'key-file'        // OlmMachine.decryptExportedRoomKeys refused a file (header, MAC, version)
  | 'event-decrypt'   // OlmMachine.decryptRoomEvent refused an event (missing key, trust)
  | 'wire';           // the wasm produced JSON this module does not understand

export class PeerError extends Error {
  override readonly name = 'PeerError';
  readonly kind: PeerErrorKind;
  /** For `event-decrypt`: the wasm's `DecryptionErrorCode` (0 = MissingRoomKey, …). */
  readonly code: number | undefined;

  constructor(kind: PeerErrorKind, message: string, options: { cause?: unknown; code?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.code = options.code;
  }
}

/** The text of whatever the wasm threw: an `Error`, or a wasm-bindgen object with `description`. */
export function describeWasmError(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'description' in error) {
    return String((error as { description: unknown }).description);
  }
  return String(error);
}
