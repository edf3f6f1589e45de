/**
 * `npm run audit` (run by .ci/run): `npm audit --omit=dev --audit-level=high` over the dependencies
 * that ship in the extension. A high or critical advisory fails; an audit endpoint that cannot be
 * reached (offline, a mirror without the audit API) is reported as not checked, and does not fail.
 */
import { execFile } from 'node:child_process';

export type AuditVerdict =
  | { outcome: 'clean'; counts: Record<string, number> }
  | { outcome: 'findings'; counts: Record<string, number>; packages: string[] }
  | { outcome: 'unreachable'; reason: string };

const SEVERE = new Set(['high', 'critical']);

/** Reads `npm audit --json`'s output: a report (clean or with findings) or an error from the endpoint. */
export function auditVerdict(stdout: string): AuditVerdict {
  let report: {
    auditReportVersion?: number;
    metadata?: { vulnerabilities?: Record<string, number> };
    vulnerabilities?: Record<string, { severity: string }>;
    message?: string;
    error?: { summary?: string; detail?: string } | string;
  };
  try {
    report = JSON.parse(stdout) as typeof report;
  } catch {
    return { outcome: 'unreachable', reason: stdout.trim().split('\n').slice(-1)[0] || 'npm audit printed no report' };
  }
  if (report.auditReportVersion === undefined || !report.metadata?.vulnerabilities) {
    const error = typeof report.error === 'string' ? report.error : report.error?.summary;
    return { outcome: 'unreachable', reason: report.message || error || 'npm audit printed no report' };
  }
  const counts = report.metadata.vulnerabilities;
  const packages = Object.entries(report.vulnerabilities ?? {}).filter(([, v]) => SEVERE.has(v.severity)).map(([name, v]) => `${name} (${v.severity})`);
  const severe = (counts.high ?? 0) + (counts.critical ?? 0);
  return severe > 0 || packages.length > 0 ? { outcome: 'findings', counts, packages } : { outcome: 'clean', counts };
}

function runAudit(): Promise<string> {
  return new Promise((resolve) => {
    // npm exits non-zero both for findings and for an unreachable endpoint: the JSON says which.
    execFile('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { maxBuffer: 64 << 20, timeout: 120_000 },
      (_error, stdout) => resolve(String(stdout)));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const verdict = auditVerdict(await runAudit());
  switch (verdict.outcome) {
    case 'clean':
      console.log(`audit: no high or critical advisories in runtime dependencies (${JSON.stringify(verdict.counts)})`);
      break;
    case 'findings':
      console.error(`audit: high or critical advisories in runtime dependencies: ${verdict.packages.join(', ') || JSON.stringify(verdict.counts)}`);
      console.error('audit: run `npm audit --omit=dev` for details');
      process.exitCode = 1;
      break;
    case 'unreachable':
      console.log(`audit: NOT CHECKED, the registry's audit endpoint could not be reached (${verdict.reason}); going on`);
      break;
  }
}
