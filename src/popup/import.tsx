/**
 * Import a key file (Element's "Export E2E room keys"): a page in a tab, because Firefox closes a popup
 * when a file picker opens. The file is read twice as a stream: once to check its HMAC, once to
 * decrypt it a piece at a time and parse its JSON as it comes; its sessions go to the worker in
 * chunks, which validates, encrypts and queues each for upload. Neither the file nor its plaintext is
 * ever whole in memory (100,000 keys are ≈ 80 MB of file and 60 MB of JSON; read and parsed whole,
 * as text, bytes and objects, the page held several times that).
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { openKeyFileStream, type OpenedKeyFile } from '../core/index.ts';
import type { ImportSummary, RejectedSessionSummary } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { KeyFileContentError, keyListBatches } from './key-list.ts';
import { importTexts as t } from './texts.ts';
import { Alert, ErrorText, Header, requestPersistentStorage, UiError } from './ui.tsx';

/** Sessions per message: large enough to amortise messaging, small enough to show progress. */
const CHUNK = 500;
const MAX_FILE_BYTES = 512 * 1024 * 1024;

type Progress = { phase: 'idle' } | { phase: 'decrypting' } | { phase: 'sending'; done: number; percent: number } | { phase: 'done'; summary: ImportSummary; total: number };

/** The file's text as it is read from disk (a File can be read again from its start). */
async function* textOf(file: File): AsyncGenerator<string> {
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

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
      let opened: OpenedKeyFile;
      try {
        opened = await openKeyFileStream(() => textOf(file), passphrase);
      } catch (err) {
        throw describeFileError(err);
      }
      let read = 0;
      async function* counted(): AsyncGenerator<Uint8Array> {
        for await (const piece of opened.pieces()) {
          read += piece.length;
          yield piece;
        }
      }
      const summary: ImportSummary = { stored: 0, unchanged: 0, rejected: [] };
      let sent = 0;
      setProgress({ phase: 'sending', done: 0, percent: 0 });
      try {
        for await (const sessions of keyListBatches(counted(), CHUNK)) {
          const part = await request({ type: 'sessions.import', sessions });
          summary.stored += part.stored;
          summary.unchanged += part.unchanged;
          summary.rejected.push(...part.rejected.map((r) => ({ ...r, index: r.index + sent })));
          sent += sessions.length;
          setProgress({ phase: 'sending', done: sent, percent: opened.byteLength ? Math.floor((read / opened.byteLength) * 100) : 100 });
        }
      } catch (err) {
        // The file's contents went wrong part-way: what came before was imported, and the page says so.
        if (err instanceof KeyFileContentError && sent > 0) throw new KeyFileContentError(`${err.message} ${t.partlyImported(sent, summary)}`);
        throw err;
      }
      const total = sent;
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
        {progress.phase === 'sending' && <p data-testid="progress">{t.storing(progress.done, progress.percent)}</p>}
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
