import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import GalleryView from "./GalleryView.vue";
import type { GalleryItem } from "../bindings/GalleryItem";
import type { GalleryQuery } from "../bindings/GalleryQuery";
import { emitFromShell, mockShell, resetShell } from "../ipc/testing";
import { GALLERY_REFETCH_MS, useGalleryStore } from "../stores/galleryStore";
import { useViewStore } from "../stores/viewStore";

enableAutoUnmount(afterEach);

function item(id: number, overrides: Partial<GalleryItem> = {}): GalleryItem {
  return {
    id,
    instance_id: 1,
    prompt_id: `p${id}`,
    file: { filename: `ComfyUI_${String(id).padStart(5, "0")}_.png`, subfolder: "", type: "output" },
    media: "image",
    state: "success",
    origin: "self",
    finished_at_ms: 1_700_000_000_000 + id,
    label: `job ${id}`,
    save: "saved",
    saved_to: `/home/u/Pictures/ComfyUI/gpu/ComfyUI_${id}.png`,
    save_error: null,
    ...overrides,
  };
}

describe("GalleryView", () => {
  let queries: GalleryQuery[];
  let files: GalleryItem[];

  beforeEach(() => {
    setActivePinia(createPinia());
    queries = [];
    files = [item(3), item(2, { media: "video", file: { filename: "clip.mp4", subfolder: "v", type: "output" } }), item(1, { media: "audio", file: { filename: "voice.flac", subfolder: "", type: "output" } })];
    mockShell((command, args) => {
      if (command === "gallery") {
        const q = (args as { query: GalleryQuery }).query;
        queries.push(q);
        return files.filter((f) => q.before === undefined || f.id < q.before).slice(0, q.limit);
      }
      if (command === "get_job_summary") {
        const id = (args as { prompt_id: string }).prompt_id;
        return { models: [], loras: [], sampler: null, scheduler: null, steps: null, cfg: null, seed: `seed-of-${id}`, denoise: null, width: null, height: null, batch_size: null, positive: [`prompt of ${id}`], negative: [], nodes: [] };
      }
      return null;
    });
  });

  afterEach(() => {
    resetShell();
    vi.unstubAllGlobals();
  });

  it("shows every file, newest first, with a thumbnail for images and a kind for the rest", async () => {
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    const tiles = w.findAll('[data-testid="gallery-tile"]');
    expect(tiles.map((t) => t.attributes("data-prompt-id"))).toEqual(["p3", "p2", "p1"]);
    expect(tiles[0]!.get("img").attributes("src")).toContain("thumb=1");
    expect(tiles[1]!.text()).toContain("MP4");
    expect(tiles[2]!.text()).toContain("FLAC");
    expect(w.get('[data-testid="gallery-count"]').text()).toBe("3 files");
  });

  it("sends the filters to the shell: instance, outcome, whole days and words", async () => {
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    const gallery = useGalleryStore();
    Object.assign(gallery.filter, { instanceId: 4, outcome: "failed", from: "2026-12-01", to: "2026-12-07", text: "  lighthouse  " });
    await gallery.applyFilter();
    const q = queries.at(-1)!;
    expect(q.instance_id).toBe(4);
    expect(q.states).toEqual(["error", "interrupted", "lost", "deleted"]);
    expect(q.since_ms).toBe(new Date(2026, 11, 1).getTime());
    expect(q.until_ms).toBe(new Date(2026, 11, 8).getTime());
    expect(q.text).toBe("lighthouse");
    w.unmount();
  });

  it("opens a file large, steps through the others with the arrow keys, and plays video and sound in place", async () => {
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    await w.findAll('[data-testid="gallery-tile"]')[0]!.trigger("click");
    const viewer = () => w.get('[data-testid="gallery-viewer"]');
    expect(viewer().find('[data-testid="viewer-image"]').exists()).toBe(true);
    expect(viewer().get('[data-testid="viewer-save-state"]').text()).toContain("Saved: /home/u/Pictures/ComfyUI/gpu/ComfyUI_3.png");
    // WebKit plays no custom scheme: the file is read and played from a blob.
    const fetched: string[] = [];
    vi.stubGlobal("fetch", (url: string) => {
      fetched.push(url);
      return Promise.resolve(new Response(new Blob([new Uint8Array([0, 0, 0, 24])], { type: "video/mp4" })));
    });
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    await flushPromises();
    await vi.waitFor(() => viewer().get('[data-testid="viewer-video"]'));
    const video = viewer().get('[data-testid="viewer-video"]');
    expect(fetched.at(-1)).toContain("filename=clip.mp4");
    expect(video.attributes("src")).toMatch(/^blob:/);
    expect(video.attributes("data-file")).toBe("clip.mp4");
    expect(video.attributes("controls")).toBeDefined();
    await viewer().get('[data-testid="viewer-next"]').trigger("click");
    await vi.waitFor(() => viewer().get('[data-testid="viewer-audio"]'));
    expect(fetched.at(-1)).toContain("filename=voice.flac");
    expect(viewer().get<HTMLButtonElement>('[data-testid="viewer-next"]').element.disabled).toBe(true);
    for (let i = 0; i < 2; i++) {
      window.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft" }));
      await flushPromises();
    }
    expect(viewer().find('[data-testid="viewer-image"]').exists()).toBe(true);
    expect(viewer().get<HTMLButtonElement>('[data-testid="viewer-prev"]').element.disabled).toBe(true);
  });

  it("says what made a file, and keeps saying it from file to file", async () => {
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    await w.findAll('[data-testid="gallery-tile"]')[0]!.trigger("click");
    await w.get('[data-testid="viewer-summary"]').trigger("click");
    await flushPromises();
    expect(w.get('[data-fact="Seed"]').text()).toBe("seed-of-p3");
    expect(w.get('[data-testid="summary-positive"]').text()).toContain("prompt of p3");
    await w.get('[data-testid="viewer-next"]').trigger("click");
    await flushPromises();
    expect(w.get('[data-fact="Seed"]').text()).toBe("seed-of-p2");
  });

  it("keeps showing the same file when a newer one arrives while it is open", async () => {
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    await w.findAll('[data-testid="gallery-tile"]')[0]!.trigger("click");
    expect(w.get('[data-testid="viewer-image"]').attributes("src")).toContain("ComfyUI_00003_.png");
    files = [item(4), ...files];
    await useGalleryStore().load();
    await flushPromises();
    expect(w.get('[data-testid="viewer-image"]').attributes("src")).toContain("ComfyUI_00003_.png");
    await w.get('[data-testid="viewer-prev"]').trigger("click");
    expect(w.get('[data-testid="viewer-image"]').attributes("src")).toContain("ComfyUI_00004_.png");
  });

  it("shows the job a file came from", async () => {
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    await w.findAll('[data-testid="gallery-tile"]')[1]!.trigger("click");
    await w.get('[data-testid="viewer-show-job"]').trigger("click");
    const view = useViewStore();
    expect(view.screen).toEqual({ kind: "detail", instanceId: 1 });
    expect(view.highlightRequest).toMatchObject({ instanceId: 1, promptId: "p2" });
  });

  it("reads the gallery again when a file has been saved", async () => {
    const gallery = useGalleryStore();
    await gallery.start();
    const w = mount(GalleryView, { attachTo: document.body });
    await flushPromises();
    const before = queries.length;
    vi.useFakeTimers();
    try {
      await emitFromShell("saving-changed", { waiting: 1, saving: 1, failed: 0, last_error: null });
      await emitFromShell("saving-changed", { waiting: 0, saving: 0, failed: 0, last_error: null });
      vi.advanceTimersByTime(GALLERY_REFETCH_MS - 1);
      expect(queries.length).toBe(before);
      vi.advanceTimersByTime(1);
      await flushPromises();
      expect(queries.length).toBe(before + 1);
    } finally {
      vi.useRealTimers();
    }
    gallery.stop();
    w.unmount();
  });
});
