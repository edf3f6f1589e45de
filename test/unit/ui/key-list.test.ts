import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyFileContentError, keyListBatches } from '../../../src/popup/key-list.ts';
import { importTexts } from '../../../src/popup/texts.ts';

/** The bytes of `text`, cut at the given byte offsets (possibly inside a UTF-8 sequence). */
async function* piecesOf(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const cut of [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b)) {
    yield bytes.slice(at, cut);
    at = cut;
  }
  yield bytes.slice(at);
}

async function read(text: string | Uint8Array, size: number, cuts: number[] = []): Promise<{ batches: unknown[][]; error: unknown }> {
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  const batches: unknown[][] = [];
  try {
    for await (const batch of keyListBatches(piecesOf(bytes, cuts), size)) batches.push(batch);
    return { batches, error: null };
  } catch (error) {
    return { batches, error };
  }
}

describe('keyListBatches: a key file\'s JSON list, read as its pieces come', () => {
  it('yields the list\'s elements in order, in batches of the size asked, however the bytes are cut', async () => {
    const list = Array.from({ length: 23 }, (_, i) => ({ room_id: `!r${i % 3}:x`, session_id: `s${i}`, session_key: 'é✓𝄞'.repeat(i % 4), n: i }));
    const text = JSON.stringify(list, null, 1);
    await fc.assert(fc.asyncProperty(fc.array(fc.nat({ max: text.length * 2 }), { maxLength: 12 }), fc.integer({ min: 1, max: 30 }), async (cuts, size) => {
      const { batches, error } = await read(text, size, cuts);
      expect(error).toBeNull();
      expect(batches.flat()).toEqual(list);
      expect(batches.slice(0, -1).every((b) => b.length === size)).toBe(true);
    }), { numRuns: 60 });
    expect((await read('  []\n', 5)).batches).toEqual([]);
  });

  it.each([
    ['not JSON', 'not json', importTexts.notJson],
    ['an object', '{"room_id":"!a","sessions":[1]}', importTexts.notAList],
    ['a string', '"text"', importTexts.notAList],
    ['a number', '42', importTexts.notAList],
    ['empty', '', importTexts.notJson],
    ['a list with something after it', '[1,2] [3]', importTexts.notJson],
    ['a list cut short', '[{"a":1},{"b":', importTexts.notJson],
  ])('refuses %s with a typed error that says why', async (_, text, message) => {
    const { error } = await read(text, 10, [3, 7]);
    expect(error).toBeInstanceOf(KeyFileContentError);
    expect((error as KeyFileContentError).kind).toBe('not-a-key-list');
    expect((error as Error).message).toBe(message);
  });

  it('refuses bytes that are not UTF-8, and hands on what came before a fault', async () => {
    const bad = new Uint8Array([...new TextEncoder().encode('[{"a":"'), 0xff, 0xfe, ...new TextEncoder().encode('"}]')]);
    expect((await read(bad, 10)).error).toMatchObject({ kind: 'not-a-key-list', message: importTexts.notJson });
    const cut = await read(`[${Array.from({ length: 12 }, (_, i) => `{"n":${i}}`).join(',')},{"n":`, 5, [20, 60]);
    expect(cut.error).toMatchObject({ message: importTexts.notJson });
    expect(cut.batches.flat()).toEqual(Array.from({ length: 12 }, (_, n) => ({ n })));
  });
});
