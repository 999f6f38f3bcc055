// Builders for the shell's payloads, with sensible defaults and per-test overrides. They build
// what the shell sends: `snake_case` fields, and a job's unknown figures left out, not null.
import { DEFAULT_NOTIFICATION_PREFS } from "../bindings/defaults";
import type { Estimate } from "../bindings/Estimate";
import type { HistoryEntry } from "../bindings/HistoryEntry";
import type { InstanceSettings } from "../bindings/InstanceSettings";
import type { InstanceStatus } from "../bindings/InstanceStatus";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import type { LogEntry } from "../bindings/LogEntry";
import type { NotificationPrefs } from "../bindings/NotificationPrefs";
import type { ServerInfo } from "../bindings/ServerInfo";
import type { Snapshot } from "../bindings/Snapshot";
import type { StatsView } from "../bindings/StatsView";

export function status(overrides: Partial<InstanceStatus> = {}): InstanceStatus {
  return { state: "connected", detail: "", changed_at_ms: 0, ...overrides };
}

export function server(overrides: Partial<ServerInfo> = {}): ServerInfo {
  return { version: "0.3.60", jobs_api: true, feature_flags: true, client_id: "test-client", companion: null, ...overrides };
}

let nextId = 1;

export function instance(name: string, overrides: Partial<InstanceView> = {}): InstanceView {
  return {
    id: nextId++,
    name,
    url: `http://${name}:8188/`,
    enabled: true,
    use_companion: true,
    status: status(),
    stats: null,
    server: server(),
    queue: { running: 0, pending: 0 },
    jobs: [],
    last_job: null,
    ...overrides,
  };
}

export function stats(overrides: Partial<StatsView> = {}): StatsView {
  const gib = 1024 ** 3;
  return {
    ram_total: 32 * gib,
    ram_free: 24 * gib,
    device: "cuda:0 NVIDIA GeForce RTX 4090",
    vram_total: 24 * gib,
    vram_free: 6 * gib,
    ...overrides,
  };
}

export function job(promptId: string, overrides: Partial<JobSummary> = {}): JobSummary {
  return {
    prompt_id: promptId,
    state: "running",
    origin: "other",
    fidelity: "observed",
    queued_at_ms: 0,
    preview: null,
    node_text: [],
    ...overrides,
  };
}

/** A job's estimate, learned from 3 earlier runs of its workflow unless told otherwise. */
export function estimate(overrides: Partial<Estimate> = {}): Estimate {
  return { basis: "workflow", samples: 3, typical_ms: 130_000, ...overrides };
}

/** A job this app queued and follows live. */
export function liveJob(promptId: string, overrides: Partial<JobSummary> = {}): JobSummary {
  return job(promptId, { origin: "self", fidelity: "live", ...overrides });
}

export function snapshot(revision: number, instances: InstanceView[], notices: string[] = []): Snapshot {
  return { revision, instances, notices };
}

/** The shell's default switches, with overrides. */
export function notifications(overrides: Partial<NotificationPrefs> = {}): NotificationPrefs {
  return { ...DEFAULT_NOTIFICATION_PREFS, ...overrides };
}

export function settings(id: number, name: string, overrides: Partial<InstanceSettings> = {}): InstanceSettings {
  return {
    id,
    name,
    url: `http://${name}:8188/`,
    auth_kind: "none",
    user: null,
    header_names: [],
    secrets_set: [],
    accept_invalid_certs: false,
    certificate_sha256: null,
    enabled: true,
    preview_fps_cap: 15,
    notifications: notifications(),
    use_companion: true,
    saving: { folder: null, others: false },
    ...overrides,
  };
}

export function historyEntry(promptId: string, overrides: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    prompt_id: promptId,
    state: "success",
    origin: "self",
    queued_at_ms: 1_700_000_000_000,
    started_at_ms: 1_700_000_001_000,
    finished_at_ms: 1_700_000_013_000,
    error: null,
    outputs: [],
    detail: null,
    can_resubmit: false,
    label: null,
    saved_folder: null,
    ...overrides,
  };
}

export function logEntry(id: number, overrides: Partial<LogEntry> = {}): LogEntry {
  return { id, ts: 1_700_000_000_000 + id * 1000, kind: "connected", detail: "connected", data: null, ...overrides };
}
