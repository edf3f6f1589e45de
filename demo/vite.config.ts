/**
 * The demo web client (demo/): a plain-TS page with matrix-js-sdk 43 and its Rust crypto, built on
 * its own into dist/demo (scripts/build-demo.ts). Not part of the extension.
 *
 * - `base: './'`: the built page works from any directory a static server puts it in.
 * - The crypto wasm (≈ 7.8 MB) is emitted as an asset; the dev server must not pre-bundle the wasm
 *   package, or it loses the `new URL('…wasm', import.meta.url)` the package loads itself with.
 */
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const here = import.meta.dirname;

export default defineConfig({
  root: here,
  base: './',
  publicDir: false,
  logLevel: 'warn',
  optimizeDeps: { exclude: ['@matrix-org/matrix-sdk-crypto-wasm'] },
  build: {
    outDir: resolve(here, '../dist/demo'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // matrix-js-sdk is large; the demo is not shipped, so the size warning says nothing useful.
    chunkSizeWarningLimit: 8192,
  },
});
