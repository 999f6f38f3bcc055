import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import InstanceCard from "./InstanceCard.vue";
import type { InstanceView } from "../bindings/InstanceView";
import { IMAGE_LOADER } from "../composables/usePreloadedImage";
import { mockShell, resetShell } from "../ipc/testing";
import { useShellRequestsStore } from "../stores/shellRequestsStore";
import { useViewStore } from "../stores/viewStore";
import { estimate, instance, job, liveJob, stats, status } from "../test/fixtures";

enableAutoUnmount(afterEach);

describe("InstanceCard", () => {
  let calls: Array<{ command: string; args: unknown }>;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    mockShell((command, args) => {
      calls.push({ command, args });
      if (command === "cancel_job") return "interrupted";
      return null;
    });
  });

  afterEach(() => {
    resetShell();
    vi.useRealTimers();
  });

  function mountCard(view: InstanceView, loader: (url: string) => Promise<void> = () => Promise.resolve()) {
    return mount(InstanceCard, {
      props: { instance: view },
      global: { provide: { [IMAGE_LOADER as symbol]: loader } },
    });
  }

  it("shows another client's job relayed by the companion like its own, labelled as another client's", () => {
    const w = mountCard(
      instance("gpu", {
        queue: { running: 1, pending: 0 },
        jobs: [
          job("r", {
            origin: "other",
            fidelity: "relayed",
            percent: 42,
            node: "3",
            node_type: "KSampler",
            node_title: "Base sampler",
            node_value: 12,
            node_max: 20,
            eta_ms: 14_000,
          }),
        ],
      }),
    );
    const section = w.get('[data-testid="job"]');
    expect(section.classes()).toContain("live");
    expect(section.attributes("data-origin")).toBe("other");
    expect(section.text()).toContain("Base sampler");
    expect(section.text()).toContain("42");
    expect(section.text()).toContain("other client");
    expect(section.text()).not.toContain("queue position, elapsed time and outcome only");
  });

  it("shows a connected server with its version, memory, counts and the live job's progress", () => {
    const w = mountCard(
      instance("gpu", {
        queue: { running: 1, pending: 0 },
        stats: stats(),
        jobs: [
          liveJob("a", {
            percent: 42,
            node: "3",
            node_type: "KSampler",
            node_title: "Base sampler",
            node_value: 12,
            node_max: 20,
            steps_per_s: 3.456,
            eta_ms: 14_000,
          }),
        ],
      }),
    );
    expect(w.attributes("data-instance")).toBe("gpu");
    expect(w.get('[data-testid="connection-state"]').text()).toBe("connected");
    expect(w.find('[data-testid="connection-detail"]').exists()).toBe(false);
    expect(w.get('[data-testid="server-version"]').text()).toBe("ComfyUI 0.3.60");
    expect(w.get('[data-testid="count-running"]').text()).toBe("1");
    expect(w.get('[data-testid="mem-ram"]').text()).toContain("8.0 / 32.0 GiB");
    expect(w.get('[data-testid="mem-vram"]').text()).toContain("18.0 / 24.0 GiB");

    const block = w.get('[data-testid="job"]');
    expect(block.attributes("data-prompt-id")).toBe("a");
    expect(block.attributes("data-state")).toBe("running");
    expect(block.get('[data-testid="job-percent"]').text()).toBe("42%");
    expect(block.text()).toContain("Base sampler");
    expect(block.text()).not.toContain("KSampler");
    expect(block.text()).toContain("step 12/20");
    expect(block.text()).toContain("3.46 it/s");
    expect(block.text()).toContain("ETA 14 s");
    expect(block.find('[data-testid="cancel-job"]').exists()).toBe(true);
  });

  it("names the node by its class type when the workflow gave it no title", () => {
    const w = mountCard(instance("gpu", { jobs: [liveJob("a", { node: "3", node_type: "KSampler" })] }));
    expect(w.get('[data-testid="job"]').text()).toContain("KSampler");
  });

  it("shows the live preview of the latest frame from the media scheme, by instance id", async () => {
    const w = mountCard(instance("gpu box", { id: 12, jobs: [liveJob("a", { preview: { seq: 7, width: 512, height: 512 } })] }));
    await flushPromises();
    expect(w.get('[data-testid="preview"]').attributes("src")).toBe("media://localhost/preview/12?seq=7");
  });

  it("labels another client's job honestly: no progress, no preview, only what the server tells", () => {
    vi.useFakeTimers();
    vi.setSystemTime(100_000);
    const w = mountCard(
      instance("gpu", { jobs: [job("x", { origin: "other", fidelity: "observed", started_at_ms: 58_000 })], queue: { running: 1, pending: 0 } }),
    );
    const block = w.get('[data-testid="job"]');
    expect(block.attributes("data-origin")).toBe("other");
    expect(block.text()).toContain("other client — queue position, elapsed time and outcome only");
    expect(block.text()).toContain("0:42");
    expect(block.find('[data-testid="job-percent"]').exists()).toBe(false);
    expect(block.find('[data-testid="preview"]').exists()).toBe(false);
    expect(block.find('[role="progressbar"]').exists()).toBe(false);
  });

  describe("estimates", () => {
    // Local time, so the clock times read the same in every time zone.
    const NOW = new Date(2026, 10, 4, 14, 20, 0).getTime();

    it("shows another client's job with an estimate as a hatched bar with ≈ figures and their basis", () => {
      vi.useFakeTimers();
      vi.setSystemTime(NOW);
      const w = mountCard(
        instance("gpu", {
          queue: { running: 1, pending: 0 },
          jobs: [job("x", { fidelity: "observed", started_at_ms: NOW - 42_000, estimate: estimate({ samples: 3, percent: 41.6, eta_ms: 80_000 }) })],
        }),
      );
      const block = w.get('[data-testid="job"]');
      const bar = block.get('[role="progressbar"]');
      expect(bar.classes()).toEqual(expect.arrayContaining(["bar", "estimated"]));
      expect(bar.attributes("aria-label")).toBe("Estimated progress");
      expect(bar.attributes("aria-valuenow")).toBe("42");
      expect(bar.get(".fill").attributes("style")).toContain("width: 41.6%");
      const percent = block.get('[data-testid="job-estimate-percent"]');
      expect(percent.text()).toBe("≈ 42%");
      expect(percent.attributes("title")).toBe("Estimated from 3 earlier runs of this workflow on this server");
      const left = block.get('[data-testid="job-estimate"]');
      expect(left.text()).toBe("≈ 1 min 20 s left");
      expect(left.attributes("title")).toBe("Estimated from 3 earlier runs of this workflow on this server");
      // Nothing measured is claimed, and the note says where the figures come from.
      expect(block.find('[data-testid="job-percent"]').exists()).toBe(false);
      expect(block.text()).toContain("0:42");
      expect(block.text()).toContain("≈ figures estimated from its past runs");
      expect(block.text()).not.toContain("Starting…");
    });

    it("counts the time left down from when the estimate came, on the card's own clock", async () => {
      vi.useFakeTimers();
      vi.setSystemTime(NOW);
      const w = mountCard(instance("gpu", { jobs: [job("x", { estimate: estimate({ percent: 40, eta_ms: 80_000 }) })] }));
      await vi.advanceTimersByTimeAsync(30_000);
      expect(w.get('[data-testid="job-estimate"]').text()).toBe("≈ 50 s left");
    });

    it("says longer than usual instead of sitting at 99%, with the usual run time in the title", () => {
      const w = mountCard(
        instance("gpu", { jobs: [job("x", { estimate: estimate({ basis: "nodes", samples: 1, typical_ms: 130_000, longer_than_usual: true }) })] }),
      );
      const block = w.get('[data-testid="job"]');
      expect(block.find('[data-testid="job-estimate-percent"]').exists()).toBe(false);
      expect(block.get('[role="progressbar"]').classes()).toContain("over");
      const left = block.get('[data-testid="job-estimate"]');
      expect(left.text()).toBe("longer than usual");
      expect(left.attributes("title")).toBe(
        "Usually runs ≈ 2 min 10 s\nEstimated from this server's speed per node (a workflow not run here before; fewest samples 1)",
      );
    });

    it("keeps a followed job's measured bar and prefers the estimated time left, marked ≈", () => {
      const w = mountCard(
        instance("gpu", { jobs: [liveJob("a", { percent: 42, steps_per_s: 3.456, eta_ms: 14_000, estimate: estimate({ percent: 50, eta_ms: 80_000 }) })] }),
      );
      const block = w.get('[data-testid="job"]');
      expect(block.get('[data-testid="job-percent"]').text()).toBe("42%");
      expect(block.find('[data-testid="job-estimate-percent"]').exists()).toBe(false);
      expect(block.find(".bar.estimated").exists()).toBe(false);
      expect(block.text()).toContain("3.46 it/s");
      expect(block.text()).not.toContain("ETA 14 s");
      const left = block.get('[data-testid="job-estimate"]');
      expect(left.text()).toBe("≈ 1 min 20 s left");
      expect(left.attributes("title")).toContain("Measured ETA (this sampler only): 14 s");
    });

    it("keeps a followed job's measured ETA when there is no estimate", () => {
      const w = mountCard(instance("gpu", { jobs: [liveJob("a", { percent: 42, eta_ms: 14_000 })] }));
      expect(w.get('[data-testid="job"]').text()).toContain("ETA 14 s");
      expect(w.find('[data-testid="job-estimate"]').exists()).toBe(false);
    });

    it("says when the next pending job starts and ends, or how long it runs", () => {
      vi.useFakeTimers();
      vi.setSystemTime(NOW);
      const known = mountCard(
        instance("gpu", { jobs: [job("p", { state: "pending", estimate: estimate({ starts_in_ms: 90_000, eta_ms: 220_000 }) })] }),
      );
      const line = known.get('[data-testid="job"] [data-testid="job-estimate"]');
      expect(line.text()).toBe("starts in ≈ 1 min 30 s · done ≈ 14:23");
      expect(line.attributes("title")).toBe("Runs ≈ 2 min 10 s\nEstimated from 3 earlier runs of this workflow on this server");
      const alone = mountCard(instance("gpu", { jobs: [job("p", { state: "pending", estimate: estimate() })] }));
      expect(alone.get('[data-testid="job"] [data-testid="job-estimate"]').text()).toBe("≈ 2 min 10 s run");
    });

    it("shows when the queue drains: the last pending job's end", () => {
      vi.useFakeTimers();
      vi.setSystemTime(NOW);
      const w = mountCard(
        instance("gpu", {
          queue: { running: 1, pending: 2 },
          jobs: [
            liveJob("r", { percent: 10, estimate: estimate({ eta_ms: 60_000 }) }),
            job("p1", { state: "pending", estimate: estimate({ starts_in_ms: 60_000, eta_ms: 190_000 }) }),
            job("p2", { state: "pending", estimate: estimate({ starts_in_ms: 190_000, eta_ms: 12 * 60_000 }) }),
          ],
        }),
      );
      const drain = w.get('[data-testid="queue-drain"]');
      expect(drain.text()).toBe("queue done ≈ 14:32");
      expect(drain.attributes("title")).toContain("in ≈ 12 min");
    });

    it("says nothing of the queue's end when the last pending job has no estimate, or the server is away", () => {
      const unknown = mountCard(
        instance("gpu", {
          jobs: [liveJob("r", { estimate: estimate({ eta_ms: 60_000 }) }), job("p1", { state: "pending", estimate: estimate({ eta_ms: 190_000 }) }), job("p2", { state: "pending" })],
        }),
      );
      expect(unknown.find('[data-testid="queue-drain"]').exists()).toBe(false);
      const away = mountCard(
        instance("gpu", { status: status({ state: "reconnecting" }), jobs: [liveJob("r", { estimate: estimate({ eta_ms: 60_000 }) })] }),
      );
      expect(away.find('[data-testid="queue-drain"]').exists()).toBe(false);
    });

    it("shows no estimate while the server is down, and shows it again once it is up", async () => {
      vi.useFakeTimers();
      vi.setSystemTime(NOW);
      const jobs = (): InstanceView["jobs"] => [
        liveJob("r", { percent: 10, eta_ms: 14_000, estimate: estimate({ percent: 12, eta_ms: 60_000 }) }),
        job("p", { state: "pending", estimate: estimate({ starts_in_ms: 60_000, eta_ms: 190_000 }) }),
      ];
      const observed = (): InstanceView["jobs"] => [job("x", { started_at_ms: NOW - 42_000, estimate: estimate({ percent: 40, eta_ms: 80_000 }) })];
      const pending = (): InstanceView["jobs"] => [job("p", { state: "pending", estimate: estimate({ starts_in_ms: 60_000, eta_ms: 190_000 }) })];
      for (const state of ["reconnecting", "unreachable", "auth_failed", "connecting", "disabled"] as const) {
        for (const list of [jobs(), observed(), pending()]) {
          const w = mountCard(instance("gpu", { status: status({ state }), jobs: list }));
          expect(w.find('[data-testid="job-estimate"]').exists(), `${state}: ${w.text()}`).toBe(false);
          expect(w.find('[data-testid="job-estimate-percent"]').exists(), state).toBe(false);
          expect(w.find(".bar.estimated").exists(), state).toBe(false);
          expect(w.text(), state).not.toContain("≈");
        }
      }
      // The followed job keeps its measured figures.
      const away = mountCard(instance("gpu", { status: status({ state: "reconnecting" }), jobs: jobs() }));
      expect(away.get('[data-testid="job-percent"]').text()).toBe("10%");
      expect(away.text()).toContain("ETA 14 s");
      await away.setProps({ instance: instance("gpu", { status: status({ state: "http_only" }), jobs: jobs() }) });
      expect(away.get('[data-testid="job-estimate"]').text()).toBe("≈ 1 min left");
    });
  });

  it("counts down to the next reconnection attempt", async () => {
    vi.useFakeTimers();
    vi.setSystemTime(100_000);
    const w = mountCard(
      instance("gpu", {
        server: null,
        status: status({ state: "reconnecting", detail: "connection reset", retry_in_ms: 4000, changed_at_ms: 100_000 }),
      }),
    );
    expect(w.get('[data-testid="connection-state"]').text()).toBe("reconnecting");
    expect(w.get('[data-testid="connection-detail"]').text()).toBe("connection reset · reconnecting in 4 s");
    await vi.advanceTimersByTimeAsync(2000);
    expect(w.get('[data-testid="connection-detail"]').text()).toBe("connection reset · reconnecting in 2 s");
  });

  it("on HTTP only says there is no live progress or preview and why, and keeps the queue current", () => {
    const w = mountCard(
      instance("behind proxy", {
        status: status({
          state: "http_only",
          detail: "HTTP only: no live progress or previews (socket: HTTP 404 from /ws)",
          retry_in_ms: 4000,
          changed_at_ms: Date.now(),
        }),
        jobs: [job("x", { origin: "self", fidelity: "observed", state: "running" })],
      }),
    );
    expect(w.get('[data-testid="connection-state"]').text()).toBe("HTTP only");
    expect(w.get('[data-testid="connection-detail"]').text()).toBe(
      "HTTP only: no live progress or previews (socket: HTTP 404 from /ws) · trying the socket again in 4 s",
    );
    expect(w.find(".counts.stale").exists()).toBe(false);
    expect(w.get('[data-testid="job"]').attributes("data-state")).toBe("running");
    expect(w.find('[data-testid="cancel-job"]').exists()).toBe(true);
  });

  it("says why the credentials failed", () => {
    const w = mountCard(instance("gpu", { status: status({ state: "auth_failed", detail: "auth failed: 401" }) }));
    expect(w.get('[data-testid="connection-state"]').text()).toBe("auth failed");
    expect(w.get('[data-testid="connection-detail"]').text()).toBe("auth failed: 401");
  });

  it("cancels the running job through the store", async () => {
    const w = mountCard(instance("gpu", { id: 3, jobs: [liveJob("a")] }));
    await w.get('[data-testid="cancel-job"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "cancel_job", args: { instance_id: 3, prompt_id: "a" } });
  });

  it("says Cancelling… and refuses a second click until the server has answered", async () => {
    let answer: (outcome: string) => void = () => {};
    mockShell((command, args) => {
      calls.push({ command, args });
      return command === "cancel_job" ? new Promise<string>((resolve) => (answer = resolve)) : null;
    });
    const w = mountCard(instance("gpu", { jobs: [liveJob("a")] }));
    const button = () => w.get('[data-testid="cancel-job"]');
    expect(button().text()).toBe("Cancel");
    await button().trigger("click");
    expect(button().text()).toBe("Cancelling…");
    expect(button().attributes("data-cancelling")).toBe("true");
    expect(button().attributes("disabled")).toBeDefined();
    await button().trigger("click");
    answer("interrupted");
    await flushPromises();
    expect(calls.filter((c) => c.command === "cancel_job")).toHaveLength(1);
    expect(button().text()).toBe("Cancel");
    expect(button().attributes("data-cancelling")).toBeUndefined();
  });

  it("shows the next pending job with its queue position when nothing runs, and removes it on request", async () => {
    const w = mountCard(instance("gpu", { id: 3, jobs: [job("p1", { state: "pending", origin: "self" }), job("p2", { state: "pending" })] }));
    const block = w.get('[data-testid="job"]');
    expect(block.attributes("data-state")).toBe("pending");
    expect(block.text()).toContain("#1 in queue");
    expect(block.text()).toContain("this app");
    expect(block.get('[data-testid="cancel-job"]').text()).toBe("Remove");
    const next = w.findAll('[data-testid="next-job"]');
    expect(next.map((n) => n.attributes("data-prompt-id"))).toEqual(["p2"]);
    expect(next[0]?.attributes("data-origin")).toBe("other");
    await block.get('[data-testid="cancel-job"]').trigger("click");
    await flushPromises();
    expect(calls).toContainEqual({ command: "cancel_job", args: { instance_id: 3, prompt_id: "p1" } });
  });

  it("asks before cancelling another client's running job", async () => {
    const w = mountCard(instance("gpu", { id: 3, jobs: [job("theirs", { state: "running", origin: "other" })] }));
    await w.get('[data-testid="cancel-job"]').trigger("click");
    await flushPromises();
    expect(calls.some((c) => c.command === "cancel_job")).toBe(false);
    const requests = useShellRequestsStore();
    expect(requests.pendingCancel).toEqual({ instance_id: 3, prompt_id: "theirs" });
    requests.keepJob();
    await flushPromises();
    expect(calls.some((c) => c.command === "cancel_job")).toBe(false);
  });

  it("shows how the last job ended", () => {
    const w = mountCard(
      instance("gpu", { last_job: job("old", { state: "interrupted", origin: "self", percent: 37, elapsed_ms: 9000, ended_at_ms: 1 }) }),
    );
    const last = w.get('[data-testid="last-job"]');
    expect(last.attributes("data-state")).toBe("interrupted");
    expect(last.attributes("data-prompt-id")).toBe("old");
    expect(last.get('[data-testid="job-percent"]').text()).toBe("37%");
    expect(last.text()).toContain("9 s");
  });

  it("leaves out the figures the shell does not know (absent, not null)", () => {
    const w = mountCard(instance("gpu", { last_job: job("old", { state: "lost", origin: "self", detail: "the server restarted" }) }));
    const last = w.get('[data-testid="last-job"]');
    expect(last.find('[data-testid="job-percent"]').exists()).toBe(false);
    expect(last.text()).toContain("the server restarted");
    expect(last.find("img").exists()).toBe(false);
  });

  it("opens the instance's detail", async () => {
    const w = mountCard(instance("gpu", { id: 42 }));
    await w.get('[data-testid="open-detail"]').trigger("click");
    expect(useViewStore().screen).toEqual({ kind: "detail", instanceId: 42 });
  });

  it("shows a failed action's code-chosen headline", async () => {
    mockShell(() => {
      throw { code: "not_connected", message: "gpu is reconnecting", node_errors: [] };
    });
    const w = mountCard(instance("gpu", { jobs: [liveJob("a")] }));
    await w.get('[data-testid="cancel-job"]').trigger("click");
    await flushPromises();
    expect(w.get('[role="status"]').text()).toContain("Not connected: gpu is reconnecting");
  });

  it("takes a focus request once, so showing the overview again does not repeat it", async () => {
    const view = useViewStore();
    view.focusInstance(4);
    const first = mountCard(instance("gpu", { id: 4 }));
    await flushPromises();
    expect(first.classes()).toContain("focused");
    expect(view.focusRequest).toBeNull();
    first.unmount();
    const again = mountCard(instance("gpu", { id: 4 }));
    await flushPromises();
    expect(again.classes()).not.toContain("focused");
  });
});
