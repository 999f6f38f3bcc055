// Keeps a scrolling box pinned to its end while content streams in, but only if the reader was
// already at the end: someone scrolled up to read is left where they are.
import { nextTick, watch, type Ref, type WatchSource } from "vue";

const SLACK_PX = 8;

export function isAtBottom(el: HTMLElement): boolean {
  return el.scrollHeight - el.scrollTop - el.clientHeight <= SLACK_PX;
}

export function useStickToBottom(box: Ref<HTMLElement | null>, content: WatchSource): void {
  watch(
    content,
    () => {
      const el = box.value;
      // Measured before the DOM changes (flush "pre"): was the reader at the end?
      if (!el || !isAtBottom(el)) return;
      void nextTick(() => {
        el.scrollTop = el.scrollHeight;
      });
    },
    { flush: "pre" },
  );
}
