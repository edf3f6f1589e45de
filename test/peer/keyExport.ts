/**
 * Key exports and key files (spec "Key exports") as Element's crypto writes and reads them.
 *
 * The wasm writes `-----BEGIN MEGOLM SESSION DATA-----\n<one unpadded base64 line>\n-----END …-----`
 * with no trailing newline (unlike Element Web's JS writer). It accepts any round count, 0 included.
 */
import { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import { PeerError, describeWasmError } from './errors.ts';
import { closePeerMachine, createPeerMachine } from './machine.ts';
import type { ExportedSessionData } from './types.ts';
import { assertPeerReady, initPeer } from './wasm.ts';

/** Every session the machine holds, as `exportRoomKeys` reports it. */
export async function exportSessions(machine: OlmMachine): Promise<ExportedSessionData[]> {
  await initPeer();
  return parseExport(await machine.exportRoomKeys(() => true), 'exportRoomKeys');
}

/** A key file written by `OlmMachine.encryptExportedRoomKeys` (Element's default is 500,000 rounds). */
export async function keyFileFromPeer(source: OlmMachine | readonly ExportedSessionData[], passphrase: string, rounds: number): Promise<string> {
  if (!Number.isSafeInteger(rounds) || rounds < 0 || rounds > 0xffff_ffff) {
    throw new PeerError('argument', `keyFileFromPeer: rounds must be a 32-bit whole number, got ${rounds}`);
  }
  const keys = Array.isArray(source) ? source : await exportSessions(source as OlmMachine);
  assertPeerReady();
  return OlmMachine.encryptExportedRoomKeys(JSON.stringify(keys), passphrase, rounds);
}

/** What `OlmMachine.decryptExportedRoomKeys` finds in a key file; throws kind `key-file` if it refuses it. */
export function readKeyFileWithPeer(file: string, passphrase: string): ExportedSessionData[] {
  assertPeerReady();
  let json: string;
  try {
    json = OlmMachine.decryptExportedRoomKeys(file, passphrase);
  } catch (error) {
    throw new PeerError('key-file', `Element's crypto refused the key file: ${describeWasmError(error)}`, { cause: error });
  }
  return parseExport(json, 'decryptExportedRoomKeys');
}

export interface ImportResult {
  machine: OlmMachine;
  importedCount: number;
  totalCount: number;
}

/**
 * A second, fresh machine that imports exported sessions with `importExportedRoomKeys` (the key-file
 * import path). The caller closes the machine (`closePeerMachine`).
 */
export async function importExportedIntoFreshMachine(keys: readonly ExportedSessionData[] | string): Promise<ImportResult> {
  const machine = await createPeerMachine('@importer:peer.test');
  try {
    const json = typeof keys === 'string' ? keys : JSON.stringify(keys);
    const result = await machine.importExportedRoomKeys(json, () => {});
    const counts = { importedCount: result.importedCount, totalCount: result.totalCount };
    result.free();
    return { machine, ...counts };
  } catch (error) {
    closePeerMachine(machine);
    throw error;
  }
}

function parseExport(json: string, from: string): ExportedSessionData[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) throw new PeerError('wire', `${from} did not return a JSON array`);
  return parsed as ExportedSessionData[];
}
