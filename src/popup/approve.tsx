/**
 * The approval window a site's `vault_requestScopes` opens when it asks for more than it holds. It
 * shows which site asks for what, from the worker's record (never from the page's words), and sends
 * the user's answer. Closing the window counts as "Deny".
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { request } from '../platform/messaging.ts';
import type { Scope } from '../shared/page-api.ts';
import { siteTexts } from './texts.ts';
import { Alert, ErrorText, Header, useAction } from './ui.tsx';

const ARM_DELAY_MS = 1000;

function Approve() {
  const id = decodeURIComponent(location.hash.slice(1));
  const [asked, setAsked] = useState<{ origin: string; scopes: Scope[] } | null | undefined>(undefined);
  const [answered, setAnswered] = useState<boolean | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  // The buttons wake up a moment after the window shows: a page cannot time the window to catch a
  // click the user meant for something else.
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    request({ type: 'approval.get', id }).then(setAsked, setLoadError);
    const timer = setTimeout(() => setArmed(true), ARM_DELAY_MS);
    return () => clearTimeout(timer);
  }, [id]);
  const answer = (allow: boolean) => async () => {
    const { answered } = await request({ type: 'approval.answer', id, allow });
    if (!answered) {
      setAsked(null); // no longer waiting (the worker restarted, or it timed out): nothing was decided
      return;
    }
    setAnswered(allow);
    window.close();
  };
  const allow = useAction(answer(true));
  const deny = useAction(answer(false));
  return (
    <>
      <Header subtitle={siteTexts.approvalTitle} />
      <main data-testid="approval">
        {loadError !== null && <ErrorText error={loadError} />}
        {asked === null && <p role="status">{siteTexts.approvalGone}</p>}
        {asked && answered === null && (
          <>
            <p><strong data-testid="approval-origin">{asked.origin}</strong></p>
            <p>{siteTexts.approvalAsk(asked.origin)}</p>
            <ul data-testid="approval-scopes">{asked.scopes.map((s) => <li key={s} data-scope={s}>{siteTexts.scopeNames[s]}</li>)}</ul>
            <div class="row">
              <button type="button" disabled={!armed || allow.busy || deny.busy} onClick={() => allow.start()}>{siteTexts.approvalAllow}</button>
              <button type="button" class="secondary" disabled={!armed || allow.busy || deny.busy} onClick={() => deny.start()}>{siteTexts.approvalDeny}</button>
            </div>
            {allow.error !== null && <ErrorText error={allow.error} />}
            {deny.error !== null && <ErrorText error={deny.error} />}
          </>
        )}
        {answered !== null && <Alert tone="ok">{siteTexts.approvalDone(answered)}</Alert>}
      </main>
    </>
  );
}

render(<Approve />, document.getElementById('app')!);
