import { describe, expect, it } from "vitest";
import { displayUrl, formatDuration, formatPercent, jobCounters, nodeLabel, statusDetail } from "./format";
import { job, status } from "./test/fixtures";

describe("statusDetail", () => {
  it("counts down to the next attempt", () => {
    const s = status({ state: "unreachable", detail: "connection refused", retryInMs: 4000, changedAtMs: 10_000 });
    expect(statusDetail(s, 10_000)).toBe("connection refused · retrying in 4 s");
    expect(statusDetail(s, 12_500)).toBe("connection refused · retrying in 2 s");
    expect(statusDetail(s, 20_000)).toBe("connection refused · retrying now");
  });

  it("shows the bare detail when no retry is scheduled", () => {
    expect(statusDetail(status({ state: "auth_failed", detail: "auth failed: 401" }), 0)).toBe("auth failed: 401");
  });
});

describe("job text", () => {
  it("names the node by title, then type, then id", () => {
    expect(nodeLabel(job("p", { node: "3", nodeType: "KSampler", nodeTitle: "Sampler" }))).toBe("Sampler #3");
    expect(nodeLabel(job("p", { node: "3", nodeType: "KSampler" }))).toBe("KSampler #3");
    expect(nodeLabel(job("p", { node: "3" }))).toBe("Node #3");
    expect(nodeLabel(job("p"))).toBeNull();
  });

  it("shows steps and nodes when known", () => {
    expect(jobCounters(job("p", { nodeValue: 12, nodeMax: 20, nodesDone: 5, nodesTotal: 12 }))).toBe(
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
