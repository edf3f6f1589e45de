/**
 * Import a key file (Element's "Export E2E room keys"): a page in a tab, because Firefox closes a popup
 * when a file picker opens. The file is decrypted here; its sessions go to the worker in chunks, which
 * validates, encrypts and queues each for upload.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { decryptKeyFile } from '../core/index.ts';
import type { ImportSummary, RejectedSessionSummary } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { parseKeyList } from './key-list.ts';
import { importTexts as t } from './texts.ts';
import { Alert, ErrorText, Header, requestPersistentStorage, UiError } from './ui.tsx';

/** Sessions per message: large enough to amortise messaging, small enough to show progress. */
const CHUNK = 500;
const MAX_FILE_BYTES = 512 * 1024 * 1024;

type Progress = { phase: 'idle' } | { phase: 'decrypting' } | { phase: 'sending'; done: number; total: number } | { phase: 'done'; summary: ImportSummary; total: number };

function describeFileError(e: unknown): unknown {
  const kind = (e as { kind?: string } | null)?.kind;
  switch (kind) {
    case 'hmac':
      return new UiError('wrong-passphrase', t.wrongPassphrase);
    case 'header':
    case 'trailer':
      return new UiError('not-a-key-file', t.notAKeyFile);
    case 'version':
      return new UiError('key-file-version', t.unknownVersion);
    default:
      return e;
  }
}

function ImportKeys() {
  const [file, setFile] = useState<File | null>(null);
  const [passphrase, setPassphrase] = useState('');
  const [progress, setProgress] = useState<Progress>({ phase: 'idle' });
  const [error, setError] = useState<unknown>(null);
  const [blocked, setBlocked] = useState<string | null>(null);

  useEffect(() => {
    void requestPersistentStorage();
    request({ type: 'status.get' }).then((s) => {
      if (!s.backup) setBlocked(t.noBackup);
    }).catch((e: unknown) => setError(e));
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    if (!file) return;
    setError(null);
    try {
      if (file.size > MAX_FILE_BYTES) throw new UiError('too-large', t.tooLarge);
      setProgress({ phase: 'decrypting' });
      let plaintext: string;
      try {
        plaintext = await decryptKeyFile(await file.text(), passphrase);
      } catch (err) {
        throw describeFileError(err);
      }
      const sessions = parseKeyList(plaintext);
      const total = sessions.length;
      const summary: ImportSummary = { stored: 0, unchanged: 0, rejected: [] };
      for (let i = 0; i < total; i += CHUNK) {
        setProgress({ phase: 'sending', done: i, total });
        const part = await request({ type: 'sessions.import', sessions: sessions.slice(i, i + CHUNK) });
        summary.stored += part.stored;
        summary.unchanged += part.unchanged;
        summary.rejected.push(...part.rejected.map((r) => ({ ...r, index: r.index + i })));
      }
      setPassphrase('');
      setProgress({ phase: 'done', summary, total });
    } catch (err) {
      setError(err);
      setProgress({ phase: 'idle' });
    }
  }

  const busy = progress.phase === 'decrypting' || progress.phase === 'sending';
  return (
    <>
      <Header subtitle={t.title} />
      <main>
        {blocked && <Alert tone="warning"><span data-testid="blocked">{blocked}</span></Alert>}
        <p>{t.intro}</p>
        <form onSubmit={submit} data-testid="import-form">
          <label>{t.file} <input type="file" accept=".txt,text/plain" required onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} data-testid="file" /></label>
          <label>{t.passphrase} <input type="password" autocomplete="off" required value={passphrase} onInput={(e) => setPassphrase(e.currentTarget.value)} data-testid="passphrase" /></label>
          {error !== null && <ErrorText error={error} />}
          <button type="submit" disabled={busy || !file} data-testid="import">{busy ? t.busy : t.button}</button>
        </form>
        {progress.phase === 'decrypting' && <p data-testid="progress">{t.decrypting}</p>}
        {progress.phase === 'sending' && <p data-testid="progress">{t.storing(progress.done, progress.total)}</p>}
        {progress.phase === 'done' && <Result summary={progress.summary} total={progress.total} />}
      </main>
    </>
  );
}

function Result({ summary, total }: { summary: ImportSummary; total: number }) {
  return (
    <div data-testid="result" data-stored={summary.stored} data-unchanged={summary.unchanged} data-rejected={summary.rejected.length}>
      <Alert tone={summary.rejected.length ? 'warning' : 'ok'}>
        {t.result(total, summary)}
      </Alert>
      {summary.rejected.length > 0 && <Rejected list={summary.rejected} />}
    </div>
  );
}

function Rejected({ list }: { list: RejectedSessionSummary[] }) {
  const shown = list.slice(0, 100);
  return (
    <>
      <h2>{t.rejectedHeading}</h2>
      <table class="rejected">
        <thead><tr><th>{t.number}</th><th>{t.room}</th><th>{t.session}</th><th>{t.reason}</th></tr></thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.index}><td>{r.index + 1}</td><td>{r.roomId ?? t.unknown}</td><td>{r.sessionId ?? t.unknown}</td><td>{r.reason}</td></tr>
          ))}
        </tbody>
      </table>
      {list.length > shown.length && <p class="muted">{t.more(list.length - shown.length)}</p>}
    </>
  );
}

render(<ImportKeys />, document.getElementById('app')!);
