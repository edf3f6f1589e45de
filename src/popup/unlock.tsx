/**
 * Unlock with a key file: a page in a tab, because Firefox closes a popup when a file picker opens.
 * The file (Element's "security-key.txt" holds just the key) is read here into the same field the
 * popup has; pressing Unlock sends it to the worker, which proves it against the server's backup.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { UnlockSummary } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { keyFromFile } from './recovery-input.ts';
import { fileTexts as t, unlockedTexts } from './texts.ts';
import { Alert, ErrorText, Header, UiError, useAction } from './ui.tsx';
import { UnlockForm } from './unlock-form.tsx';

/** A key file is a line of text; anything much larger is not one. */
const MAX_FILE_BYTES = 64 * 1024;

function UnlockPage() {
  const [input, setInput] = useState('');
  const [fileNote, setFileNote] = useState<string | null>(null);
  const [fileError, setFileError] = useState<unknown>(null);
  const [blocked, setBlocked] = useState<string | null>(null);
  const [unlocked, setUnlocked] = useState<UnlockSummary | null>(null);
  const unlock = useAction(async () => {
    setUnlocked(await request({ type: 'vault.unlock', input }));
    setInput('');
  });

  useEffect(() => {
    request({ type: 'status.get' })
      .then((s) => { if (!s.account) setBlocked(t.signedOut); })
      .catch((e: unknown) => setFileError(e));
  }, []);

  async function readFile(file: File | undefined) {
    setFileError(null);
    setFileNote(null);
    if (!file) return;
    try {
      if (file.size > MAX_FILE_BYTES) throw new UiError('too-large', t.tooLarge);
      const key = keyFromFile(await file.text());
      if (key === null) throw new UiError('no-key-in-file', t.noKeyInFile);
      setInput(key);
      setFileNote(t.read(file.name));
    } catch (e) {
      setFileError(e);
    }
  }

  return (
    <>
      <Header subtitle={t.title} />
      <main>
        {blocked && <Alert tone="warning"><span data-testid="blocked">{blocked}</span></Alert>}
        <p>{t.intro}</p>
        <label>{t.fileLabel}
          <input type="file" accept=".txt,text/plain" onChange={(e) => void readFile(e.currentTarget.files?.[0])} data-testid="file" />
        </label>
        <p role="status" class="small" data-testid="file-status">{fileNote}</p>
        {fileError !== null && <ErrorText error={fileError} />}
        {unlocked
          ? (
            <Alert tone="ok">
              <span data-testid="unlocked" data-via={unlocked.via}>{unlockedTexts.unlockedWith(unlocked.via)} {t.done}</span>
            </Alert>
          )
          : <UnlockForm value={input} onValue={setInput} onUnlock={() => unlock.start()} busy={unlock.busy} error={unlock.error} />}
      </main>
    </>
  );
}

render(<UnlockPage />, document.getElementById('app')!);
