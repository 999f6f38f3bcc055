import { describe, expect, it } from "vitest";
import {
  displayUrl,
  formatAgo,
  formatClock,
  formatDuration,
  formatPercent,
  formatRate,
  isTerminal,
  jobCounters,
  memoryUse,
  nodeLabel,
  nodeName,
  originLabel,
  stateWord,
  statusDetail,
} from "./format";
import { job, status } from "./test/fixtures";

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
