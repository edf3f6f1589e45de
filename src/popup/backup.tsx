/**
 * Create a backup: a page in a tab, not the popup, because it shows a secret the user must save (a
 * popup would close, and lose it, the moment the user switches windows to paste it somewhere).
 * The key is generated here, shown once, and handed to the worker only when the user confirms it
 * is saved; the worker derives the public key, creates the version and pins it.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { encodeRecoveryKey } from '../core/index.ts';
import type { PinSummary, VaultStatus } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { Alert, ErrorText, Header, requestPersistentStorage } from './ui.tsx';

type Stage =
  | { stage: 'loading' }
  | { stage: 'blocked'; reason: string }
  | { stage: 'explain' }
  | { stage: 'show'; recoveryKey: string }
  | { stage: 'done'; pin: PinSummary };

function blockedReason(status: VaultStatus): string | null {
  if (!status.account) return 'Sign in from the extension popup first.';
  if (status.backup && !status.upload.stopped) return `This extension already uploads to backup version ${status.backup.version}.`;
  if (status.server?.state === 'present') {
    return `Your account already has a backup (version ${status.server.version}). Enter its recovery key in the popup to use it; ` +
      'creating another would replace it for every client.';
  }
  if (status.server?.state === 'unreachable') return `Could not check the server: ${status.server.error.message}`;
  return null;
}

function CreateBackup() {
  const [stage, setStage] = useState<Stage>({ stage: 'loading' });
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    void requestPersistentStorage();
    request({ type: 'status.get', refresh: true })
      .then((status) => {
        const reason = blockedReason(status);
        setStage(reason ? { stage: 'blocked', reason } : { stage: 'explain' });
      })
      .catch((e: unknown) => setStage({ stage: 'blocked', reason: e instanceof Error ? e.message : String(e) }));
  }, []);

  function generate() {
    setStage({ stage: 'show', recoveryKey: encodeRecoveryKey(crypto.getRandomValues(new Uint8Array(32))) });
  }

  function download(recoveryKey: string) {
    const blob = new Blob([`Matrix key backup recovery key\n\n${recoveryKey}\n`], { type: 'text/plain' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'matrix-recovery-key.txt';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }

  async function create(recoveryKey: string) {
    setBusy(true);
    setError(null);
    try {
      const pin = await request({ type: 'backup.create', recoveryKey });
      setStage({ stage: 'done', pin });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Header subtitle="Create a key backup" />
      <main>
        {stage.stage === 'loading' && <p class="muted">Checking your account…</p>}
        {stage.stage === 'blocked' && <Alert tone="warning"><span data-testid="blocked">{stage.reason}</span></Alert>}
        {stage.stage === 'explain' && (
          <>
            <p>Your account has no key backup. This creates one on your homeserver: every key this extension is given
              is encrypted to it and uploaded, and only the recovery key shown next can read it back.</p>
            <h2>What this means next to Element</h2>
            <ul>
              <li>Element does not upload to a backup whose key it has not been given. To let Element use this backup too,
                enter the recovery key there (Settings → Encryption → recovery).</li>
              <li>If you set up recovery in Element later, Element replaces this backup with its own. This extension then
                stops uploading and tells you the backup changed; enter the new recovery key here to continue.</li>
            </ul>
            <button onClick={generate} data-testid="generate">Generate my recovery key</button>
          </>
        )}
        {stage.stage === 'show' && (
          <>
            <p>This is your recovery key. It is shown <strong>once</strong>. Without it the backup cannot be read by anyone,
              including you. Save it in a password manager or print it.</p>
            <p class="recovery-key" data-testid="recovery-key">{stage.recoveryKey}</p>
            <p>
              <button class="secondary" onClick={() => void navigator.clipboard.writeText(stage.recoveryKey)}>Copy</button>{' '}
              <button class="secondary" onClick={() => download(stage.recoveryKey)}>Download as a file</button>
            </p>
            <label><input type="checkbox" checked={saved} onChange={(e) => setSaved(e.currentTarget.checked)} data-testid="saved" /> I have saved my recovery key somewhere safe</label>
            {error !== null && <ErrorText error={error} />}
            <button disabled={!saved || busy} onClick={() => create(stage.recoveryKey)} data-testid="create">
              {busy ? 'Creating…' : 'Create the backup'}
            </button>
          </>
        )}
        {stage.stage === 'done' && (
          <Alert tone="ok">
            <span data-testid="created">Backup version {stage.pin.version} created. New keys are now uploaded to it; you can close this tab.</span>
          </Alert>
        )}
      </main>
    </>
  );
}

render(<CreateBackup />, document.getElementById('app')!);
