// Builds the dashboard into ui/dist, which the admin server serves at /ui/
// (control-plane/admin/ui-routes.ts). Run by `npm run build:ui` and `prepare`.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The admin server runs on machines with no network: everything is in the bundle.
    assetsInlineLimit: 0,
    target: 'es2022',
  },
});
