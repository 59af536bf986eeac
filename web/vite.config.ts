import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Relative asset URLs: the page works under any sub-path (e.g. behind a reverse proxy at
  // /desktop/u123/), since every URL the client uses is resolved against the page.
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // One small bundle; no inlined data: URLs so a strict CSP (img-src 'self') keeps working.
    assetsInlineLimit: 0,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
