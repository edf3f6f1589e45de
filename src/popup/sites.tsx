/**
 * The popup's "Sites" section: allow the current tab's site to use the page API (with its scopes
 * spelled out), and the list of allowed sites, each revocable. Allowing asks the browser for that
 * site's host permission in the click itself (a prompt needs a user gesture), then the worker
 * stores the grant, registers the page API for the site and connects its open tabs.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { request } from '../platform/messaging.ts';
import { currentTabUrl, requestSiteAccess } from '../platform/permissions.ts';
import { parseSiteOrigin, sitePermissionPattern } from '../platform/sites.ts';
import type { SiteSummary } from '../shared/messages.ts';
import { SCOPES, type Scope } from '../shared/page-api.ts';
import { siteTexts } from './texts.ts';
import { Alert, ErrorText, useAction } from './ui.tsx';

/**
 * The site the popup was opened on. Opened from the toolbar, that is the active tab (activeTab lets
 * the popup read its address); opened as a page (tests, or a link with `?site=`), the parameter.
 */
async function currentSite(): Promise<string | null> {
  const fromTab = await currentTabUrl().catch(() => null);
  const tabSite = fromTab ? parseSiteOrigin(fromTab) : null;
  if (tabSite) return tabSite;
  const param = new URLSearchParams(location.search).get('site');
  return param ? parseSiteOrigin(param) : null;
}

export function Sites() {
  const [sites, setSites] = useState<SiteSummary[] | null>(null);
  const [site, setSite] = useState<string | null | undefined>(undefined);
  const [note, setNote] = useState<{ text: string; tone: 'ok' | 'warning' } | null>(null);
  const [listError, setListError] = useState<unknown>(null);

  const reload = useCallback(async () => {
    try {
      setSites(await request({ type: 'sites.list' }));
      setListError(null);
    } catch (error) {
      setListError(error);
    }
  }, []);

  useEffect(() => {
    void reload();
    void currentSite().then(setSite);
    // A connected client's counts change while the popup is open.
    const timer = setInterval(() => void reload(), 2000);
    return () => clearInterval(timer);
  }, [reload]);

  const current = site ? sites?.find((s) => s.origin === site) : undefined;
  return (
    <section class="sites" data-testid="sites">
      <h2>{siteTexts.heading}</h2>
      {site && sites && !current && <AllowSite site={site} onDone={(text) => { setNote({ text, tone: 'ok' }); void reload(); }} />}
      {site === null && <p class="muted small">{siteTexts.notASite}</p>}
      {note && <Alert tone={note.tone}><span data-testid="site-note">{note.text}</span></Alert>}
      {listError !== null && <ErrorText error={listError} />}
      {sites && sites.length === 0 && <p class="muted small">{siteTexts.none}</p>}
      {sites && sites.length > 0 && (
        <ul class="site-list">
          {sites.map((s) => (
            <SiteRow key={s.origin} site={s} current={s.origin === site} onChanged={() => void reload()}
              onRevoked={() => { setNote({ text: siteTexts.revoked(s.origin), tone: 'ok' }); void reload(); }} />
          ))}
        </ul>
      )}
    </section>
  );
}

function AllowSite({ site, onDone }: { site: string; onDone: (text: string) => void }) {
  const [scopes, setScopes] = useState<Scope[]>([...SCOPES]);
  const [declined, setDeclined] = useState(false);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const { busy, error, start } = useAction(async () => {
    setDeclined(false);
    const { injected } = await request({ type: 'sites.allow', origin: site, scopes });
    onDone(siteTexts.allowed(site, injected));
  });
  return (
    <form data-testid="allow-site" data-site={site} onSubmit={(e) => {
      e.preventDefault();
      if (scopes.length === 0) return;
      // In the click itself: the browser asks the user only during a user gesture. The worker is
      // told first (without waiting): if this popup closes while the prompt is open, it finishes.
      const asked = requestSiteAccess(sitePermissionPattern(site));
      // Its failure changes nothing here: the `sites.allow` below still goes once the prompt answers.
      request({ type: 'sites.intend', origin: site, scopes }).catch(() => undefined);
      const declined = (): void => {
        setDeclined(true);
        request({ type: 'sites.cancelIntent', origin: site }).catch(setCancelError);
      };
      asked.then((granted) => (granted ? start() : declined()), declined);
    }}>
      <p>{siteTexts.allowIntro(site)}</p>
      {SCOPES.map((scope) => (
        <label class="check" key={scope}>
          <input type="checkbox" name={`scope-${scope}`} checked={scopes.includes(scope)}
            onChange={(e) => setScopes(e.currentTarget.checked ? SCOPES.filter((s) => s === scope || scopes.includes(s)) : scopes.filter((s) => s !== scope))} />
          {siteTexts.scopeNames[scope]}
        </label>
      ))}
      {scopes.length === 0 && <p class="muted small" role="status">{siteTexts.chooseScope}</p>}
      <button type="submit" disabled={busy || scopes.length === 0}>{siteTexts.allow}</button>
      <p class="muted small">{siteTexts.allowNote}</p>
      {declined && <p class="muted small" role="status" data-testid="site-declined">{siteTexts.declined}</p>}
      {error !== null && <ErrorText error={error} />}
      {cancelError !== null && <ErrorText error={cancelError} />}
    </form>
  );
}

function SiteRow({ site, current, onRevoked, onChanged }: { site: SiteSummary; current: boolean; onRevoked: () => void; onChanged: () => void }) {
  const { busy, error, start } = useAction(async () => {
    await request({ type: 'sites.revoke', origin: site.origin });
    onRevoked();
  });
  const connect = useAction(async () => {
    await request({ type: 'sites.connectClient', origin: site.origin, on: !site.connectClient });
    onChanged();
  });
  return (
    <li data-testid="site" data-origin={site.origin} data-scopes={site.scopes.join(' ')} data-current={current}>
      <strong>{site.origin}</strong>
      <div class="muted small">{siteTexts.may(site.scopes)}</div>
      <button type="button" class="link" disabled={busy} onClick={() => start()}>{siteTexts.revoke}</button>
      <div class="client">
        <label class="check">
          <input type="checkbox" name="connect-client" checked={site.connectClient} disabled={connect.busy} onChange={() => void connect.start()} />
          {siteTexts.connect}
        </label>
        <p class="muted small">{siteTexts.connectWhy}</p>
        {site.connectClient && (
          <p class="small" role="status" data-testid="client-status" data-state={site.client?.state ?? 'unknown'}
            data-fetched={site.client?.keysFetched ?? 0} data-handed-over={site.client?.sessionsHandedOver ?? 0}>
            {site.client ? siteTexts.client(site.client) : siteTexts.clientUnknown}
          </p>
        )}
      </div>
      {connect.error !== null && <ErrorText error={connect.error} />}
      {error !== null && <ErrorText error={error} />}
    </li>
  );
}
