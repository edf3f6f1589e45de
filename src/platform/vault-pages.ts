/**
 * Restored sessions packed into pages (vault schema 4). Chromium's IndexedDB backend spends about
 * 0.35 ms of CPU per record it writes, whatever the record holds (bench/README.md, "Pages"): at one
 * record per session a restore of 10⁶ keys cannot take less than ≈ 5 minutes of writes alone. A
 * restore writes sessions in bulk, all of one room, key, epoch and restore, so it stores them as
 * pages of up to PAGE_SIZE sessions: one record, found by session through the page's `ids` index
 * (one entry per session, [roomId, sessionId]).
 *
 * A page is never edited in place but replaced: a session that changes (a better copy, an upload
 * under a new backup) is lifted out of its page into a row of its own (vault-rows.ts), and the page
 * is rewritten without it. A session is in exactly one place: a row, or one page.
 */
import type { SessionRow } from './vault-rows.ts';

/** Sessions per page: about 40 KB, under the size at which Chromium moves a value to a blob file. */
export const PAGE_SIZE = 50;

export interface PackedPage {
  roomId: string;
  /** The page's number: random, unique among the room's pages. */
  p: number;
  /** The sessions' public key number, upload epoch and restore (the same for the whole page). */
  k: number;
  e: number;
  r?: string;
  /** How many sessions (the `pending` index is [k, e, c], so counts need not read pages). */
  c: number;
  /** Per session, in page order: [roomId, sessionId] (the multi-entry `ids` index). */
  x: Array<[string, string]>;
  /** Per session: firstMessageIndex, forwardedCount, revision, storedAt. */
  i: number[];
  f: number[];
  v: number[];
  t: number[];
  /** The sender keys, 32 bytes each. */
  s: Uint8Array;
  /** The envelopes (ephemeral ‖ mac ‖ ciphertext), one after another; `o` holds where each ends. */
  d: Uint8Array;
  o: number[];
}

/** Whether a row can go into a page: its sender key and envelope are bytes (vault-rows.ts). */
export function isPackable(row: SessionRow): boolean {
  return row.s instanceof Uint8Array && row.s.length === 32 && row.d instanceof Uint8Array;
}

/** A page's random number (48 bits). */
function pageNumber(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high! & 0xffff) * 2 ** 32 + low!;
}

/**
 * Packs packable rows into pages of one room, key, epoch and restore each, in session-id order (an
 * export walks sessions in that order: neighbours share pages). Every row must be packable.
 */
export function packRows(rows: readonly SessionRow[]): PackedPage[] {
  const groups = new Map<string, SessionRow[]>();
  for (const row of rows) {
    const group = `${row.roomId}\u0000${row.k}\u0000${row.e}\u0000${row.r ?? ''}`;
    const list = groups.get(group);
    if (list) list.push(row);
    else groups.set(group, [row]);
  }
  const pages: PackedPage[] = [];
  for (const list of groups.values()) {
    list.sort((a, b) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0));
    for (let at = 0; at < list.length; at += PAGE_SIZE) pages.push(makePage(list.slice(at, at + PAGE_SIZE)));
  }
  return pages;
}

function makePage(rows: readonly SessionRow[]): PackedPage {
  const first = rows[0]!;
  let length = 0;
  for (const row of rows) length += (row.d as Uint8Array).length;
  const d = new Uint8Array(length);
  const s = new Uint8Array(rows.length * 32);
  const o: number[] = [];
  let at = 0;
  rows.forEach((row, n) => {
    d.set(row.d as Uint8Array, at);
    at += (row.d as Uint8Array).length;
    o.push(at);
    s.set(row.s as Uint8Array, n * 32);
  });
  const page: PackedPage = {
    roomId: first.roomId, p: pageNumber(), k: first.k, e: first.e, c: rows.length,
    x: rows.map((r) => [r.roomId, r.sessionId]),
    i: rows.map((r) => r.i), f: rows.map((r) => r.f), v: rows.map((r) => r.v), t: rows.map((r) => r.t),
    s, d, o,
  };
  if (first.r !== undefined) page.r = first.r;
  return page;
}

/** Session `n` of a page as a row of its own (its bytes copied: the row shares nothing with the page). */
export function rowOf(page: PackedPage, n: number): SessionRow {
  const [roomId, sessionId] = page.x[n]!;
  const row: SessionRow = {
    roomId, sessionId, i: page.i[n]!, f: page.f[n]!,
    s: page.s.slice(n * 32, n * 32 + 32), k: page.k, e: page.e,
    d: page.d.slice(n === 0 ? 0 : page.o[n - 1]!, page.o[n]!), v: page.v[n]!, t: page.t[n]!,
  };
  if (page.r !== undefined) row.r = page.r;
  return row;
}

/** Every session of a page, as rows. */
export function rowsOf(page: PackedPage): SessionRow[] {
  return page.x.map((_, n) => rowOf(page, n));
}

/** The page without the sessions named in `sessionIds` (same number), or null when none is left. */
export function pageWithout(page: PackedPage, sessionIds: ReadonlySet<string>): PackedPage | null {
  const kept = rowsOf(page).filter((row) => !sessionIds.has(row.sessionId));
  if (kept.length === 0) return null;
  return { ...makePage(kept), p: page.p };
}

/** A page's key in its store. */
export function pageKey(page: Pick<PackedPage, 'roomId' | 'p'>): [string, number] {
  return [page.roomId, page.p];
}
