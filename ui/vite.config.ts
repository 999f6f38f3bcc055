import { defineConfig } from "vitest/config";
import vue from "@vitejs/plugin-vue";

// The app is served by Tauri from `dist/` (tauri.conf.json `frontendDist`); `npm run dev` serves
// the same UI on a fixed port for `tauri dev`.
export default defineConfig({
  plugins: [vue()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.ts"],
    restoreMocks: true,
  },
});
