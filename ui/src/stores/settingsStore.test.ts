import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { mockShell, resetShell } from "../ipc/testing";
import type { InstanceInput } from "../bindings/InstanceInput";
import { notifications, settings } from "../test/fixtures";
import { headerSlot, useSettingsStore } from "./settingsStore";

function input(overrides: Partial<InstanceInput> = {}): InstanceInput {
  return {
    name: "gpu",
    url: "http://gpu:8188",
    auth_kind: "none",
    user: null,
    header_names: [],
    secrets: {},
    accept_invalid_certs: false,
    certificate_sha256: null,
    enabled: true,
    preview_fps_cap: 15,
    notifications: notifications(),
    use_companion: true,
    saving: { folder: null, others: false },
    ...overrides,
  };
}

describe("settings store", () => {
  let calls: Array<{ command: string; args: unknown }>;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    mockShell((command, args) => {
      calls.push({ command, args });
      switch (command) {
        case "list_instances":
          return [settings(1, "Local"), settings(2, "gpu", { auth_kind: "bearer", secrets_set: ["token"] })];
        case "add_instance":
          return settings(3, "new");
        case "update_instance":
          return settings(2, "gpu-renamed");
        case "remove_instance":
          return null;
        case "test_connection":
          return { ok: true, steps: [{ step: "http", ok: true, detail: "ok", auth: false }] };
        default:
          return null;
      }
    });
  });

  afterEach(() => resetShell());

  it("lists, adds, edits and removes instances", async () => {
    const store = useSettingsStore();
    await store.load();
    expect(store.instances.map((i) => i.name)).toEqual(["Local", "gpu"]);

    const added = await store.add(input({ name: "new" }));
    expect(added.ok).toBe(true);
    expect(calls.at(-1)).toEqual({ command: "add_instance", args: { input: input({ name: "new" }) } });

    await store.update(2, input({ name: "gpu-renamed" }));
    expect(calls.at(-1)?.args).toEqual({ id: 2, input: input({ name: "gpu-renamed" }) });

    await store.remove(1);
    expect(calls.at(-1)).toEqual({ command: "remove_instance", args: { id: 1 } });
    expect(store.instances.map((i) => i.name)).toEqual(["gpu-renamed", "new"]);
  });

  it("returns a refused form as a failure with its code", async () => {
    mockShell(() => {
      throw { code: "invalid_input", message: "an instance named gpu exists", node_errors: [] };
    });
    const store = useSettingsStore();
    const outcome = await store.add(input());
    expect(outcome).toEqual({ ok: false, failure: { code: "invalid_input", message: "an instance named gpu exists", nodeErrors: [] } });
    expect(store.instances).toEqual([]);
  });

  it("tests a form with the saved instance's id lending its secrets", async () => {
    const store = useSettingsStore();
    const outcome = await store.test(input(), 2);
    expect(calls.at(-1)).toEqual({ command: "test_connection", args: { input: input(), id: 2 } });
    expect(outcome.ok && outcome.value.ok).toBe(true);
  });

  it("names a header's secret slot by its lowercase name", () => {
    expect(headerSlot(" X-API-Key ")).toBe("header:x-api-key");
  });
});
