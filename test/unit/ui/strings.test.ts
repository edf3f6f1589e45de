/**
 * Every word people read in the extension's pages sits in src/popup/texts.ts, ready for translation.
 * The other files under src/popup are parsed (oxc, through Vite) and searched for text of their own:
 * JSX text, readable attributes (placeholder, title, alt, aria-label…), string literals a page
 * renders, and sentence-like string literals anywhere (error messages, file contents).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseSync } from 'vite';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const popup = join(root, 'src/popup');
const TEXTS = 'texts.ts';

type Node = { type: string; start: number; [key: string]: unknown };

/** Attributes whose value people read or hear. */
const READABLE_ATTRIBUTES = new Set(['placeholder', 'title', 'alt', 'label', 'aria-label', 'aria-valuetext', 'aria-description', 'download', 'value']);
/** Whether `child`'s value becomes (part of) `parent`'s value: a branch, an operand of +, a template part. */
function passesThrough(parent: Node, child: Node): boolean {
  switch (parent.type) {
    case 'ConditionalExpression':
      return child !== parent.test;
    case 'LogicalExpression':
      return true;
    case 'BinaryExpression':
      return parent.operator === '+';
    case 'TemplateLiteral':
    case 'ParenthesizedExpression':
      return true;
    default:
      return false;
  }
}

const hasLetter = (s: string) => /\p{L}/u.test(s);
/** Words with a capital, spaces and punctuation: "Sign in", "The file is too large." (not "muted small", "text/plain"). */
const looksLikeProse = (s: string) => /\p{Lu}\p{Ll}*[\s,:;.…]+\p{L}/u.test(s) || /\p{L}[.…!?]$/u.test(s.trim()) && /\s/.test(s.trim());

function children(node: Node): Node[] {
  const out: Node[] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key === 'parent') continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v && typeof v === 'object' && typeof (v as Node).type === 'string') out.push(v as Node);
    }
  }
  return out;
}

/** Text in one source file that is not taken from texts.ts, as "line: text". */
export function ownTexts(file: string, source: string): string[] {
  const parsed = parseSync(file, source, { lang: file.endsWith('.tsx') ? 'tsx' : 'ts' });
  if (parsed.errors.length) throw new Error(`${file}: ${parsed.errors.map((e) => e.message).join('; ')}`);
  const found: string[] = [];
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length;
  const report = (node: Node, text: string) => found.push(`${lineOf(node.start)}: ${JSON.stringify(text.trim())}`);

  /** Whether a string here ends up as a JSX child: only pass-through expressions up to a `{…}` among children. */
  function rendered(node: Node, ancestors: Node[]): boolean {
    let child = node;
    for (let i = ancestors.length - 1; i >= 0; i--) {
      const a = ancestors[i]!;
      if (a.type === 'JSXExpressionContainer') {
        const parent = ancestors[i - 1];
        return parent?.type === 'JSXElement' || parent?.type === 'JSXFragment';
      }
      if (!passesThrough(a, child)) return false;
      child = a;
    }
    return false;
  }

  function visit(node: Node, ancestors: Node[]) {
    const parent = ancestors[ancestors.length - 1];
    if (node.type === 'ImportDeclaration' || node.type === 'ExportAllDeclaration' || node.type === 'ExportNamedDeclaration' && node.source) return;
    if (node.type === 'JSXText' && hasLetter(node.value as string)) report(node, node.value as string);
    const strings: string[] = [];
    if (node.type === 'Literal' && typeof node.value === 'string') strings.push(node.value);
    if (node.type === 'TemplateLiteral') for (const q of node.quasis as Array<{ value: { cooked: string } }>) strings.push(q.value.cooked ?? '');
    for (const s of strings) {
      if (!hasLetter(s)) continue;
      if (parent?.type === 'JSXAttribute') {
        const name = (parent.name as { name?: string }).name ?? '';
        if (READABLE_ATTRIBUTES.has(name) || looksLikeProse(s)) report(node, s);
      } else if (rendered(node, ancestors) || looksLikeProse(s)) {
        report(node, s);
      }
    }
    for (const child of children(node)) visit(child, [...ancestors, node]);
  }
  visit(parsed.program as unknown as Node, []);
  return found;
}

function popupSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return popupSources(p);
    return /\.(ts|tsx)$/.test(e.name) && e.name !== TEXTS ? [p] : [];
  });
}

describe('the pages\' words are in texts.ts', () => {
  it('the scanner finds each form of text a page could hold', () => {
    const sample = [
      `import { x } from './Some Words.ts';`,
      `const a = <p class="muted small" data-testid="x">Some words</p>;`,
      `const b = <input placeholder="matrix.org" aria-label="Recovery key" type="password" />;`,
      `const c = <p>{busy ? 'Signing in…' : t.button}{ok && \`granted \${n}\`}{s === 'error' && x}{s !== 'done' ? x : y}</p>;`,
      `throw new UiError('too-large', 'This file is too large.');`,
      `const d = <p>{t.intro}</p>; const e = cond ? 'wrong-key' : 'text/plain'; el.className = 'alert warning';`,
    ].join('\n');
    expect(ownTexts('sample.tsx', sample)).toEqual([
      '2: "Some words"', '3: "matrix.org"', '3: "Recovery key"', '4: "Signing in…"', '4: "granted"', '5: "This file is too large."',
    ]);
  });

  it('no file under src/popup but texts.ts holds text of its own', () => {
    const files = popupSources(popup);
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) => ownTexts(f, readFileSync(f, 'utf8')).map((t) => `${relative(root, f)}:${t}`));
    expect(found).toEqual([]);
  });
});
