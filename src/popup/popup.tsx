/**
 * The popup: short interactions only (a popup closes when it loses focus, and Firefox closes it when
 * a file picker opens). Creating a backup, importing or exporting a key file, unlocking with a key
 * file and following a restore open pages in tabs. Its state is a pure reducer (state.ts): this
 * component renders the screen and turns the worker's answers into events.
 */
import { render } from 'preact';
import { useCallback, useEffect, useReducer, useState } from 'preact/hooks';
import type { EarlierKeySummary, OtherAccountSummary, ServerBackupSummary, SignOutOutcome, UnlockSummary, VaultStatus } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { hasHomeserverAccess, requestHomeserverAccess } from '../platform/permissions.ts';
import { errorStillRelevant } from './describe.ts';
import { RestoreFailures, RestoreProgress } from './restore-view.tsx';
import { failureOf, initialState, known, reduce, type PopupAction, type PopupEvent, type PopupState } from './state.ts';
import {
  accessTexts, accountTexts, appTexts, backupTexts, describeUpload, earlierTexts, otherAccountTexts, formatWhen, restoreTexts, signInTexts, unlockedTexts, unlockTexts, withWhen,
} from './texts.ts';
import { Alert, ErrorText, Header, requestPersistentStorage, UiError, useAction } from './ui.tsx';
import { UnlockForm } from './unlock-form.tsx';
import { Sites } from './sites.tsx';

const POLL_MS = 1000;

function Popup() {
  const [state, dispatch] = useReducer(reduce, initialState);
  const [persistent, setPersistent] = useState<boolean | null>(null);
  const [now, setNow] = useState(Date.now());

  const refresh = useCallback(async (fromServer: boolean) => {
    const sentAt = Date.now();
    try {
      dispatch({ type: 'status', status: await request({ type: 'status.get', refresh: fromServer }), sentAt });
    } catch (error) {
      dispatch({ type: 'status-error', error, sentAt });
    }
    setNow(Date.now());
  }, []);

  useEffect(() => {
    // The vault's own status shows at once; the server's backup (a round trip to the homeserver)
    // and the earlier keys' counts come with the second answer and are merged in.
    void refresh(false);
    void refresh(true);
    void requestPersistentStorage().then(setPersistent);
    const timer = setInterval(() => void refresh(false), POLL_MS);
    return () => clearInterval(timer);
  }, [refresh]);

  /** Runs one of the recovery actions: started, then its outcome as an event, then a fresh status. */
  const act = useCallback(async <T,>(action: PopupAction, send: () => Promise<T>, done: (value: T, at: number) => PopupEvent): Promise<boolean> => {
    dispatch({ type: 'started', action });
    try {
      const value = await send();
      dispatch(done(value, Date.now()));
    } catch (error) {
      dispatch({ type: 'failed', action, error });
      return false;
    }
    void refresh(action === 'unlock');
    return true;
  }, [refresh]);

  const k = known(state);
  return (
    <>
      <Header />
      <main data-screen={state.screen}>
        {state.screen === 'error' && <ErrorText error={state.error} />}
        {k && k.loadError !== null && <ErrorText error={k.loadError} />}
        {state.screen === 'loading' && <p class="muted">{appTexts.connecting}</p>}
        {state.screen === 'signed-out' && state.signOutNote === 'server-unreachable' && (
          <Alert tone="warning">{accountTexts.serverUnreachable}</Alert>
        )}
        {state.screen === 'signed-out' && <SignIn onDone={() => { dispatch({ type: 'signed-in', at: Date.now() }); void refresh(true); }} />}
        {k && state.screen !== 'signed-out' && state.screen !== 'loading' && state.screen !== 'error' && (
          <>
            <Account status={k.status} onSignedOut={(outcome) => {
              dispatch({ type: 'signed-out', outcome, at: Date.now() });
              void refresh(true);
            }} />
            <HomeserverAccess baseUrl={k.status.account!.homeserverUrl} />
            <Backup state={state} now={now} onChange={() => refresh(true)} />
            <Recovery state={state} now={now} act={act} />
            {k.earlier.length > 0 && <EarlierKeys list={k.earlier} onDone={() => refresh(true)} />}
            {k.otherAccounts.map((o) => <OtherAccount key={o.userId} other={o} onDone={() => refresh(true)} />)}
            <Sites />
          </>
        )}
        {k && (
          <p class="muted small" data-testid="worker-status">
            {appTexts.workerRunning(k.status.worker.version)}
            {persistent !== null && ` ${appTexts.persistentStorage(persistent)}`}
          </p>
        )}
      </main>
    </>
  );
}

type KnownState = Exclude<PopupState, { screen: 'loading' } | { screen: 'error' }>;
type Act = <T>(action: PopupAction, send: () => Promise<T>, done: (value: T, at: number) => PopupEvent) => Promise<boolean>;

function SignIn({ onDone }: { onDone: () => void }) {
  const [homeserver, setHomeserver] = useState('');
  const [user, setUser] = useState('');
  const [secret, setSecret] = useState('');
  const [useToken, setUseToken] = useState(false);
  const { busy, error, start } = useAction(async () => {
    if (useToken) await request({ type: 'account.useToken', homeserver, accessToken: secret });
    else await request({ type: 'account.login', homeserver, user, password: secret });
    setSecret('');
    onDone();
  });

  return (
    <form onSubmit={start} data-testid="sign-in">
      <h2>{signInTexts.heading}</h2>
      <label>{signInTexts.homeserver}
        <input name="homeserver" required placeholder={signInTexts.homeserverPlaceholder} value={homeserver} onInput={(e) => setHomeserver(e.currentTarget.value)} />
      </label>
      {!useToken && (
        <label>{signInTexts.user}
          <input name="user" required autocomplete="username" placeholder={signInTexts.userPlaceholder} value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </label>
      )}
      <label>{useToken ? signInTexts.accessToken : signInTexts.password}
        <input name="secret" type="password" required autocomplete={useToken ? 'off' : 'current-password'} value={secret} onInput={(e) => setSecret(e.currentTarget.value)} />
      </label>
      {error !== null && <ErrorText error={error} />}
      <button type="submit" disabled={busy}>{busy ? signInTexts.busy : signInTexts.button}</button>
      <p class="muted small">
        {useToken ? signInTexts.tokenNote : signInTexts.passwordNote}
        <a href="#" onClick={(e) => { e.preventDefault(); setUseToken(!useToken); setSecret(''); }}>
          {useToken ? signInTexts.usePassword : signInTexts.useToken}
        </a>
      </p>
    </form>
  );
}

function Account({ status, onSignedOut }: { status: VaultStatus; onSignedOut: (outcome: SignOutOutcome) => void }) {
  const account = status.account!;
  const { busy, error, start } = useAction(async () => onSignedOut(await request({ type: 'account.signOut' })));
  return (
    <section class="account">
      <div>
        <strong data-testid="user-id">{account.userId}</strong>
        <div class="muted small">{account.homeserverUrl}</div>
      </div>
      <button class="link" disabled={busy} onClick={() => start()}>{accountTexts.signOut}</button>
      {error !== null && <ErrorText error={error} />}
    </section>
  );
}

/**
 * Offers the homeserver's host permission after sign-in (see src/platform/permissions.ts): shown
 * until granted; "Not now" hides it while the popup is open.
 */
function HomeserverAccess({ baseUrl }: { baseUrl: string }) {
  const [state, setState] = useState<'checking' | 'missing' | 'declined' | 'granted' | 'hidden'>('checking');
  useEffect(() => {
    hasHomeserverAccess(baseUrl).then((granted) => setState(granted ? 'granted' : 'missing'), () => setState('hidden'));
  }, [baseUrl]);
  if (state === 'checking' || state === 'hidden') return null;
  const host = new URL(baseUrl).host;
  if (state === 'granted') return <p class="muted small" data-testid="homeserver-access" data-state="granted">{accessTexts.granted(host)}</p>;
  return (
    <section class="access" data-testid="homeserver-access" data-state={state}>
      <p>{accessTexts.why(host)}</p>
      {state === 'declined' && <p class="muted small" role="status">{accessTexts.declined}</p>}
      <button type="button" class="secondary" onClick={() => {
        // In the click itself: the browser asks the user only during a user gesture.
        requestHomeserverAccess(baseUrl).then((granted) => setState(granted ? 'granted' : 'declined'), () => setState('declined'));
      }}>{accessTexts.allow(host)}</button>{' '}
      <button type="button" class="link" onClick={() => setState('hidden')}>{accessTexts.notNow}</button>
    </section>
  );
}

function Backup({ state, now, onChange }: { state: KnownState; now: number; onChange: () => void }) {
  const { backup, upload } = state.status;
  const server = state.server;
  return (
    <section class="backup" data-testid="backup">
      {backup && (
        <>
          <h2>{backupTexts.heading(backup.version)}</h2>
          {upload.phase === 'stopped'
            ? <Alert tone="warning"><span data-testid="upload-phase" data-phase={upload.phase}>{describeUpload(upload, now)}</span></Alert>
            : <p role="status" data-testid="upload-phase" data-phase={upload.phase}>{describeUpload(upload, now)}</p>}
          {upload.notice && <Alert tone="warning">{withWhen(upload.notice.message, formatWhen(upload.notice.at, now))}</Alert>}
          <dl class="facts">
            <dt>{backupTexts.serverCount}</dt><dd data-testid="server-count">{upload.serverCount ?? (server?.state === 'present' ? server.count : backupTexts.unknownCount)}</dd>
            <dt>{backupTexts.pending}</dt><dd data-testid="pending-count">{upload.pending}</dd>
            <dt>{backupTexts.stored}</dt><dd data-testid="stored-count">{upload.stored}</dd>
            <dt>{backupTexts.lastSuccess}</dt><dd>{upload.lastSuccessAt ? formatWhen(upload.lastSuccessAt, now) : backupTexts.never}</dd>
            {upload.lastError && errorStillRelevant(upload) && (
              <><dt>{backupTexts.lastError}</dt><dd data-testid="last-error">{withWhen(upload.lastError.message, formatWhen(upload.lastError.at, now))}</dd></>
            )}
          </dl>
          {upload.phase === 'waiting' && <RetryNow onDone={onChange} />}
          <p><a href="import.html" target="_blank" data-testid="open-import">{backupTexts.importFile}</a></p>
        </>
      )}
      {state.screen === 'no-backup' && <ServerBackup server={server} changed={!!backup} />}
    </section>
  );
}

function RetryNow({ onDone }: { onDone: () => void }) {
  const { busy, error, start } = useAction(async () => { await request({ type: 'upload.retry' }); onDone(); });
  return (
    <>
      <button class="secondary" disabled={busy} onClick={() => start()}>{backupTexts.retryNow}</button>
      {error !== null && <ErrorText error={error} />}
    </>
  );
}

/** Why there is nothing to unlock: no backup on the server, an unsupported one, or not known yet. */
function ServerBackup({ server, changed }: { server: ServerBackupSummary | undefined; changed: boolean }) {
  if (!server) return <p class="muted" role="status">{backupTexts.checkingServer}</p>;
  switch (server.state) {
    case 'unreachable':
      return <ErrorText error={new UiError(server.error.kind, backupTexts.couldNotCheck(server.error.message))} />;
    case 'none':
      return (
        <div>
          <p>{changed ? backupTexts.noneNow : backupTexts.noneYet}</p>
          <p><a class="button" href="backup.html" target="_blank" data-testid="open-create">{backupTexts.create}</a></p>
        </div>
      );
    case 'present':
      if (!server.supported) {
        return <Alert tone="warning">{backupTexts.unsupported(server.version, server.algorithm)}</Alert>;
      }
      return null;
  }
}

/** Unlock, restore, lock: what the screen calls for. */
function Recovery({ state, now, act }: { state: KnownState; now: number; act: Act }) {
  switch (state.screen) {
    case 'signed-out':
    case 'no-backup':
      return null;
    case 'locked':
      return (
        <section class="recovery" data-testid="recovery">
          <Unlock state={state} act={act} intro={state.changed ? unlockTexts.changed(state.version) : unlockTexts.intro(state.version, state.count)} />
        </section>
      );
    case 'unlocked':
      return (
        <section class="recovery" data-testid="recovery">
          <Unlocked state={state} unlocked={state.unlocked} act={act} canRestore />
        </section>
      );
    case 'restoring':
    case 'done': {
      const active = state.screen === 'restoring';
      return (
        <section class="recovery" data-testid="recovery">
          {state.unlocked && <Unlocked state={state} unlocked={state.unlocked} act={act} canRestore={!active} />}
          <h2>{restoreTexts.heading}</h2>
          <RestoreProgress restore={state.restore} now={now} />
          {active && (
            <p>
              <button class="secondary" disabled={state.busy === 'cancel'}
                onClick={() => void act('cancel', () => request({ type: 'restore.cancel' }), (restore, at) => ({ type: 'restore-cancelled', restore, at }))}>
                {restoreTexts.cancel}
              </button>
            </p>
          )}
          {failureOf(state, 'cancel') !== null && <ErrorText error={failureOf(state, 'cancel')} />}
          {!state.unlocked && <Unlock state={state} act={act} intro={unlockTexts.resumeIntro(state.restore.version)} />}
          <RestoreFailures restore={state.restore} />
          <p><a href="restore.html" target="_blank" data-testid="open-restore">{restoreTexts.openPage}</a></p>
        </section>
      );
    }
  }
}

function Unlock({ state, act, intro }: { state: KnownState; act: Act; intro: string }) {
  const [input, setInput] = useState('');
  return (
    <UnlockForm
      value={input} onValue={setInput} intro={intro}
      busy={state.busy === 'unlock'} error={failureOf(state, 'unlock')}
      onUnlock={async (text) => {
        if (await act('unlock', () => request({ type: 'vault.unlock', input: text }), (unlocked, at) => ({ type: 'unlocked', unlocked, at }))) setInput('');
      }}
    >
      <p class="small"><a href="unlock.html" target="_blank" data-testid="open-unlock-file">{unlockTexts.fromFile}</a></p>
      <p class="muted small">{unlockTexts.forgotten}</p>
    </UnlockForm>
  );
}

function Unlocked({ state, unlocked, act, canRestore }: { state: KnownState; unlocked: UnlockSummary; act: Act; canRestore: boolean }) {
  const restoreError = failureOf(state, 'restore');
  const lockError = failureOf(state, 'lock');
  return (
    <div data-testid="unlocked" data-via={unlocked.via}>
      <h2>{unlockedTexts.heading}</h2>
      <p role="status">{unlockedTexts.unlockedWith(unlocked.via)}</p>
      {canRestore && <p class="muted small">{unlockedTexts.restoreHint}</p>}
      <div class="row">
        {canRestore && (
          <button disabled={state.busy !== null}
            onClick={() => void act('restore', () => request({ type: 'restore.start' }), (restore, at) => ({ type: 'restore-started', restore, at }))}>
            {unlockedTexts.restore}
          </button>
        )}
        <button class="secondary" disabled={state.busy !== null}
          onClick={() => void act('lock', () => request({ type: 'vault.lock' }), (_, at) => ({ type: 'locked', at }))}>
          {unlockedTexts.lock}
        </button>
        {state.busy === 'restore' && <span class="muted small" role="status">{unlockedTexts.starting}</span>}
        {state.busy === 'lock' && <span class="muted small" role="status">{unlockedTexts.locking}</span>}
      </div>
      {restoreError !== null && <ErrorText error={restoreError} />}
      {lockError !== null && <ErrorText error={lockError} />}
      <p><a href="export.html" target="_blank" data-testid="open-export">{unlockedTexts.export}</a></p>
    </div>
  );
}

/** Sessions encrypted to an earlier backup's key: prove that key to move them to the current backup. */
function EarlierKeys({ list, onDone }: { list: EarlierKeySummary[]; onDone: () => void }) {
  return (
    <section class="earlier">
      <h2>{earlierTexts.heading}</h2>
      {list.map((e) => <EarlierKey key={e.publicKey} earlier={e} onDone={onDone} />)}
    </section>
  );
}

function EarlierKey({ earlier, onDone }: { earlier: EarlierKeySummary; onDone: () => void }) {
  const [input, setInput] = useState('');
  const [result, setResult] = useState<{ moved: number; failed: number } | null>(null);
  const { busy, error, start } = useAction(async () => {
    setResult(await request({ type: 'earlier.unlock', input, publicKey: earlier.publicKey }));
    setInput('');
    onDone();
  });
  return (
    <form onSubmit={start} data-testid="earlier" data-version={earlier.version} data-count={earlier.count}>
      <p role="status">{earlierTexts.waiting(earlier.count, earlier.version)}</p>
      <p class="muted small">{earlierTexts.explain}</p>
      <label>{earlierTexts.label(earlier.version)}
        <input name="earlierKey" type="password" autocomplete="off" spellcheck={false} required value={input} onInput={(e) => setInput(e.currentTarget.value)} />
      </label>
      {error !== null && <ErrorText error={error} />}
      <button type="submit" disabled={busy}>{earlierTexts.button}</button>
      {result && (
        <Alert tone={result.failed ? 'warning' : 'ok'}>
          <span data-testid="earlier-result" data-moved={result.moved} data-failed={result.failed}>{earlierTexts.moved(result.moved, result.failed)}</span>
        </Alert>
      )}
    </form>
  );
}

/** Keys another account left here: kept, or erased after the user confirms. */
function OtherAccount({ other, onDone }: { other: OtherAccountSummary; onDone: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [erased, setErased] = useState<number | null>(null);
  const { busy, error, start } = useAction(async () => {
    setErased((await request({ type: 'vault.eraseAccount', userId: other.userId })).erased);
    setConfirming(false);
    onDone();
  });
  return (
    <section class="earlier" data-testid="other-account" data-user={other.userId} data-count={other.count}>
      <h2>{otherAccountTexts.heading}</h2>
      <p role="status">{otherAccountTexts.held(other.userId, other.count)}</p>
      <p class="muted small">{otherAccountTexts.explain}</p>
      {!confirming && <button type="button" class="secondary" onClick={() => setConfirming(true)}>{otherAccountTexts.erase}</button>}
      {confirming && (
        <div role="alertdialog" aria-label={otherAccountTexts.heading} data-testid="erase-confirm">
          <p>{otherAccountTexts.confirm(other.userId, other.count)}</p>
          <button type="button" disabled={busy} onClick={() => start()}>{otherAccountTexts.confirmButton}</button>{' '}
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>{otherAccountTexts.keep}</button>
        </div>
      )}
      {error !== null && <ErrorText error={error} />}
      {erased !== null && <Alert tone="ok"><span data-testid="erased" data-erased={erased}>{otherAccountTexts.erased(erased)}</span></Alert>}
    </section>
  );
}

render(<Popup />, document.getElementById('app')!);
