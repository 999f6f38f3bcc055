// Builders for the shell's payloads, with sensible defaults and per-test overrides.
import type { HistoryEntry } from "../bindings/HistoryEntry";
import type { InstanceSettings } from "../bindings/InstanceSettings";
import type { InstanceStatus } from "../bindings/InstanceStatus";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import type { LogEntry } from "../bindings/LogEntry";
import type { NotificationSettings } from "../bindings/NotificationSettings";
import type { Snapshot } from "../bindings/Snapshot";
import type { StatsView } from "../bindings/StatsView";

export function status(overrides: Partial<InstanceStatus> = {}): InstanceStatus {
  return { state: "connected", detail: "", retryInMs: null, changedAtMs: 0, ...overrides };
}

let nextId = 1;

export function instance(name: string, overrides: Partial<InstanceView> = {}): InstanceView {
  return {
    id: nextId++,
    name,
    url: `http://${name}:8188/`,
    enabled: true,
    status: status(),
    stats: null,
    server: { version: "0.3.60", jobsApi: true, featureFlags: true },
    queue: { running: 0, pending: 0 },
    jobs: [],
    lastJob: null,
    ...overrides,
  };
}

export function stats(overrides: Partial<StatsView> = {}): StatsView {
  const gib = 1024 ** 3;
  return {
    ramTotal: 32 * gib,
    ramFree: 24 * gib,
    device: "cuda:0 NVIDIA GeForce RTX 4090",
    vramTotal: 24 * gib,
    vramFree: 6 * gib,
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
    warnings: [],
    outputs: [],
    preview: null,
    nodeText: [],
    ...overrides,
  };
}

/** A job this app queued and follows live. */
export function liveJob(promptId: string, overrides: Partial<JobSummary> = {}): JobSummary {
  return job(promptId, { origin: "self", fidelity: "live", ...overrides });
}

export function snapshot(revision: number, instances: InstanceView[], notices: string[] = []): Snapshot {
  return { revision, instances, notices };
}

export function notifications(overrides: Partial<NotificationSettings> = {}): NotificationSettings {
  return {
    jobDone: true,
    jobFailed: true,
    jobInterruptedByOther: false,
    queueDrained: true,
    disconnected: true,
    authRejected: false,
    otherClientsJobs: false,
    ...overrides,
  };
}

export function settings(id: number, name: string, overrides: Partial<InstanceSettings> = {}): InstanceSettings {
  return {
    id,
    name,
    url: `http://${name}:8188/`,
    authKind: "none",
    user: null,
    headerNames: [],
    secretsSet: [],
    acceptInvalidCerts: false,
    enabled: true,
    previewFpsCap: 15,
    notifications: notifications(),
    ...overrides,
  };
}

export function historyEntry(promptId: string, overrides: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    promptId,
    state: "success",
    origin: "self",
    queuedAtMs: 1_700_000_000_000,
    startedAtMs: 1_700_000_001_000,
    finishedAtMs: 1_700_000_013_000,
    error: null,
    outputs: [],
    detail: null,
    canResubmit: false,
    ...overrides,
  };
}

export function logEntry(id: number, overrides: Partial<LogEntry> = {}): LogEntry {
  return { id, ts: 1_700_000_000_000 + id * 1000, kind: "connected", detail: "connected", data: null, ...overrides };
}
