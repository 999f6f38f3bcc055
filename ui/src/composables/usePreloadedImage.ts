// Streams of images without jank: the shown URL changes only once the next image has loaded and
// decoded, so the <img> never blanks or flickers. While one frame loads, newer URLs replace each
// other and only the latest is loaded next: a slow paint skips frames instead of queueing them.
import { inject, onScopeDispose, ref, watch, type InjectionKey, type Ref } from "vue";

export type ImageLoader = (url: string) => Promise<void>;

/** Lets tests (and nothing else) replace how images are fetched. */
export const IMAGE_LOADER: InjectionKey<ImageLoader> = Symbol("image-loader");

/** Loads and decodes an image off-screen. */
export function loadImage(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = "async";
    img.onload = () => {
      if (typeof img.decode === "function") img.decode().then(resolve, resolve);
      else resolve();
    };
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

export function usePreloadedImage(source: () => string | null): Readonly<Ref<string | null>> {
  const loader = inject(IMAGE_LOADER, loadImage);
  const shown = ref<string | null>(null);
  let inFlight = false;
  let next: string | null = null;
  /** Bumped when the source goes away, so a load started before cannot show afterwards. */
  let generation = 0;
  let disposed = false;

  async function pump(url: string): Promise<void> {
    const gen = generation;
    inFlight = true;
    try {
      await loader(url);
      if (!disposed && gen === generation) shown.value = url;
    } catch {
      // A frame that failed to load is skipped; the next one will do.
    } finally {
      inFlight = false;
    }
    if (disposed || gen !== generation || next === null) return;
    const latest = next;
    next = null;
    if (latest !== shown.value) void pump(latest);
  }

  watch(
    source,
    (url) => {
      if (url === null) {
        generation += 1;
        next = null;
        shown.value = null;
        return;
      }
      if (url === shown.value) return;
      if (inFlight) next = url;
      else void pump(url);
    },
    { immediate: true },
  );

  onScopeDispose(() => {
    disposed = true;
  });

  return shown;
}
