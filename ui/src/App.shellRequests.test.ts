// What the desktop shell asks of the window: a notification's Show opens the instance and
// highlights the job; the tray's cancel of another client's job asks before cancelling.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import App from "./App.vue";
import { IMAGE_LOADER } from "./composables/usePreloadedImage";
import { EVENTS } from "./ipc";
import { emitFromShell, mockShell, resetShell } from "./ipc/testing";
import { historyEntry, instance, job, snapshot } from "./test/fixtures";

afterEach(() => resetShell());
enableAutoUnmount(afterEach);

describe("App and the shell's requests", () => {
  let calls: Array<{ command: string; args: unknown }>;
  const scrolled = vi.fn();
  const originalScroll = Element.prototype.scrollIntoView;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    scrolled.mockClear();
    Element.prototype.scrollIntoView = scrolled;
    mockShell((command, args) => {
      calls.push({ command, args });
      switch (command) {
        case "get_snapshot":
          return snapshot(3, [
            instance("gpu", { id: 1, queue: { running: 1, pending: 1 }, jobs: [job("run-1"), job("pend-2", { state: "pending" })] }),
            instance("Local", { id: 2 }),
          ]);
        case "get_history":
          return (args as { instance_id: number }).instance_id === 1 ? [historyEntry("done-9"), historyEntry("done-8")] : [];
        case "get_event_log":
        case "list_instances":
          return [];
        case "cancel_job":
          return "interrupted";
        default:
          return null;
      }
    });
  });

  afterEach(() => {
    Element.prototype.scrollIntoView = originalScroll;
    vi.useRealTimers();
  });

  async function mountApp() {
    const w = mount(App, { attachTo: document.body, global: { provide: { [IMAGE_LOADER as symbol]: () => Promise.resolve() } } });
    await flushPromises();
    return w;
  }

  function highlighted(w: Awaited<ReturnType<typeof mountApp>>): string[] {
    return w.findAll(".highlighted").map((r) => `${r.attributes("data-testid")}:${r.attributes("data-prompt-id")}`);
  }

  it("opens the instance's detail and highlights a finished job in the history, briefly", async () => {
    const w = await mountApp();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    await emitFromShell(EVENTS.showRequested, { instance_id: 1, prompt_id: "done-8" });
    await flushPromises();
    expect(w.get('[data-testid="instance-detail"]').attributes("data-instance")).toBe("gpu");
    expect(highlighted(w)).toEqual(["history-row:done-8"]);
    expect(w.get('[data-prompt-id="done-8"]').attributes("data-highlighted")).toBe("true");
    expect(scrolled).toHaveBeenCalledTimes(1);
    expect(scrolled.mock.contexts[0]).toBe(w.get('[data-testid="history-row"][data-prompt-id="done-8"]').element);

    vi.advanceTimersByTime(3000);
    await flushPromises();
    expect(highlighted(w)).toEqual([]);
  });

  it("highlights a job still in the queue", async () => {
    const w = await mountApp();
    await emitFromShell(EVENTS.showRequested, { instance_id: 1, prompt_id: "pend-2" });
    await flushPromises();
    expect(highlighted(w)).toEqual(["queue-row:pend-2"]);
  });

  it("opens the detail without a highlight when no job is named", async () => {
    const w = await mountApp();
    await emitFromShell(EVENTS.showRequested, { instance_id: 2, prompt_id: null });
    await flushPromises();
    expect(w.get('[data-testid="instance-detail"]').attributes("data-instance")).toBe("Local");
    expect(highlighted(w)).toEqual([]);
    expect(scrolled).not.toHaveBeenCalled();
  });

  it("stays on the overview for an instance it does not know", async () => {
    const w = await mountApp();
    await emitFromShell(EVENTS.showRequested, { instance_id: 99, prompt_id: "x" });
    await flushPromises();
    expect(w.find('[data-testid="instance-detail"]').exists()).toBe(false);
    expect(w.findAll('[data-testid="instance-card"]')).toHaveLength(2);
  });

  it("asks before cancelling another client's job for the tray, and cancels on yes", async () => {
    const w = await mountApp();
    await emitFromShell(EVENTS.cancelConfirmationRequested, { instance_id: 1, prompt_id: "run-1" });
    await flushPromises();
    const dialog = w.get('[data-testid="confirm-cancel-dialog"]');
    expect(dialog.text()).toContain("Cancel the job another client queued on gpu? It is not yours");
    expect(calls.some((c) => c.command === "cancel_job")).toBe(false);

    await w.get('[data-testid="confirm-cancel-yes"]').trigger("click");
    await flushPromises();
    expect(calls.filter((c) => c.command === "cancel_job")).toEqual([{ command: "cancel_job", args: { instance_id: 1, prompt_id: "run-1" } }]);
    expect(w.find('[data-testid="confirm-cancel-dialog"]').exists()).toBe(false);
  });

  it("leaves the job alone on Keep it, and on Escape", async () => {
    const w = await mountApp();
    await emitFromShell(EVENTS.cancelConfirmationRequested, { instance_id: 1, prompt_id: "run-1" });
    await flushPromises();
    await w.get('[data-testid="confirm-cancel-no"]').trigger("click");
    await flushPromises();
    expect(w.find('[data-testid="confirm-cancel-dialog"]').exists()).toBe(false);

    await emitFromShell(EVENTS.cancelConfirmationRequested, { instance_id: 1, prompt_id: "run-1" });
    await flushPromises();
    await w.get('[data-testid="confirm-cancel-dialog"]').trigger("keydown", { key: "Escape" });
    await flushPromises();
    expect(w.find('[data-testid="confirm-cancel-dialog"]').exists()).toBe(false);
    expect(calls.some((c) => c.command === "cancel_job")).toBe(false);
  });
});
