/**
 * The words people read on the recovery screens (unlock, restore, earlier keys, export), in one
 * place so they can be translated later. Messages of errors the worker sends come from the worker.
 */
import type { RestoreFailureKind, RestoreSummary, UnlockMethod } from '../shared/messages.ts';
import type { RecoveryInputClass } from './recovery-input.ts';
import { formatWhen } from './describe.ts';

const plural = (n: number, one: string, many: string) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
export const keys = (n: number) => plural(n, 'key', 'keys');

export const unlockTexts = {
  label: 'Recovery key',
  hint: 'Security Key, Security Phrase or backup recovery key',
  button: 'Unlock',
  checking: 'Checking the key with the server…',
  fromFile: 'Load the key from a file…',
  intro: (version: string, count: number | null) =>
    `Your account has a backup (version ${version}${count === null ? '' : `, ${keys(count)}`}). ` +
    'Unlock it to restore its keys here; this also lets the extension add new keys to it.',
  changed: (version: string) =>
    `Enter the key of the new backup (version ${version}) to upload to it and restore from it.`,
  resume: 'Unlock to resume the restore.',
  resumeIntro: (version: string) => `Enter the key of backup version ${version} to go on restoring.`,
  forgotten: 'The key stays in memory only while unlocked: locking, or closing the browser, forgets it.',
};

export const fileTexts = {
  title: 'Unlock with a key file',
  intro: 'Choose the file that holds your recovery key or Security Key (Element saves it as “security-key.txt”). ' +
    'It is read here and never stored.',
  fileLabel: 'Key file',
  read: (name: string) => `Read the key from “${name}”. Press Unlock to check it.`,
  noKeyInFile: 'This file does not contain a recovery key.',
  tooLarge: 'This file is too large to hold a recovery key.',
  done: 'The vault is unlocked. You can close this tab and restore from the popup.',
  signedOut: 'Sign in from the extension popup first.',
};

/** What the field's text looks like, said while the user types (the worker has the last word). */
export function describeRecoveryInput(c: RecoveryInputClass): string {
  switch (c.kind) {
    case 'empty':
      return '';
    case 'too-long':
      return `This is too long for a key or a Security Phrase (${c.length.toLocaleString('en')} characters).`;
    case 'key':
      return 'This looks like a valid recovery key.';
    case 'phrase':
      return 'This will be tried as a Security Phrase.';
    case 'bad-key':
      switch (c.problem) {
        case 'base58':
          return 'This is not a valid recovery key: it contains characters a recovery key never has (0, O, I and l are not used).';
        case 'length':
          return `This is not a complete recovery key: it has ${c.characters} characters (not counting spaces); a recovery key has 48.`;
        case 'prefix':
          return 'This is not a recovery key: recovery keys start with “EsS”, “EsT” or “EsU”.';
        case 'parity':
          return 'This recovery key has a typo: its check character does not match. Look for a mistyped character.';
      }
  }
}

export const methodNames: Record<UnlockMethod, string> = {
  'security-key': 'Security Key',
  'security-phrase': 'Security Phrase',
  'recovery-key': 'backup recovery key',
  'legacy-phrase': 'backup passphrase',
};

export const unlockedTexts = {
  heading: 'Recovery',
  unlockedWith: (via: UnlockMethod) => `Unlocked with your ${methodNames[via]}.`,
  lock: 'Lock',
  restore: 'Restore',
  restoreHint: 'Restore downloads every key of the server backup into this browser.',
  export: 'Export keys to a file…',
  locking: 'Locking…',
  starting: 'Starting the restore…',
};

export const restoreTexts = {
  heading: 'Restore',
  progressLabel: 'Restore progress',
  cancel: 'Cancel',
  cancelling: 'Cancelling…',
  openPage: 'Open the restore page',
  rooms: 'Rooms',
  keysDone: 'Keys done',
  keysOf: (done: number, total: number) => `${done.toLocaleString('en')} of ${total.toLocaleString('en')}`,
  restored: 'Restored',
  alreadyPresent: 'Already present',
  failed: 'Failed',
  rate: 'Speed',
  rateValue: (rate: number) => `${rate >= 10 ? Math.round(rate).toLocaleString('en') : rate.toFixed(1)} keys/s`,
  timeLeft: 'Time left',
  failuresHeading: 'Keys that could not be restored',
  failuresByKind: 'By reason',
  room: 'Room',
  session: 'Session',
  reason: 'Why',
  moreFailures: (n: number) => `…and ${n.toLocaleString('en')} more.`,
  noRestore: 'No restore has run yet. Unlock the vault in the popup and press Restore.',
  pageTitle: 'Restore from the server backup',
};

export const failureKindNames: Record<RestoreFailureKind, string> = {
  malformed: 'entry not in the format the spec defines',
  base64: 'ciphertext is not valid base64',
  mac: 'authentication check failed',
  padding: 'bad padding (encrypted to another key, or damaged)',
  json: 'decrypted data is not JSON',
  algorithm: 'not a megolm room key',
  'session-key': 'session key cannot be read',
  'session-id': 'session ID does not match its key',
  'too-large': 'entry too large',
};

/** "12 s", "4 min", "2 h 5 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  const h = Math.floor(s / 3600);
  const m = Math.round((s % 3600) / 60);
  return m === 0 ? `${h} h` : `${h} h ${m} min`;
}

/** The one line that says where a restore is. */
export function describeRestore(r: RestoreSummary, now: number): string {
  switch (r.phase) {
    case 'running':
      return `Restoring keys from backup version ${r.version}: ${restoreTexts.keysOf(r.done, r.serverCount)}.`;
    case 'waiting': {
      const why = r.lastError ? ` (${r.lastError.message})` : '';
      const when = r.retryAt !== null ? `; it retries ${formatWhen(r.retryAt, now)}` : '';
      return `The restore paused after an error${why}${when}.`;
    }
    case 'locked':
      return unlockTexts.resume;
    case 'cancelled':
      return `Restore cancelled after ${restoreTexts.keysOf(r.done, r.serverCount)} keys.`;
    case 'done':
      return `Restore finished: ${keys(r.restored)} restored, ${r.alreadyPresent.toLocaleString('en')} already present, ${r.failed.toLocaleString('en')} failed.`;
    case 'failed':
      return `The restore stopped: ${r.lastError?.message ?? 'an error it cannot recover from'}.`;
  }
}

export const earlierTexts = {
  heading: 'Keys of an earlier backup',
  waiting: (count: number, version: string) => `${keys(count)} wait${count === 1 ? 's' : ''} for the key of backup version ${version}.`,
  explain: 'They were encrypted to that backup\'s key before the backup changed. Enter its key to move them to the current backup.',
  label: (version: string) => `Key of backup version ${version}`,
  button: 'Move keys',
  moved: (moved: number, failed: number) => `Moved ${keys(moved)} to the current backup${failed ? `; ${failed.toLocaleString('en')} could not be moved` : ''}.`,
};

export const exportTexts = {
  title: 'Export keys to a file',
  intro: 'This writes every key the vault holds into a file in Element\'s key export format, encrypted with a passphrase you choose. ' +
    'Any Matrix client can import it (Element: Settings → Security → Import E2E room keys).',
  needsUnlock: 'Unlock the vault in the popup first.',
  passphrase: 'Passphrase',
  confirm: 'Confirm passphrase',
  advanced: 'Advanced',
  rounds: 'Key derivation rounds',
  roundsHint: '500,000 is what Element uses. More rounds make the passphrase harder to guess and the file slower to open.',
  button: 'Export',
  mismatch: 'The two passphrases do not match.',
  emptyPassphrase: 'Choose a passphrase.',
  badRounds: (max: number) => `The number of rounds must be a whole number from 1 to ${max.toLocaleString('en')}.`,
  fetching: (n: number, total: number) => `Reading keys: ${n.toLocaleString('en')} of ${total.toLocaleString('en')}…`,
  encrypting: 'Encrypting the file…',
  ready: (n: number, skipped: number) =>
    `${keys(n)} exported${skipped ? `; ${skipped.toLocaleString('en')} skipped (encrypted to another backup's key, or damaged)` : ''}.`,
  download: 'Download element-keys.txt',
  fileName: 'element-keys.txt',
};
