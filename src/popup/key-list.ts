/** What a decrypted key file must contain before its sessions go to the worker. */
import { JSONParser } from '@streamparser/json';
import { importTexts } from './texts.ts';

export class KeyFileContentError extends Error {
  readonly kind = 'not-a-key-list';
}

/** The decrypted file must be a JSON array (of ExportedSessionData); each element is checked by the worker. */
export function parseKeyList(plaintext: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(plaintext);
  } catch {
    throw new KeyFileContentError(importTexts.notJson);
  }
  if (!Array.isArray(parsed)) throw new KeyFileContentError(importTexts.notAList);
  return parsed;
}

/**
 * The elements of the JSON array a key file's plaintext holds, read as its pieces come (a streaming
 * parser that keeps no parsed element once it is handed on), in batches of `size`: the decrypted
 * file is never whole in memory, as text or as objects. Throws KeyFileContentError when the bytes
 * are not UTF-8 JSON, or the JSON is not an array; batches before that point have been yielded.
 */
export async function* keyListBatches(pieces: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<unknown[]> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const parser = new JSONParser({ paths: ['$.*'], keepStack: false });
  let batch: unknown[] = [];
  let first: string | null = null;
  let problem: KeyFileContentError | null = null;
  let ended = false;
  parser.onValue = ({ value, key }) => {
    if (typeof key !== 'number') {
      problem ??= new KeyFileContentError(importTexts.notAList);
      return;
    }
    batch.push(value);
  };
  parser.onEnd = () => { ended = true; };
  parser.onError = () => { problem ??= new KeyFileContentError(importTexts.notJson); };
  const write = (text: string): void => {
    if (first === null) first = /\S/.exec(text)?.[0] ?? null;
    if (ended && /\S/.test(text)) problem ??= new KeyFileContentError(importTexts.notJson);
    if (ended || problem || text === '') return;
    try {
      parser.write(text);
    } catch {
      problem ??= new KeyFileContentError(importTexts.notJson);
    }
  };
  const decode = (piece?: Uint8Array): string => {
    try {
      return piece ? decoder.decode(piece, { stream: true }) : decoder.decode();
    } catch {
      throw new KeyFileContentError(importTexts.notJson);
    }
  };
  for await (const piece of pieces) {
    write(decode(piece));
    while (batch.length >= size) yield batch.splice(0, size);
    if (problem) throw problem;
  }
  write(decode());
  if (!ended && !problem) {
    try {
      parser.end();
    } catch {
      problem ??= new KeyFileContentError(importTexts.notJson);
    }
    // A lone number ends only with the input; anything else unfinished is not JSON.
    if (!ended) problem ??= new KeyFileContentError(importTexts.notJson);
  }
  if (batch.length > 0) yield batch.splice(0);
  if (problem) throw problem;
  if (first === null) throw new KeyFileContentError(importTexts.notJson); // nothing but white space
  if (first !== '[') throw new KeyFileContentError(importTexts.notAList);
}
