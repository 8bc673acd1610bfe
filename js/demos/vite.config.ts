import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The built app is served by `driftdb serve --static-dir js/demos/dist` and finds the server at its own origin.
// Relative asset URLs keep it working when served under a sub-path too.
export default defineConfig({
  base: './',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
  server: { host: '127.0.0.1', port: 5173 },
})
