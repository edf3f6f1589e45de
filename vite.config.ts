/**
 * Vite configuration for the extension: the extension pages (popup and full-tab pages) and the
 * service worker, in one ES build. The worker is an ES module (`"type": "module"` in the manifest)
 * and may only use static imports: a dynamic `import()` throws in a ServiceWorkerGlobalScope, so code
 * splitting must never produce one (scripts/build.ts checks). Content scripts run as classic
 * scripts: `contentScriptBuild` makes one self-contained IIFE per entry (IIFE output cannot share
 * chunks); the page-world script must not bundle extension APIs. `scripts/build.ts` runs the builds
 * and writes one manifest per browser.
 */
import { resolve } from 'node:path';
import { defineConfig, type InlineConfig } from 'vite';
import preact from '@preact/preset-vite';

const root = resolve(import.meta.dirname);

/** Extension pages (HTML entries under src/popup) plus the background service worker. */
export const pageEntries: Record<string, string> = {
  popup: resolve(root, 'src/popup/popup.html'),
  backup: resolve(root, 'src/popup/backup.html'),
  import: resolve(root, 'src/popup/import.html'),
  unlock: resolve(root, 'src/popup/unlock.html'),
  restore: resolve(root, 'src/popup/restore.html'),
  export: resolve(root, 'src/popup/export.html'),
  approve: resolve(root, 'src/popup/approve.html'),
  // The decryption helper (Chrome's offscreen document: src/helper, src/platform/decrypt-helper.ts).
  'decrypt-helper': resolve(root, 'src/popup/decrypt-helper.html'),
};

export function mainBuild(outDir: string): InlineConfig {
  return {
    configFile: false,
    root: resolve(root, 'src/popup'),
    base: '',
    publicDir: resolve(root, 'public'),
    logLevel: 'warn',
    plugins: [preact()],
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      // Preload links for each page's chunks (no polyfill: its inline script would break the MV3 CSP).
      modulePreload: { polyfill: false },
      minify: false,
      sourcemap: false,
      rolldownOptions: {
        input: { ...pageEntries, background: resolve(root, 'src/background/index.ts') },
        output: {
          entryFileNames: '[name].js',
          chunkFileNames: 'chunks/[name]-[hash].js',
          assetFileNames: 'assets/[name]-[hash][extname]',
        },
      },
    },
  };
}

/** A content script as one classic script with everything inlined (no import, no export). */
export function contentScriptBuild(outDir: string, entry: string, name: string): InlineConfig {
  return {
    configFile: false,
    logLevel: 'warn',
    publicDir: false,
    build: {
      outDir,
      emptyOutDir: false,
      target: 'es2022',
      minify: false,
      lib: { entry: resolve(root, entry), formats: ['iife'], name, fileName: () => `content/${name}.js` },
    },
  };
}

export default defineConfig(mainBuild(resolve(root, 'dist/chrome')));
