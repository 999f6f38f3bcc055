import { afterEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import LivePreview from "./LivePreview.vue";
import { IMAGE_LOADER } from "../composables/usePreloadedImage";
import { deferred, type Deferred } from "../test/deferred";

enableAutoUnmount(afterEach);

/** A loader whose every image finishes when the test says so. */
function controlledLoader() {
  const loads = new Map<string, Deferred<void>>();
  const asked: string[] = [];
  const loader = (url: string) => {
    asked.push(url);
    const d = deferred<void>();
    loads.set(url, d);
    return d.promise;
  };
  return { loader, asked, finish: (url: string) => loads.get(url)?.resolve(), fail: (url: string) => loads.get(url)?.reject(new Error("404")) };
}

function mountPreview(src: string | null, loader: (url: string) => Promise<void>) {
  return mount(LivePreview, { props: { src, label: "preview" }, global: { provide: { [IMAGE_LOADER as symbol]: loader } } });
}

function shownSrc(w: ReturnType<typeof mountPreview>): string | null {
  const img = w.find('[data-testid="preview"]');
  return img.exists() ? (img.attributes("src") ?? null) : null;
}

describe("LivePreview", () => {
  it("shows a frame only once it has loaded", async () => {
    const c = controlledLoader();
    const w = mountPreview("f1", c.loader);
    await flushPromises();
    expect(shownSrc(w)).toBeNull();
    expect(w.text()).toContain("no preview yet");
    c.finish("f1");
    await flushPromises();
    expect(shownSrc(w)).toBe("f1");
  });

  it("keeps the old frame while the next loads, then jumps to the latest and skips the ones between", async () => {
    const c = controlledLoader();
    const w = mountPreview("f1", c.loader);
    c.finish("f1");
    await flushPromises();

    await w.setProps({ src: "f2" });
    await w.setProps({ src: "f3" });
    await w.setProps({ src: "f4" });
    await flushPromises();
    expect(c.asked).toEqual(["f1", "f2"]);
    expect(shownSrc(w)).toBe("f1");

    c.finish("f2");
    await flushPromises();
    expect(shownSrc(w)).toBe("f2");
    expect(c.asked).toEqual(["f1", "f2", "f4"]);

    c.finish("f4");
    await flushPromises();
    expect(shownSrc(w)).toBe("f4");
    expect(c.asked).not.toContain("f3");
  });

  it("skips a frame that fails and goes on with the next", async () => {
    const c = controlledLoader();
    const w = mountPreview("f1", c.loader);
    await w.setProps({ src: "f2" });
    c.fail("f1");
    await flushPromises();
    expect(shownSrc(w)).toBeNull();
    c.finish("f2");
    await flushPromises();
    expect(shownSrc(w)).toBe("f2");
  });

  it("never shows a frame that finished loading after the preview went away", async () => {
    const c = controlledLoader();
    const w = mountPreview("f1", c.loader);
    await w.setProps({ src: null });
    c.finish("f1");
    await flushPromises();
    expect(w.find('[data-testid="preview"]').exists()).toBe(false);
  });

  it("loads no frames while scrolled out of view, and the newest once back", async () => {
    const observers: Array<(entries: Array<{ isIntersecting: boolean }>) => void> = [];
    const original = globalThis.IntersectionObserver;
    globalThis.IntersectionObserver = class {
      constructor(callback: (entries: Array<{ isIntersecting: boolean }>) => void) {
        observers.push(callback);
      }
      observe() {}
      disconnect() {}
    } as unknown as typeof IntersectionObserver;
    try {
      const c = controlledLoader();
      const w = mountPreview("f1", c.loader);
      c.finish("f1");
      await flushPromises();
      expect(observers).toHaveLength(1);

      observers[0]?.([{ isIntersecting: false }]);
      await w.setProps({ src: "f2" });
      await w.setProps({ src: "f3" });
      await flushPromises();
      expect(c.asked).toEqual(["f1"]);
      expect(shownSrc(w)).toBe("f1");

      observers[0]?.([{ isIntersecting: true }]);
      await flushPromises();
      expect(c.asked).toEqual(["f1", "f3"]);
      c.finish("f3");
      await flushPromises();
      expect(shownSrc(w)).toBe("f3");

      // The job ends out of view: the frame goes, as it would in view.
      observers[0]?.([{ isIntersecting: false }]);
      await w.setProps({ src: null });
      await flushPromises();
      expect(shownSrc(w)).toBeNull();
    } finally {
      globalThis.IntersectionObserver = original;
    }
  });
});
