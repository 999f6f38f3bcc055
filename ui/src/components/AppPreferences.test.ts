import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import type { AppSettings } from "../bindings/AppSettings";
import type { RenderingInUse } from "../bindings/RenderingInUse";
import { mockShell, resetShell } from "../ipc/testing";
import AppPreferences from "./AppPreferences.vue";
import SettingsDialog from "./SettingsDialog.vue";

enableAutoUnmount(afterEach);

describe("App preferences", () => {
  let calls: Array<{ command: string; args: unknown }>;
  let stored: AppSettings;
  let refuse: { code: string; message: string } | null;
  let inUse: RenderingInUse;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    stored = { start_minimised: false, launch_at_login: true, notify_only_when_unfocused: true, rendering: "auto" };
    refuse = null;
    inUse = { mode: "auto", decided_by: "default", gpu_found: false, nvidia: false, compositing_off: true, dmabuf_renderer_off: false, inherited: [] };
    mockShell((command, args) => {
      calls.push({ command, args });
      switch (command) {
        case "get_app_settings":
          return stored;
        case "set_app_settings":
          if (refuse) throw { ...refuse, node_errors: [] };
          stored = (args as { settings: AppSettings }).settings;
          return stored;
        case "get_rendering":
          return inUse;
        case "list_instances":
          return [];
        default:
          return null;
      }
    });
  });

  afterEach(() => resetShell());

  async function mountPrefs() {
    const w = mount(AppPreferences, { attachTo: document.body });
    await flushPromises();
    return w;
  }

  function box(w: Awaited<ReturnType<typeof mountPrefs>>, testid: string): HTMLInputElement {
    return w.get<HTMLInputElement>(`[data-testid="${testid}"]`).element;
  }

  it("shows the saved preferences", async () => {
    const w = await mountPrefs();
    expect(calls[0]).toEqual({ command: "get_app_settings", args: {} });
    expect(box(w, "pref-start-minimised").checked).toBe(false);
    expect(box(w, "pref-launch-at-login").checked).toBe(true);
    expect(box(w, "pref-only-unfocused").checked).toBe(true);
    expect(w.text()).toContain("Closing the window keeps monitoring in the tray; Quit is in the tray menu.");
  });

  it("saves a change at once, with every preference", async () => {
    const w = await mountPrefs();
    await w.get('[data-testid="pref-start-minimised"]').setValue(true);
    await flushPromises();
    expect(calls.at(-1)).toEqual({
      command: "set_app_settings",
      args: { settings: { start_minimised: true, launch_at_login: true, notify_only_when_unfocused: true, rendering: "auto" } },
    });
    await w.get('[data-testid="pref-only-unfocused"]').setValue(false);
    await flushPromises();
    expect(calls.at(-1)?.args).toEqual({ settings: { start_minimised: true, launch_at_login: true, notify_only_when_unfocused: false, rendering: "auto" } });
    expect(box(w, "pref-start-minimised").checked).toBe(true);
    expect(box(w, "pref-only-unfocused").checked).toBe(false);
    expect(w.find('[data-testid="pref-error"]').exists()).toBe(false);
  });

  it("puts a refused change back and says why, by its code", async () => {
    const w = await mountPrefs();
    refuse = { code: "io", message: "could not change launching at login: no autostart folder" };
    await w.get('[data-testid="pref-launch-at-login"]').setValue(false);
    await flushPromises();
    expect(calls.at(-1)).toEqual({
      command: "set_app_settings",
      args: { settings: { start_minimised: false, launch_at_login: false, notify_only_when_unfocused: true, rendering: "auto" } },
    });
    const error = w.get('[data-testid="pref-error"]');
    expect(error.attributes("data-code")).toBe("io");
    expect(error.text()).toBe("Could not write the file: could not change launching at login: no autostart folder");
    expect(box(w, "pref-launch-at-login").checked).toBe(true);

    refuse = null;
    await w.get('[data-testid="pref-launch-at-login"]').setValue(false);
    await flushPromises();
    expect(box(w, "pref-launch-at-login").checked).toBe(false);
    expect(w.find('[data-testid="pref-error"]').exists()).toBe(false);
  });

  it("shows a failed load and keeps the boxes off limits", async () => {
    mockShell(() => {
      throw { code: "storage", message: "database is locked", node_errors: [] };
    });
    const w = await mountPrefs();
    expect(w.get('[data-testid="pref-error"]').attributes("data-code")).toBe("storage");
    expect(box(w, "pref-start-minimised").disabled).toBe(true);
  });

  it("says how this launch draws the window and why", async () => {
    const w = await mountPrefs();
    expect(w.get<HTMLSelectElement>('[data-testid="pref-rendering"]').element.value).toBe("auto");
    expect(w.get('[data-testid="rendering-in-use"]').text()).toBe(
      "In use: software painting, GPU compositing off (no GPU render node was found, so GPU compositing would run on the CPU).",
    );
    expect(w.find('[data-testid="rendering-restart"]').exists()).toBe(false);
  });

  it("names NVIDIA's fix and a variable the user set", async () => {
    inUse = {
      mode: "auto",
      decided_by: "settings",
      gpu_found: true,
      nvidia: true,
      compositing_off: true,
      dmabuf_renderer_off: true,
     
      inherited: ["WEBKIT_DISABLE_COMPOSITING_MODE=1"],
    };
    const w = await mountPrefs();
    const text = w.get('[data-testid="rendering-in-use"]').text();
    expect(text).toContain("software painting, GPU compositing off (a GPU render node was found)");
    expect(text).toContain("NVIDIA's driver: WebKit's DMA-BUF renderer is off");
    expect(text).toContain("WEBKIT_DISABLE_COMPOSITING_MODE=1 was already set and is left as it is");
  });

  it("saves a new rendering mode and offers to restart into it", async () => {
    const w = await mountPrefs();
    await w.get('[data-testid="pref-rendering"]').setValue("gpu");
    await flushPromises();
    expect(calls.at(-1)).toEqual({
      command: "set_app_settings",
      args: { settings: { start_minimised: false, launch_at_login: true, notify_only_when_unfocused: true, rendering: "gpu" } },
    });
    await w.get('[data-testid="restart-app"]').trigger("click");
    await flushPromises();
    expect(calls.at(-1)).toEqual({ command: "restart_app", args: {} });

    // Back to what this launch uses: nothing to restart for.
    await w.get('[data-testid="pref-rendering"]').setValue("auto");
    await flushPromises();
    expect(w.find('[data-testid="rendering-restart"]').exists()).toBe(false);
  });

  it("offers no restart while the environment decides, and says so", async () => {
    inUse = { mode: "gpu", decided_by: "environment", gpu_found: false, nvidia: false, compositing_off: false, dmabuf_renderer_off: false, inherited: [] };
    const w = await mountPrefs();
    expect(w.get('[data-testid="rendering-in-use"]').text()).toBe(
      "In use: GPU compositing (COMFY_MONITOR_RENDERING=gpu was set for this launch and wins over the choice above).",
    );
    await w.get('[data-testid="pref-rendering"]').setValue("software");
    await flushPromises();
    expect(stored.rendering).toBe("software");
    expect(w.find('[data-testid="rendering-restart"]').exists()).toBe(false);
  });

  it("is a section of the settings dialog", async () => {
    const w = mount(SettingsDialog, { attachTo: document.body });
    await flushPromises();
    expect(w.get('[data-testid="settings"]').find('[data-testid="pref-only-unfocused"]').exists()).toBe(true);
    expect(calls.map((c) => c.command)).toContain("get_app_settings");
  });
});
