/**
 * The popup: short interactions only (a popup closes when it loses focus, and Firefox closes it when
 * a file picker opens). Creating a backup and importing a key file open pages in tabs.
 */
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import type { ServerBackupSummary, SignOutOutcome, VaultStatus } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { describeUpload, errorStillRelevant, formatWhen } from './describe.ts';
import { Alert, ErrorText, Header, requestPersistentStorage, UiError, useAction } from './ui.tsx';

const POLL_MS = 1000;

function Popup() {
  const [status, setStatus] = useState<VaultStatus | null>(null);
  const [server, setServer] = useState<ServerBackupSummary | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [persistent, setPersistent] = useState<boolean | null>(null);
  const [signOutNote, setSignOutNote] = useState<string | null>(null);

  const refresh = useCallback(async (fromServer: boolean) => {
    try {
      const next = await request({ type: 'status.get', refresh: fromServer });
      setStatus(next);
      if (next.server) setServer(next.server);
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
    }
  }, []);

  useEffect(() => {
    void refresh(true);
    void requestPersistentStorage().then(setPersistent);
    const timer = setInterval(() => void refresh(false), POLL_MS);
    return () => clearInterval(timer);
  }, [refresh]);

  return (
    <>
      <Header />
      <main>
        {loadError !== null && <ErrorText error={loadError} />}
        {status === null && loadError === null && <p class="muted">Connecting to the background worker…</p>}
        {signOutNote && !status?.account && <Alert tone="warning">{signOutNote}</Alert>}
        {status && !status.account && <SignIn onDone={() => { setSignOutNote(null); void refresh(true); }} />}
        {status?.account && (
          <>
            <Account status={status} onSignedOut={(outcome) => {
              setSignOutNote(outcome === 'server-unreachable'
                ? 'Signed out here, but the homeserver could not be reached: the “Matrix Key Vault” session may still be listed in your other clients; remove it there.'
                : null);
              void refresh(true);
            }} />
            <Backup status={status} server={server} onChange={() => refresh(true)} />
          </>
        )}
        {status && (
          <p class="muted small" data-testid="worker-status">
            Background worker running (version {status.worker.version}).{' '}
            {persistent !== null && `Persistent storage: ${persistent ? 'granted' : 'not granted'}.`}
          </p>
        )}
      </main>
    </>
  );
}

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
      <h2>Connect your Matrix account</h2>
      <label>Homeserver
        <input name="homeserver" required placeholder="matrix.org" value={homeserver} onInput={(e) => setHomeserver(e.currentTarget.value)} />
      </label>
      {!useToken && (
        <label>Username
          <input name="user" required autocomplete="username" placeholder="@alice:matrix.org or alice" value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </label>
      )}
      <label>{useToken ? 'Access token' : 'Password'}
        <input name="secret" type="password" required autocomplete={useToken ? 'off' : 'current-password'} value={secret} onInput={(e) => setSecret(e.currentTarget.value)} />
      </label>
      {error !== null && <ErrorText error={error} />}
      <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      <p class="muted small">
        {useToken
          ? 'The token is kept encrypted so backup can run in the background. '
          : 'Your password signs in a new session named “Matrix Key Vault” and is never stored. '}
        <a href="#" onClick={(e) => { e.preventDefault(); setUseToken(!useToken); setSecret(''); }}>
          {useToken ? 'Use a password instead' : 'Use an access token instead'}
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
      <button class="link" disabled={busy} onClick={() => start()}>Sign out</button>
      {error !== null && <ErrorText error={error} />}
    </section>
  );
}

function Backup({ status, server, onChange }: { status: VaultStatus; server: ServerBackupSummary | undefined; onChange: () => void }) {
  const now = Date.now();
  const { backup, upload } = status;
  const needsKey = !backup || upload.stopped?.kind === 'backup-changed';
  return (
    <section class="backup" data-testid="backup">
      {backup && (
        <>
          <h2>Backup version {backup.version}</h2>
          {upload.phase === 'stopped'
            ? <Alert tone="warning"><span data-testid="upload-phase" data-phase={upload.phase}>{describeUpload(upload, now)}</span></Alert>
            : <p data-testid="upload-phase" data-phase={upload.phase}>{describeUpload(upload, now)}</p>}
          {upload.notice && <Alert tone="warning">{upload.notice.message} ({formatWhen(upload.notice.at, now)})</Alert>}
          <dl class="facts">
            <dt>Keys on the server</dt><dd data-testid="server-count">{upload.serverCount ?? (server?.state === 'present' ? server.count : '—')}</dd>
            <dt>Keys waiting to upload</dt><dd data-testid="pending-count">{upload.pending}</dd>
            <dt>Keys held here</dt><dd data-testid="stored-count">{upload.stored}</dd>
            <dt>Last successful upload</dt><dd>{upload.lastSuccessAt ? formatWhen(upload.lastSuccessAt, now) : 'never'}</dd>
            {upload.lastError && errorStillRelevant(upload) && (
              <><dt>Last error</dt><dd data-testid="last-error">{upload.lastError.message} ({formatWhen(upload.lastError.at, now)})</dd></>
            )}
          </dl>
          {upload.phase === 'waiting' && <RetryNow onDone={onChange} />}
          <p><a href="import.html" target="_blank" data-testid="open-import">Import a key file…</a></p>
        </>
      )}
      {needsKey && <ServerBackup server={server} onChange={onChange} changed={!!backup} />}
    </section>
  );
}

function RetryNow({ onDone }: { onDone: () => void }) {
  const { busy, error, start } = useAction(async () => { await request({ type: 'upload.retry' }); onDone(); });
  return (
    <>
      <button class="secondary" disabled={busy} onClick={() => start()}>Retry now</button>
      {error !== null && <ErrorText error={error} />}
    </>
  );
}

function ServerBackup({ server, onChange, changed }: { server: ServerBackupSummary | undefined; onChange: () => void; changed: boolean }) {
  if (!server) return <p class="muted">Checking the server's backup…</p>;
  switch (server.state) {
    case 'unreachable':
      return <ErrorText error={new UiError(server.error.kind, `Could not check the server's backup: ${server.error.message}`)} />;
    case 'none':
      return (
        <div>
          <p>{changed ? 'The account has no backup on the server now.' : 'Your account has no key backup yet.'}</p>
          <p><a class="button" href="backup.html" target="_blank" data-testid="open-create">Create a backup…</a></p>
        </div>
      );
    case 'present':
      if (!server.supported) {
        return <Alert tone="warning">The account's backup (version {server.version}) uses {server.algorithm}, which this extension does not support.</Alert>;
      }
      return <JoinBackup version={server.version} count={server.count} onDone={onChange} />;
  }
}

function JoinBackup({ version, count, onDone }: { version: string; count: number; onDone: () => void }) {
  const [key, setKey] = useState('');
  const { busy, error, start } = useAction(async () => {
    await request({ type: 'backup.join', recoveryKey: key });
    setKey('');
    onDone();
  });
  return (
    <form onSubmit={start} data-testid="join">
      <p>Your account has a backup (version {version}, {count} keys). Enter its recovery key so this extension can add keys to it.
        The key is checked against the backup and then forgotten; only its public half is kept.</p>
      <label>Backup recovery key
        <input name="recoveryKey" type="password" autocomplete="off" spellcheck={false} required placeholder="EsTc LW2K …" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
      </label>
      {error !== null && <ErrorText error={error} />}
      <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Use this backup'}</button>
    </form>
  );
}

render(<Popup />, document.getElementById('app')!);
