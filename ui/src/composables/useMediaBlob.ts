// A video or a sound from the app's `media:` scheme, for <video>/<audio>: WebKit's player takes
// no custom scheme, so the file is read with `fetch` and played from a blob: URL, released when
// another file is asked for or the component goes.
import { onBeforeUnmount, ref, watch, type Ref } from "vue";

export interface MediaBlob {
  /** The blob: URL to play, once read. */
  url: Ref<string | null>;
  /** Why the file could not be read. */
  failed: Ref<string | null>;
}

export function useMediaBlob(src: Ref<string | null>): MediaBlob {
  const url = ref<string | null>(null);
  const failed = ref<string | null>(null);
  let asked = 0;

  function release(): void {
    if (url.value) URL.revokeObjectURL(url.value);
    url.value = null;
  }

  watch(
    src,
    async (now) => {
      const mine = ++asked;
      release();
      failed.value = null;
      if (!now) return;
      try {
        const answer = await fetch(now);
        if (!answer.ok) throw new Error((await answer.text()) || `HTTP ${answer.status}`);
        const blob = await answer.blob();
        if (mine !== asked) return;
        url.value = URL.createObjectURL(blob);
      } catch (error) {
        if (mine === asked) failed.value = error instanceof Error ? error.message : String(error);
      }
    },
    { immediate: true },
  );

  onBeforeUnmount(() => {
    asked++;
    release();
  });

  return { url, failed };
}
