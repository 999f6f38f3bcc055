import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import SubmitDialog from "./SubmitDialog.vue";
import { mockShell, resetShell } from "../ipc/testing";
import { useInstancesStore } from "../stores/instancesStore";
import { useSubmitStore } from "../stores/submitStore";
import { useViewStore } from "../stores/viewStore";
import { instance, server, status } from "../test/fixtures";

enableAutoUnmount(afterEach);

const WORKFLOW = '{"1":{"class_type":"KSampler","inputs":{}}}';
const DOWN = 1;
const GPU = 2;

/** The instance name the select shows as chosen (its option values are instance ids). */
function chosen(w: ReturnType<typeof mount>): string | undefined {
  const select = w.get<HTMLSelectElement>('[data-testid="submit-instance"]').element;
  return select.selectedOptions[0]?.text;
}

describe("SubmitDialog", () => {
  let calls: Array<{ command: string; args: unknown }>;
  let reply: () => unknown;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    reply = () => ({ prompt_id: "p1", node_errors: [] });
    mockShell((command, args) => {
      calls.push({ command, args });
      return reply();
    });
    useInstancesStore().instances = [
      instance("down", { id: DOWN, status: status({ state: "unreachable", detail: "connection refused" }) }),
      instance("gpu", { id: GPU }),
      instance("off", { id: 3, enabled: false, status: status({ state: "disabled" }) }),
    ];
    useSubmitStore().openDialog();
  });

  afterEach(() => resetShell());

  async function fillAndSend(w: ReturnType<typeof mount>, text = WORKFLOW) {
    await w.get('[data-testid="workflow-text"]').setValue(text);
    await w.get('[data-testid="submit-confirm"]').trigger("click");
    await flushPromises();
  }

  it("offers connected instances first, by name, and leaves disabled ones out", () => {
    const w = mount(SubmitDialog, { attachTo: document.body });
    const options = w.findAll('[data-testid="submit-instance"] option');
    expect(options.map((o) => o.text())).toEqual(["gpu", "down"]);
    expect(chosen(w)).toBe("gpu");
  });

  it("queues the text on the chosen instance, then closes and brings that instance into view", async () => {
    const w = mount(SubmitDialog, { attachTo: document.body });
    await fillAndSend(w);
    expect(calls).toEqual([{ command: "submit_workflow", args: { instance_id: GPU, workflow: WORKFLOW, preview: "default", new_seed: false, file_name: null } }]);
    expect(useSubmitStore().open).toBe(false);
    expect(useViewStore().focusRequest?.instanceId).toBe(GPU);
  });

  it("asks for the chosen previews, and keeps the choice for the next workflow", async () => {
    const w = mount(SubmitDialog, { attachTo: document.body });
    await w.get('[data-testid="submit-preview"]').setValue("none");
    await fillAndSend(w);
    expect(calls).toEqual([{ command: "submit_workflow", args: { instance_id: GPU, workflow: WORKFLOW, preview: "none", new_seed: false, file_name: null } }]);
    useSubmitStore().openDialog();
    const again = mount(SubmitDialog, { attachTo: document.body });
    expect(again.get<HTMLSelectElement>('[data-testid="submit-preview"]').element.value).toBe("none");
  });

  it("says when the chosen server is too old to honour a per-job preview choice", async () => {
    const servers = { "0.3.64": "old", "0.26.0": "new" } as const;
    useInstancesStore().instances = Object.entries(servers).map(([version, name], i) =>
      instance(name, { id: 10 + i, server: server({ version, jobs_api: version !== "0.3.64" }) }),
    );
    const w = mount(SubmitDialog, { attachTo: document.body });
    const pick = async (name: string, preview: string) => {
      const option = w.findAll('[data-testid="submit-instance"] option').find((o) => o.text() === name);
      await option?.setValue();
      await w.get('[data-testid="submit-preview"]').setValue(preview);
    };
    await pick("old", "default");
    expect(w.find('[data-testid="submit-preview-ignored"]').exists()).toBe(false);
    await pick("old", "taesd");
    expect(w.get('[data-testid="submit-preview-ignored"]').text()).toContain("ComfyUI 0.3.64 ignores this");
    await pick("new", "taesd");
    expect(w.find('[data-testid="submit-preview-ignored"]').exists()).toBe(false);
  });

  it("lists each refused node by id and title, else class type", async () => {
    reply = () => {
      throw {
        code: "rejected",
        message: "Prompt outputs failed validation",
        node_errors: [
          { node_id: "4", class_type: "CheckpointLoaderSimple", title: "Load SDXL", messages: ["Value not in list: ckpt_name: 'x' not in []"] },
          { node_id: "9", class_type: "SaveImage", title: null, messages: ["Required input is missing: images", "Another"] },
        ],
      };
    };
    const w = mount(SubmitDialog, { attachTo: document.body });
    await fillAndSend(w);
    const error = w.get('[data-testid="submit-error"]');
    expect(error.attributes("data-code")).toBe("rejected");
    expect(error.text()).toContain("Prompt outputs failed validation");
    const rows = w.findAll('[data-testid="node-error"]').map((r) => r.text());
    expect(rows).toEqual([
      "#4 Load SDXL: Value not in list: ckpt_name: 'x' not in []",
      "#9 SaveImage: Required input is missing: images; Another",
    ]);
    expect(useSubmitStore().open).toBe(true);
  });

  it("shows the shell's explanation for an editor-format workflow", async () => {
    const message = "This is a workflow saved from the editor; use Workflow → Export (API)";
    reply = () => {
      throw { code: "ui_format_workflow", message, node_errors: [] };
    };
    const w = mount(SubmitDialog, { attachTo: document.body });
    await fillAndSend(w, '{"nodes":[],"links":[]}');
    const error = w.get('[data-testid="submit-error"]');
    expect(error.attributes("data-code")).toBe("ui_format_workflow");
    expect(error.text()).toContain("This is an editor workflow, not the API format.");
    expect(error.text()).toContain(message);
    expect(w.findAll('[data-testid="node-error"]')).toHaveLength(0);
  });

  it("warns that outputs the server dropped will not run while the rest does", async () => {
    reply = () => ({ prompt_id: "p9", node_errors: [{ node_id: "12", class_type: "PreviewAny", title: null, messages: ["Required input is missing: source"] }] });
    const w = mount(SubmitDialog, { attachTo: document.body });
    await fillAndSend(w);
    const warning = w.get('[data-testid="submit-warning"]');
    expect(warning.text()).toContain("Queued on gpu");
    expect(warning.text()).toContain("dropped");
    expect(warning.text()).toContain("The rest runs");
    expect(w.get('[data-testid="node-error"]').text()).toBe("#12 PreviewAny: Required input is missing: source");
    expect(useSubmitStore().open).toBe(true);
    await w.get('[data-testid="submit-done"]').trigger("click");
    expect(useSubmitStore().open).toBe(false);
    expect(useViewStore().focusRequest?.instanceId).toBe(GPU);
  });

  it("fills the text from a chosen file", async () => {
    const w = mount(SubmitDialog, { attachTo: document.body });
    const input = w.get<HTMLInputElement>('[data-testid="workflow-file"]');
    const file = new File([WORKFLOW], "flow_api.json", { type: "application/json" });
    Object.defineProperty(input.element, "files", { value: [file], configurable: true });
    await input.trigger("change");
    await flushPromises();
    expect(w.get<HTMLTextAreaElement>('[data-testid="workflow-text"]').element.value).toBe(WORKFLOW);
    expect(w.text()).toContain("flow_api.json");
  });

  it("fills the text from the prompt a saved image holds, read by the shell, and can ask for new seeds", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    reply = () => WORKFLOW;
    const w = mount(SubmitDialog, { attachTo: document.body });
    const input = w.get<HTMLInputElement>('[data-testid="workflow-file"]');
    const file = new File([png], "ComfyUI_00001_.png", { type: "image/png" });
    Object.defineProperty(input.element, "files", { value: [file], configurable: true });
    await input.trigger("change");
    await flushPromises();
    const [read] = calls;
    expect(read?.command).toBe("read_prompt");
    expect(Array.from(read?.args as Uint8Array)).toEqual(Array.from(png));
    expect(w.get<HTMLTextAreaElement>('[data-testid="workflow-text"]').element.value).toBe(WORKFLOW);
    expect(w.text()).toContain("ComfyUI_00001_.png");

    reply = () => ({ prompt_id: "p1", node_errors: [] });
    await w.get('[data-testid="submit-new-seed"]').setValue(true);
    await w.get('[data-testid="submit-confirm"]').trigger("click");
    await flushPromises();
    expect(calls.at(-1)).toEqual({
      command: "submit_workflow",
      args: { instance_id: GPU, workflow: WORKFLOW, preview: "default", new_seed: true, file_name: "ComfyUI_00001_.png" },
    });
  });

  it("says why a file gives no workflow", async () => {
    const message = "this PNG image holds only the workflow as the ComfyUI page draws it, not the prompt it ran";
    reply = () => {
      throw { code: "ui_format_workflow", message, node_errors: [] };
    };
    const w = mount(SubmitDialog, { attachTo: document.body });
    const input = w.get<HTMLInputElement>('[data-testid="workflow-file"]');
    Object.defineProperty(input.element, "files", { value: [new File([new Uint8Array(8)], "page.png", { type: "image/png" })], configurable: true });
    await input.trigger("change");
    await flushPromises();
    const failure = w.get('[data-testid="workflow-read-failure"]');
    expect(failure.text()).toContain("page.png");
    expect(failure.text()).toContain("holds only the workflow");
    expect(w.get<HTMLTextAreaElement>('[data-testid="workflow-text"]').element.value).toBe("");
  });

  it("starts from a file dropped on the window", async () => {
    useSubmitStore().openDialog({ text: WORKFLOW, fileName: "dropped.json", instance: DOWN });
    const w = mount(SubmitDialog, { attachTo: document.body });
    expect(w.get<HTMLTextAreaElement>('[data-testid="workflow-text"]').element.value).toBe(WORKFLOW);
    expect(chosen(w)).toBe("down");
  });

  it("does not send an empty workflow", async () => {
    const w = mount(SubmitDialog, { attachTo: document.body });
    expect(w.get('[data-testid="submit-confirm"]').attributes("disabled")).toBeDefined();
    await w.get('[data-testid="submit-confirm"]').trigger("click");
    await flushPromises();
    expect(calls).toEqual([]);
  });
});
