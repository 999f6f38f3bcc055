import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { mockShell, resetShell } from "../ipc/testing";
import { useSubmitStore } from "./submitStore";

describe("submit store", () => {
  beforeEach(() => setActivePinia(createPinia()));
  afterEach(() => resetShell());

  it("opens with a draft and forgets the last outcome", () => {
    const store = useSubmitStore();
    store.failure = { code: "internal", message: "x", nodeErrors: [] };
    store.openDialog({ text: "{}", fileName: "a.json" });
    expect(store.open).toBe(true);
    expect(store.draft).toEqual({ text: "{}", fileName: "a.json", instance: null, readFailure: null });
    expect(store.failure).toBeNull();
  });

  it("queues the workflow text on the instance and keeps the result", async () => {
    let seen: unknown;
    mockShell((command, args) => {
      seen = { command, args };
      return { prompt_id: "p1", node_errors: [] };
    });
    const store = useSubmitStore();
    const result = await store.submit(2, '{"1":{}}');
    expect(seen).toEqual({ command: "submit_workflow", args: { instance_id: 2, workflow: '{"1":{}}', preview: "default", new_seed: false, file_name: null } });
    expect(result).toEqual({ instance: 2, result: { prompt_id: "p1", node_errors: [] } });
    expect(store.submitting).toBe(false);
  });

  it("keeps a refusal with its per-node errors", async () => {
    const nodeErrors = [{ node_id: "4", class_type: "CheckpointLoaderSimple", title: "Load", messages: ["Value not in list"] }];
    mockShell(() => {
      throw { code: "rejected", message: "the server refused the workflow", node_errors: nodeErrors };
    });
    const store = useSubmitStore();
    expect(await store.submit(2, "{}")).toBeNull();
    expect(store.failure).toEqual({ code: "rejected", message: "the server refused the workflow", nodeErrors });
  });
});
