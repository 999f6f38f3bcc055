import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import InstanceDetail from "./InstanceDetail.vue";
import ErrorDetails from "./ErrorDetails.vue";
import type { InstanceView } from "../bindings/InstanceView";
import { IMAGE_LOADER } from "../composables/usePreloadedImage";
import { mockShell, resetShell } from "../ipc/testing";
import { useInstancesStore } from "../stores/instancesStore";
import { useShellRequestsStore } from "../stores/shellRequestsStore";
import { useViewStore } from "../stores/viewStore";
import { estimate, historyEntry, instance, job, liveJob, logEntry, server, status } from "../test/fixtures";

enableAutoUnmount(afterEach);

const OUTPUT = { filename: "ComfyUI_0001_.png", subfolder: "", type: "output" };

describe("InstanceDetail", () => {
  let calls: Array<{ command: string; args: unknown }>;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    mockShell((command, args) => {
      calls.push({ command, args });
      switch (command) {
        case "get_history":
          return [
            historyEntry("h-ok", { outputs: [OUTPUT] }),
            historyEntry("h-lost", { state: "lost", detail: "the server restarted", can_resubmit: true }),
            historyEntry("h-other", { origin: "other" }),
            historyEntry("h-running", { state: "running", finished_at_ms: null }),
            historyEntry("h-int", { state: "interrupted", error: { node_id: "1", node_type: "KSampler", exception_type: null, message: "interrupted" } }),
            historyEntry("h-err", {
              state: "error",
              error: { node_id: "4", node_type: "Loader", exception_type: "OSError", message: "no file", traceback: ["Traceback\n", "  boom\n"] },
            }),
          ];
        case "get_event_log":
          return [logEntry(1, { kind: "reconnecting", detail: "connection reset" }), logEntry(2)];
        case "cancel_job":
          return "removed";
        case "get_job_summary":
          if ((args as { prompt_id: string }).prompt_id === "h-int") {
            throw { code: "not_found", message: "the server no longer has this job's graph, and it was not queued by this app", node_errors: [] };
          }
          return {
            models: ["sd_xl_base_1.0.safetensors"],
            loras: [{ name: "detail.safetensors", strength: 0.8 }],
            sampler: "euler",
            scheduler: "normal",
            steps: 20,
            cfg: 8,
            seed: "42",
            denoise: 1,
            width: 1024,
            height: 768,
            batch_size: 2,
            positive: ["a lighthouse at dusk"],
            negative: ["blurry"],
            nodes: [
              { id: "3", class_type: "KSampler", title: null },
              { id: "6", class_type: "CLIPTextEncode", title: "Positive" },
            ],
          };
        case "resubmit_job": {
          const count = (args as { count: number }).count;
          return Array.from({ length: count }, (_, i) => ({ prompt_id: `again-${i}23456789`, node_errors: [] }));
        }
        case "save_output":
          return { path: "/home/u/Downloads/comfy-monitor/gpu/ComfyUI_0001_.png", folder: "/home/u/Downloads/comfy-monitor/gpu" };
        default:
          return null;
      }
    });
  });

  afterEach(() => resetShell());

  function mountDetail(view: InstanceView) {
    useInstancesStore().instances = [view];
    return mount(InstanceDetail, {
      props: { instanceId: view.id },
      attachTo: document.body,
      global: { provide: { [IMAGE_LOADER as symbol]: () => Promise.resolve() } },
    });
  }

  const gpu = (overrides: Partial<InstanceView> = {}) =>
    instance("gpu", {
      id: 5,
      queue: { running: 1, pending: 3 },
      jobs: [
        liveJob("run", { percent: 30, node_text: [{ node: "7", text: "once upon a time" }] }),
        job("mine", { state: "pending", origin: "self", fidelity: "live" }),
        job("theirs", { state: "pending", origin: "other" }),
        job("nobody", { state: "pending", origin: "anonymous" }),
      ],
      ...overrides,
    });

  it("labels every queued job by who queued it", async () => {
    const w = mountDetail(gpu());
    const rows = w.findAll('[data-testid="queue-row"]');
    expect(rows.map((r) => [r.attributes("data-prompt-id"), r.attributes("data-state"), r.attributes("data-origin")])).toEqual([
      ["run", "running", "self"],
      ["mine", "pending", "self"],
      ["theirs", "pending", "other"],
      ["nobody", "pending", "other"],
    ]);
    expect(rows.map((r) => r.get('[data-testid="queue-origin"]').text())).toEqual(["this app", "this app", "other client", "other client"]);
    expect(rows.map((r) => r.get('[data-testid="delete-job"]').text())).toEqual(["Cancel", "Remove", "Remove", "Remove"]);
  });

  it("shows what a queued job is, read from its graph, under its row", async () => {
    const w = mountDetail(gpu());
    const row = () => w.get('[data-testid="queue-row"][data-prompt-id="theirs"]');
    await row().get('[data-testid="queue-summary"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "get_job_summary", args: { instance_id: 5, prompt_id: "theirs" } });
    const summary = w.get('[data-testid="queue-summary-row"]');
    expect(summary.text()).toContain("sd_xl_base_1.0");
    expect(summary.text()).toContain("a lighthouse at dusk");
    await row().get('[data-testid="queue-summary"]').trigger("click");
    expect(w.find('[data-testid="queue-summary-row"]').exists()).toBe(false);
  });

  it("cancels the running job from Now running with the same button as the cards", async () => {
    const w = mountDetail(gpu());
    const button = w.get('.area-now [data-testid="cancel-job"]');
    expect(button.attributes("aria-label")).toBe("Cancel the running job on gpu");
    await button.trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "cancel_job", args: { instance_id: 5, prompt_id: "run" } });
  });

  it("deletes one of this app's jobs from its row in one click", async () => {
    const w = mountDetail(gpu());
    await w.get('[data-testid="queue-row"][data-prompt-id="mine"] [data-testid="delete-job"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "cancel_job", args: { instance_id: 5, prompt_id: "mine" } });
  });

  it("asks before removing another client's job, and removes it only on yes", async () => {
    const w = mountDetail(gpu());
    await w.get('[data-testid="queue-row"][data-prompt-id="theirs"] [data-testid="delete-job"]').trigger("click");
    await flushPromises();
    expect(calls.some((c) => c.command === "cancel_job")).toBe(false);
    const requests = useShellRequestsStore();
    expect(requests.pendingCancel).toEqual({ instance_id: 5, prompt_id: "theirs" });
    await requests.confirmCancel();
    expect(calls).toContainEqual({ command: "cancel_job", args: { instance_id: 5, prompt_id: "theirs" } });
  });

  it("clears the queue only after confirmation", async () => {
    const w = mountDetail(gpu());
    await w.get('[data-testid="clear-queue"]').trigger("click");
    expect(calls.some((c) => c.command === "clear_queue")).toBe(false);
    expect(w.text()).toContain("Remove all 3 pending jobs? The running job is left alone.");
    await w.get('[data-testid="confirm-clear"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "clear_queue", args: { instance_id: 5 } });
  });

  describe("estimates", () => {
    // Local time, so the clock times read the same in every time zone. Only the date is faked:
    // the history and the log still load through real timers.
    const NOW = new Date(2026, 10, 4, 14, 20, 0).getTime();
    beforeEach(() => {
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(NOW);
    });
    afterEach(() => vi.useRealTimers());

    const estimated = () =>
      gpu({
        jobs: [
          job("run", { state: "running", fidelity: "observed", started_at_ms: NOW - 42_000, estimate: estimate({ percent: 40, eta_ms: 80_000 }) }),
          job("next", { state: "pending", estimate: estimate({ basis: "nodes", samples: 2, starts_in_ms: 80_000, eta_ms: 210_000 }) }),
          job("last", { state: "pending", estimate: estimate({ starts_in_ms: 210_000, eta_ms: 12 * 60_000 }) }),
        ],
      });

    it("shows each queued job's estimate beside its measured figures, marked ≈ with its basis", () => {
      const w = mountDetail(estimated());
      const row = (id: string) => w.get(`[data-testid="queue-row"][data-prompt-id="${id}"]`);
      expect(row("run").text()).toContain("0:42 · ≈ 40% · ≈ 1 min 20 s left");
      const next = row("next").get('[data-testid="job-estimate"]');
      expect(next.text()).toBe("starts in ≈ 1 min 20 s · done ≈ 14:23");
      expect(next.attributes("title")).toBe(
        "Runs ≈ 2 min 10 s\nEstimated from this server's speed per node (a workflow not run here before; fewest samples 2)",
      );
      expect(row("last").get('[data-testid="job-estimate"]').text()).toBe("starts in ≈ 3 min 30 s · done ≈ 14:32");
    });

    it("gives a pending job without a start its run time, and a followed job only its time left", () => {
      const w = mountDetail(
        gpu({
          jobs: [
            liveJob("run", { percent: 30, estimate: estimate({ percent: 50, eta_ms: 80_000 }) }),
            job("mine", { state: "pending", estimate: estimate({ typical_ms: 130_000 }) }),
            job("theirs", { state: "pending" }),
          ],
        }),
      );
      const row = (id: string) => w.get(`[data-testid="queue-row"][data-prompt-id="${id}"]`);
      expect(row("run").text()).toContain("30%");
      expect(row("run").get('[data-testid="job-estimate"]').text()).toBe("≈ 1 min 20 s left");
      expect(row("mine").get('[data-testid="job-estimate"]').text()).toBe("≈ 2 min 10 s run");
      expect(row("theirs").find('[data-testid="job-estimate"]').exists()).toBe(false);
      // The last pending job has no end: the queue's end cannot be said.
      expect(w.find('[data-testid="queue-drain"]').exists()).toBe(false);
    });

    it("says when the queue drains", () => {
      const w = mountDetail(estimated());
      expect(w.get('.facts [data-testid="queue-drain"]').text()).toBe("queue done ≈ 14:32");
    });

    it("shows no estimate in the queue or under Now running while the server is down", () => {
      for (const state of ["reconnecting", "unreachable", "auth_failed"] as const) {
        const w = mountDetail({ ...estimated(), status: status({ state }) });
        expect(w.find('[data-testid="job-estimate"]').exists(), state).toBe(false);
        expect(w.find('[data-testid="job-estimate-percent"]').exists(), state).toBe(false);
        expect(w.find('[data-testid="queue-drain"]').exists(), state).toBe(false);
        expect(w.get(".area-now").text()).toContain("other client — queue position, elapsed time and outcome only");
        expect(w.get(".area-queue").text(), state).not.toContain("≈");
      }
      const live = mountDetail(
        gpu({ status: status({ state: "reconnecting" }), jobs: [liveJob("run", { percent: 30, eta_ms: 9_000, estimate: estimate({ eta_ms: 80_000 }) })] }),
      );
      expect(live.find('[data-testid="job-estimate"]').exists()).toBe(false);
      expect(live.get(".area-now").text()).toContain("ETA 9 s");
    });

    it("shows another client's running job with its estimated bar under Now running", () => {
      const w = mountDetail(estimated());
      const now = w.get(".area-now");
      expect(now.get('[data-testid="job-progress"]').attributes("data-estimated")).toBe("true");
      expect(now.get('[data-testid="job-estimate-percent"]').text()).toBe("≈ 40%");
      expect(now.get('[data-testid="job-estimate"]').text()).toBe("≈ 1 min 20 s left");
      expect(now.text()).toContain("≈ figures estimated from its past runs");
      expect(now.find('[data-testid="cancel-job"]').exists()).toBe(true);
    });
  });

  it("cannot clear a queue with nothing pending", () => {
    const w = mountDetail(gpu({ jobs: [liveJob("run")], queue: { running: 1, pending: 0 } }));
    expect(w.get('[data-testid="clear-queue"]').attributes("disabled")).toBeDefined();
  });

  it("says plainly what the server lets us see of other clients' jobs", () => {
    const withApi = mountDetail(gpu());
    expect(withApi.get('[data-testid="visibility-note"]').text()).toBe(
      "This server has the jobs API: jobs of other clients are listed with their outcome.",
    );
    withApi.unmount();
    const without = mountDetail(gpu({ server: server({ version: "0.3.40", jobs_api: false, feature_flags: false }) }));
    expect(without.get('[data-testid="visibility-note"]').text()).toBe(
      "Other clients' jobs are seen through the queue and history only: position, elapsed time and outcome, no progress.",
    );
  });

  it("says when the server's companion follows every client's jobs live", () => {
    const w = mountDetail(gpu({ server: server({ companion: "0.1.0" }) }));
    const note = w.get('[data-testid="companion-note"]');
    expect(note.attributes("data-companion")).toBe("present");
    expect(note.text()).toBe("The comfy-monitor companion 0.1.0 is installed: every client's jobs are followed live.");
    expect(w.find('[data-testid="companion-install"]').exists()).toBe(false);
    // No "no progress" next to it: the companion brings the progress.
    w.unmount();
    const old = mountDetail(gpu({ server: server({ jobs_api: false, companion: "0.1.0" }) }));
    expect(old.get('[data-testid="visibility-note"]').text()).not.toContain("no progress");
  });

  it("tells what the companion would add and how to install it, with a command to copy", async () => {
    const writeText = vi.fn(() => Promise.resolve());
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    try {
      const w = mountDetail(gpu());
      const note = w.get('[data-testid="companion-note"]');
      expect(note.attributes("data-companion")).toBe("absent");
      expect(note.text()).toContain("other clients' jobs (the browser tab, scripts) would be followed live, with progress, ETA and previews, not just their place in the queue");
      expect(note.text()).toContain("then restart ComfyUI");
      const command = "cp -r companion /path/to/ComfyUI/custom_nodes/comfy-monitor-companion";
      expect(w.get('[data-testid="companion-install"]').text()).toBe(command);
      await w.get('[data-testid="copy-companion-install"]').trigger("click");
      await flushPromises();
      expect(writeText).toHaveBeenCalledWith(command);
      expect(note.text()).toContain("Copied");
    } finally {
      Reflect.deleteProperty(navigator, "clipboard");
    }
  });

  it("says the companion is turned off when the user turned it off", () => {
    const w = mountDetail(gpu({ use_companion: false }));
    const note = w.get('[data-testid="companion-note"]');
    expect(note.attributes("data-companion")).toBe("off");
    expect(note.text()).toContain("turned off for this instance");
    expect(w.find('[data-testid="companion-install"]').exists()).toBe(false);
  });

  it("says nothing about the companion while the server is not connected", () => {
    const w = mountDetail(gpu({ status: status({ state: "reconnecting", detail: "reset" }), server: null }));
    expect(w.find('[data-testid="companion-note"]').exists()).toBe(false);
  });

  it("reads the history and the event log when it opens", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    expect(calls).toContainEqual({ command: "get_history", args: { instance_id: 5, limit: 50, offset: 0 } });
    expect(calls).toContainEqual({ command: "get_event_log", args: { instance_id: 5, limit: 200 } });
    const rows = w.findAll('[data-testid="history-row"]');
    expect(rows.map((r) => [r.attributes("data-prompt-id"), r.attributes("data-state")])).toEqual([
      ["h-ok", "success"],
      ["h-lost", "lost"],
      ["h-other", "success"],
      ["h-int", "interrupted"],
      ["h-err", "error"],
    ]);
    expect(w.findAll('[data-testid="log-line"]').map((l) => l.attributes("data-kind"))).toEqual(["reconnecting", "connected"]);
  });

  it("says where an interrupted job stopped, as a note rather than an error", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    const interrupted = w.get('[data-testid="history-row"][data-prompt-id="h-int"]');
    expect(interrupted.get('[data-testid="interruption"]').text()).toBe("Stopped at node #1 KSampler.");
    expect(interrupted.find('[data-testid="toggle-error"]').exists()).toBe(false);
    expect(interrupted.find(".error-line").exists()).toBe(false);
    // A real failure keeps its error line and details.
    const failed = w.get('[data-testid="history-row"][data-prompt-id="h-err"]');
    expect(failed.find('[data-testid="interruption"]').exists()).toBe(false);
    expect(failed.get(".error-line").text()).toBe("OSError: no file");
    expect(failed.find('[data-testid="toggle-error"]').exists()).toBe(true);
  });

  it("offers Queue again only for this app's jobs it can resubmit", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    const buttons = w.findAll('[data-testid="resubmit-job"]');
    expect(buttons).toHaveLength(1);
    await buttons[0]?.trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "resubmit_job", args: { instance_id: 5, prompt_id: "h-lost", new_seed: false, count: 1 } });
    expect(w.get('[data-testid="history-row"][data-prompt-id="h-lost"]').text()).toContain("Queued again as again-02");
  });

  it("opens the instance's ComfyUI page in the browser", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    await w.get('[data-testid="open-in-comfyui"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "open_in_comfyui", args: { instance_id: 5 } });
  });

  it("shows what one of this app's jobs was, from its kept workflow", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    const row = w.get('[data-testid="history-row"][data-prompt-id="h-lost"]');
    await row.get('[data-testid="toggle-summary"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "get_job_summary", args: { instance_id: 5, prompt_id: "h-lost" } });
    const summary = row.get('[data-testid="job-summary"]');
    expect(summary.get('[data-fact="Model"]').text()).toBe("sd_xl_base_1.0.safetensors");
    expect(summary.get('[data-fact="LoRA"]').text()).toBe("detail.safetensors (0.8)");
    expect(summary.get('[data-fact="Sampler"]').text()).toBe("euler / normal");
    expect(summary.get('[data-fact="Seed"]').text()).toBe("42");
    expect(summary.get('[data-fact="Size"]').text()).toBe("1024×768 × 2");
    expect(summary.find('[data-fact="Denoise"]').exists()).toBe(false);
    expect(summary.get('[data-testid="summary-positive"]').text()).toContain("a lighthouse at dusk");
    expect(summary.get('[data-testid="summary-negative"]').text()).toContain("blurry");
    await summary.get('[data-testid="summary-nodes-toggle"]').trigger("click");
    expect(summary.get('[data-testid="summary-nodes"]').text()).toContain("CLIPTextEncode · Positive");
    // Closed and opened again: asked once.
    await row.get('[data-testid="toggle-summary"]').trigger("click");
    await row.get('[data-testid="toggle-summary"]').trigger("click");
    await flushPromises();
    expect(calls.filter((c) => c.command === "get_job_summary")).toHaveLength(1);
  });

  it("asks the server what another client's job was, and says when it no longer knows", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    const other = w.get('[data-testid="history-row"][data-prompt-id="h-other"]');
    expect(other.find('[data-testid="resubmit-job"]').exists()).toBe(false);
    await other.get('[data-testid="toggle-summary"]').trigger("click");
    await flushPromises();
    expect(other.get('[data-testid="job-summary"]').text()).toContain("a lighthouse at dusk");
    const gone = w.get('[data-testid="history-row"][data-prompt-id="h-int"]');
    await gone.get('[data-testid="toggle-summary"]').trigger("click");
    await flushPromises();
    expect(gone.find('[data-testid="job-summary"]').exists()).toBe(false);
    expect(gone.text()).toContain("no longer has this job's graph");
  });

  it("queues a job again with new seeds and several copies", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    const row = w.get('[data-testid="history-row"][data-prompt-id="h-lost"]');
    await row.get('[data-testid="resubmit-options"]').trigger("click");
    const panel = row.get('[data-testid="resubmit-panel"]');
    expect(panel.get<HTMLInputElement>('[data-testid="resubmit-new-seed"]').element.checked).toBe(true);
    await panel.get('[data-testid="resubmit-count"]').setValue("4");
    await panel.get('[data-testid="resubmit-confirm"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "resubmit_job", args: { instance_id: 5, prompt_id: "h-lost", new_seed: true, count: 4 } });
    expect(row.text()).toContain("Queued again with new seeds as again-02, again-12, again-22, again-32");
    expect(row.find('[data-testid="resubmit-panel"]').exists()).toBe(false);
  });

  it("opens an output large, saves it and opens its folder", async () => {
    const w = mountDetail(gpu());
    await flushPromises();
    const thumb = w.get('[data-testid="output-thumb"]');
    expect(thumb.get("img").attributes("src")).toBe(
      "media://localhost/output/5?filename=ComfyUI_0001_.png&subfolder=&type=output&thumb=1",
    );
    await thumb.trigger("click");
    expect(w.get('[data-testid="output-full"]').attributes("src")).toBe(
      "media://localhost/output/5?filename=ComfyUI_0001_.png&subfolder=&type=output",
    );
    await w.get('[data-testid="save-output"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "save_output", args: { instance_id: 5, output: OUTPUT, prompt_id: "h-ok" } });
    expect(w.get('[data-testid="saved-path"]').text()).toContain("/home/u/Downloads/comfy-monitor/gpu/ComfyUI_0001_.png");
    await w.get('[data-testid="open-folder"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "open_folder", args: { folder: "/home/u/Downloads/comfy-monitor/gpu" } });
  });

  it("streams the running job's node text", () => {
    const w = mountDetail(gpu());
    expect(w.get('[data-testid="node-text"]').text()).toBe("once upon a time");
  });

  it("bounds the node text to its tail", () => {
    const long = `${"x".repeat(30_000)}THE END`;
    const w = mountDetail(gpu({ jobs: [liveJob("run", { node_text: [{ node: "7", text: long }] })] }));
    const shown = w.get('[data-testid="node-text"]').text();
    expect(shown.length).toBeLessThan(21_000);
    expect(shown.endsWith("THE END")).toBe(true);
  });

  it("goes back to the overview", async () => {
    const view = useViewStore();
    view.showDetail(5);
    const w = mountDetail(gpu());
    await w.get('[data-testid="close-detail"]').trigger("click");
    expect(view.screen).toEqual({ kind: "overview" });
  });
});

describe("ErrorDetails", () => {
  afterEach(() => {
    Object.defineProperty(navigator, "clipboard", { value: undefined, configurable: true });
  });

  const error = { node_id: "4", node_type: "Loader", exception_type: "OSError", message: "no file", traceback: ["Traceback\n", "  boom\n"] };

  it("copies the whole error with its traceback", async () => {
    let copied = "";
    Object.defineProperty(navigator, "clipboard", { value: { writeText: async (t: string) => void (copied = t) }, configurable: true });
    const w = mount(ErrorDetails, { props: { error }, attachTo: document.body });
    await w.get('[data-testid="copy-traceback"]').trigger("click");
    await flushPromises();
    expect(copied).toBe("OSError: no file\nin node #4 (Loader)\nTraceback\n  boom\n");
    expect(w.text()).toContain("Copied");
  });

  it("selects the traceback for Ctrl+C when the clipboard is refused", async () => {
    Object.defineProperty(navigator, "clipboard", {
      value: { writeText: () => Promise.reject(new Error("denied")) },
      configurable: true,
    });
    const w = mount(ErrorDetails, { props: { error }, attachTo: document.body });
    await w.get('[data-testid="copy-traceback"]').trigger("click");
    await flushPromises();
    expect(window.getSelection()?.toString()).toContain("boom");
  });
});
