import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { flushPromises } from "@vue/test-utils";
import { changeView, mockShell, resetShell } from "../ipc/testing";
import type { HistoryEntry } from "../bindings/HistoryEntry";
import { historyEntry, job, liveJob } from "../test/fixtures";
import { PAGE, REFETCH_DELAY_MS, useHistoryStore } from "./historyStore";

const GPU = 2;
const OTHER = 3;

describe("history store", () => {
  let calls: Array<{ command: string; args: Record<string, unknown> }>;
  let rows: HistoryEntry[];

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    rows = [historyEntry("a"), historyEntry("b", { state: "error" })];
    mockShell((command, args) => {
      calls.push({ command, args: args as Record<string, unknown> });
      if (command === "get_history") return rows;
      if (command === "resubmit_job") return [{ prompt_id: "new", node_errors: [] }];
      if (command === "save_output") return { path: "/d/gpu/x.png", folder: "/d/gpu" };
      if (command === "open_folder") throw { code: "invalid_input", message: "only folders of saved outputs", node_errors: [] };
      return null;
    });
  });

  afterEach(() => {
    resetShell();
    vi.useRealTimers();
  });

  const historyReads = () => calls.filter((c) => c.command === "get_history");

  it("reads the newest page of an instance's journal", async () => {
    const store = useHistoryStore();
    await store.load(GPU);
    expect(historyReads()[0]?.args).toEqual({ instance_id: GPU, limit: PAGE, offset: 0 });
    expect(store.byInstance[GPU]?.entries.map((e) => e.prompt_id)).toEqual(["a", "b"]);
    expect(store.byInstance[GPU]?.more).toBe(false);
  });

  it("reads again shortly after a job of a shown instance ends, once per burst", async () => {
    vi.useFakeTimers();
    const store = useHistoryStore();
    await store.start();
    await store.load(GPU);
    rows = [historyEntry("c"), ...rows];

    await changeView({ jobs: [{ revision: 1, instance_id: GPU, job: job("c", { state: "success" }) }] });
    await changeView({ jobs: [{ revision: 2, instance_id: GPU, job: job("d", { state: "interrupted" }) }] });
    await flushPromises();
    expect(historyReads()).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(REFETCH_DELAY_MS + 10);
    expect(historyReads()).toHaveLength(2);
    expect(store.byInstance[GPU]?.entries[0]?.prompt_id).toBe("c");
  });

  it("does not read again for progress, nor for instances never shown", async () => {
    vi.useFakeTimers();
    const store = useHistoryStore();
    await store.start();
    await store.load(GPU);
    await changeView({ jobs: [{ revision: 1, instance_id: GPU, job: liveJob("c", { percent: 50 }) }] });
    await changeView({ jobs: [{ revision: 2, instance_id: OTHER, job: job("x", { state: "success" }) }] });
    await vi.advanceTimersByTimeAsync(REFETCH_DELAY_MS * 3);
    expect(historyReads()).toHaveLength(1);
    expect(store.byInstance[OTHER]).toBeUndefined();
  });

  it("appends older pages without doubling entries", async () => {
    rows = Array.from({ length: PAGE }, (_, i) => historyEntry(`p${i}`));
    const store = useHistoryStore();
    await store.load(GPU);
    expect(store.byInstance[GPU]?.more).toBe(true);
    rows = [historyEntry(`p${PAGE - 1}`), historyEntry("older")];
    await store.loadMore(GPU);
    expect(historyReads()[1]?.args).toEqual({ instance_id: GPU, limit: PAGE, offset: PAGE });
    expect(store.byInstance[GPU]?.entries).toHaveLength(PAGE + 1);
    expect(store.byInstance[GPU]?.more).toBe(false);
  });

  it("keeps the failure by code when the journal cannot be read", async () => {
    mockShell(() => {
      throw { code: "storage", message: "database is locked", node_errors: [] };
    });
    const store = useHistoryStore();
    await store.load(GPU);
    expect(store.byInstance[GPU]?.failure).toEqual({ code: "storage", message: "database is locked", nodeErrors: [] });
  });

  it("queues a job again, saves an output and reports a refused folder", async () => {
    const store = useHistoryStore();
    const again = await store.resubmit(GPU, "a");
    expect(again).toEqual({ ok: true, value: [{ prompt_id: "new", node_errors: [] }] });
    expect(calls.at(-1)).toEqual({ command: "resubmit_job", args: { instance_id: GPU, prompt_id: "a", new_seed: false, count: 1 } });

    const output = { filename: "x.png", subfolder: "", type: "output" };
    const saved = await store.save(GPU, output, "a");
    expect(saved).toEqual({ ok: true, value: { path: "/d/gpu/x.png", folder: "/d/gpu" } });
    expect(calls.at(-1)).toEqual({ command: "save_output", args: { instance_id: GPU, output, prompt_id: "a" } });

    const opened = await store.showFolder("/etc");
    expect(opened.ok).toBe(false);
    expect(!opened.ok && opened.failure.code).toBe("invalid_input");
  });
});
