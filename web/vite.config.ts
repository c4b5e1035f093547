// The browser inspector's build: `npm run web` (dev server) and `npm run web:build` (a static site in
// web/dist/ that any static host serves, offline: every script, kernel and weights file is in it).
//
// The page imports the engine, models and CAM modules of the repository as they are. The platform seam
// for the few Node-only modules they touch is the module map below: pngjs (the PNG codec of
// cam/rendering/codec.ts) becomes its own browser build, node:buffer the `buffer` package (the Buffer
// pngjs reads), and the Node modules the wasm backend loads only under Node an empty module.

import { defineConfig, type Plugin } from 'vite';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** Cross-origin isolation (COOP/COEP): SharedArrayBuffer, which the wasm backend's threads need. */
export const ISOLATION_HEADERS = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

/**
 * The project's own modules register architectures, primitives and methods when imported. package.json's
 * `sideEffects` describes the compiled package (dist/); read for these sources it would let the bundler
 * drop those imports. Here every source module outside node_modules is kept.
 */
function sourcesHaveSideEffects(): Plugin {
  return {
    name: 'sources-have-side-effects',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      const resolved = await this.resolve(source, importer, { ...options, skipSelf: true });
      if (!resolved || resolved.external || !resolved.id.startsWith(repo) || resolved.id.includes('/node_modules/')) return resolved;
      return { ...resolved, moduleSideEffects: true };
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Relative asset URLs: the site works from any folder of any static host.
  base: './',
  resolve: {
    alias: [
      { find: /^pngjs$/, replacement: 'pngjs/browser.js' },
      { find: /^node:buffer$/, replacement: 'buffer/' },
      { find: /^node:(fs\/promises|worker_threads|os)$/, replacement: fileURLToPath(new URL('./src/node-only.ts', import.meta.url)) },
    ],
  },
  plugins: [sourcesHaveSideEffects()],
  worker: {
    format: 'es',
    plugins: () => [sourcesHaveSideEffects()],
    // The engine is one worker chunk on purpose; its lazy imports (WebGPU, wasm) need not split it.
    rolldownOptions: { checks: { ineffectiveDynamicImport: false } },
  },
  server: { fs: { allow: [repo] }, headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Nothing inlined as data: URLs: the wasm backend's worker script must be a same-origin file.
    assetsInlineLimit: 0,
    // The engine worker is one ~700 kB chunk by design (engine, models, CAM).
    chunkSizeWarningLimit: 1500,
  },
});
