import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import App from "./App.vue";
import { IMAGE_LOADER } from "./composables/usePreloadedImage";
import { emitFromShell, mockShell, resetShell } from "./ipc/testing";
import { useSubmitStore } from "./stores/submitStore";
import { useViewStore } from "./stores/viewStore";
import { instance, snapshot, status } from "./test/fixtures";

// Unmounting unsubscribes from the shell's events, so it must run before the mocks are cleared
// (after-hooks run in reverse order).
afterEach(() => resetShell());
enableAutoUnmount(afterEach);

describe("App", () => {
  let names: string[];
  let calls: { command: string; args: unknown }[];

  beforeEach(() => {
    setActivePinia(createPinia());
    names = ["gpu", "Local"];
    calls = [];
    mockShell((command, args) => {
      calls.push({ command, args });
      if (command === "get_snapshot") {
        return snapshot(
          3,
          names.map((n, i) => instance(n, { id: i + 1, status: status({ state: i === 0 ? "connected" : "unreachable", detail: "connection refused" }) })),
          ["secrets are kept in an owner-only file"],
        );
      }
      if (command === "get_history" || command === "get_event_log" || command === "list_instances" || command === "gallery") return [];
      return null;
    });
  });

  async function mountApp() {
    const w = mount(App, { attachTo: document.body, global: { provide: { [IMAGE_LOADER as symbol]: () => Promise.resolve() } } });
    await flushPromises();
    return w;
  }

  it("shows a card per instance, the summary and the app's notices", async () => {
    const w = await mountApp();
    expect(w.findAll('[data-testid="instance-card"]').map((c) => c.attributes("data-instance"))).toEqual(["gpu", "Local"]);
    expect(w.get('[data-testid="summary"]').text()).toContain("1/2 connected");
    expect(w.get('[data-testid="notice"]').text()).toBe("secrets are kept in an owner-only file");
  });

  it("shows outputs being saved in the top bar, then a failure until a later file is saved, and opens the gallery", async () => {
    const w = await mountApp();
    expect(w.find('[data-testid="saving-status"]').exists()).toBe(false);
    await emitFromShell("saving-changed", { waiting: 3, saving: 2, failed: 0, last_error: null });
    await flushPromises();
    expect(w.get('[data-testid="saving-status"]').text()).toBe("Saving 3 files…");
    await emitFromShell("saving-changed", { waiting: 0, saving: 0, failed: 1, last_error: "a.png: could not write /out/a.png: No space left on device" });
    await flushPromises();
    const status = w.get('[data-testid="saving-status"]');
    expect(status.text()).toBe("1 file not saved");
    expect(status.attributes("title")).toContain("No space left on device");
    await status.trigger("click");
    expect(useViewStore().screen).toEqual({ kind: "gallery" });
    await emitFromShell("saving-changed", { waiting: 0, saving: 0, failed: 1, last_error: null });
    await flushPromises();
    expect(w.find('[data-testid="saving-status"]').exists()).toBe(false);
  });

  it("tells the shell when the page goes off screen and comes back", async () => {
    await mountApp();
    const state = (value: DocumentVisibilityState) => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => value });
      document.dispatchEvent(new Event("visibilitychange"));
    };
    state("hidden");
    state("visible");
    await flushPromises();
    expect(calls.filter((c) => c.command === "view_visibility").map((c) => c.args)).toEqual([
      { visible: false },
      { visible: true },
    ]);
    delete (document as unknown as Record<string, unknown>).visibilityState;
  });

  it("invites a new user to add a server", async () => {
    names = [];
    const w = await mountApp();
    expect(w.text()).toContain("No ComfyUI server yet");
  });

  it("opens the detail from a card and goes back with Escape", async () => {
    const w = await mountApp();
    await w.get('[data-instance="Local"] [data-testid="open-detail"]').trigger("click");
    expect(w.get('[data-testid="instance-detail"]').attributes("data-instance")).toBe("Local");
    expect(w.find('[data-testid="instance-card"]').exists()).toBe(false);
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    await flushPromises();
    expect(w.find('[data-testid="instance-detail"]').exists()).toBe(false);
    expect(w.findAll('[data-testid="instance-card"]')).toHaveLength(2);
  });

  it("opens the settings and the submit dialog from the top bar", async () => {
    const w = await mountApp();
    await w.get('[data-testid="open-settings"]').trigger("click");
    await flushPromises();
    expect(w.find('[data-testid="settings"]').exists()).toBe(true);
    await w.get('[data-testid="close-settings"]').trigger("click");
    expect(w.find('[data-testid="settings"]').exists()).toBe(false);
    await w.get('[data-testid="open-submit"]').trigger("click");
    expect(w.find('[data-testid="submit-dialog"]').exists()).toBe(true);
  });

  it("opens the submit dialog with a workflow file dropped anywhere on the window", async () => {
    const w = await mountApp();
    const file = new File(['{"1":{}}'], "flow_api.json", { type: "application/json" });
    const drop = new Event("drop", { cancelable: true }) as DragEvent;
    Object.defineProperty(drop, "dataTransfer", { value: { types: ["Files"], files: [file] } });
    window.dispatchEvent(drop);
    await flushPromises();
    expect(drop.defaultPrevented).toBe(true);
    expect(useSubmitStore().draft).toMatchObject({ text: '{"1":{}}', fileName: "flow_api.json" });
    expect(w.get<HTMLTextAreaElement>('[data-testid="workflow-text"]').element.value).toBe('{"1":{}}');
  });
});
