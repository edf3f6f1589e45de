/**
 * The demo page: sign in as a new device, show the first encrypted room's whole history as it
 * decrypts, and use the key vault through the client kit (or, with `?mode=element`, expose the client
 * the way Element Web does and leave the kit out).
 *
 * Query parameters: `hs`, `user`, `password` prefill the form; `autologin=1` submits it at once;
 * `vault=auto` attaches the vault as soon as it is found; `mode=element` is Element's shape.
 * Nothing secret reaches the DOM or the console: the access token stays inside the SDK, the password
 * field is emptied after sign-in, and keys are only ever handled by the SDK and the kit.
 */
import { MatrixEventEvent, RoomEvent, type MatrixClient, type Room } from 'matrix-js-sdk';
import { firstEncryptedRoom, loadWholeHistory, messageRows, signIn, startSyncing, type MessageRow } from './matrix.ts';
import { useVault, watchForVault, type Attachment, type AttachmentStats, type Direction, type KeyVault, type VaultStatus } from './vault.ts';

const params = new URLSearchParams(location.search);
const elementMode = params.get('mode') === 'element';
const autoVault = params.get('vault') === 'auto';

function byTestId<T extends HTMLElement>(id: string): T {
  const el = document.querySelector<T>(`[data-testid="${id}"]`);
  if (!el) throw new Error(`demo: no element with data-testid="${id}"`);
  return el;
}

const ui = {
  status: byTestId<HTMLParagraphElement>('status'),
  loginForm: byTestId<HTMLFormElement>('login-form'),
  hs: byTestId<HTMLInputElement>('login-homeserver'),
  user: byTestId<HTMLInputElement>('login-user'),
  password: byTestId<HTMLInputElement>('login-password'),
  submit: byTestId<HTMLButtonElement>('login-submit'),
  signedIn: document.getElementById('signed-in') as HTMLDivElement,
  vaultStatus: byTestId<HTMLParagraphElement>('vault-status'),
  attach: byTestId<HTMLButtonElement>('vault-attach'),
  stats: byTestId<HTMLDListElement>('vault-stats'),
  directions: byTestId<HTMLParagraphElement>('vault-directions'),
  vaultHint: document.getElementById('vault-hint') as HTMLParagraphElement,
  roomName: byTestId<HTMLHeadingElement>('room-name'),
  counter: byTestId<HTMLParagraphElement>('decrypted-count'),
  timeline: byTestId<HTMLOListElement>('timeline'),
  composer: byTestId<HTMLFormElement>('composer'),
  message: byTestId<HTMLInputElement>('message-input'),
  send: byTestId<HTMLButtonElement>('send-button'),
};

function setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

// ---------------------------------------------------------------------------------------------
// The timeline

let client: MatrixClient | undefined;
let room: Room | null = null;
const rowElements = new Map<string, HTMLLIElement>();
let renderQueued = false;

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function scheduleRender(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderTimeline(); });
}

function updateRow(li: HTMLLIElement, row: MessageRow): void {
  if (li.dataset.state === row.state && li.dataset.text === row.text) return;
  li.dataset.state = row.state;
  li.dataset.text = row.text;
  li.dataset.encrypted = String(row.encrypted);
  if (row.sessionId) li.dataset.sessionId = row.sessionId;
  if (row.failureCode) li.dataset.failure = row.failureCode;
  else delete li.dataset.failure;
  const meta = document.createElement('span');
  meta.className = 'meta';
  // Everything here is the signed-in user's (written by another device of theirs); others are named.
  const other = row.sender !== client?.getUserId() ? `${row.sender.replace(/^@([^:]+):.*$/, '$1')} · ` : '';
  meta.textContent = `${other}${timeFormat.format(row.ts)}`;
  meta.title = row.sender;
  const body = document.createElement('span');
  body.className = 'body';
  if (row.failureCode) {
    const code = document.createElement('code');
    code.textContent = `(${row.failureCode})`;
    body.append('Unable to decrypt ', code);
  } else {
    body.textContent = row.text;
  }
  const session = document.createElement('span');
  session.className = 'session';
  // Which megolm session: a key the vault may hold (ids are not secret; keys never reach the DOM).
  session.textContent = row.sessionId ? `session ${row.sessionId.slice(0, 6)}` : '';
  session.title = row.sessionId ? `megolm session ${row.sessionId}` : 'not encrypted';
  li.replaceChildren(meta, body, session);
}

function renderTimeline(): void {
  if (!room) return;
  const rows = messageRows(room);
  const atBottom = ui.timeline.scrollHeight - ui.timeline.scrollTop - ui.timeline.clientHeight < 40;
  const seen = new Set<string>();
  let previous: HTMLLIElement | null = null;
  for (const row of rows) {
    seen.add(row.eventId);
    let li = rowElements.get(row.eventId);
    if (!li) {
      li = document.createElement('li');
      li.dataset.testid = 'event';
      li.dataset.eventId = row.eventId;
      rowElements.set(row.eventId, li);
    }
    updateRow(li, row);
    // Keep the list in timeline order, moving a node only when it is out of place.
    const expectedNext: ChildNode | null = previous ? previous.nextSibling : ui.timeline.firstChild;
    if (expectedNext !== li) ui.timeline.insertBefore(li, expectedNext);
    previous = li;
  }
  for (const [id, li] of rowElements) if (!seen.has(id)) { li.remove(); rowElements.delete(id); }

  const encrypted = rows.filter((r) => r.encrypted);
  const decrypted = encrypted.filter((r) => r.state === 'decrypted').length;
  ui.counter.textContent = `${decrypted} of ${encrypted.length} decrypted`;
  ui.counter.dataset.decrypted = String(decrypted);
  ui.counter.dataset.total = String(encrypted.length);
  if (atBottom) ui.timeline.scrollTop = ui.timeline.scrollHeight;
}

// ---------------------------------------------------------------------------------------------
// The vault

let vault: KeyVault | null = null;
let attachment: Attachment | null = null;
let attaching = false;

function describeVault(status: VaultStatus | null): string {
  if (!vault) return 'Key vault: not found';
  const name = `${vault.info.name} ${vault.info.version}`;
  if (!status) return `Key vault: found (${name})`;
  const lock = status.state === 'unlocked' ? 'unlocked' : 'locked (unlock it in the extension\'s popup)';
  const scopes = status.scopes.length ? `this site may: ${status.scopes.join(', ')}` : 'this site has no access yet';
  return `Key vault: found (${name}), ${lock}; ${scopes}${attachment ? '; in use' : ''}`;
}

let lastStatus: VaultStatus | null = null;
function renderVault(): void {
  if (elementMode) return;
  ui.vaultStatus.textContent = describeVault(lastStatus);
  ui.vaultHint.hidden = vault !== null;
  ui.vaultStatus.dataset.found = String(vault !== null);
  if (lastStatus) {
    ui.vaultStatus.dataset.state = lastStatus.state;
    ui.vaultStatus.dataset.scopes = lastStatus.scopes.join(' ');
  }
  ui.attach.disabled = !vault || !client || attachment !== null || attaching;
  ui.attach.textContent = attachment ? 'Key vault in use' : attaching ? 'Waiting for the key vault…' : 'Use my key vault';
}

const STAT_FIELDS: Array<[keyof AttachmentStats, string]> = [
  ['keysRequested', 'stat-keys-requested'],
  ['keysImported', 'stat-keys-imported'],
  ['notFound', 'stat-not-found'],
  ['sessionsHandedOver', 'stat-sessions-handed-over'],
  ['sessionsRejected', 'stat-sessions-rejected'],
];

const describeDirection = (what: string, direction: Direction): string =>
  direction === 'on' ? `${what}: on` : `${what}: off (${direction.off})`;

function renderStats(): void {
  if (!attachment) return;
  const stats = attachment.stats;
  ui.stats.hidden = false;
  ui.directions.hidden = false;
  for (const [field, id] of STAT_FIELDS) byTestId(id).textContent = String(stats[field]);
  byTestId('stat-last-error').textContent = stats.lastError ? stats.lastError.message : 'none';
  ui.directions.textContent = `${describeDirection('Fetching missing keys', attachment.fetching)} · ${describeDirection('Backing up new sessions', attachment.handOver)}`;
}

async function refreshVaultStatus(): Promise<void> {
  if (!vault) return;
  try {
    lastStatus = await vault.status();
  } catch (e) {
    lastStatus = null;
    ui.vaultStatus.textContent = `Key vault: found, but it did not answer (${(e as Error).message})`;
    return;
  }
  renderVault();
}

function onVaultFound(found: KeyVault): void {
  vault = found;
  found.onStatusChanged((status) => { lastStatus = status; renderVault(); });
  renderVault();
  void refreshVaultStatus().then(() => { if (autoVault) void attachVault(); });
}

async function attachVault(): Promise<void> {
  if (!vault || !client || attachment || attaching) return;
  attaching = true;
  renderVault();
  try {
    attachment = await useVault(client, vault);
    attachment.onChange(renderStats);
    renderStats();
    await refreshVaultStatus();
  } catch (e) {
    setStatus(`The key vault could not be used: ${(e as Error).message}`, 'error');
  } finally {
    attaching = false;
    renderVault();
  }
}

ui.attach.addEventListener('click', () => void attachVault());

// ---------------------------------------------------------------------------------------------
// Signing in and the room

async function start(hs: string, user: string, password: string): Promise<void> {
  ui.submit.disabled = true;
  setStatus('Signing in as a new device…');
  try {
    client = await signIn(hs, user, password);
  } catch (e) {
    ui.submit.disabled = false;
    setStatus(`Sign-in failed: ${(e as Error).message}`, 'error');
    return;
  }
  ui.password.value = '';
  const me = `${client.getUserId()} (new device ${client.getDeviceId()})`;
  if (elementMode) {
    // What Element Web exposes, for tools that look for it.
    (window as unknown as { mxMatrixClientPeg: { get: () => MatrixClient } }).mxMatrixClientPeg = { get: () => client! };
  }
  ui.loginForm.hidden = true;
  ui.signedIn.hidden = false;
  client.on(MatrixEventEvent.Decrypted, scheduleRender);
  client.on(RoomEvent.Timeline, scheduleRender);
  client.on(RoomEvent.LocalEchoUpdated, scheduleRender);

  if (elementMode) {
    ui.vaultStatus.textContent = 'Element mode: this page does not use the key vault kit; it exposes window.mxMatrixClientPeg as Element Web does.';
    ui.attach.hidden = true;
    ui.vaultHint.hidden = true;
  } else {
    watchForVault(onVaultFound);
    renderVault();
  }

  setStatus(`Signed in as ${me}; syncing…`);
  try {
    await startSyncing(client);
  } catch (e) {
    setStatus(`Sync failed: ${(e as Error).message}`, 'error');
    return;
  }
  renderVault();
  room = firstEncryptedRoom(client);
  if (!room) {
    setStatus(`Signed in as ${me}. This account has no encrypted room.`);
    ui.roomName.textContent = 'No encrypted room';
    return;
  }
  ui.roomName.textContent = room.name;
  setStatus(`Signed in as ${me}; loading the history of ${room.name}…`);
  scheduleRender();
  await loadWholeHistory(client, room, scheduleRender);
  scheduleRender();
  ui.message.disabled = false;
  ui.send.disabled = false;
  ui.timeline.dataset.loaded = 'true';
  setStatus(`Signed in as ${me}. History of ${room.name} loaded.`);
}

ui.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void start(ui.hs.value, ui.user.value, ui.password.value);
});

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.message.value.trim();
  if (!text || !client || !room) return;
  ui.send.disabled = true;
  client.sendTextMessage(room.roomId, text).then(() => {
    ui.message.value = '';
  }, (e: unknown) => {
    setStatus(`Sending failed: ${(e as Error).message}`, 'error');
  }).finally(() => { ui.send.disabled = false; });
});

ui.hs.value = params.get('hs') ?? '';
ui.user.value = params.get('user') ?? '';
ui.password.value = params.get('password') ?? '';
if (params.get('autologin') === '1' && ui.hs.value && ui.user.value && ui.password.value) ui.loginForm.requestSubmit();
