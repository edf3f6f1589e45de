/**
 * Every word people read in the extension's pages (popup, create backup, import, unlock, restore,
 * export), in one place so they can be translated: the pages hold no text of their own
 * (test/unit/ui/strings.test.ts checks). Messages of errors the worker sends come from the worker;
 * the extension's name and description for the browser and the stores are in
 * public/_locales/en/messages.json.
 */
import type { StopReason } from '../core/upload/state.ts';
import type { ImportSummary, RestoreFailureKind, RestoreSummary, UnlockMethod, UploadSummary } from '../shared/messages.ts';
import type { RecoveryInputClass } from './recovery-input.ts';
import type { ClientReport, Scope } from '../shared/page-api.ts';

const plural = (n: number, one: string, many: string) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
export const keys = (n: number) => plural(n, 'key', 'keys');

/** "in 12 s", "3 min ago", or a clock time for anything far away. */
export function formatWhen(at: number, now: number): string {
  const delta = Math.round((at - now) / 1000);
  const abs = Math.abs(delta);
  const amount = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : null;
  if (amount === null) return new Date(at).toLocaleString();
  // Moments ago is "just now"; a moment ahead (a retry about to happen) is still "in 1 s".
  if (abs < 2 && delta <= 0) return 'just now';
  if (abs < 2) return 'in 1 s';
  return delta > 0 ? `in ${amount}` : `${amount} ago`;
}

/** A message and when it happened: "the server said no (3 min ago)". */
export const withWhen = (message: string, when: string) => `${message} (${when})`;

export const appTexts = {
  name: 'Matrix Key Vault',
  /** A tab's title: the page, then the extension. */
  pageTitle: (page: string) => `${page} – Matrix Key Vault`,
  connecting: 'Connecting to the background worker…',
  workerRunning: (version: string) => `Background worker running (version ${version}).`,
  persistentStorage: (granted: boolean) => `Persistent storage: ${granted ? 'granted' : 'not granted'}.`,
};

export const signInTexts = {
  heading: 'Connect your Matrix account',
  homeserver: 'Homeserver',
  homeserverPlaceholder: 'matrix.org',
  user: 'Username',
  userPlaceholder: '@alice:matrix.org or alice',
  password: 'Password',
  accessToken: 'Access token',
  button: 'Sign in',
  busy: 'Signing in…',
  tokenNote: 'The token is kept encrypted so backup can run in the background. ',
  passwordNote: 'Your password signs in a new session named “Matrix Key Vault” and is never stored. ',
  usePassword: 'Use a password instead',
  useToken: 'Use an access token instead',
};

export const accountTexts = {
  signOut: 'Sign out',
  serverUnreachable: 'Signed out here, but the homeserver could not be reached: the “Matrix Key Vault” session may still be listed in your other clients; remove it there.',
};

/** The popup's backup section: the pinned backup and its upload, or why there is none. */
export const backupTexts = {
  heading: (version: string) => `Backup version ${version}`,
  serverCount: 'Keys on the server',
  pending: 'Keys waiting to upload',
  stored: 'Keys held here',
  lastSuccess: 'Last successful upload',
  never: 'never',
  unknownCount: '—',
  lastError: 'Last error',
  retryNow: 'Retry now',
  importFile: 'Import a key file…',
  checkingServer: 'Checking the server\'s backup…',
  couldNotCheck: (message: string) => `Could not check the server's backup: ${message}`,
  noneNow: 'The account has no backup on the server now.',
  noneYet: 'Your account has no key backup yet.',
  create: 'Create a backup…',
  unsupported: (version: string, algorithm: string) =>
    `The account's backup (version ${version}) uses ${algorithm}, which this extension does not support.`,
};

export function describeStop(reason: StopReason): string {
  switch (reason.kind) {
    case 'backup-changed':
      return reason.currentVersion === null
        ? `The backup changed on the server: version ${reason.pinnedVersion} is gone and the account has no backup now. ` +
          'Nothing is uploaded until you create a new backup or enter the recovery key of a new one.'
        : `The backup changed on the server: version ${reason.pinnedVersion} was replaced by version ${reason.currentVersion}, ` +
          'which uses a key this extension has not been given. Nothing is uploaded to it until you enter its recovery key.';
    case 'signed-out':
      return 'The homeserver no longer accepts this extension\'s sign-in. Sign out and sign in again to resume uploading.';
  }
}

export function describeUpload(upload: UploadSummary, now: number): string {
  switch (upload.phase) {
    case 'stopped':
      return upload.stopped ? describeStop(upload.stopped) : 'Uploading is stopped.';
    case 'uploading':
      return `Uploading… ${upload.pending} key${upload.pending === 1 ? '' : 's'} to go.`;
    case 'waiting':
      return upload.retryAt !== null
        ? `Upload paused after an error; next try ${formatWhen(upload.retryAt, now)}.`
        : 'Upload paused after an error.';
    case 'idle':
      return upload.pending === 0 ? 'All keys are backed up.' : `${upload.pending} key${upload.pending === 1 ? '' : 's'} waiting to upload.`;
  }
}

/** The create-backup page. */
export const createTexts = {
  title: 'Create a key backup',
  checking: 'Checking your account…',
  signedOut: 'Sign in from the extension popup first.',
  alreadyUploading: (version: string) => `This extension already uploads to backup version ${version}.`,
  serverHasBackup: (version: string) => `Your account already has a backup (version ${version}). Enter its recovery key in the popup to use it; ` +
    'creating another would replace it for every client.',
  couldNotCheck: (message: string) => `Could not check the server: ${message}`,
  explain: 'Your account has no key backup. This creates one on your homeserver: every key this extension is given ' +
    'is encrypted to it and uploaded, and only the recovery key shown next can read it back.',
  elementHeading: 'What this means next to Element',
  elementUse: 'Element does not upload to a backup whose key it has not been given. To let Element use this backup too, ' +
    'enter the recovery key there (Settings → Encryption → recovery).',
  elementReplaces: 'If you set up recovery in Element later, Element replaces this backup with its own. This extension then ' +
    'stops uploading and tells you the backup changed; enter the new recovery key here to continue.',
  generate: 'Generate my recovery key',
  /** "This is your recovery key. It is shown **once**. Without it …", in three parts around the emphasis. */
  shownBefore: 'This is your recovery key. It is shown ',
  shownOnce: 'once',
  shownAfter: '. Without it the backup cannot be read by anyone, including you. Save it in a password manager or print it.',
  copy: 'Copy',
  download: 'Download as a file',
  fileName: 'matrix-recovery-key.txt',
  fileContents: (recoveryKey: string) => `Matrix key backup recovery key\n\n${recoveryKey}\n`,
  saved: 'I have saved my recovery key somewhere safe',
  button: 'Create the backup',
  busy: 'Creating…',
  created: (version: string) => `Backup version ${version} created. New keys are now uploaded to it; you can close this tab.`,
};

/** The import page. */
export const importTexts = {
  title: 'Import a key file',
  noBackup: 'No backup key is set up yet. Open the extension popup and create a backup or enter the recovery key of your existing backup first.',
  intro: 'Choose a key file exported from Element (“Export E2E room keys”) and type the passphrase it was exported with. ' +
    'Each key is encrypted to your backup at once and uploaded in the background.',
  file: 'Key file',
  passphrase: 'Passphrase',
  button: 'Import',
  busy: 'Importing…',
  decrypting: 'Decrypting the file…',
  storing: (done: number, percent: number) => `Storing keys: ${done} so far (${percent}% of the file read)…`,
  partlyImported: (sent: number, s: ImportSummary) => `The ${sent} keys before that point were imported: ${s.stored} added, ${s.unchanged} already held, ${s.rejected.length} rejected.`,
  tooLarge: 'This file is too large to be a key export.',
  wrongPassphrase: 'The passphrase does not match this file (or the file is damaged).',
  notAKeyFile: 'This is not a Matrix key export file (the “BEGIN MEGOLM SESSION DATA” lines are missing).',
  unknownVersion: 'This key file uses a format version this extension does not know.',
  notJson: 'The file decrypted, but its contents are not JSON: it is not a key export.',
  notAList: 'The file decrypted, but it does not contain a list of keys.',
  result: (total: number, s: ImportSummary) =>
    `${total} keys in the file: ${s.stored} added, ${s.unchanged} already held, ${s.rejected.length} rejected.` +
    (s.stored > 0 ? ' The new keys are uploading in the background; the popup shows progress.' : ''),
  rejectedHeading: 'Rejected keys',
  number: '#',
  room: 'Room',
  session: 'Session',
  reason: 'Why',
  unknown: '?',
  more: (n: number) => `…and ${n} more.`,
};

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

export const accessTexts = {
  why: (host: string) => `Let the extension read all of ${host}'s answers? Without it, an error page from a proxy in front of your homeserver looks like a network failure, ` +
    'and the homeserver\'s "wait before trying again" stays hidden, so uploads retry blindly. Your browser asks you to confirm.',
  allow: (host: string) => `Allow access to ${host}`,
  notNow: 'Not now',
  declined: 'Not allowed: uploads still work; errors may read as network failures.',
  granted: (host: string) => `Full access to ${host}: its errors and waits are read as sent.`,
};

export const otherAccountTexts = {
  heading: 'Keys of another account',
  held: (userId: string, count: number) => `${keys(count)} of ${userId} ${count === 1 ? 'is' : 'are'} kept in this browser.`,
  explain: 'They are never uploaded to this account\'s backup nor given to its web clients. Keep them for when that account signs in here again, or erase them.',
  erase: 'Erase…',
  confirm: (userId: string, count: number) => `Erase ${keys(count)} of ${userId} from this browser? This cannot be undone; keys that are in that account's server backup stay there.`,
  confirmButton: 'Erase them',
  keep: 'Keep',
  erased: (count: number) => `Erased ${keys(count)}.`,
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
  loop: 'The worker returned the same batch twice; the export stopped.',
};

/** The page API: sites allowed to use the vault, and a site's request for more. */
export const siteTexts = {
  heading: 'Sites',
  scopeNames: { read: 'read keys, to decrypt your history', backup: 'hand over the new keys it makes, to be backed up' } as Record<Scope, string>,
  scopeShort: { read: 'read keys', backup: 'back up new keys' } as Record<Scope, string>,
  allowIntro: (site: string) => `${site} can use your keys only if you allow it. It may:`,
  allow: 'Allow this site to use your keys',
  allowNote: 'Your browser asks you to confirm. Other sites get nothing and cannot tell the extension is installed.',
  chooseScope: 'Choose at least one.',
  declined: 'Not allowed: the browser did not give access to this site.',
  allowed: (site: string, injected: number) => `${site} may now use your keys${injected > 0 ? '; its open tab was connected' : '; reload its tab if it is open'}.`,
  may: (scopes: readonly Scope[]) => `May ${scopes.map((s) => siteTexts.scopeShort[s]).join(' and ')}.`,
  none: 'No site may use your keys yet. Open the popup on a web client\'s tab to allow it.',
  notASite: 'This tab is not a site that can be allowed (only https sites, or http on this computer).',
  revoke: 'Stop allowing',
  revoked: (site: string) => `${site} may no longer use your keys.`,
  connect: 'Connect to the Matrix client on this site',
  connectWhy: 'Lets the extension reach this site\'s own Matrix client (as Element Web keeps it), to fetch the keys it is missing and back up the new ones it makes.',
  client: (report: ClientReport) => {
    switch (report.state) {
      case 'attached': return `Connected to ${report.clientUserId ?? 'its client'}: ${keys(report.keysFetched)} fetched, ${plural(report.sessionsHandedOver, 'session', 'sessions')} handed over.${report.reason ? ` ${report.reason}` : ''}`;
      case 'other-account': return `Not connected: ${report.reason ?? 'the client is signed in to another account.'}`;
      case 'unusable': return `Not connected: ${report.reason ?? 'the client lacks a part the extension needs.'}`;
      case 'waiting': return `Waiting: ${report.reason ?? 'no Matrix client has started on this site yet.'}`;
    }
  },
  clientUnknown: 'No word yet from this site\'s open tabs (open or reload one).',
  // The approval window a site's request for more opens.
  approvalTitle: 'A site asks for more',
  approvalAsk: (site: string) => `${site} asks to:`,
  approvalAllow: 'Allow',
  approvalDeny: 'Deny',
  approvalGone: 'This request is no longer waiting (it was answered, or the site closed).',
  approvalDone: (allowed: boolean) => (allowed ? 'Allowed. You can close this window.' : 'Denied. You can close this window.'),
};
