/**
 * Export the vault's keys to a key file (Element's "Export E2E room keys" format): a page in a tab,
 * because it takes a while and offers a download. Needs the vault unlocked: the worker decrypts the
 * sessions in batches, this page encrypts the file with the user's passphrase.
 */
import { render } from 'preact';
import { useEffect, useId, useState } from 'preact/hooks';
import { encryptKeyFile } from '../core/index.ts';
import { request } from '../platform/messaging.ts';
import { checkExportForm, collectSessions, DEFAULT_ROUNDS, EXPORT_BATCH } from './export-keys.ts';
import { exportTexts as t } from './texts.ts';
import { Alert, ErrorText, Header, UiError } from './ui.tsx';

type Stage =
  | { stage: 'loading' }
  | { stage: 'locked' }
  | { stage: 'form' }
  | { stage: 'reading'; read: number; total: number }
  | { stage: 'encrypting' }
  | { stage: 'ready'; url: string; count: number; skipped: number };

function ExportKeys() {
  const id = useId();
  const [stage, setStage] = useState<Stage>({ stage: 'loading' });
  const [passphrase, setPassphrase] = useState('');
  const [confirm, setConfirm] = useState('');
  const [rounds, setRounds] = useState(String(DEFAULT_ROUNDS));
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    request({ type: 'status.get' })
      .then((s) => setStage(s.unlocked ? { stage: 'form' } : { stage: 'locked' }))
      .catch((e: unknown) => { setError(e); setStage({ stage: 'form' }); });
  }, []);

  // A new export, or leaving the page, frees the previous file.
  const url = stage.stage === 'ready' ? stage.url : null;
  useEffect(() => () => { if (url) URL.revokeObjectURL(url); }, [url]);

  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    const form = checkExportForm(passphrase, confirm, rounds);
    if (!form.ok) {
      setError(new UiError(`bad-${form.field}`, form.message));
      return;
    }
    try {
      setStage({ stage: 'reading', read: 0, total: 0 });
      const { sessions, skipped } = await collectSessions(
        (after, limit) => request({ type: 'vault.exportBatch', after, limit }),
        (read, total) => setStage({ stage: 'reading', read, total }),
        EXPORT_BATCH,
      );
      setStage({ stage: 'encrypting' });
      const file = await encryptKeyFile(JSON.stringify(sessions), passphrase, form.rounds);
      const href = URL.createObjectURL(new Blob([file], { type: 'text/plain' }));
      setPassphrase('');
      setConfirm('');
      setStage({ stage: 'ready', url: href, count: sessions.length, skipped });
    } catch (err) {
      setError(err);
      setStage((s) => ((err as { kind?: string }).kind === 'locked' ? { stage: 'locked' } : s.stage === 'ready' ? s : { stage: 'form' }));
    }
  }

  const busy = stage.stage === 'reading' || stage.stage === 'encrypting' || stage.stage === 'loading';
  return (
    <>
      <Header subtitle={t.title} />
      <main>
        {stage.stage === 'locked' && <Alert tone="warning"><span data-testid="blocked">{t.needsUnlock}</span></Alert>}
        <p>{t.intro}</p>
        <form onSubmit={submit} data-testid="export-form">
          <label>{t.passphrase}
            <input type="password" autocomplete="new-password" required value={passphrase} onInput={(e) => setPassphrase(e.currentTarget.value)} data-testid="passphrase" />
          </label>
          <label>{t.confirm}
            <input type="password" autocomplete="new-password" required value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} data-testid="confirm" />
          </label>
          <details>
            <summary>{t.advanced}</summary>
            <label>{t.rounds}
              <input type="text" inputMode="numeric" aria-describedby={`${id}-rounds`} value={rounds} onInput={(e) => setRounds(e.currentTarget.value)} data-testid="rounds" />
            </label>
            <p id={`${id}-rounds`} class="muted small">{t.roundsHint}</p>
          </details>
          {error !== null && <ErrorText error={error} />}
          <button type="submit" disabled={busy || stage.stage === 'locked'} data-testid="export">{t.button}</button>
        </form>
        <p role="status" data-testid="progress">
          {stage.stage === 'reading' && t.fetching(stage.read, stage.total)}
          {stage.stage === 'encrypting' && t.encrypting}
        </p>
        {stage.stage === 'ready' && (
          <div data-testid="export-result" data-count={stage.count} data-skipped={stage.skipped}>
            <Alert tone={stage.skipped ? 'warning' : 'ok'}>{t.ready(stage.count, stage.skipped)}</Alert>
            <p><a class="button" href={stage.url} download={t.fileName} data-testid="download">{t.download}</a></p>
          </div>
        )}
      </main>
    </>
  );
}

render(<ExportKeys />, document.getElementById('app')!);
