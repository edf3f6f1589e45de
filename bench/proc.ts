/** Process CPU time from /proc, for the benchmarks' "who spent the time" columns. Linux only. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Synapse } from '../test/harness/synapse.ts';

const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time of a process in ms, from /proc (Synapse is one Python process: one core at most). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

/**
 * Synapse writes no pid file unless it daemonises; the harness's child is Synapse itself (it execs
 * into it), so look for our child whose command line names this Synapse's data dir.
 */
export function synapsePid(synapse: Synapse): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (parent === process.pid && cmdline.includes('synapse.app.homeserver') && cmdline.includes(synapse.dataDir)) return Number(entry);
    } catch (e) {
      // A process that ended while we looked is not ours; anything else is a real failure.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ESRCH') throw e;
    }
  }
  throw new Error(`cannot find the Synapse process for ${synapse.dataDir} among this process's children`);
}
