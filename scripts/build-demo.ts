/**
 * Builds the demo web client (demo/, matrix-js-sdk with Rust crypto and the client kit) with its own
 * Vite config into `dist/demo` (or `outDir`): static files any server can serve, the crypto wasm
 * among them (serve it as `application/wasm`, test/harness/static-server.ts does).
 * `tsx scripts/build-demo.ts [outDir]` runs it from the command line.
 */
import { resolve } from 'node:path';
import { build } from 'vite';

const root = resolve(import.meta.dirname, '..');

export async function buildDemo(outDir = 'dist/demo'): Promise<string> {
  const target = resolve(root, outDir);
  await build({
    configFile: resolve(root, 'demo/vite.config.ts'),
    logLevel: 'warn',
    build: { outDir: target, emptyOutDir: true },
  });
  return target;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const out = await buildDemo(process.argv[2]);
  process.stdout.write(`demo built into ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
