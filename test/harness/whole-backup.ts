/**
 * The whole backup, parsed, for tests that check what the server holds. The product never does
 * this (a restore parses the stream as it arrives, src/platform/backup-stream.ts); tests read
 * backups of at most a few thousand keys.
 */
import { parseKeysBackup, type ParsedKeysBackup } from '../../src/core/wire.ts';
import type { HomeserverClient } from '../../src/platform/homeserver.ts';

export async function getWholeBackup(client: HomeserverClient, version: string): Promise<ParsedKeysBackup> {
  const stream = await client.streamBackupKeys(version);
  return parseKeysBackup(JSON.parse(await new Response(stream).text()));
}
