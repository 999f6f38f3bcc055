import { describe, expect, it } from "vitest";
import {
  approxDuration,
  displayUrl,
  estimateLeft,
  estimateLine,
  estimateTooltip,
  formatAgo,
  formatClock,
  formatDuration,
  formatPercent,
  formatRate,
  formatTimeOfDay,
  isTerminal,
  isUp,
  jobCounters,
  memoryUse,
  nodeLabel,
  nodeName,
  longerThanUsualTooltip,
  originLabel,
  pendingEstimate,
  pendingTooltip,
  queueDrainLine,
  queueDrainsAt,
  runningEstimate,
  stateWord,
  statusDetail,
} from "./format";
import { estimate, job, status } from "./test/fixtures";

describe("connection text", () => {
  it("says the state in plain words", () => {
    expect(stateWord("auth_failed")).toBe("auth failed");
    expect(stateWord("reconnecting")).toBe("reconnecting");
  });

  it("counts down to the next attempt", () => {
    const s = status({ state: "unreachable", detail: "connection refused", retry_in_ms: 4000, changed_at_ms: 10_000 });
    expect(statusDetail(s, 10_000)).toBe("connection refused · retrying in 4 s");
    expect(statusDetail(s, 12_500)).toBe("connection refused · retrying in 2 s");
    expect(statusDetail(s, 20_000)).toBe("connection refused · retrying now");
  });

  it("says reconnecting while reconnecting", () => {
    const s = status({ state: "reconnecting", detail: "", retry_in_ms: 4000, changed_at_ms: 0 });
    expect(statusDetail(s, 0)).toBe("reconnecting in 4 s");
  });

  it("says what HTTP only lacks, why, and when the socket is tried again", () => {
    expect(stateWord("http_only")).toBe("HTTP only");
    const engine = "HTTP only: no live progress or previews (socket: upgrade refused: 403)";
    const s = status({ state: "http_only", detail: engine, retry_in_ms: 25_000, changed_at_ms: 0 });
    expect(statusDetail(s, 0)).toBe(`${engine} · trying the socket again in 25 s`);
    // A detail that is only the reason still gets the sentence first.
    const bare = status({ state: "http_only", detail: "HTTP 404 from /ws" });
    expect(statusDetail(bare, 0)).toBe("HTTP only: no live progress or previews (HTTP 404 from /ws)");
    expect(isUp("http_only") && isUp("connected") && !isUp("reconnecting")).toBe(true);
  });

  it("shows the bare detail when no retry is scheduled, and nothing while connected", () => {
    expect(statusDetail(status({ state: "auth_failed", detail: "auth failed: 401" }), 0)).toBe("auth failed: 401");
    expect(statusDetail(status({ state: "connected", detail: "connected" }), 0)).toBe("");
    expect(statusDetail(status({ state: "disabled", detail: "disabled" }), 0)).toBe("");
  });
});

describe("job text", () => {
  it("names the node by title, then type, then id", () => {
    expect(nodeLabel(job("p", { node: "3", node_type: "KSampler", node_title: "Sampler" }))).toBe("Sampler #3");
    expect(nodeLabel(job("p", { node: "3", node_type: "KSampler" }))).toBe("KSampler #3");
    expect(nodeLabel(job("p", { node: "3" }))).toBe("Node #3");
    expect(nodeLabel(job("p"))).toBeNull();
  });

  it("prefers the workflow's title to the class type", () => {
    expect(nodeName(job("p", { node: "3", node_type: "KSampler", node_title: "Hires" }))).toBe("Hires");
    expect(nodeName(job("p", { node: "3", node_type: "KSampler" }))).toBe("KSampler");
    expect(nodeName(job("p", { node: "3" }))).toBe("Node 3");
  });

  it("prints the rate as samplers do", () => {
    expect(formatRate(3.456)).toBe("3.46 it/s");
    expect(formatRate(0.25)).toBe("4.0 s/it");
    expect(formatRate(null)).toBe("");
  });

  it("says a job has ended once it left pending and running, whatever the outcome", () => {
    expect(isTerminal("pending")).toBe(false);
    expect(isTerminal("running")).toBe(false);
    for (const state of ["success", "error", "interrupted", "deleted", "lost"] as const) expect(isTerminal(state)).toBe(true);
  });

  it("labels who queued a job", () => {
    expect(originLabel("self")).toBe("this app");
    expect(originLabel("other")).toBe("other client");
    expect(originLabel("anonymous")).toBe("other client");
  });

  it("shows steps and nodes when known", () => {
    expect(jobCounters(job("p", { node_value: 12, node_max: 20, nodes_done: 5, nodes_total: 12 }))).toBe(
      "step 12/20 · node 5/12",
    );
    expect(jobCounters(job("p"))).toBe("");
  });

  it("rounds and clamps percentages", () => {
    expect(formatPercent(41.6)).toBe("42%");
    expect(formatPercent(130)).toBe("100%");
    expect(formatPercent(null)).toBe("");
  });
});

describe("clocks and memory", () => {
  it("runs a clock", () => {
    expect(formatClock(42_000)).toBe("0:42");
    expect(formatClock(3_723_000)).toBe("1:02:03");
  });

  it("says how long ago", () => {
    expect(formatAgo(0, 2_000)).toBe("just now");
    expect(formatAgo(0, 180_000)).toBe("3 min ago");
  });

  it("reads used memory from the free figure", () => {
    const gib = 1024 ** 3;
    expect(memoryUse(24 * gib, 6 * gib)).toEqual({ used: 18 * gib, total: 24 * gib, fraction: 0.75, text: "18.0 / 24.0 GiB" });
    expect(memoryUse(null, 1)).toBeNull();
  });
});

describe("formatDuration", () => {
  it("reads naturally at every scale", () => {
    expect(formatDuration(4_200)).toBe("4 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
    expect(formatDuration(3_720_000)).toBe("1 h 2 min");
  });
});

describe("displayUrl", () => {
  it("drops the scheme and the trailing slash but keeps a path prefix", () => {
    expect(displayUrl("http://127.0.0.1:8188/")).toBe("127.0.0.1:8188");
    expect(displayUrl("https://host/comfy/")).toBe("host/comfy");
  });
});

describe("estimates", () => {
  // Local time, so the expectations hold in every time zone.
  const NOW = new Date(2026, 10, 4, 14, 20, 0).getTime();

  it("says what an estimate stands on, in the singular for one run", () => {
    expect(estimateTooltip(estimate({ basis: "workflow", samples: 3 }))).toBe("Estimated from 3 earlier runs of this workflow on this server");
    expect(estimateTooltip(estimate({ basis: "workflow", samples: 1 }))).toBe("Estimated from 1 earlier run of this workflow on this server");
    expect(estimateTooltip(estimate({ basis: "nodes", samples: 2 }))).toBe(
      "Estimated from this server's speed per node (a workflow not run here before; fewest samples 2)",
    );
  });

  it("rounds estimated spans no finer than they deserve", () => {
    expect(approxDuration(42_400)).toBe("≈ 42 s");
    expect(approxDuration(207_000)).toBe("≈ 3 min 30 s");
    expect(approxDuration(178_000)).toBe("≈ 3 min");
    expect(approxDuration(598_000)).toBe("≈ 10 min");
    expect(approxDuration(14 * 60_000 + 29_000)).toBe("≈ 14 min");
    expect(approxDuration(3_575_000)).toBe("≈ 1 h");
    expect(approxDuration(3_900_000)).toBe("≈ 1 h 5 min");
    expect(approxDuration(-5_000)).toBe("≈ 0 s");
  });

  it("says a job due within the second is finishing, not 0 s away", () => {
    const e = { basis: "workflow", samples: 3, typical_ms: 6_000, percent: 90, eta_ms: 600 } as const;
    expect(estimateLeft(e, 1_000, 1_000)).toBe("finishing");
    expect(estimateLeft(e, 1_000, 5_000)).toBe("finishing");
    expect(estimateLeft({ ...e, eta_ms: 4_000 }, 1_000, 1_000)).toBe("≈ 4 s left");
  });

  it("reads the wall clock of a moment to come, with the day when it is not today", () => {
    expect(formatTimeOfDay(NOW + 12 * 60_000, NOW)).toBe("14:32");
    expect(formatTimeOfDay(NOW - 60_000, NOW)).toBe("14:20");
    expect(formatTimeOfDay(NOW + 11 * 3_600_000, NOW)).toBe("tomorrow 01:20");
    expect(formatTimeOfDay(NOW + 48 * 3_600_000, NOW)).toBe("2026-11-06 14:20");
  });

  it("says a running job's share and time left, or that it runs longer than usual", () => {
    expect(runningEstimate(estimate({ percent: 41.6, eta_ms: 80_000 }), NOW, NOW)).toBe("≈ 42% · ≈ 1 min 20 s left");
    expect(runningEstimate(estimate({ eta_ms: 80_000 }), NOW, NOW)).toBe("≈ 1 min 20 s left");
    expect(runningEstimate(estimate({ longer_than_usual: true, eta_ms: 0 }), NOW, NOW)).toBe("longer than usual");
    expect(estimateLeft(estimate({ longer_than_usual: true }), NOW, NOW)).toBe("longer than usual");
    expect(estimateLeft(estimate(), NOW, NOW)).toBe("");
    expect(longerThanUsualTooltip(estimate({ typical_ms: 130_000, samples: 1 }))).toBe(
      "Usually runs ≈ 2 min 10 s\nEstimated from 1 earlier run of this workflow on this server",
    );
  });

  it("counts the time left from when the estimate came, not from when it is shown", () => {
    const e = estimate({ percent: 40, eta_ms: 80_000 });
    expect(estimateLeft(e, NOW, NOW + 30_000)).toBe("≈ 50 s left");
    expect(estimateLeft(e, NOW, NOW + 90_000)).toBe("finishing");
  });

  it("says when a pending job starts and ends, else how long it runs", () => {
    const known = estimate({ starts_in_ms: 180_000, eta_ms: 12 * 60_000 });
    expect(pendingEstimate(known, NOW, NOW)).toBe("starts in ≈ 3 min · done ≈ 14:32");
    expect(pendingTooltip(known)).toBe("Runs ≈ 2 min 10 s\nEstimated from 3 earlier runs of this workflow on this server");
    const alone = estimate({ typical_ms: 130_000 });
    expect(pendingEstimate(alone, NOW, NOW)).toBe("≈ 2 min 10 s run");
    expect(pendingTooltip(alone)).toBe("Estimated from 3 earlier runs of this workflow on this server");
  });

  it("counts down to a pending job's start while its end stays put", () => {
    const known = estimate({ starts_in_ms: 180_000, eta_ms: 12 * 60_000 });
    expect(pendingEstimate(known, NOW, NOW + 60_000)).toBe("starts in ≈ 2 min · done ≈ 14:32");
    expect(pendingEstimate(known, NOW, NOW + 200_000)).toBe("starts ≈ now · done ≈ 14:32");
  });
});

describe("estimateLine", () => {
  const NOW = new Date(2026, 10, 4, 14, 20, 0).getTime();

  it("gives a followed job only its time left: its bar is measured", () => {
    const e = estimate({ percent: 40, eta_ms: 80_000 });
    expect(estimateLine(job("r", { fidelity: "live", percent: 38, estimate: e }), NOW, NOW)).toEqual({
      parts: ["≈ 1 min 20 s left"],
      text: "≈ 1 min 20 s left",
      title: "Estimated from 3 earlier runs of this workflow on this server",
    });
    expect(estimateLine(job("r", { fidelity: "observed", estimate: e }), NOW, NOW)?.text).toBe("≈ 40% · ≈ 1 min 20 s left");
  });

  it("says longer than usual with the usual run time in the title", () => {
    const line = estimateLine(job("r", { estimate: estimate({ longer_than_usual: true, typical_ms: 60_000 }) }), NOW, NOW);
    expect(line).toEqual({ parts: ["longer than usual"], text: "longer than usual", title: "Usually runs ≈ 1 min\nEstimated from 3 earlier runs of this workflow on this server" });
  });

  it("gives a pending job its start and end, and nothing to a job without an estimate", () => {
    const e = estimate({ basis: "nodes", samples: 1, starts_in_ms: 60_000, eta_ms: 190_000 });
    expect(estimateLine(job("p", { state: "pending", estimate: e }), NOW, NOW)).toEqual({
      parts: ["starts in ≈ 1 min", "done ≈ 14:23"],
      text: "starts in ≈ 1 min · done ≈ 14:23",
      title: "Runs ≈ 2 min 10 s\nEstimated from this server's speed per node (a workflow not run here before; fewest samples 1)",
    });
    expect(estimateLine(job("p", { state: "pending" }), NOW, NOW)).toBeNull();
    expect(estimateLine(job("r", { estimate: estimate() }), NOW, NOW)).toBeNull();
  });

  it("says when the queue is done, and in how long in the title", () => {
    expect(queueDrainLine(NOW + 12 * 60_000, NOW)).toEqual({
      text: "queue done ≈ 14:32",
      title: "When the last queued job is expected to end (in ≈ 12 min), estimated from this server's past runs",
    });
  });
});

describe("queueDrainsAt", () => {
  const NOW = 1_800_000_000_000;
  const at = () => NOW;
  const running = (eta_ms?: number, more = {}) => job("r", { state: "running", estimate: estimate({ eta_ms, ...more }) });
  const pending = (id: string, eta_ms?: number) => job(id, { state: "pending", estimate: estimate({ eta_ms }) });

  it("is the latest end among the pending jobs", () => {
    expect(queueDrainsAt([running(30_000), pending("a", 200_000), pending("b", 500_000)], at)).toBe(NOW + 500_000);
  });

  it("counts each end from when that job's estimate came", () => {
    const a = pending("a", 200_000);
    const b = pending("b", 500_000);
    const when = new Map([
      [a, NOW + 400_000],
      [b, NOW],
    ]);
    expect(queueDrainsAt([a, b], (j) => when.get(j) ?? 0)).toBe(NOW + 600_000);
  });

  it("is unknown when the last pending job has no end, whatever the others say", () => {
    expect(queueDrainsAt([running(30_000), pending("a", 200_000), pending("b")], at)).toBeNull();
    expect(queueDrainsAt([running(30_000), pending("a", 200_000), job("c", { state: "pending" })], at)).toBeNull();
  });

  it("is the running job's end when nothing waits", () => {
    expect(queueDrainsAt([running(30_000)], at)).toBe(NOW + 30_000);
    expect(queueDrainsAt([running()], at)).toBeNull();
    expect(queueDrainsAt([running(0, { longer_than_usual: true })], at)).toBeNull();
    expect(queueDrainsAt([job("r", { state: "running" })], at)).toBeNull();
  });

  it("is unknown for an empty queue", () => {
    expect(queueDrainsAt([], at)).toBeNull();
  });
});
