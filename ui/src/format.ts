// Pure display helpers: what a status, a job or a duration reads like.
import type { ConnectionStateView } from "./bindings/ConnectionStateView";
import type { InstanceStatus } from "./bindings/InstanceStatus";
import type { JobSummary } from "./bindings/JobSummary";

const STATE_LABELS: Record<ConnectionStateView, string> = {
  connecting: "Connecting",
  connected: "Connected",
  reconnecting: "Reconnecting",
  unreachable: "Unreachable",
  auth_failed: "Auth failed",
  disabled: "Disabled",
};

export function stateLabel(state: ConnectionStateView): string {
  return STATE_LABELS[state];
}

/** Whole seconds until the next attempt, or null when none is scheduled. */
export function retryInSeconds(status: InstanceStatus, nowMs: number): number | null {
  if (status.retryInMs === null) return null;
  const left = status.changedAtMs + status.retryInMs - nowMs;
  return Math.max(0, Math.ceil(left / 1000));
}

/** The status detail with a live countdown: "connection refused · retrying in 4 s". */
export function statusDetail(status: InstanceStatus, nowMs: number): string {
  const parts: string[] = [];
  if (status.detail) parts.push(status.detail);
  const seconds = retryInSeconds(status, nowMs);
  if (seconds !== null && status.state !== "connected") {
    parts.push(seconds > 0 ? `retrying in ${seconds} s` : "retrying now");
  }
  return parts.join(" · ");
}

/** "http://127.0.0.1:8188/" → "127.0.0.1:8188"; keeps a path prefix behind a proxy. */
export function displayUrl(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/$/, "");
}

export function formatPercent(percent: number | null): string {
  if (percent === null) return "";
  return `${Math.round(Math.min(100, Math.max(0, percent)))}%`;
}

/** What the running job is doing, as specific as the server lets us see. */
export function nodeLabel(job: JobSummary): string | null {
  const name = job.nodeTitle ?? job.nodeType;
  if (name && job.node) return `${name} #${job.node}`;
  if (name) return name;
  if (job.node) return `Node #${job.node}`;
  return null;
}

/** "step 12/20", "node 5/12", joined. */
export function jobCounters(job: JobSummary): string {
  const parts: string[] = [];
  if (job.nodeValue !== null && job.nodeMax !== null && job.nodeMax > 0) {
    parts.push(`step ${Math.round(job.nodeValue)}/${Math.round(job.nodeMax)}`);
  }
  if (job.nodesDone !== null && job.nodesTotal !== null && job.nodesTotal > 0) {
    parts.push(`node ${job.nodesDone}/${job.nodesTotal}`);
  }
  return parts.join(" · ");
}

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}

const OUTCOME_LABELS: Record<JobSummary["state"], string> = {
  pending: "Pending",
  running: "Running",
  success: "Finished",
  error: "Failed",
  interrupted: "Interrupted",
  deleted: "Removed",
  lost: "Lost",
};

export function jobStateLabel(state: JobSummary["state"]): string {
  return OUTCOME_LABELS[state];
}
