/** .ci/run's dependency audit: high or critical advisories fail; an audit endpoint out of reach is said, not failed. */
import { describe, expect, it } from 'vitest';
import { auditVerdict } from '../../scripts/audit.ts';

const counts = (high: number, critical: number, moderate = 0) =>
  ({ info: 0, low: 0, moderate, high, critical, total: high + critical + moderate });

describe('npm audit verdict', () => {
  it('passes a report with nothing high or critical', () => {
    const report = { auditReportVersion: 2, vulnerabilities: { a: { name: 'a', severity: 'moderate' } }, metadata: { vulnerabilities: counts(0, 0, 1) } };
    expect(auditVerdict(JSON.stringify(report))).toMatchObject({ outcome: 'clean' });
  });

  it('fails a report with a high or critical advisory, naming the packages', () => {
    const report = {
      auditReportVersion: 2,
      vulnerabilities: { idb: { name: 'idb', severity: 'high' }, x: { name: 'x', severity: 'low' }, preact: { name: 'preact', severity: 'critical' } },
      metadata: { vulnerabilities: counts(1, 1) },
    };
    expect(auditVerdict(JSON.stringify(report))).toEqual({ outcome: 'findings', counts: counts(1, 1), packages: ['idb (high)', 'preact (critical)'] });
  });

  it('says when the endpoint could not be reached', () => {
    const refused = { message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk', statusCode: 405, error: { summary: '', detail: '' } };
    expect(auditVerdict(JSON.stringify(refused))).toEqual({ outcome: 'unreachable', reason: refused.message });
    expect(auditVerdict(JSON.stringify({ error: { code: 'ENOTFOUND', summary: 'request to https://registry.npmjs.org failed' } })))
      .toEqual({ outcome: 'unreachable', reason: 'request to https://registry.npmjs.org failed' });
    expect(auditVerdict('')).toMatchObject({ outcome: 'unreachable' });
  });
});
