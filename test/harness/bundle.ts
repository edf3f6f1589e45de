/** Bundles a test module into one classic script, to evaluate inside a browser page. */
import { build, type Rolldown } from 'vite';

export async function bundleForBrowser(entry: string, globalName: string): Promise<string> {
  const result = await build({
    configFile: false,
    logLevel: 'warn',
    publicDir: false,
    build: {
      write: false,
      minify: false,
      target: 'es2022',
      lib: { entry, formats: ['iife'], name: globalName },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rolldown.RolldownOutput[];
  const chunk = outputs.flatMap((o) => o.output).find((o) => o.type === 'chunk');
  if (!chunk || chunk.type !== 'chunk') throw new Error(`bundleForBrowser: no code produced for ${entry}`);
  return chunk.code;
}
