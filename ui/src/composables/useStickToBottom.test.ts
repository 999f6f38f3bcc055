import { describe, expect, it } from "vitest";
import { effectScope, nextTick, ref } from "vue";
import { useStickToBottom } from "./useStickToBottom";

/** A scroll box with layout numbers the test sets (happy-dom has no layout). */
function box(scrollTop: number) {
  return { scrollHeight: 1000, clientHeight: 200, scrollTop } as unknown as HTMLElement;
}

async function grow(scrollTop: number): Promise<number> {
  const el = box(scrollTop);
  const text = ref("a");
  const scope = effectScope();
  scope.run(() => useStickToBottom(ref(el), text));
  (el as unknown as { scrollHeight: number }).scrollHeight = 1000;
  text.value = "ab";
  await nextTick();
  (el as unknown as { scrollHeight: number }).scrollHeight = 1400;
  await nextTick();
  await nextTick();
  scope.stop();
  return el.scrollTop;
}

describe("useStickToBottom", () => {
  it("follows new content when the reader was at the end", async () => {
    expect(await grow(800)).toBe(1400);
  });

  it("leaves a reader who scrolled up where they are", async () => {
    expect(await grow(300)).toBe(300);
  });
});
