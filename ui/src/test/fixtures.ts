// Builders for the shell's payloads, with sensible defaults and per-test overrides.
import type { InstanceStatus } from "../bindings/InstanceStatus";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import type { Snapshot } from "../bindings/Snapshot";

export function status(overrides: Partial<InstanceStatus> = {}): InstanceStatus {
  return { state: "connected", detail: "", retryInMs: null, changedAtMs: 0, ...overrides };
}

export function instance(name: string, overrides: Partial<InstanceView> = {}): InstanceView {
  return {
    name,
    url: `http://${name}:8188/`,
    status: status(),
    server: { version: "0.3.60", jobsApi: true, featureFlags: true },
    queue: { running: 0, pending: 0 },
    jobs: [],
    lastJob: null,
    ...overrides,
  };
}

export function job(promptId: string, overrides: Partial<JobSummary> = {}): JobSummary {
  return {
    promptId,
    state: "running",
    origin: "other",
    fidelity: "observed",
    number: null,
    percent: null,
    node: null,
    nodeType: null,
    nodeTitle: null,
    nodeValue: null,
    nodeMax: null,
    nodesDone: null,
    nodesTotal: null,
    etaMs: null,
    stepsPerS: null,
    queuedAtMs: 0,
    startedAtMs: null,
    endedAtMs: null,
    elapsedMs: null,
    error: null,
    detail: null,
    ...overrides,
  };
}

export function snapshot(revision: number, instances: InstanceView[]): Snapshot {
  return { revision, instances };
}
