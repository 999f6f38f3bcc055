import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { effectScope, nextTick, ref } from "vue";
import { READABLE_MS, useReadable } from "./useReadable";

describe("useReadable", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
  });
  afterEach(() => vi.useRealTimers());

  function follow(start: number) {
    const source = ref(start);
    const scope = effectScope();
    const shown = scope.run(() => useReadable(() => source.value))!;
    return { source, shown, scope };
  }

  it("shows a change after a quiet spell at once", async () => {
    const { source, shown } = follow(1);
    expect(shown.value).toBe(1);
    source.value = 2;
    await nextTick();
    expect(shown.value).toBe(2);
  });

  it("holds the changes of one spell and shows the newest when it ends, never later", async () => {
    const { source, shown } = follow(1);
    source.value = 2;
    await nextTick();
    for (const v of [3, 4, 5]) {
      vi.advanceTimersByTime(40);
      source.value = v;
      await nextTick();
    }
    expect(shown.value).toBe(2);
    vi.advanceTimersByTime(READABLE_MS - 120 - 1);
    expect(shown.value).toBe(2);
    vi.advanceTimersByTime(1);
    expect(shown.value).toBe(5);
    // Nothing more came: nothing more to show, and the next change after a spell is at once.
    vi.advanceTimersByTime(READABLE_MS);
    source.value = 6;
    await nextTick();
    expect(shown.value).toBe(6);
  });

  it("stops its timer with its scope", async () => {
    const { source, shown, scope } = follow(1);
    source.value = 2;
    await nextTick();
    source.value = 3;
    await nextTick();
    scope.stop();
    vi.advanceTimersByTime(READABLE_MS * 2);
    expect(shown.value).toBe(2);
  });
});
