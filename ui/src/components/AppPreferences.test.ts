import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import type { AppSettings } from "../bindings/AppSettings";
import { mockShell, resetShell } from "../ipc/testing";
import AppPreferences from "./AppPreferences.vue";
import SettingsDialog from "./SettingsDialog.vue";

enableAutoUnmount(afterEach);

describe("App preferences", () => {
  let calls: Array<{ command: string; args: unknown }>;
  let stored: AppSettings;
  let refuse: { code: string; message: string } | null;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    stored = { start_minimised: false, launch_at_login: true, notify_only_when_unfocused: true };
    refuse = null;
    mockShell((command, args) => {
      calls.push({ command, args });
      switch (command) {
        case "get_app_settings":
          return stored;
        case "set_app_settings":
          if (refuse) throw { ...refuse, node_errors: [] };
          stored = (args as { settings: AppSettings }).settings;
          return stored;
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
      args: { settings: { start_minimised: true, launch_at_login: true, notify_only_when_unfocused: true } },
    });
    await w.get('[data-testid="pref-only-unfocused"]').setValue(false);
    await flushPromises();
    expect(calls.at(-1)?.args).toEqual({ settings: { start_minimised: true, launch_at_login: true, notify_only_when_unfocused: false } });
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
      args: { settings: { start_minimised: false, launch_at_login: false, notify_only_when_unfocused: true } },
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

  it("is a section of the settings dialog", async () => {
    const w = mount(SettingsDialog, { attachTo: document.body });
    await flushPromises();
    expect(w.get('[data-testid="settings"]').find('[data-testid="pref-only-unfocused"]').exists()).toBe(true);
    expect(calls.map((c) => c.command)).toContain("get_app_settings");
  });
});
