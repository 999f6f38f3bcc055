import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import InstanceForm from "./InstanceForm.vue";
import SettingsDialog from "./SettingsDialog.vue";
import { DEFAULT_NOTIFICATION_PREFS } from "../bindings/defaults";
import type { InstanceInput } from "../bindings/InstanceInput";
import type { InstanceSettings } from "../bindings/InstanceSettings";
import { mockShell, resetShell } from "../ipc/testing";
import { settings } from "../test/fixtures";

enableAutoUnmount(afterEach);

type Call = { command: string; args: { id?: number | null; input?: InstanceInput } };

describe("InstanceForm", () => {
  let calls: Call[];
  let reply: (command: string) => unknown;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    reply = (command) => (command === "add_instance" || command === "update_instance" ? settings(7, "saved") : null);
    mockShell((command, args) => {
      calls.push({ command, args: args as Call["args"] });
      return reply(command);
    });
  });

  afterEach(() => resetShell());

  const sent = (command: string) => calls.find((c) => c.command === command)?.args;

  function mountForm(initial: InstanceSettings | null) {
    return mount(InstanceForm, { props: { initial }, attachTo: document.body });
  }

  it("never shows a stored secret: the field is empty and says a value is stored", () => {
    const w = mountForm(settings(2, "gpu", { auth_kind: "bearer", secrets_set: ["token"] }));
    const token = w.get<HTMLInputElement>('[data-testid="instance-token"]');
    expect(token.attributes("type")).toBe("password");
    expect(token.element.value).toBe("");
    expect(token.attributes("placeholder")).toBe("stored — type to replace");
  });

  it("asks for a secret that is not stored yet", () => {
    const w = mountForm(settings(2, "gpu", { auth_kind: "bearer", secrets_set: [] }));
    expect(w.get('[data-testid="instance-token"]').attributes("placeholder")).toBe("token");
  });

  it("sends no secret when none was typed, so the stored one is kept", async () => {
    const w = mountForm(settings(2, "gpu", { auth_kind: "bearer", secrets_set: ["token"] }));
    await w.get('[data-testid="save-instance"]').trigger("submit");
    await flushPromises();
    const args = sent("update_instance");
    expect(args?.id).toBe(2);
    expect(args?.input?.secrets).toEqual({});
    expect(args?.input?.auth_kind).toBe("bearer");
    expect(w.emitted("saved")).toHaveLength(1);
  });

  it("sends only the typed secrets of the chosen auth kind, then empties the fields", async () => {
    const w = mountForm(null);
    await w.get('[data-testid="instance-name"]').setValue("gpu");
    await w.get('[data-testid="instance-url"]').setValue("http://gpu:8188");
    await w.get('[data-testid="auth-kind"]').setValue("bearer");
    await w.get('[data-testid="instance-token"]').setValue("typed-token");
    // Switching to Basic: the token typed for Bearer must not travel.
    await w.get('[data-testid="auth-kind"]').setValue("basic");
    await w.get('[data-testid="instance-user"]').setValue("admin");
    await w.get('[data-testid="instance-password"]').setValue("pw");
    await w.get("form").trigger("submit");
    await flushPromises();
    const input = sent("add_instance")?.input;
    expect(input).toMatchObject({ name: "gpu", url: "http://gpu:8188", auth_kind: "basic", user: "admin", secrets: { password: "pw" } });
    expect(Object.keys(input?.secrets ?? {})).toEqual(["password"]);
    expect(w.get<HTMLInputElement>('[data-testid="instance-password"]').element.value).toBe("");
  });

  it("stores custom header values under their lowercase slot", async () => {
    const w = mountForm(settings(3, "proxy", { auth_kind: "headers", header_names: ["X-Api-Key", "X-Team"], secrets_set: ["header:x-api-key", "header:x-team"] }));
    const values = w.findAll<HTMLInputElement>('[data-testid="header-value"]');
    expect(values.map((v) => v.element.value)).toEqual(["", ""]);
    expect(values.map((v) => v.attributes("placeholder"))).toEqual(["stored — type to replace", "stored — type to replace"]);
    await values[1]?.setValue("new-team");
    await w.get("form").trigger("submit");
    await flushPromises();
    const input = sent("update_instance")?.input;
    expect(input?.header_names).toEqual(["X-Api-Key", "X-Team"]);
    expect(input?.secrets).toEqual({ "header:x-team": "new-team" });
  });

  it("starts a new instance with exactly the shell's default notification switches", async () => {
    const w = mountForm(null);
    const boxes = w.findAll<HTMLInputElement>('[data-testid^="notify-"]');
    const shown = Object.fromEntries(boxes.map((b) => [b.attributes("data-testid")?.slice("notify-".length), b.element.checked]));
    expect(shown).toEqual(DEFAULT_NOTIFICATION_PREFS);
    await w.get('[data-testid="instance-name"]').setValue("gpu");
    await w.get('[data-testid="instance-url"]').setValue("http://gpu:8188");
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.notifications).toEqual(DEFAULT_NOTIFICATION_PREFS);
  });

  it("keeps an edited instance's own notification switches", async () => {
    const own = { ...DEFAULT_NOTIFICATION_PREFS, auth_rejected: false, other_clients_jobs: true };
    const w = mountForm(settings(2, "gpu", { notifications: own }));
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.notifications).toEqual(own);
  });

  it("uses the companion for a new instance unless it is unticked", async () => {
    const w = mountForm(null);
    const box = w.get<HTMLInputElement>('[data-testid="instance-companion"]');
    expect(box.element.checked).toBe(true);
    expect(w.text()).toContain("Use the comfy-monitor companion when the server has it");
    await w.get('[data-testid="instance-name"]').setValue("gpu");
    await w.get('[data-testid="instance-url"]').setValue("http://gpu:8188");
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.use_companion).toBe(true);

    calls = [];
    await box.setValue(false);
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.use_companion).toBe(false);
  });

  it("saves a new server's outputs into the suggested folder, which follows the name until edited", async () => {
    reply = (command) =>
      command === "default_output_folder"
        ? `/home/u/Pictures/ComfyUI/${(calls.at(-1)?.args as unknown as { name: string }).name}`
        : command === "add_instance"
          ? settings(7, "saved")
          : null;
    const w = mountForm(null);
    await flushPromises();
    expect(w.get<HTMLInputElement>('[data-testid="instance-save"]').element.checked).toBe(true);
    await w.get('[data-testid="instance-name"]').setValue("gpu-box");
    await flushPromises();
    const folder = w.get<HTMLInputElement>('[data-testid="instance-save-folder"]');
    expect(folder.element.value).toBe("/home/u/Pictures/ComfyUI/gpu-box");
    await w.get('[data-testid="instance-url"]').setValue("http://gpu:8188");
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.saving).toEqual({ folder: "/home/u/Pictures/ComfyUI/gpu-box", others: false });

    // A folder the user typed stays when the name changes.
    await folder.setValue("/srv/renders");
    await w.get('[data-testid="instance-name"]').setValue("gpu-2");
    await flushPromises();
    expect(folder.element.value).toBe("/srv/renders");
    await w.get('[data-testid="instance-save-others"]').setValue(true);
    calls = [];
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.saving).toEqual({ folder: "/srv/renders", others: true });

    // Unticked, nothing is saved.
    await w.get('[data-testid="instance-save"]').setValue(false);
    calls = [];
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.saving).toEqual({ folder: null, others: false });
  });

  it("keeps an edited instance's saving setting", async () => {
    const off = mountForm(settings(2, "gpu"));
    await flushPromises();
    expect(off.get<HTMLInputElement>('[data-testid="instance-save"]').element.checked).toBe(false);
    await off.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.saving).toEqual({ folder: null, others: false });

    calls = [];
    const on = mountForm(settings(3, "box", { saving: { folder: "/srv/box", others: true } }));
    await flushPromises();
    expect(on.get<HTMLInputElement>('[data-testid="instance-save-folder"]').element.value).toBe("/srv/box");
    await on.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.saving).toEqual({ folder: "/srv/box", others: true });
  });

  it("keeps an edited instance's companion setting, on or off", async () => {
    const off = mountForm(settings(2, "gpu", { use_companion: false }));
    expect(off.get<HTMLInputElement>('[data-testid="instance-companion"]').element.checked).toBe(false);
    await off.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.use_companion).toBe(false);

    calls = [];
    const on = mountForm(settings(3, "box"));
    expect(on.get<HTMLInputElement>('[data-testid="instance-companion"]').element.checked).toBe(true);
    await on.get('[data-testid="instance-companion"]').setValue(false);
    await on.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")).toMatchObject({ id: 3, input: { use_companion: false } });
  });

  it("keeps the preview rate cap within 0–120", async () => {
    const w = mountForm(settings(2, "gpu"));
    await w.get('[data-testid="instance-fps"]').setValue("500");
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.preview_fps_cap).toBe(120);
  });

  it("shows the shell's validation message next to the form", async () => {
    reply = () => {
      throw { code: "invalid_input", message: "an instance named gpu exists", node_errors: [] };
    };
    const w = mountForm(null);
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(w.get('[data-testid="form-error"]').text()).toBe("Check the form: an instance named gpu exists");
    expect(w.emitted("saved")).toBeUndefined();
  });

  it("tests the connection with the saved instance's id and names the step that failed", async () => {
    reply = (command) =>
      command === "test_connection"
        ? {
            ok: false,
            steps: [
              { step: "http", ok: true, detail: "ComfyUI 0.3.60", auth: false },
              { step: "websocket", ok: false, detail: "403 Forbidden", auth: true },
            ],
          }
        : null;
    const w = mountForm(settings(5, "gpu", { auth_kind: "bearer", secrets_set: ["token"] }));
    await w.get('[data-testid="test-connection"]').trigger("click");
    await flushPromises();
    expect(sent("test_connection")?.id).toBe(5);
    expect(sent("test_connection")?.input?.secrets).toEqual({});
    const steps = w.findAll('[data-testid="test-step"]');
    expect(steps.map((s) => [s.attributes("data-step"), s.attributes("data-ok")])).toEqual([
      ["http", "true"],
      ["websocket", "false"],
    ]);
    expect(steps[0]?.text()).toContain("✓");
    expect(steps[1]?.text()).toContain("✗");
    expect(steps[1]?.text()).toContain("403 Forbidden");
    expect(w.get('[data-testid="test-verdict"]').text()).toBe("The WebSocket step failed: the server refused the credentials.");
  });

  const FIRST = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, "0").toUpperCase()).join(":");
  const SECOND = Array.from({ length: 32 }, (_, i) => (255 - i).toString(16).toUpperCase()).join(":");

  /** Test connection as the shell answers it: refused until `pinned` is the certificate sent. */
  function serverPresenting(presented: string) {
    reply = (command) => {
      if (command !== "test_connection") return command === "add_instance" || command === "update_instance" ? settings(7, "saved") : null;
      const pinned = calls.at(-1)?.args.input?.certificate_sha256 ?? null;
      if (pinned === presented) {
        return {
          ok: true,
          steps: [
            { step: "http", ok: true, detail: "ComfyUI 0.3.60", auth: false, certificate: null },
            { step: "websocket", ok: true, detail: "socket upgrade accepted", auth: false, certificate: null },
          ],
        };
      }
      return { ok: false, steps: [{ step: "http", ok: false, detail: "not trusted", auth: false, certificate: { presented, pinned } }] };
    };
  }

  it("says what trusting the server's own certificate means, and which one is pinned", async () => {
    const w = mountForm(settings(3, "box", { url: "https://box:8443/", accept_invalid_certs: true, certificate_sha256: FIRST }));
    const box = w.get('[data-testid="instance-insecure"]');
    expect(box.element.closest("label")?.textContent).toContain("Trust this server's own certificate (pinned on first connection)");
    expect(w.get('[data-testid="certificate-pin"]').text()).toBe(`Pinned (SHA-256): ${FIRST}`);
    await box.setValue(false);
    expect(w.find('[data-testid="certificate-pin"]').exists()).toBe(false);
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.certificate_sha256).toBeNull();
  });

  it("shows the fingerprint of a certificate not trusted yet, and accepting it pins it and tests again", async () => {
    serverPresenting(FIRST);
    const w = mountForm(null);
    await w.get('[data-testid="instance-name"]').setValue("box");
    await w.get('[data-testid="instance-url"]').setValue("https://box:8443");
    await w.get('[data-testid="instance-insecure"]').setValue(true);
    expect(w.get('[data-testid="certificate-pin"]').text()).toContain("No certificate pinned yet");
    await w.get('[data-testid="test-connection"]').trigger("click");
    await flushPromises();
    expect(sent("test_connection")?.input?.certificate_sha256).toBeNull();
    expect(w.get('[data-testid="test-verdict"]').text()).toBe("The HTTP API step failed: the server's certificate is not trusted yet.");
    expect(w.get('[data-testid="certificate-presented"]').text()).toBe(FIRST);
    expect(w.find('[data-testid="certificate-pinned"]').exists()).toBe(false);
    const accept = w.get('[data-testid="accept-certificate"]');
    expect(accept.text()).toBe("Accept this certificate");
    await accept.trigger("click");
    await flushPromises();
    expect(calls.filter((c) => c.command === "test_connection").at(-1)?.args.input?.certificate_sha256).toBe(FIRST);
    expect(w.get('[data-testid="test-verdict"]').text()).toBe("Connection works: both steps passed.");
    expect(w.get('[data-testid="certificate-accepted"]').text()).toContain("pinned when you save");
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("add_instance")?.input?.certificate_sha256).toBe(FIRST);
  });

  it("shows both fingerprints when the certificate changed, and asks before pinning the new one", async () => {
    serverPresenting(SECOND);
    const w = mountForm(settings(3, "box", { url: "https://box:8443/", accept_invalid_certs: true, certificate_sha256: FIRST }));
    await w.get('[data-testid="test-connection"]').trigger("click");
    await flushPromises();
    expect(sent("test_connection")?.input?.certificate_sha256).toBe(FIRST);
    expect(w.get('[data-testid="test-verdict"]').text()).toBe("The HTTP API step failed: the server's certificate changed.");
    expect(w.get('[data-testid="certificate-pinned"]').text()).toBe(FIRST);
    expect(w.get('[data-testid="certificate-presented"]').text()).toBe(SECOND);
    expect(w.get('[data-testid="certificate-refusal"]').text()).toContain("only if you know why it changed");
    // Nothing changes until the user accepts: saving now keeps the old pin.
    expect(w.get('[data-testid="certificate-pin"]').text()).toContain(FIRST);
    await w.get('[data-testid="accept-certificate"]').trigger("click");
    await flushPromises();
    expect(w.get('[data-testid="test-verdict"]').text()).toBe("Connection works: both steps passed.");
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent("update_instance")?.input?.certificate_sha256).toBe(SECOND);
  });

  it("lists the step that was never tried after an HTTP failure", async () => {
    reply = () => ({ ok: false, steps: [{ step: "http", ok: false, detail: "connection refused", auth: false }] });
    const w = mountForm(null);
    await w.get('[data-testid="test-connection"]').trigger("click");
    await flushPromises();
    expect(sent("test_connection")?.id).toBeNull();
    expect(w.get('[data-testid="test-verdict"]').text()).toBe("The HTTP API step failed.");
    expect(w.text()).toContain("not tried");
  });
});

describe("SettingsDialog", () => {
  let calls: Array<{ command: string; args: unknown }>;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    mockShell((command, args) => {
      calls.push({ command, args });
      if (command === "list_instances") return [settings(1, "Local"), settings(2, "gpu")];
      return null;
    });
  });

  afterEach(() => resetShell());

  it("removes an instance only after confirmation", async () => {
    const w = mount(SettingsDialog, { attachTo: document.body });
    await flushPromises();
    const row = w.get('[data-testid="settings-row"][data-instance="gpu"]');
    await row.get('[data-testid="remove-instance"]').trigger("click");
    expect(calls.some((c) => c.command === "remove_instance")).toBe(false);
    await row.get('[data-testid="confirm-remove"]').trigger("click");
    await flushPromises();
    expect(calls.at(-1)).toEqual({ command: "remove_instance", args: { id: 2 } });
    expect(w.findAll('[data-testid="settings-row"]').map((r) => r.attributes("data-instance"))).toEqual(["Local"]);
  });

  it("opens the form of the instance asked for", async () => {
    const w = mount(SettingsDialog, { props: { editId: 2 }, attachTo: document.body });
    await flushPromises();
    expect(w.get<HTMLInputElement>('[data-testid="instance-name"]').element.value).toBe("gpu");
  });

  it("closes on Escape", async () => {
    const w = mount(SettingsDialog, { attachTo: document.body });
    await flushPromises();
    await w.get('[data-testid="settings"]').trigger("keydown", { key: "Escape" });
    expect(w.emitted("close")).toHaveLength(1);
  });
});
