import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sealKeyFile } from '../../../src/core/key-file.ts';
import { decodeBase64, decryptKeyFile, encodeBase64, encryptKeyFile, openKeyFile, openKeyFileStream, type CoreErrorKind } from '../../../src/core/index.ts';
import { errorOf, kindOf, vectors } from './helpers.ts';

interface KeyFileVector { id: string; password: string; plaintext: string; file: string }
const files = vectors<{ files: KeyFileVector[] }>('key-export.json').files;
const HEADER = '-----BEGIN MEGOLM SESSION DATA-----';
const TRAILER = '-----END MEGOLM SESSION DATA-----';

/** The decoded body of an armoured file (test-side reader, independent of the code under test). */
function bodyOf(file: string): Uint8Array {
  const inner = file.split('\n').filter((l) => l !== HEADER && l !== TRAILER && l !== '');
  return decodeBase64(inner.join(''));
}
function armour(body: Uint8Array): string {
  return `${HEADER}\n${encodeBase64(body, true)}\n${TRAILER}\n`;
}
const roundsOf = (body: Uint8Array): number => new DataView(body.buffer, body.byteOffset).getUint32(33);

describe('key-export files: Element vectors (V11–V14)', () => {
  it.each(files)('decrypts $id', async ({ file, password, plaintext }) => {
    expect(await decryptKeyFile(file, password)).toBe(plaintext);
  });

  it.each(files)('re-encrypts $id to the same body with its salt, IV and rounds', async ({ file, password, plaintext }) => {
    const body = bodyOf(file);
    const ours = await encryptKeyFile(plaintext, password, roundsOf(body), { salt: body.subarray(1, 17), iv: body.subarray(17, 33) });
    expect(bodyOf(ours)).toEqual(body);
  });

  it('needs the 64-bit counter: the all-ff IV vector decrypts to its text (V14)', async () => {
    const v14 = files.find((f) => f.id === 'element-4-ff-iv')!;
    expect(bodyOf(v14.file).subarray(17, 33)).toEqual(new Uint8Array(16).fill(0xff));
    expect(await decryptKeyFile(v14.file, v14.password)).toBe(v14.plaintext);
  });
});

describe('key-export files: written the way Element writes them', () => {
  it('uses 128-character lines (96-byte chunks), pads only the last line, ends with a newline', async () => {
    const file = await encryptKeyFile('x'.repeat(1000), 'pass', 1);
    const lines = file.split('\n');
    expect(lines[0]).toBe(HEADER);
    expect(lines.at(-2)).toBe(TRAILER);
    expect(lines.at(-1)).toBe('');
    const inner = lines.slice(1, -2);
    expect(inner.length).toBeGreaterThan(8);
    for (const line of inner.slice(0, -1)) {
      expect(line).toHaveLength(128);
      expect(line).not.toContain('=');
    }
    // 1 + 16 + 16 + 4 + 1000 + 32 = 1069 bytes = 11 × 96 + 13: the last line holds 13 bytes, padded.
    expect(inner.at(-1)).toBe(encodeBase64(bodyOf(file).subarray(1056), true));
    expect(inner.at(-1)).toMatch(/=$/);
  });

  it('writes 500,000 rounds by default, a random salt and an IV with bit 63 clear', async () => {
    const a = bodyOf(await encryptKeyFile('{}', 'pass'));
    const b = bodyOf(await encryptKeyFile('{}', 'pass', 2));
    expect(a[0]).toBe(1);
    expect(roundsOf(a)).toBe(500_000);
    expect(roundsOf(b)).toBe(2);
    expect(a.subarray(1, 17)).not.toEqual(b.subarray(1, 17));
    expect(a[17 + 8]! & 0x80).toBe(0);
    expect(b[17 + 8]! & 0x80).toBe(0);
  });

  it('round-trips any text and passphrase', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 30 }), async (plaintext, passphrase) => {
      expect(await decryptKeyFile(await encryptKeyFile(plaintext, passphrase, 1), passphrase)).toBe(plaintext);
    }), { numRuns: 40 });
  });
});

describe('key-export files: tolerant reading', () => {
  const v = files.find((f) => f.id === 'element-3')!;
  const body = bodyOf(v.file);
  const base64 = encodeBase64(body);
  const variants: Array<[string, string]> = [
    ['CRLF line ends', v.file.replace(/\n/g, '\r\n')],
    ['one unpadded line, no trailing newline (rust-sdk)', `${HEADER}\n${base64}\n${TRAILER}`],
    ['71-character unpadded lines', `${HEADER}\n${base64.match(/.{1,71}/g)!.join('\n')}\n${TRAILER}\n`],
    ['indented lines and blank lines', `${HEADER}\n\n   ${base64.slice(0, 40)}  \n\t${base64.slice(40)}\n\n${TRAILER}\n`],
    ['text before the header and after the trailer', `exported by someone\n${v.file}trailing words\n`],
    ['every line padded on its own', `${HEADER}\n${[body.subarray(0, 50), body.subarray(50, 100), body.subarray(100)].map((c) => encodeBase64(c, true)).join('\n')}\n${TRAILER}\n`],
  ];
  it.each(variants)('reads %s', async (_label, file) => {
    expect(await decryptKeyFile(file, v.password)).toBe(v.plaintext);
  });
});

describe('key-export files: bad inputs', () => {
  const v = files.find((f) => f.id === 'element-1')!;
  const body = bodyOf(v.file);
  const withBody = (change: (b: Uint8Array) => Uint8Array): string => armour(change(body.slice()));
  const setRounds = (rounds: number) => (b: Uint8Array): Uint8Array => {
    new DataView(b.buffer).setUint32(33, rounds);
    return b;
  };

  const bad: Array<[string, string, string, CoreErrorKind]> = [
    ['no header', v.file.replace(HEADER, ''), v.password, 'header'],
    ['a misspelt header', v.file.replace('BEGIN', 'BEGN'), v.password, 'header'],
    ['a PGP header instead', v.file.replace('MEGOLM SESSION DATA', 'PGP MESSAGE'), v.password, 'header'],
    ['no trailer', v.file.replace(TRAILER, ''), v.password, 'trailer'],
    ['the trailer before the header only', `${TRAILER}\n${v.file.replace(TRAILER, '')}`, v.password, 'trailer'],
    ['an empty file', '', v.password, 'header'],
    ['no body', `${HEADER}\n${TRAILER}\n`, v.password, 'length'],
    ['a body that is not base64', `${HEADER}\n!!!!\n${TRAILER}\n`, v.password, 'base64'],
    ['version 2', withBody((b) => { b[0] = 2; return b; }), v.password, 'version'],
    ['version 0', withBody((b) => { b[0] = 0; return b; }), v.password, 'version'],
    ['a body one byte short of the minimum', withBody((b) => b.subarray(0, 68)), v.password, 'length'],
    ['zero rounds', withBody(setRounds(0)), v.password, 'iterations'],
    ['absurd rounds (a file that would hang us)', withBody(setRounds(0xffffffff)), v.password, 'iterations'],
    ['a wrong passphrase', v.file, 'not the password', 'hmac'],
    ['a changed ciphertext', withBody((b) => { b[40]! ^= 1; return b; }), v.password, 'hmac'],
    ['a changed HMAC', withBody((b) => { b[b.length - 1]! ^= 1; return b; }), v.password, 'hmac'],
    ['a changed salt', withBody((b) => { b[1]! ^= 1; return b; }), v.password, 'hmac'],
    ['changed rounds (10 → 11)', withBody(setRounds(11)), v.password, 'hmac'],
  ];
  it.each(bad)('refuses %s', async (_label, file, passphrase, kind) => {
    expect(await kindOf(() => decryptKeyFile(file, passphrase))).toBe(kind);
  });

  it('names the key file\'s round count when it refuses it', async () => {
    await expect(decryptKeyFile(withBody(setRounds(20_000_000)), v.password)).rejects.toThrow(/key file's round count is 20000000/);
  });

  it('says the passphrase is probably wrong, without repeating it', async () => {
    const error = await errorOf(() => decryptKeyFile(v.file, 'hunter2-secret'));
    expect(error.kind).toBe('hmac');
    expect(error.message).toMatch(/passphrase is probably wrong/);
    expect(error.message).not.toContain('hunter2-secret');
  });

  it('refuses a file whose decrypted bytes are not UTF-8 with kind utf8', async () => {
    const file = await sealKeyFile(Uint8Array.of(0x5b, 0xc3, 0x28, 0x5d), 'pass', 1);
    expect(await kindOf(() => decryptKeyFile(file, 'pass'))).toBe('utf8');
  });

  it.each([0, -1, 2.5, 10_000_001, Number.NaN])('refuses to write %s rounds', async (rounds) => {
    expect(await kindOf(() => encryptKeyFile('{}', 'pass', rounds))).toBe('iterations');
  });

  it('refuses non-text arguments and pinned salt/IV of the wrong size', async () => {
    expect(await kindOf(() => decryptKeyFile(new Uint8Array(3) as unknown as string, 'p'))).toBe('field');
    expect(await kindOf(() => encryptKeyFile({} as unknown as string, 'p', 1))).toBe('field');
    expect(await kindOf(() => encryptKeyFile('{}', 5 as unknown as string, 1))).toBe('field');
    expect(await kindOf(() => encryptKeyFile('{}', 'p', 1, { salt: new Uint8Array(8) }))).toBe('length');
    expect(await kindOf(() => encryptKeyFile('{}', 'p', 1, { iv: new Uint8Array(12) }))).toBe('length');
  });
});

describe('openKeyFile: the plaintext a piece at a time', () => {
  const concat = (pieces: Uint8Array[]): Uint8Array => {
    const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of pieces) { out.set(p, at); at += p.length; }
    return out;
  };
  const collect = async (file: string, password: string, size?: number): Promise<Uint8Array[]> => {
    const pieces: Uint8Array[] = [];
    for await (const piece of (await openKeyFile(file, password)).pieces(size)) pieces.push(piece);
    return pieces;
  };

  it.each(files)('pieces of 16, 48 and 1 MiB bytes join to the whole plaintext of $id', async ({ file, password, plaintext }) => {
    const whole = new TextEncoder().encode(plaintext);
    for (const size of [16, 48, undefined]) {
      const pieces = await collect(file, password, size);
      expect(new TextDecoder().decode(concat(pieces))).toBe(plaintext);
      if (size !== undefined) expect(pieces.every((p, i) => p.length === (i < pieces.length - 1 ? size : whole.length - size * (pieces.length - 1)))).toBe(true);
    }
  });

  it('carries the 64-bit counter into later pieces, wrapping within its low 8 bytes as Element\'s files do', async () => {
    // The counter's low 8 bytes start 2 blocks before the wrap: pieces of one block cross it.
    const iv = new Uint8Array(16).fill(0x11);
    iv.fill(0xff, 8, 16);
    iv[15] = 0xfe;
    const plaintext = JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ session_id: `s${i}`, n: i })));
    const file = await encryptKeyFile(plaintext, 'pass', 1, { iv });
    for (const size of [16, 32, 80]) expect(new TextDecoder().decode(concat(await collect(file, 'pass', size)))).toBe(plaintext);
  });

  it('checks the HMAC before any piece, and refuses pieces that are not whole AES blocks', async () => {
    const { file, password } = files[0]!;
    expect(await kindOf(() => openKeyFile(file, `${password}x`))).toBe('hmac');
    const opened = await openKeyFile(file, password);
    for (const size of [0, 15, 17, 1.5]) expect(await kindOf(async () => { for await (const _ of opened.pieces(size)) break; })).toBe('length');
  });
});

describe('openKeyFileStream: the file read as it comes, twice', () => {
  const cutText = (text: string, cuts: number[]) => async function* (): AsyncGenerator<string> {
    let at = 0;
    for (const cut of [...new Set(cuts)].filter((c) => c > 0 && c < text.length).sort((a, b) => a - b)) {
      yield text.slice(at, cut);
      at = cut;
    }
    yield text.slice(at);
  };
  const plaintextOf = async (opened: Awaited<ReturnType<typeof openKeyFileStream>>, size?: number): Promise<string> => {
    const parts: string[] = [];
    const decoder = new TextDecoder();
    for await (const piece of opened.pieces(size)) parts.push(decoder.decode(piece, { stream: true }));
    return parts.join('') + decoder.decode();
  };

  it('gives the same plaintext however the text is cut (inside lines, between CR and LF)', async () => {
    const v = files[0]!;
    const crlf = v.file.replace(/\n/g, '\r\n');
    await fc.assert(fc.asyncProperty(fc.array(fc.nat({ max: crlf.length }), { maxLength: 20 }), fc.constantFrom(16, 64, 1024), async (cuts, size) => {
      const opened = await openKeyFileStream(cutText(crlf, cuts), v.password);
      expect(await plaintextOf(opened, size)).toBe(v.plaintext);
    }), { numRuns: 25 });
  });

  it('reads a file that is one unwrapped base64 line longer than the line buffer, cut into small pieces', async () => {
    const plaintext = JSON.stringify(Array.from({ length: 900 }, (_, i) => ({ room_id: '!r:x', session_id: `s${i}`, session_key: 'k'.repeat(60) })));
    const body = bodyOf(await encryptKeyFile(plaintext, 'pw', 1));
    const oneLine = `${HEADER}\n${encodeBase64(body, false)}\n${TRAILER}\n`;
    expect(oneLine.length).toBeGreaterThan(70_000);
    const cuts = Array.from({ length: 200 }, (_, i) => i * 997);
    expect(await plaintextOf(await openKeyFileStream(cutText(oneLine, cuts), 'pw'))).toBe(plaintext);
  });

  it('checks the HMAC on the first pass, and refuses a second pass that reads another file', async () => {
    const v = files[0]!;
    expect(await kindOf(() => openKeyFileStream(cutText(v.file, [40, 90]), `${v.password}!`))).toBe('hmac');
    const other = await encryptKeyFile(`${v.plaintext} `, v.password, roundsOf(bodyOf(v.file)), { salt: bodyOf(v.file).subarray(1, 17), iv: bodyOf(v.file).subarray(17, 33) });
    let reads = 0;
    const swapping = () => cutText(reads++ === 0 ? v.file : other, [50])();
    const opened = await openKeyFileStream(swapping, v.password);
    const error = await errorOf(() => plaintextOf(opened, 16));
    expect(error).toMatchObject({ kind: 'hmac', message: expect.stringMatching(/changed while it was being read/) });
  });
});

describe('a large key file', () => {
  it('decrypts a file of ≈ 170,000 lines whole and in pieces (no list of every line is ever spread)', async () => {
    const session = { algorithm: 'm.megolm.v1.aes-sha2', room_id: '!room:example.org', sender_key: 'k'.repeat(43), session_key: 's'.repeat(600) };
    const plaintext = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ ...session, session_id: `id${i}` })));
    const file = await encryptKeyFile(plaintext, 'pw', 1);
    expect(file.split('\n').length).toBeGreaterThan(150_000);
    expect(await decryptKeyFile(file, 'pw')).toBe(plaintext);
    let bytes = 0;
    for await (const piece of (await openKeyFile(file, 'pw')).pieces()) bytes += piece.length;
    expect(bytes).toBe(new TextEncoder().encode(plaintext).length);
  });
});
