import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { WorkerStatus } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';

type View = { state: 'loading' } | { state: 'ready'; status: WorkerStatus } | { state: 'error'; message: string };

function Popup() {
  const [view, setView] = useState<View>({ state: 'loading' });
  useEffect(() => {
    request({ type: 'status.get' })
      .then((status) => setView({ state: 'ready', status }))
      .catch((e: unknown) => setView({ state: 'error', message: e instanceof Error ? e.message : String(e) }));
  }, []);
  return (
    <>
      <header>
        <img src="icons/icon-32.png" alt="" />
        <h1>Matrix Key Vault</h1>
      </header>
      <main>
        {view.state === 'loading' && <p class="status">Connecting to the background worker…</p>}
        {view.state === 'ready' && (
          <p class="status" data-testid="worker-status">Background worker running (version {view.status.version}).</p>
        )}
        {view.state === 'error' && <p class="error" role="alert">{view.message}</p>}
      </main>
    </>
  );
}

render(<Popup />, document.getElementById('app')!);
