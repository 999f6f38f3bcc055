// A scripted stand-in for the desktop shell, for `npm run dev` in a plain browser only (main.ts
// loads it when there is no Tauri; production builds drop it). It answers every command and
// plays a few servers: live jobs with streaming previews and node text, another client's job,
// outages with countdowns. Images come from the dev server's `/__media/` route (vite.config.ts).
//
// URL parameters: `?n=12` instances (default 3), `?empty` none, `?notice` an app-level notice,
// `?still` no animation, and for screenshots `?click=<test id>[,<test id>…]` clicks those
// controls once the page is up (e.g. `?click=open-detail` opens the first instance,
// `open-detail@llm-box` that one), and
// `?drop=ok|rejected|ui|partial` drops such a workflow file on the window first.
//
// Like the real shell's overview, it keeps each instance's unfinished jobs in order (running
// first, then by queue number) and sends the order with the job update that changed it.
import type { AppSettings } from "../bindings/AppSettings";
import { DEFAULT_NOTIFICATION_PREFS } from "../bindings/defaults";
import type { GalleryItem } from "../bindings/GalleryItem";
import type { GalleryQuery } from "../bindings/GalleryQuery";
import type { HistoryEntry } from "../bindings/HistoryEntry";
import type { InstanceId } from "../bindings/InstanceId";
import type { InstanceInput } from "../bindings/InstanceInput";
import type { InstanceSettings } from "../bindings/InstanceSettings";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import type { LogEntry } from "../bindings/LogEntry";
import type { OutputFile } from "../bindings/OutputFile";
import type { PromptId } from "../bindings/PromptId";
import { EVENTS } from "../ipc";
import { changeView, emitFromShell, mockMediaBase, mockShell } from "../ipc/testing";

const NAMES = [
  "gpu-box",
  "studio-4090",
  "Local",
  "render-01",
  "llm-box",
  "render-02",
  "cloud-a100",
  "laptop",
  "render-03",
  "render-04",
  "mac-mini",
  "render-05",
  "render-06",
  "render-07",
  "render-08",
  "edge-3060",
  "render-09",
  "render-10",
  "render-11",
  "render-12",
];

type Preset = "live" | "observed" | "reconnecting" | "idle-error" | "auth" | "llm" | "unreachable" | "disabled" | "idle" | "live-queue";
const PRESETS: Preset[] = ["live", "observed", "reconnecting", "idle-error", "live-queue", "auth", "llm", "unreachable", "idle", "disabled"];

const NODES: Array<{ type: string; title: string | null; steps: number }> = [
  { type: "CheckpointLoaderSimple", title: "Load SDXL", steps: 0 },
  { type: "CLIPTextEncode", title: "Positive", steps: 0 },
  { type: "KSampler", title: "Base sampler", steps: 28 },
  { type: "LatentUpscaleBy", title: null, steps: 0 },
  { type: "KSampler", title: "Hires fix", steps: 14 },
  { type: "VAEDecode", title: null, steps: 0 },
  { type: "SaveImage", title: null, steps: 0 },
];

const LOREM =
  "The lighthouse keeper counted the ships by their lanterns, one amber, one green, and a third that blinked in a rhythm no harbour master had ever logged. ".repeat(
    3,
  );

const GIB = 1024 ** 3;

interface Sim {
  node: number;
  value: number;
  rate: number;
}

const state = {
  revision: 100,
  instances: [] as InstanceView[],
  settings: [] as InstanceSettings[],
  history: new Map<InstanceId, HistoryEntry[]>(),
  logs: new Map<InstanceId, LogEntry[]>(),
  sims: new Map<PromptId, Sim>(),
  /** The job order each instance's last update (or the snapshot) told the UI. */
  orders: new Map<InstanceId, PromptId[]>(),
  seq: 1,
  logId: 1,
  notices: [] as string[],
  app: { start_minimised: false, launch_at_login: false, notify_only_when_unfocused: true, rendering: "auto" } as AppSettings,
};

const clone = <T>(v: T): T => structuredClone(v);
const id = () => Math.random().toString(16).slice(2, 10) + Math.random().toString(16).slice(2, 10) + "-4a1f-9c2e-7d3b5e6f8a90";

/** A job as the shell sends it: what is not known yet is left out. */
function job(overrides: Partial<JobSummary>): JobSummary {
  return {
    prompt_id: id(),
    state: "pending",
    origin: "self",
    fidelity: "live",
    queued_at_ms: Date.now(),
    preview: null,
    node_text: [],
    ...overrides,
  };
}

function outputs(name: string, n: number): OutputFile[] {
  return Array.from({ length: n }, (_, i) => ({ filename: `${name}_${String(10000 + i * 7).slice(1)}_.png`, subfolder: "", type: "output" }));
}

const TRACEBACK = [
  "Traceback (most recent call last):\n",
  '  File "/opt/ComfyUI/execution.py", line 323, in execute\n',
  "    output_data, output_ui, has_subgraph = get_output_data(obj, input_data_all)\n",
  '  File "/opt/ComfyUI/comfy/sd.py", line 612, in load_checkpoint_guess_config\n',
  "    sd = comfy.utils.load_torch_file(ckpt_path)\n",
  "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 23.64 GiB total capacity)\n",
];

/** Every instance's history outputs as gallery files, newest first, filtered like the shell. */
function galleryOf(q: GalleryQuery): GalleryItem[] {
  const items: GalleryItem[] = [];
  let n = 1;
  for (const [instanceId, entries] of state.history) {
    for (const e of entries) {
      for (const file of e.outputs) {
        items.push({
          id: n++,
          instance_id: instanceId,
          prompt_id: e.prompt_id,
          file,
          media: /\.(mp4|webm)$/i.test(file.filename) ? "video" : /\.(wav|mp3|flac)$/i.test(file.filename) ? "audio" : "image",
          state: e.state,
          origin: e.origin,
          finished_at_ms: e.finished_at_ms,
          label: e.label,
          save: e.saved_folder ? "saved" : "no",
          saved_to: e.saved_folder ? `${e.saved_folder}/${file.filename}` : null,
          save_error: null,
        });
      }
    }
  }
  const words = (q.text ?? "").toLowerCase().split(/\s+/).filter(Boolean);
  return items
    .filter((i) => q.instance_id === undefined || i.instance_id === q.instance_id)
    .filter((i) => !q.states.length || q.states.includes(i.state))
    .filter((i) => words.every((w) => `${i.label ?? ""} ${i.file.filename}`.toLowerCase().includes(w)))
    .sort((a, b) => (b.finished_at_ms ?? 0) - (a.finished_at_ms ?? 0))
    .filter((i) => q.before === undefined || i.id !== q.before)
    .slice(0, q.limit);
}

function makeHistory(name: string): HistoryEntry[] {
  const now = Date.now();
  const at = (minAgo: number) => now - minAgo * 60_000;
  const entry = (minAgo: number, o: Partial<HistoryEntry>): HistoryEntry => ({
    prompt_id: id(),
    state: "success",
    origin: "self",
    queued_at_ms: at(minAgo + 1),
    started_at_ms: at(minAgo + 0.8),
    finished_at_ms: at(minAgo),
    error: null,
    outputs: [],
    detail: null,
    can_resubmit: true,
    label: "sd_xl_base_1.0 · a lighthouse on a cliff at dusk",
    saved_folder: o.outputs?.length ? `/home/you/Pictures/ComfyUI/${name}` : null,
    ...o,
  });
  return [
    entry(2, { outputs: outputs(name, 4) }),
    entry(9, {
      state: "error",
      outputs: [],
      error: { node_id: "4", node_type: "CheckpointLoaderSimple", exception_type: "torch.OutOfMemoryError", message: "CUDA out of memory. Tried to allocate 2.50 GiB", traceback: TRACEBACK },
    }),
    entry(15, { state: "lost", started_at_ms: at(16), finished_at_ms: at(15), detail: "the server restarted while it ran; its outcome is unknown" }),
    entry(22, { origin: "other", can_resubmit: false, outputs: outputs("other", 2) }),
    entry(31, { state: "interrupted", detail: "cancelled from this app" }),
    entry(48, { outputs: [...outputs(name, 1), { filename: "clip_00012.mp4", subfolder: "video", type: "output" }] }),
    entry(65, { state: "deleted", started_at_ms: null, origin: "other", can_resubmit: false, detail: "removed from the queue before it ran" }),
  ];
}

function makeLogs(name: string): LogEntry[] {
  const now = Date.now();
  const line = (secAgo: number, kind: string, detail: string | null, data: string | null = null): LogEntry => ({
    id: state.logId++,
    ts: now - secAgo * 1000,
    kind,
    detail,
    data,
  });
  return [
    line(3600, "connecting", "starting"),
    line(3598, "connected", `connected to ${name}`),
    line(1800, "reconnecting", "connection reset by peer"),
    line(1795, "connected", "connected"),
    line(600, "server_event", "crystools.monitor", '{"cpu_utilization": 12.5, "ram_used_percent": 41.2, "gpus": [{"gpu_utilization": 97, "vram_used_percent": 78.1}]}'),
    line(120, "server_event", "manager-terminal-feedback", null),
  ];
}

function instanceFor(name: string, index: number, preset: Preset): InstanceView {
  const now = Date.now();
  const base: InstanceView = {
    id: index + 1,
    name,
    url: `http://${index === 2 ? "127.0.0.1" : `10.0.0.${20 + index}`}:8188/`,
    enabled: true,
    // One idle server (with ?n=9 or more) has the companion turned off in its settings.
    use_companion: index !== 8,
    status: { state: "connected", detail: "connected", changed_at_ms: now - 3_600_000 },
    stats: { ram_total: 64 * GIB, ram_free: (40 - index) * GIB, device: "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", vram_total: 24 * GIB, vram_free: (4 + (index % 5) * 3) * GIB },
    server: { version: index % 3 === 0 ? "0.3.75" : "0.3.44", jobs_api: index % 3 === 0, feature_flags: true, client_id: `dev-client-${index + 1}`, companion: index % 3 === 0 ? "0.1.0" : null },
    queue: { running: 0, pending: 0 },
    jobs: [],
    last_job: job({ state: "success", started_at_ms: now - 200_000, ended_at_ms: now - 180_000, elapsed_ms: 20_400, percent: 100, outputs: outputs(name, 2) }),
  };
  switch (preset) {
    case "live":
    case "live-queue":
    case "llm": {
      const running = job({ state: "running", number: 12, started_at_ms: now - 14_000, nodes_total: NODES.length, nodes_done: 2 });
      base.jobs.push(running);
      state.sims.set(running.prompt_id, { node: 2, value: 5 + index, rate: preset === "llm" ? 11 : 3.4 - (index % 3) * 0.7 });
      if (preset === "llm") {
        running.node_text = [{ node: "17", text: "" }];
      }
      if (preset === "live-queue") {
        // Estimates as the engine sends them: the running job's end, then each pending job's
        // start and end from the ones ahead; the last one's workflow is new to this server.
        running.estimate = { basis: "workflow", samples: 6, typical_ms: 24_000, percent: 40, eta_ms: 15_000 };
        base.jobs.push(
          job({ state: "pending", number: 13, origin: "self", fidelity: "live", estimate: { basis: "workflow", samples: 6, typical_ms: 24_000, starts_in_ms: 15_000, eta_ms: 39_000 } }),
        );
        base.jobs.push(
          job({ state: "pending", number: 14, origin: "other", fidelity: "observed", estimate: { basis: "workflow", samples: 1, typical_ms: 95_000, starts_in_ms: 39_000, eta_ms: 134_000 } }),
        );
        base.jobs.push(
          job({ state: "pending", number: 15, origin: "other", fidelity: "observed", estimate: { basis: "nodes", samples: 2, typical_ms: 610_000, starts_in_ms: 134_000, eta_ms: 744_000 } }),
        );
      }
      break;
    }
    case "observed":
      base.jobs.push(
        job({
          state: "running",
          origin: "other",
          fidelity: "observed",
          number: 40,
          started_at_ms: now - 42_000,
          estimate: { basis: "workflow", samples: 4, typical_ms: 100_000, percent: 42, eta_ms: 58_000 },
        }),
      );
      base.jobs.push(
        job({
          state: "pending",
          origin: "other",
          fidelity: "observed",
          number: 41,
          queued_at_ms: now - 30_000,
          estimate: { basis: "nodes", samples: 2, typical_ms: 75_000, starts_in_ms: 58_000, eta_ms: 133_000 },
        }),
      );
      break;
    case "reconnecting":
      base.status = { state: "reconnecting", detail: "connection reset by peer", retry_in_ms: 8000, changed_at_ms: now };
      base.stats = null;
      base.last_job = job({ state: "lost", origin: "self", ended_at_ms: now - 5_000, percent: 64, detail: "the server restarted while it ran" });
      break;
    case "idle-error":
      base.last_job = job({
        state: "error",
        ended_at_ms: now - 95_000,
        elapsed_ms: 3_100,
        percent: 12,
        error: { node_id: "4", node_type: "CheckpointLoaderSimple", exception_type: "torch.OutOfMemoryError", message: "CUDA out of memory", traceback: TRACEBACK },
      });
      break;
    case "auth":
      base.status = { state: "auth_failed", detail: "auth failed: 401", changed_at_ms: now - 60_000 };
      base.stats = null;
      base.server = null;
      base.last_job = null;
      break;
    case "unreachable":
      base.status = { state: "unreachable", detail: "connection refused", retry_in_ms: 30_000, changed_at_ms: now };
      base.stats = null;
      base.server = null;
      base.last_job = job({ state: "interrupted", ended_at_ms: now - 3_600_000, elapsed_ms: 9_000, percent: 37 });
      break;
    case "disabled":
      base.enabled = false;
      base.status = { state: "disabled", detail: "disabled", changed_at_ms: now };
      base.stats = null;
      base.last_job = null;
      break;
    case "idle":
      break;
  }
  base.queue = { running: base.jobs.filter((j) => j.state === "running").length, pending: base.jobs.filter((j) => j.state === "pending").length };
  return base;
}

function settingsFor(v: InstanceView, preset: Preset): InstanceSettings {
  const auth = preset === "auth" ? "bearer" : v.id % 4 === 1 ? "basic" : "none";
  return {
    id: v.id,
    name: v.name,
    url: v.url,
    auth_kind: auth,
    user: auth === "basic" ? "admin" : null,
    header_names: [],
    secrets_set: auth === "bearer" ? ["token"] : auth === "basic" ? ["password"] : [],
    accept_invalid_certs: false,
    certificate_sha256: null,
    enabled: v.enabled,
    preview_fps_cap: 15,
    notifications: { ...DEFAULT_NOTIFICATION_PREFS },
    use_companion: v.use_companion,
    saving: { folder: v.id % 2 === 1 ? `/home/you/Pictures/ComfyUI/${v.name}` : null, others: false },
  };
}

/** The certificate every https:// server of the mock presents, for "Trust this server's own certificate". */
const MOCK_CERTIFICATE = Array.from({ length: 32 }, (_, i) => ((i * 37 + 11) % 256).toString(16).padStart(2, "0").toUpperCase()).join(":");

function find(instanceId: unknown): InstanceView {
  const i = state.instances.find((x) => x.id === instanceId);
  if (!i) throw { code: "unknown_instance", message: `no instance with id ${String(instanceId)}`, node_errors: [] };
  return i;
}

function bump(): number {
  state.revision += 1;
  return state.revision;
}

/** Running first, then by queue number (unknown last), as the shell's overview orders them. */
function sortJobs(inst: InstanceView): PromptId[] {
  const waiting = (j: JobSummary) => (j.state === "running" ? 0 : 1);
  const number = (j: JobSummary) => j.number ?? Number.POSITIVE_INFINITY;
  inst.jobs.sort((a, b) => waiting(a) - waiting(b) || number(a) - number(b));
  return inst.jobs.map((j) => j.prompt_id);
}

/** Sends a job's picture (after `inst.jobs` has taken it in), with the instance's job order
 * when that changed since the UI last heard it. */
function sendJob(inst: InstanceView, j: JobSummary): void {
  const order = sortJobs(inst);
  const told = state.orders.get(inst.id) ?? [];
  const changed = order.length !== told.length || order.some((p, i) => p !== told[i]);
  if (changed) state.orders.set(inst.id, order);
  void changeView({ jobs: [{ revision: bump(), instance_id: inst.id, job: clone(j), ...(changed ? { order } : {}) }] });
}

function sendQueue(inst: InstanceView): void {
  inst.queue = { running: inst.jobs.filter((j) => j.state === "running").length, pending: inst.jobs.filter((j) => j.state === "pending").length };
  void changeView({ queues: [{ revision: bump(), instance_id: inst.id, queue: { ...inst.queue } }] });
}

function log(inst: InstanceView, kind: string, detail: string | null, data: string | null = null): void {
  const entry: LogEntry = { id: state.logId++, ts: Date.now(), kind, detail, data };
  state.logs.get(inst.id)?.push(entry);
  void emitFromShell(EVENTS.eventLogged, { instance_id: inst.id, entry });
}

function finish(inst: InstanceView, j: JobSummary, outcome: JobSummary["state"]): void {
  const now = Date.now();
  j.state = outcome;
  j.ended_at_ms = now;
  j.estimate = undefined;
  j.elapsed_ms = j.started_at_ms ? now - j.started_at_ms : undefined;
  if (outcome === "success") {
    j.percent = j.fidelity === "live" ? 100 : undefined;
    j.outputs = outputs(inst.name, 1 + (state.seq % 3));
  }
  inst.jobs = inst.jobs.filter((x) => x.prompt_id !== j.prompt_id);
  inst.last_job = j;
  state.sims.delete(j.prompt_id);
  sendJob(inst, j);
  const h = state.history.get(inst.id);
  h?.unshift({
    prompt_id: j.prompt_id,
    state: outcome,
    origin: j.origin,
    queued_at_ms: j.queued_at_ms,
    started_at_ms: j.started_at_ms ?? null,
    finished_at_ms: now,
    error: j.error ?? null,
    outputs: j.outputs ?? [],
    detail: j.detail ?? null,
    can_resubmit: j.origin === "self",
    label: "sd_xl_base_1.0 · a lighthouse on a cliff at dusk",
    saved_folder: j.outputs?.length ? `/home/you/Pictures/ComfyUI/${inst.name}` : null,
  });
  startNext(inst);
}

function startNext(inst: InstanceView): void {
  const next = inst.jobs.find((j) => j.state === "pending");
  if (next && !inst.jobs.some((j) => j.state === "running")) {
    next.state = "running";
    next.started_at_ms = Date.now();
    if (next.fidelity === "live") {
      next.nodes_total = NODES.length;
      next.nodes_done = 0;
      state.sims.set(next.prompt_id, { node: 0, value: 0, rate: 2.5 + Math.random() * 2 });
    }
    sendJob(inst, next);
  }
  sendQueue(inst);
}

function step(inst: InstanceView, j: JobSummary, dt: number): void {
  const sim = state.sims.get(j.prompt_id);
  if (!sim) return;
  const node = NODES[sim.node];
  if (!node) return;
  let moved = false;
  if (node.steps === 0) {
    sim.value += dt * 4;
    if (sim.value >= 1) moved = true;
  } else {
    sim.value += dt * sim.rate;
    if (sim.value >= node.steps) moved = true;
  }
  if (moved) {
    sim.node += 1;
    sim.value = 0;
    if (sim.node >= NODES.length) {
      finish(inst, j, "success");
      return;
    }
  }
  const cur = NODES[sim.node] ?? node;
  const frac = cur.steps ? sim.value / cur.steps : Math.min(1, sim.value);
  j.node = String(3 + sim.node * 2);
  j.node_type = cur.type;
  j.node_title = cur.title ?? undefined;
  j.node_value = cur.steps ? Math.floor(sim.value) : undefined;
  j.node_max = cur.steps || undefined;
  j.nodes_done = sim.node;
  j.percent = Math.min(99.9, Math.round(((sim.node + frac) / NODES.length) * 1000) / 10);
  j.steps_per_s = cur.steps ? sim.rate : undefined;
  const stepsLeft = NODES.slice(sim.node).reduce((n, x) => n + x.steps, 0) - (cur.steps ? sim.value : 0);
  j.eta_ms = Math.round((stepsLeft / sim.rate) * 1000 + 1500);
  // The engine's estimate counts the nodes after the sampler too.
  if (j.estimate) j.estimate = { ...j.estimate, percent: j.percent, eta_ms: j.eta_ms + 2500 };
  if (cur.steps) {
    state.seq += 1;
    j.preview = { seq: state.seq, width: 512, height: 512 };
  }
  const text = j.node_text[0];
  if (text) {
    const words = LOREM.split(" ");
    const have = text.text.split(" ").length;
    text.text = words.slice(0, Math.min(words.length, have + 3)).join(" ");
    if (have >= words.length) text.text = "";
  }
  sendJob(inst, j);
}

function tick(dt: number): void {
  for (const inst of state.instances) {
    for (const j of [...inst.jobs]) {
      if (j.state !== "running") continue;
      if (j.fidelity === "live") step(inst, j, dt);
      else if (j.started_at_ms && Date.now() - j.started_at_ms > 75_000) finish(inst, j, "success");
    }
  }
}

function slowTick(): void {
  const now = Date.now();
  for (const inst of state.instances) {
    const s = inst.status;
    if (s.retry_in_ms != null && now >= s.changed_at_ms + s.retry_in_ms) {
      inst.status = { ...s, changed_at_ms: now, retry_in_ms: Math.min(60_000, s.retry_in_ms * 2) };
      void changeView({ statuses: [{ revision: bump(), instance_id: inst.id, status: clone(inst.status) }] });
      log(inst, inst.status.state, `${s.detail}; next try in ${(inst.status.retry_in_ms ?? 0) / 1000} s`);
    }
    if (inst.stats && inst.status.state === "connected") {
      const vramFree = Math.max(0.5 * GIB, Math.min(23 * GIB, (inst.stats.vram_free ?? 0) + (Math.random() - 0.5) * GIB));
      inst.stats = { ...inst.stats, vram_free: vramFree };
      void changeView({ stats: [{ revision: bump(), instance_id: inst.id, stats: clone(inst.stats) }] });
    }
  }
}

function input(args: unknown): InstanceInput {
  return (args as { input: InstanceInput }).input;
}

function invalid(message: string): never {
  throw { code: "invalid_input", message, node_errors: [] };
}

function handle(command: string, args: unknown): unknown {
  const a = (args ?? {}) as Record<string, unknown>;
  switch (command) {
    case "get_snapshot":
      for (const inst of state.instances) state.orders.set(inst.id, sortJobs(inst));
      return { revision: state.revision, instances: clone(state.instances), notices: state.notices };
    case "refresh_instance":
      find(a.instance_id);
      return null;
    case "view_visibility":
      return null;
    case "list_instances":
      return clone(state.settings);
    case "add_instance":
    case "update_instance": {
      const i = input(args);
      if (!i.name.trim()) invalid("the name is empty");
      if (!/^https?:\/\/[^/]+/.test(i.url.trim()) && !/^[\w.-]+(:\d+)?\/?$/.test(i.url.trim())) invalid(`not a URL: ${i.url}`);
      const editId = command === "update_instance" ? (a.id as number) : null;
      if (state.settings.some((s) => s.name === i.name.trim() && s.id !== editId)) invalid(`an instance named ${i.name.trim()} exists`);
      if (i.auth_kind === "bearer" && !i.secrets.token && !state.settings.find((s) => s.id === editId)?.secrets_set.includes("token")) invalid("the token is required");
      const nid = editId ?? Math.max(0, ...state.settings.map((s) => s.id)) + 1;
      const url = i.url.includes("://") ? i.url.trim() : `http://${i.url.trim()}`;
      const saved: InstanceSettings = {
        id: nid,
        name: i.name.trim(),
        url: url.endsWith("/") ? url : `${url}/`,
        auth_kind: i.auth_kind,
        user: i.user,
        header_names: i.header_names,
        secrets_set: Object.keys(i.secrets),
        accept_invalid_certs: i.accept_invalid_certs,
        certificate_sha256: i.accept_invalid_certs ? i.certificate_sha256 : null,
        enabled: i.enabled,
        preview_fps_cap: i.preview_fps_cap,
        notifications: i.notifications,
        use_companion: i.use_companion,
        saving: i.saving,
      };
      if (editId !== null) {
        const old = state.settings.find((s) => s.id === editId);
        saved.secrets_set = [...new Set([...(old?.secrets_set ?? []), ...Object.keys(i.secrets)])];
        state.settings = state.settings.map((s) => (s.id === editId ? saved : s));
        const v = state.instances.find((x) => x.id === editId);
        if (v) {
          Object.assign(v, { name: saved.name, url: saved.url, enabled: saved.enabled, use_companion: saved.use_companion });
          // Like the engine: a companion the user turned off is not reported (nor used).
          if (v.server) v.server.companion = saved.use_companion && (v.id - 1) % 3 === 0 ? "0.1.0" : null;
        }
      } else {
        state.settings.push(saved);
        const v = instanceFor(saved.name, nid - 1, "idle");
        v.url = saved.url;
        v.last_job = null;
        v.status = { state: "connecting", detail: "starting", changed_at_ms: Date.now() };
        state.instances.push(v);
        state.history.set(v.id, []);
        state.logs.set(v.id, []);
        setTimeout(() => {
          v.status = { state: "connected", detail: "connected", changed_at_ms: Date.now() };
          void changeView({ statuses: [{ revision: bump(), instance_id: v.id, status: clone(v.status) }] });
          log(v, "connected", "connected");
        }, 1200);
      }
      void emitFromShell(EVENTS.instancesChanged, { revision: bump() });
      return clone(saved);
    }
    case "remove_instance": {
      const rid = a.id as number;
      state.settings = state.settings.filter((s) => s.id !== rid);
      state.instances = state.instances.filter((s) => s.id !== rid);
      void emitFromShell(EVENTS.instancesChanged, { revision: bump() });
      return null;
    }
    case "test_connection": {
      const i = input(args);
      if (!i.url.trim()) invalid("the URL is empty");
      const url = i.url.toLowerCase();
      if (url.includes("down")) return { ok: false, steps: [{ step: "http", ok: false, detail: "connection refused (os error 111)", auth: false }] };
      if (url.includes("auth")) return { ok: false, steps: [{ step: "http", ok: false, detail: "401 Unauthorized", auth: true }] };
      if (url.startsWith("https://") && i.accept_invalid_certs && i.certificate_sha256 !== MOCK_CERTIFICATE) {
        const refusal = { presented: MOCK_CERTIFICATE, pinned: i.certificate_sha256 };
        const detail = refusal.pinned
          ? `the server's certificate changed (was ${refusal.pinned}, now ${MOCK_CERTIFICATE})`
          : `the server's certificate is not trusted yet (SHA-256 ${MOCK_CERTIFICATE})`;
        return { ok: false, steps: [{ step: "http", ok: false, detail, auth: false, certificate: refusal }] };
      }
      if (url.includes("ws")) {
        return {
          ok: false,
          steps: [
            { step: "http", ok: true, detail: "ComfyUI 0.3.75, jobs API", auth: false },
            { step: "websocket", ok: false, detail: "upgrade refused: 403 Forbidden (a proxy that does not pass WebSocket?)", auth: false },
          ],
        };
      }
      return {
        ok: true,
        steps: [
          { step: "http", ok: true, detail: "ComfyUI 0.3.75, jobs API", auth: false },
          { step: "websocket", ok: true, detail: "upgraded; first status message after 41 ms", auth: false },
        ],
      };
    }
    case "read_prompt":
      // Any file gives the same small prompt here; the real shell reads what the file embeds.
      return JSON.stringify(
        {
          "3": { class_type: "KSampler", inputs: { seed: 42, steps: 20, cfg: 7, model: ["4", 0] } },
          "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sdxl.safetensors" } },
        },
        null,
        2,
      );
    case "submit_workflow": {
      const inst = find(a.instance_id);
      let wf: Record<string, unknown>;
      try {
        wf = JSON.parse(a.workflow as string) as Record<string, unknown>;
      } catch (e) {
        throw { code: "invalid_workflow", message: `this file is not JSON (${String(e)}); export the workflow with Workflow → Export (API)`, node_errors: [] };
      }
      if ("nodes" in wf && "links" in wf) {
        throw {
          code: "ui_format_workflow",
          message: "this is a workflow saved from the editor (it has nodes and links). In ComfyUI, use Workflow → Export (API) and queue that file.",
          node_errors: [],
        };
      }
      if (inst.status.state !== "connected") throw { code: "not_connected", message: `${inst.name} is ${inst.status.state.replace("_", " ")}: ${inst.status.detail}`, node_errors: [] };
      if (JSON.stringify(wf).includes("missing.safetensors")) {
        throw {
          code: "rejected",
          message: "the server refused the workflow: Prompt outputs failed validation",
          node_errors: [
            { node_id: "4", class_type: "CheckpointLoaderSimple", title: "Load SDXL", messages: ["Value not in list: ckpt_name: 'missing.safetensors' not in ['sdxl_base.safetensors', 'juggernaut.safetensors']"] },
            { node_id: "9", class_type: "SaveImage", title: null, messages: ["Required input is missing: images"] },
          ],
        };
      }
      const j = job({ state: "pending", number: 100 + state.seq, origin: "self", fidelity: "live" });
      inst.jobs.push(j);
      sendJob(inst, j);
      startNext(inst);
      const partial = JSON.stringify(wf).includes("PreviewAny");
      return {
        prompt_id: j.prompt_id,
        node_errors: partial ? [{ node_id: "12", class_type: "PreviewAny", title: "Debug text", messages: ["Required input is missing: source"] }] : [],
      };
    }
    case "get_job_summary":
      return {
        models: ["sd_xl_base_1.0.safetensors"],
        loras: [{ name: "add-detail-xl.safetensors", strength: 0.7 }],
        sampler: "dpmpp_2m",
        scheduler: "karras",
        steps: 30,
        cfg: 6.5,
        seed: "421337",
        denoise: 1,
        width: 1024,
        height: 1024,
        batch_size: 1,
        positive: ["a lighthouse on a cliff at dusk, volumetric light, film grain"],
        negative: ["blurry, lowres, text, watermark"],
        nodes: [
          { id: "3", class_type: "KSampler", title: null },
          { id: "4", class_type: "CheckpointLoaderSimple", title: null },
          { id: "5", class_type: "EmptyLatentImage", title: null },
          { id: "6", class_type: "CLIPTextEncode", title: "Positive" },
          { id: "7", class_type: "CLIPTextEncode", title: "Negative" },
          { id: "8", class_type: "VAEDecode", title: null },
          { id: "9", class_type: "SaveImage", title: null },
        ],
      };
    case "resubmit_job": {
      const inst = find(a.instance_id);
      const queued = [];
      for (let n = 0; n < ((a.count as number | undefined) ?? 1); n++) {
        const j = job({ state: "pending", number: 200 + state.seq });
        inst.jobs.push(j);
        sendJob(inst, j);
        queued.push({ prompt_id: j.prompt_id, node_errors: [] });
      }
      startNext(inst);
      return queued;
    }
    case "cancel_job": {
      const inst = find(a.instance_id);
      const j = inst.jobs.find((x) => x.prompt_id === a.prompt_id);
      if (!j) return "not_found";
      if (j.state === "running") {
        finish(inst, j, "interrupted");
        return "interrupted";
      }
      inst.jobs = inst.jobs.filter((x) => x !== j);
      j.state = "deleted";
      inst.last_job = j;
      sendJob(inst, j);
      sendQueue(inst);
      return "removed";
    }
    case "clear_queue": {
      const inst = find(a.instance_id);
      const removed = inst.jobs.filter((x) => x.state === "pending");
      inst.jobs = inst.jobs.filter((x) => x.state === "running");
      for (const j of removed) {
        j.state = "deleted";
        sendJob(inst, j);
      }
      sendQueue(inst);
      return null;
    }
    case "get_history": {
      const h = state.history.get(find(a.instance_id).id) ?? [];
      const offset = (a.offset as number) ?? 0;
      return clone(h.slice(offset, offset + ((a.limit as number) ?? 50)));
    }
    case "get_event_log":
      return clone(state.logs.get(find(a.instance_id).id) ?? []);
    case "save_output": {
      const inst = find(a.instance_id);
      const o = a.output as OutputFile;
      return { path: `/home/you/Downloads/comfy-monitor/${inst.name}/${o.filename}`, folder: `/home/you/Downloads/comfy-monitor/${inst.name}` };
    }
    case "open_folder":
    case "open_in_comfyui":
    case "open_job_folder":
    case "open_instance_folder":
      return null;
    case "saving_status":
      return { waiting: 2, saving: 2, failed: 0, last_error: null };
    case "default_output_folder":
      return `/home/you/Pictures/ComfyUI/${String(a.name)}`;
    case "gallery":
      return clone(galleryOf(a.query as GalleryQuery));
    case "get_app_settings":
      return clone(state.app);
    case "set_app_settings":
      state.app = clone(a.settings as AppSettings);
      return clone(state.app);
    case "get_rendering":
      return { mode: "auto", decided_by: "default", gpu_found: false, nvidia: false, compositing_off: true, dmabuf_renderer_off: false, inherited: [] };
    case "restart_app":
      return null;
    default:
      throw { code: "internal", message: `the dev shell does not know ${command}`, node_errors: [] };
  }
}

const SAMPLE_WORKFLOWS: Record<string, unknown> = {
  ok: { "3": { class_type: "KSampler", inputs: { steps: 28 } }, "9": { class_type: "SaveImage", inputs: {} } },
  rejected: { "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "missing.safetensors" } } },
  partial: { "3": { class_type: "KSampler", inputs: {} }, "12": { class_type: "PreviewAny", inputs: {} } },
  ui: { nodes: [], links: [], version: 0.4 },
};

/** Drops a workflow file on the window, as a user dragging it from the file manager. */
function dropWorkflow(kind: string): void {
  const file = new File([JSON.stringify(SAMPLE_WORKFLOWS[kind] ?? SAMPLE_WORKFLOWS.ok, null, 2)], `${kind}_api.json`, { type: "application/json" });
  const data = new DataTransfer();
  data.items.add(file);
  window.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}

export function installDevShell(): void {
  const params = new URLSearchParams(location.search);
  const n = params.has("empty") ? 0 : Math.max(0, Math.min(NAMES.length, Number(params.get("n") ?? 3) || 3));
  if (params.has("notice")) {
    state.notices = ["No keyring answered: secrets are kept in an owner-only file (~/.local/share/comfy-monitor/secrets.json). Start a Secret Service to move back to the keyring."];
  }
  for (let i = 0; i < n; i++) {
    const name = NAMES[i] ?? `server-${i}`;
    const preset = PRESETS[i % PRESETS.length] ?? "idle";
    const v = instanceFor(name, i, preset);
    state.instances.push(v);
    state.settings.push(settingsFor(v, preset));
    state.history.set(v.id, makeHistory(name));
    state.logs.set(v.id, makeLogs(name));
  }
  mockShell(handle);
  mockMediaBase("/__media/");
  const frozen = params.has("still");
  if (!frozen) {
    let last = performance.now();
    setInterval(() => {
      const now = performance.now();
      tick((now - last) / 1000);
      last = now;
    }, 120);
    setInterval(slowTick, 1000);
    setInterval(() => {
      const inst = state.instances.find((i) => i.status.state === "connected");
      if (inst) log(inst, "server_event", "crystools.monitor", `{"cpu_utilization": ${(Math.random() * 40).toFixed(1)}}`);
    }, 15_000);
  } else {
    // Screenshots: a few ticks so running jobs show progress and a preview, then hold still.
    for (let k = 0; k < 12; k++) tick(0.5);
  }
  const drop = params.get("drop");
  if (drop) setTimeout(() => dropWorkflow(drop), 400);
  const clicks = (params.get("click") ?? "").split(",").filter(Boolean);
  clicks.forEach((click, i) => {
    // `open-detail@gpu-box` clicks inside that instance's card.
    const [testid, name] = click.split("@");
    const selector = name ? `[data-instance="${name}"] [data-testid="${testid}"]` : `[data-testid="${testid}"]`;
    setTimeout(() => document.querySelector<HTMLElement>(selector)?.click(), 600 + i * 400);
  });
}
