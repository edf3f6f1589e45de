/**
 * The restore page: the same progress and summary as the popup, in a tab that stays open (a popup
 * closes when it loses focus). The restore itself runs in the worker; this page only watches.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { RestoreSummary } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { RestoreFailures, RestoreProgress } from './restore-view.tsx';
import { restoreActive } from './state.ts';
import { appTexts, restoreTexts as t } from './texts.ts';
import { ErrorText, Header, useAction } from './ui.tsx';

const POLL_MS = 1000;

function RestorePage() {
  const [restore, setRestore] = useState<RestoreSummary | null | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    let live = true;
    async function poll() {
      try {
        const status = await request({ type: 'status.get' });
        if (!live) return;
        setRestore(status.restore);
        setLoadError(null);
      } catch (e) {
        if (live) setLoadError(e);
      }
      setNow(Date.now());
    }
    void poll();
    const timer = setInterval(() => void poll(), POLL_MS);
    return () => { live = false; clearInterval(timer); };
  }, []);

  const cancel = useAction(async () => {
    const r = await request({ type: 'restore.cancel' });
    if (r) setRestore(r);
  });

  return (
    <>
      <Header subtitle={t.pageTitle} />
      <main>
        {loadError !== null && <ErrorText error={loadError} />}
        {restore === undefined && loadError === null && <p class="muted">{appTexts.connecting}</p>}
        {restore === null && <p role="status" data-testid="no-restore">{t.noRestore}</p>}
        {restore && (
          <>
            <RestoreProgress restore={restore} now={now} />
            {restoreActive(restore) && (
              <p><button class="secondary" disabled={cancel.busy} onClick={() => void cancel.start()}>{t.cancel}</button></p>
            )}
            {cancel.error !== null && <ErrorText error={cancel.error} />}
            <RestoreFailures restore={restore} />
          </>
        )}
      </main>
    </>
  );
}

render(<RestorePage />, document.getElementById('app')!);
