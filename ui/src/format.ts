// Pure display helpers: what a status, a job or a duration reads like.
import type { ConnectionState } from "./bindings/ConnectionState";
import type { Estimate } from "./bindings/Estimate";
import type { Fidelity } from "./bindings/Fidelity";
import type { InstanceStatus } from "./bindings/InstanceStatus";
import type { JobOrigin } from "./bindings/JobOrigin";
import type { JobState } from "./bindings/JobState";
import type { JobSummary } from "./bindings/JobSummary";

const STATE_WORDS: Record<ConnectionState, string> = {
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  unreachable: "unreachable",
  auth_failed: "auth failed",
  disabled: "disabled",
  http_only: "HTTP only",
};

/** What an instance on HTTP alone cannot show, said before why (the engine says it too). */
export const HTTP_ONLY_TEXT = "HTTP only: no live progress or previews";

/** The server answers, live or by polling alone: its queue, jobs and stats are current and
 * actions work. As the shell's `ConnectionState::is_up`. */
export function isUp(state: ConnectionState): boolean {
  return state === "connected" || state === "http_only";
}

/** The connection state as one or two plain words: "connected", "auth failed". */
export function stateWord(state: ConnectionState): string {
  return STATE_WORDS[state];
}

/** Whole seconds until the next attempt, or null when none is scheduled. */
export function retryInSeconds(status: InstanceStatus, nowMs: number): number | null {
  if (status.retry_in_ms == null) return null;
  const left = status.changed_at_ms + status.retry_in_ms - nowMs;
  return Math.max(0, Math.ceil(left / 1000));
}

/** Why an instance is not connected, with a live countdown: "connection refused · reconnecting
 * in 4 s". Empty while connected: there is nothing to explain. On HTTP alone, what is missing
 * and why: "HTTP only: no live progress or previews (socket: upgrade refused: 403) · trying the
 * socket again in 25 s". */
export function statusDetail(status: InstanceStatus, nowMs: number): string {
  if (status.state === "connected") return "";
  const parts: string[] = [];
  if (status.state === "http_only" && !status.detail.startsWith(HTTP_ONLY_TEXT)) {
    parts.push(status.detail ? `${HTTP_ONLY_TEXT} (${status.detail})` : HTTP_ONLY_TEXT);
  } else if (status.detail && status.detail !== stateWord(status.state)) {
    // The engine's detail often repeats the state word ("connected", "disabled"): say it once.
    parts.push(status.detail);
  }
  const seconds = retryInSeconds(status, nowMs);
  if (seconds !== null) {
    const verb =
      status.state === "reconnecting" ? "reconnecting" : status.state === "http_only" ? "trying the socket again" : "retrying";
    parts.push(seconds > 0 ? `${verb} in ${seconds} s` : `${verb} now`);
  }
  return parts.join(" · ");
}

/** "http://127.0.0.1:8188/" → "127.0.0.1:8188"; keeps a path prefix behind a proxy. */
export function displayUrl(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/$/, "");
}

export function formatPercent(percent: number | null | undefined): string {
  if (percent == null) return "";
  return `${Math.round(Math.min(100, Math.max(0, percent)))}%`;
}

/** The current node's name: its title in the workflow, else its class type. */
export function nodeName(job: JobSummary): string | null {
  return job.node_title ?? job.node_type ?? (job.node ? `Node ${job.node}` : null);
}

/** What the running job is doing, as specific as the server lets us see. */
export function nodeLabel(job: JobSummary): string | null {
  const name = job.node_title ?? job.node_type;
  if (name && job.node) return `${name} #${job.node}`;
  if (name) return name;
  if (job.node) return `Node #${job.node}`;
  return null;
}

/** "step 12/20", "node 5/12", joined. */
export function jobCounters(job: JobSummary): string {
  const parts: string[] = [];
  if (job.node_value != null && job.node_max != null && job.node_max > 0) {
    parts.push(`step ${Math.round(job.node_value)}/${Math.round(job.node_max)}`);
  }
  if (job.nodes_done != null && job.nodes_total != null && job.nodes_total > 0) {
    parts.push(`node ${job.nodes_done}/${job.nodes_total}`);
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

/** "3.21 it/s", or "4.2 s/it" for slow steps, as samplers print it. */
export function formatRate(stepsPerS: number | null | undefined): string {
  if (stepsPerS == null || !Number.isFinite(stepsPerS) || stepsPerS <= 0) return "";
  if (stepsPerS >= 1) return `${stepsPerS.toFixed(2)} it/s`;
  return `${(1 / stepsPerS).toFixed(1)} s/it`;
}

/** "0:42", "12:05", "1:02:03": a running clock. */
export function formatClock(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAgo(thenMs: number, nowMs: number): string {
  const seconds = Math.round((nowMs - thenMs) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/** Local wall-clock time of a moment to come: "14:32" today, "tomorrow 09:05", else
 * "2026-11-05 14:32". */
export function formatTimeOfDay(atMs: number, nowMs: number): string {
  const at = new Date(Math.max(atMs, nowMs));
  const stamp = formatTimestamp(at.getTime());
  const time = stamp.slice(11, 16);
  const today = new Date(nowMs);
  if (at.toDateString() === today.toDateString()) return time;
  const tomorrow = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 1);
  if (at.toDateString() === tomorrow.toDateString()) return `tomorrow ${time}`;
  return stamp.slice(0, 16);
}

/** Local date and time for a tooltip or a log line: "2026-11-04 14:03:12". */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time of day: "14:03:12". */
export function formatTime(ms: number): string {
  return formatTimestamp(ms).slice(11);
}

/** Bytes as GiB with one decimal: "23.5". */
export function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(1);
}

export interface MemoryUse {
  used: number;
  total: number;
  /** 0–1. */
  fraction: number;
  text: string;
}

/** Used of total, from the free figure `/system_stats` reports; null when either is unknown. */
export function memoryUse(total: number | null, free: number | null): MemoryUse | null {
  if (total === null || free === null || total <= 0) return null;
  const used = Math.min(total, Math.max(0, total - free));
  return { used, total, fraction: used / total, text: `${gib(used)} / ${gib(total)} GiB` };
}

/** The first characters of a prompt id: enough to tell jobs apart at a glance. */
export function shortId(promptId: string): string {
  return promptId.length > 8 ? promptId.slice(0, 8) : promptId;
}

const ORIGIN_LABELS: Record<JobOrigin, string> = {
  self: "this app",
  other: "other client",
  anonymous: "other client",
};

/** Who queued a job: "this app" or "other client". */
export function originLabel(origin: JobOrigin): string {
  return ORIGIN_LABELS[origin];
}

const OUTCOME_LABELS: Record<JobState, string> = {
  pending: "Pending",
  running: "Running",
  success: "Finished",
  error: "Failed",
  interrupted: "Interrupted",
  deleted: "Removed",
  lost: "Lost",
};

export function jobStateLabel(state: JobState): string {
  return OUTCOME_LABELS[state];
}

const TERMINAL: Record<JobState, boolean> = {
  pending: false,
  running: false,
  success: true,
  error: true,
  interrupted: true,
  deleted: true,
  lost: true,
};

/** The job has ended (finished, failed, stopped, removed or lost): the one definition the UI
 * uses, as the shell's `JobState::is_terminal`. */
export function isTerminal(state: JobState): boolean {
  return TERMINAL[state];
}

/** The job's execution messages reach the app (its own jobs, or another client's relayed by the
 * server's companion): nodes, steps, percent, ETA and previews are known. As the shell's
 * `Fidelity::is_followed`. */
export function isFollowed(fidelity: Fidelity): boolean {
  return fidelity === "live" || fidelity === "relayed";
}

export type Tone = "ok" | "warn" | "bad" | "accent" | "muted";

const CONNECTION_TONES: Record<ConnectionState, Tone> = {
  connected: "ok",
  connecting: "warn",
  reconnecting: "warn",
  unreachable: "bad",
  auth_failed: "bad",
  disabled: "muted",
  http_only: "warn",
};

export function connectionTone(state: ConnectionState): Tone {
  return CONNECTION_TONES[state];
}

const JOB_TONES: Record<JobState, Tone> = {
  pending: "muted",
  running: "accent",
  success: "ok",
  error: "bad",
  interrupted: "warn",
  deleted: "muted",
  lost: "warn",
};

export function jobTone(state: JobState): Tone {
  return JOB_TONES[state];
}

// Estimates: learned from the server's past jobs, never mixed with measured figures. Every
// estimated figure reads "≈ …" and carries `estimateTooltip` as its title.
//
// An estimate's spans count from when the engine sent it, and the engine sends it again only
// when the moment it points at moves (a job that keeps to its estimate is not re-sent). So each
// span is taken as a moment, `receivedMs` + span, and shown against the clock the view already
// runs (`nowMs`): "starts in ≈ 3 min" counts down, "done ≈ 14:32" stays put.

/** An estimated span, no finer than an estimate deserves: "≈ 42 s", "≈ 3 min 20 s" (to 10 s),
 * "≈ 3 min", "≈ 14 min" (to the minute from 10 min), "≈ 1 h 5 min", "≈ 2 h". */
export function approxDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `≈ ${seconds} s`;
  const tens = Math.round(seconds / 10) * 10;
  if (tens < 600) return tens % 60 ? `≈ ${Math.floor(tens / 60)} min ${tens % 60} s` : `≈ ${tens / 60} min`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `≈ ${minutes} min`;
  return minutes % 60 ? `≈ ${Math.floor(minutes / 60)} h ${minutes % 60} min` : `≈ ${minutes / 60} h`;
}

/** An estimated share done: "≈ 42%". */
export function approxPercent(percent: number): string {
  return `≈ ${formatPercent(percent)}`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What an estimate stands on, for the title of a "≈" figure. */
export function estimateTooltip(e: Estimate): string {
  if (e.basis === "workflow") {
    return `Estimated from ${plural(e.samples, "earlier run", "earlier runs")} of this workflow on this server`;
  }
  return `Estimated from this server's speed per node (a workflow not run here before; fewest samples ${e.samples})`;
}

/** The title of "longer than usual": how long the job usually runs, then the basis. */
export function longerThanUsualTooltip(e: Estimate): string {
  return `Usually runs ${approxDuration(e.typical_ms)}\n${estimateTooltip(e)}`;
}

/** A running job's estimated time left: "≈ 1 min 20 s left", or "longer than usual" once it runs
 * past its usual time (never sitting at "≈ 0 s left" for long: the engine says so within a
 * second). Empty when the estimate says neither. */
export function estimateLeft(e: Estimate, receivedMs: number, nowMs: number): string {
  if (e.longer_than_usual) return "longer than usual";
  if (e.eta_ms == null) return "";
  const left = receivedMs + e.eta_ms - nowMs;
  // Under a second (or due by now): not "≈ 0 s left".
  if (left < 1_000) return "finishing";
  return `${approxDuration(left)} left`;
}

function runningParts(e: Estimate, receivedMs: number, nowMs: number): string[] {
  if (e.longer_than_usual) return ["longer than usual"];
  const parts: string[] = [];
  if (e.percent != null) parts.push(approxPercent(e.percent));
  const left = estimateLeft(e, receivedMs, nowMs);
  if (left) parts.push(left);
  return parts;
}

/** A running job's estimate in one line: "≈ 42% · ≈ 1 min left", or "longer than usual". */
export function runningEstimate(e: Estimate, receivedMs: number, nowMs: number): string {
  return runningParts(e, receivedMs, nowMs).join(" · ");
}

function pendingParts(e: Estimate, receivedMs: number, nowMs: number): string[] {
  const parts: string[] = [];
  if (e.starts_in_ms != null) {
    const wait = receivedMs + e.starts_in_ms - nowMs;
    parts.push(wait >= 1000 ? `starts in ${approxDuration(wait)}` : "starts ≈ now");
  }
  if (e.eta_ms != null) parts.push(`done ≈ ${formatTimeOfDay(receivedMs + e.eta_ms, nowMs)}`);
  return parts.length ? parts : [`${approxDuration(e.typical_ms)} run`];
}

/** A pending job's estimate: "starts in ≈ 3 min · done ≈ 14:32" when every job ahead has an
 * estimate, else how long it will run, "≈ 2 min 10 s run". */
export function pendingEstimate(e: Estimate, receivedMs: number, nowMs: number): string {
  return pendingParts(e, receivedMs, nowMs).join(" · ");
}

/** The title of a pending job's estimate: how long it runs (when the line shows its start and
 * end instead), then the basis. */
export function pendingTooltip(e: Estimate): string {
  const shown = e.starts_in_ms != null || e.eta_ms != null;
  return shown ? `Runs ${approxDuration(e.typical_ms)}\n${estimateTooltip(e)}` : estimateTooltip(e);
}

/** When an instance's queue drains, as a moment (ms since the epoch): the latest end among its
 * pending jobs, or the running job's end when nothing waits. Null when it cannot be said: the
 * last pending job has no end (a job ahead of it has no estimate), the running job has none or
 * runs longer than usual, or nothing is queued. `jobs` in the shell's order; `receivedAt` says
 * when each job's picture (and so its estimate) came. */
export function queueDrainsAt(jobs: readonly JobSummary[], receivedAt: (job: JobSummary) => number): number | null {
  const pending = jobs.filter((j) => j.state === "pending");
  const end = (j: JobSummary) => (j.estimate?.eta_ms == null ? null : receivedAt(j) + j.estimate.eta_ms);
  const last = pending.at(-1);
  if (last) {
    if (end(last) === null) return null;
    return Math.max(...pending.map((j) => end(j) ?? 0));
  }
  const running = jobs.find((j) => j.state === "running");
  return running && !running.estimate?.longer_than_usual ? end(running) : null;
}

export interface EstimateLine {
  /** The figures, each kept whole when a narrow row wraps: ["starts in ≈ 3 min", "done ≈ 14:32"]. */
  parts: string[];
  /** The parts joined: "starts in ≈ 3 min · done ≈ 14:32". */
  text: string;
  title: string;
}

/** A job's estimate as the queue and the cards show it beside the measured figures, with its
 * title: a pending job's start and end (or run time); a running job's share and time left, or
 * only its time left when the job is followed (its bar is measured). Null when there is none. */
export function estimateLine(job: JobSummary, receivedMs: number, nowMs: number): EstimateLine | null {
  const e = job.estimate;
  if (!e) return null;
  const line = (parts: string[], title: string) => (parts.length ? { parts, text: parts.join(" · "), title } : null);
  if (job.state === "pending") return line(pendingParts(e, receivedMs, nowMs), pendingTooltip(e));
  if (job.state !== "running") return null;
  const left = estimateLeft(e, receivedMs, nowMs);
  const parts = isFollowed(job.fidelity) ? (left ? [left] : []) : runningParts(e, receivedMs, nowMs);
  return line(parts, e.longer_than_usual ? longerThanUsualTooltip(e) : estimateTooltip(e));
}

/** "queue done ≈ 14:32", for a queue that drains at `atMs` (see `queueDrainsAt`), with its title. */
export function queueDrainLine(atMs: number, nowMs: number): { text: string; title: string } {
  return {
    text: `queue done ≈ ${formatTimeOfDay(atMs, nowMs)}`,
    title: `When the last queued job is expected to end (in ${approxDuration(atMs - nowMs)}), estimated from this server's past runs`,
  };
}
