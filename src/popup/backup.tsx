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
import { createTexts as t } from './texts.ts';
import { Alert, ErrorText, Header, requestPersistentStorage } from './ui.tsx';

type Stage =
  | { stage: 'loading' }
  | { stage: 'blocked'; reason: string }
  | { stage: 'explain' }
  | { stage: 'show'; recoveryKey: string }
  | { stage: 'done'; pin: PinSummary };

function blockedReason(status: VaultStatus): string | null {
  if (!status.account) return t.signedOut;
  if (status.backup && !status.upload.stopped) return t.alreadyUploading(status.backup.version);
  if (status.server?.state === 'present') return t.serverHasBackup(status.server.version);
  if (status.server?.state === 'unreachable') return t.couldNotCheck(status.server.error.message);
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
    const blob = new Blob([t.fileContents(recoveryKey)], { type: 'text/plain' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = t.fileName;
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
      <Header subtitle={t.title} />
      <main>
        {stage.stage === 'loading' && <p class="muted">{t.checking}</p>}
        {stage.stage === 'blocked' && <Alert tone="warning"><span data-testid="blocked">{stage.reason}</span></Alert>}
        {stage.stage === 'explain' && (
          <>
            <p>{t.explain}</p>
            <h2>{t.elementHeading}</h2>
            <ul>
              <li>{t.elementUse}</li>
              <li>{t.elementReplaces}</li>
            </ul>
            <button onClick={generate} data-testid="generate">{t.generate}</button>
          </>
        )}
        {stage.stage === 'show' && (
          <>
            <p>{t.shownBefore}<strong>{t.shownOnce}</strong>{t.shownAfter}</p>
            <p class="recovery-key" data-testid="recovery-key">{stage.recoveryKey}</p>
            <p>
              <button class="secondary" onClick={() => void navigator.clipboard.writeText(stage.recoveryKey)}>{t.copy}</button>{' '}
              <button class="secondary" onClick={() => download(stage.recoveryKey)}>{t.download}</button>
            </p>
            <label><input type="checkbox" checked={saved} onChange={(e) => setSaved(e.currentTarget.checked)} data-testid="saved" /> {t.saved}</label>
            {error !== null && <ErrorText error={error} />}
            <button disabled={!saved || busy} onClick={() => create(stage.recoveryKey)} data-testid="create">
              {busy ? t.busy : t.button}
            </button>
          </>
        )}
        {stage.stage === 'done' && (
          <Alert tone="ok">
            <span data-testid="created">{t.created(stage.pin.version)}</span>
          </Alert>
        )}
      </main>
    </>
  );
}

render(<CreateBackup />, document.getElementById('app')!);
