import { defineConfig, type Plugin } from "vitest/config";
import vue from "@vitejs/plugin-vue";

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** A landscape that "denoises" as `clarity` goes from 0 to 1, coloured by `seed`. */
function scene(seed: number, clarity: number): string {
  const hue = seed % 360;
  const blur = ((1 - clarity) * 9).toFixed(2);
  const noise = (0.85 * (1 - clarity)).toFixed(2);
  const sunX = 120 + (seed % 280);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512">
<defs>
<linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="hsl(${hue},55%,22%)"/><stop offset="1" stop-color="hsl(${(hue + 40) % 360},70%,62%)"/></linearGradient>
<filter id="soft"><feGaussianBlur stdDeviation="${blur}"/></filter>
<filter id="grain"><feTurbulence type="fractalNoise" baseFrequency="0.9" numOctaves="2" seed="${seed % 97}"/><feColorMatrix type="saturate" values="0.4"/></filter>
</defs>
<g filter="url(#soft)">
<rect width="512" height="512" fill="url(#sky)"/>
<circle cx="${sunX}" cy="170" r="58" fill="hsl(${(hue + 60) % 360},90%,78%)"/>
<path d="M0 330 C90 270 170 300 250 320 S420 260 512 300 V512 H0Z" fill="hsl(${(hue + 180) % 360},35%,28%)"/>
<path d="M0 400 C120 350 220 420 330 380 S470 360 512 390 V512 H0Z" fill="hsl(${(hue + 200) % 360},40%,16%)"/>
</g>
<rect width="512" height="512" filter="url(#grain)" opacity="${noise}"/>
</svg>`;
}

/** `npm run dev` only: the images the `media:` scheme would serve, drawn (see src/dev/mockShell.ts). */
function devMedia(): Plugin {
  return {
    name: "comfy-monitor-dev-media",
    apply: "serve",
    configureServer(server) {
      server.middlewares.use("/__media/", (req, res) => {
        const url = new URL(req.url ?? "/", "http://dev.local");
        const [, kind, name = ""] = url.pathname.split("/").filter(Boolean);
        let svg: string;
        if (kind === "preview") {
          const seq = Number(url.searchParams.get("seq") ?? 0);
          svg = scene(hash(name), Math.min(1, (seq % 48) / 40));
        } else {
          svg = scene(hash(url.searchParams.get("filename") ?? name), 1);
        }
        res.setHeader("Content-Type", "image/svg+xml");
        res.setHeader("Cache-Control", kind === "preview" ? "no-store" : "max-age=3600");
        res.end(svg);
      });
    },
  };
}

// The app is served by Tauri from `dist/` (tauri.conf.json `frontendDist`); `npm run dev` serves
// the same UI on a fixed port, with a scripted fake shell when no Tauri is around.
export default defineConfig({
  plugins: [vue(), devMedia()],
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
