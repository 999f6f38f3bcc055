import { onScopeDispose, shallowRef, watch, type Ref } from "vue";

/** How often a figure that changes many times a second is repainted: about what a person can
 * read. Each repaint of text costs the webview a layout and a paint; at the 30 progress updates
 * a second the shell sends, text was most of what the shown window cost. */
export const READABLE_MS = 250;

/**
 * `source`'s value, changed at most once every `ms`: a change after a quiet spell shows at once,
 * changes within the spell are held and the newest shows when it ends, so the last value is
 * never lost and never late by more than `ms`.
 */
export function useReadable<T>(source: () => T, ms = READABLE_MS): Readonly<Ref<T>> {
  const shown = shallowRef(source());
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | undefined;

  watch(source, (value) => {
    if (timer !== undefined) return; // the held change will take the newest value
    const wait = last + ms - performance.now();
    if (wait <= 0) {
      shown.value = value;
      last = performance.now();
      return;
    }
    timer = setTimeout(() => {
      timer = undefined;
      shown.value = source();
      last = performance.now();
    }, wait);
  });

  onScopeDispose(() => clearTimeout(timer));
  return shown;
}
