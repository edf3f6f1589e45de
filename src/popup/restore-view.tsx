/**
 * A restore's progress and summary, shared by the popup and the restore page: a progress bar (role
 * progressbar, done of the server's count), the numbers, and for a restore with failures the counts by
 * reason and the first failures with room, session and reason.
 */
import { useEffect, useState } from 'preact/hooks';
import type { RestoreFailureKind, RestoreFailureSummary, RestoreSummary } from '../shared/messages.ts';
import { request } from '../platform/messaging.ts';
import { restoreActive } from './state.ts';
import { describeRestore, failureKindNames, formatDuration, restoreTexts as t } from './texts.ts';
import { ErrorText } from './ui.tsx';

export const FAILURES_SHOWN = 50;
const n = (x: number) => x.toLocaleString('en');

export function RestoreProgress({ restore, now }: { restore: RestoreSummary; now: number }) {
  const active = restoreActive(restore);
  const fraction = restore.serverCount > 0 ? Math.min(1, restore.done / restore.serverCount) : (active ? 0 : 1);
  return (
    <div class="restore" data-testid="restore" data-phase={restore.phase}>
      <p role="status" data-testid="restore-status" class={restore.phase === 'failed' || restore.phase === 'waiting' ? 'warn' : ''}>
        {describeRestore(restore, now)}
      </p>
      <div
        class="progress" role="progressbar" aria-label={t.progressLabel} data-testid="restore-progress"
        aria-valuemin={0} aria-valuemax={restore.serverCount} aria-valuenow={restore.done}
        aria-valuetext={t.keysOf(restore.done, restore.serverCount)}
      >
        <div style={{ width: `${(fraction * 100).toFixed(1)}%` }} />
      </div>
      <dl class="facts">
        <dt>{t.keysDone}</dt><dd data-testid="restore-done">{t.keysOf(restore.done, restore.serverCount)}</dd>
        <dt>{t.rooms}</dt><dd data-testid="restore-rooms">{n(restore.rooms)}</dd>
        <dt>{t.restored}</dt><dd data-testid="restore-restored">{n(restore.restored)}</dd>
        <dt>{t.alreadyPresent}</dt><dd data-testid="restore-present">{n(restore.alreadyPresent)}</dd>
        <dt>{t.failed}</dt><dd data-testid="restore-failed">{n(restore.failed)}</dd>
        {restore.phase === 'running' && restore.rate !== null && <><dt>{t.rate}</dt><dd data-testid="restore-rate">{t.rateValue(restore.rate)}</dd></>}
        {restore.phase === 'running' && restore.secondsLeft !== null && <><dt>{t.timeLeft}</dt><dd data-testid="restore-left">{formatDuration(restore.secondsLeft)}</dd></>}
      </dl>
    </div>
  );
}

/** Counts by reason (from the summary) and the first failures with reasons (asked of the worker). */
export function RestoreFailures({ restore }: { restore: RestoreSummary }) {
  const [list, setList] = useState<RestoreFailureSummary[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  // Ask again only when something new could appear in the first FAILURES_SHOWN.
  const key = `${restore.id}:${Math.min(restore.failed, FAILURES_SHOWN)}:${restoreActive(restore)}`;
  useEffect(() => {
    if (restore.failed === 0) { setList(null); return; }
    let live = true;
    request({ type: 'restore.failures', limit: FAILURES_SHOWN })
      .then((l) => { if (live) { setList(l); setError(null); } })
      .catch((e: unknown) => { if (live) setError(e); });
    return () => { live = false; };
  }, [key]);

  if (restore.failed === 0) return null;
  const kinds = Object.entries(restore.failuresByKind) as Array<[RestoreFailureKind, number]>;
  return (
    <div class="failures" data-testid="restore-failures">
      <h2>{t.failuresHeading}</h2>
      {kinds.length > 0 && (
        <ul data-testid="restore-kinds" aria-label={t.failuresByKind}>
          {kinds.map(([kind, count]) => (
            <li key={kind} data-kind-count={kind}>{failureKindNames[kind] ?? kind}: {n(count)}</li>
          ))}
        </ul>
      )}
      {error !== null && <ErrorText error={error} />}
      {list && list.length > 0 && (
        <table class="rejected restore-list" data-testid="restore-failure-list">
          <thead><tr><th>{t.room}</th><th>{t.session}</th><th>{t.reason}</th></tr></thead>
          <tbody>
            {list.slice(0, FAILURES_SHOWN).map((f) => (
              <tr key={`${f.roomId}|${f.sessionId}`}><td>{f.roomId}</td><td>{f.sessionId}</td><td>{f.reason}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {list && restore.failed > Math.min(list.length, FAILURES_SHOWN) && <p class="muted small">{t.moreFailures(restore.failed - Math.min(list.length, FAILURES_SHOWN))}</p>}
    </div>
  );
}
