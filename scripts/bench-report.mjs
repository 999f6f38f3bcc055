// Turns the benchmark JSON (engine.json from comfy-bench, app.json from tests/e2e/bench-app.mjs)
// into the tables of docs/benchmarks.md, between its `<!-- bench:begin -->` and
// `<!-- bench:end -->` marks and, for the estimate accuracy measure, its `<!-- accuracy:begin -->`
// and `<!-- accuracy:end -->` marks (the rest of the file is written by hand), and into one JSON
// file. Without --markdown it only prints the tables. It exits non-zero when a figure is missing
// (after writing), so a harness that stops measuring something cannot pass its smoke run.
//
// Without --app (`scripts/bench --accuracy`: `comfy-bench engine --only accuracy`) only the
// accuracy section is written, and in the JSON file only `engine.measures.accuracy` (with
// `accuracy_run`) is replaced: the other figures stay those of their own run.
//
// Usage: node scripts/bench-report.mjs --engine FILE [--app FILE] [--markdown FILE] [--json FILE]
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    engine: { type: "string" },
    app: { type: "string" },
    markdown: { type: "string" },
    json: { type: "string" },
  },
});
if (!opts.engine) {
  console.error("usage: bench-report.mjs --engine FILE [--app FILE] [--markdown FILE] [--json FILE]");
  process.exit(2);
}
const engine = JSON.parse(readFileSync(opts.engine, "utf8"));
const accuracyOnly = !opts.app;
const app = accuracyOnly ? {} : JSON.parse(readFileSync(opts.app, "utf8"));
const missing = [];

/** The value at a dotted path, or a note that it is missing. */
function get(root, where, dotted) {
  let v = root;
  for (const key of dotted.split(".")) v = v?.[key];
  if (v === undefined || v === null) missing.push(`${where}: ${dotted}`);
  return v;
}
const e = (p) => get(engine, "engine", p);
const a = (p) => get(app, "app", p);
const fmt = (v, unit = "") => (v === undefined || v === null ? "–" : `${v}${unit}`);
const kib = (bytes) => (typeof bytes === "number" ? Number((bytes / 1024).toFixed(1)) : null);
const mib = (bytes) => (typeof bytes === "number" && !Number.isNaN(bytes) ? Number((bytes / 2 ** 20).toFixed(1)) : null);
const verdict = (ok) => (ok === null ? "" : ok ? "met" : "**missed**");
const atMost = (v, limit) => (typeof v === "number" ? v <= limit : null);

function machine() {
  const cpu = os.cpus();
  let osName = `${os.type()} ${os.release()}`;
  try {
    osName = readFileSync("/etc/os-release", "utf8").match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? osName;
  } catch {
    // keep the kernel name
  }
  let rustc = "";
  try {
    rustc = execFileSync("rustc", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    // not on PATH
  }
  return {
    cpus: cpu.length,
    cpu_model: cpu[0]?.model ?? "unknown",
    mem_gib: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    os: osName,
    rustc,
  };
}


/** The estimate accuracy section (comfy-bench's `accuracy` measure). */
function accuracySection() {
  const out = [];
  const acc = e("measures.accuracy");
  const t = (head, rows) => {
    out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
    for (const r of rows) out.push(`| ${r.join(" | ")} |`);
    out.push("");
  };
  if (!acc) return out;
  const pct = (v) => (typeof v === "number" ? `${v} %` : "—");
  // A mean error, with how many readings had an answer when not all did.
  const cell = (errs) => {
    if (!errs || errs.answered === 0) return "—";
    const share = errs.answered < errs.of ? ` (${errs.answered} of ${errs.of})` : "";
    return `${pct(errs.mean_error_percent)}${share}`;
  };
  const at = (row, percent) => row.at.find((p) => p.percent === percent) ?? {};
  const points = [25, 50, 75];
  const m = machine();
  const runLine = `Run ${new Date().toISOString().slice(0, 10)} in ${engine.mode} mode, ${acc.sessions} session${acc.sessions === 1 ? "" : "s"} × ${acc.jobs} jobs (${acc.workflows.length} workflows × ${acc.runs_per_workflow} runs each), durations jittered ±${acc.jitter_percent} %; true run times ${acc.run_s_min}–${acc.run_s_max} s (median ${acc.run_s_p50} s).`;
  out.push(
    runLine,
    `Virtual time: the figures do not depend on the machine (${m.cpus} × ${m.cpu_model} here). Reproduce with \`scripts/bench --accuracy\`.`,
    "",
    "Mean absolute error of the time left, as a share of the job's true run, at 25 / 50 / 75 % of the run, by earlier runs of the same workflow. " +
      "Estimate: `estimate.eta_ms` (learned from past runs). Step rate: `eta_ms` (measured steps per second); \"(n of m)\" where not every reading had an answer, \"—\" where none had.",
    "",
  );
  t(
    ["earlier runs", "jobs", ...points.map((p) => `estimate at ${p} %`), ...points.map((p) => `step rate at ${p} %`)],
    (acc.live ?? []).map((r) => [
      r.earlier_runs,
      r.jobs,
      ...points.map((p) => cell(at(r, p).estimate)),
      ...points.map((p) => cell(at(r, p).step_rate)),
    ]),
  );
  out.push(
    "Head to head, on the readings where the step rate had an answer: the ETA the app shows (the estimate; where nothing was learned yet, the step rate's) / the step rate alone; p90 in brackets:",
    "",
  );
  t(
    ["earlier runs", ...points.map((p) => `at ${p} %`)],
    (acc.live ?? []).map((r) => [
      r.earlier_runs,
      ...points.map((p) => {
        const x = at(r, p);
        if (!x.step_rate || x.step_rate.answered === 0) return "—";
        const est = x.estimate_where_step_rate;
        const shown = x.shown_where_step_rate ?? est;
        const unanswered = est && est.answered < est.of ? `, no estimate yet on ${est.of - est.answered}` : "";
        return `${pct(shown?.mean_error_percent)} (${pct(shown?.p90_error_percent)}) / ${pct(x.step_rate.mean_error_percent)} (${pct(x.step_rate.p90_error_percent)}) on ${x.step_rate.answered}${unanswered}`;
      }),
    ]),
  );
  out.push("Another client's jobs, observed (queue snapshots and the outcome only; no node or step is seen):", "");
  t(
    ["earlier runs", "jobs", ...points.map((p) => `estimate at ${p} %`), "p90 at 50 %"],
    (acc.observed ?? []).map((r) => [
      r.earlier_runs,
      r.jobs,
      ...points.map((p) => cell(at(r, p).estimate)),
      pct(at(r, 50).estimate?.p90_error_percent),
    ]),
  );
  const tg = acc.targets ?? {};
  const halfWay = e("measures.accuracy.targets.half_way_after_3_percent");
  out.push(
    `Targets: within ${tg.half_way_after_3_max_percent} % at half-way after three earlier runs: ${pct(halfWay)}, ${verdict(tg.half_way_after_3_met ?? null)}. ` +
      `Better than the step-rate ETA at every point where the step rate has an answer: at ${tg.step_rate_points_beaten} of ${tg.step_rate_points} points, ${verdict(tg.beats_step_rate_everywhere ?? null)}.`,
    "",
  );
  return out;
}

const m = machine();
const lines = [];
if (!accuracyOnly) {
  const latencyAt = (n) => (app.measures?.latency ?? []).find((m) => m.instances === n);
  const lat20 = latencyAt(20) ?? latencyAt(Math.max(...(app.measures?.latency ?? []).map((m) => m.instances)));
  const scale = app.measures?.scale ?? {};
  const idleRss = scale.idle?.app_rss_mib;
  const idleCpu = scale.idle?.app_core_percent;

  const targets = [
    ["Progress → DOM latency, p99 at 20 instances", fmt(lat20?.p99_ms, " ms"), "≤ 50 ms", atMost(lat20?.p99_ms, 50)],
    ["Backend per-frame cost vs bare reader", fmt(e("measures.per_frame.ratio_previews"), "×") + " previews, " + fmt(e("measures.per_frame.ratio_progress"), "×") + " progress", "≤ 1.5×", atMost(Math.max(engine.measures?.per_frame?.ratio_previews ?? Infinity, engine.measures?.per_frame?.ratio_progress ?? Infinity), 1.5)],
    [`${fmt(scale.instances)} instances idle, app process`, `${fmt(idleRss, " MiB")}, ${fmt(idleCpu, " %")} of a core`, "≤ 60 MB, ≤ 0.5 %", typeof idleRss === "number" && typeof idleCpu === "number" ? idleRss * 1.048576 <= 60 && idleCpu <= 0.5 : null],
    ["Reconnect, p99", fmt(e("measures.reconnect.p99_ms"), " ms"), "≤ 1500 ms", atMost(engine.measures?.reconnect?.p99_ms, 1500)],
    ["Cancel: click → “Cancelling…”, slowest", fmt(a("measures.cancel.click_to_cancelling_max_ms"), " ms"), "≤ 100 ms", atMost(app.measures?.cancel?.click_to_cancelling_max_ms, 100)],
    ["Start-up to last-known state, median", fmt(a("measures.startup.process_start_to_state_p50_ms"), " ms"), "≤ 1000 ms", atMost(app.measures?.startup?.process_start_to_state_p50_ms, 1000)],
    ["Soak: RSS growth", fmt(e("measures.soak.rss_growth_mib"), " MiB"), "≤ 10 MB", atMost(engine.measures?.soak?.rss_growth_mib, 10 / 1.048576)],
  ];

  const table = (head, rows) => {
    lines.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
    for (const r of rows) lines.push(`| ${r.join(" | ")} |`);
    lines.push("");
  };
  lines.push(
    `Run ${new Date().toISOString().slice(0, 10)} in ${app.mode} mode (${app.profile} build) on ${m.cpus} × ${m.cpu_model}, ${m.mem_gib} GiB, ${m.os}${m.rustc ? `, ${m.rustc}` : ""}.`,
    `Reproduce with \`scripts/bench\` (or \`scripts/bench --smoke\` for the short run CI does). Each figure is a median over the run unless it says p99 or max.`,
    "",
    "### Targets",
    "",
  );
  table(["measure", "figure", "target", ""], targets.map(([what, figure, target, ok]) => [what, figure, target, verdict(ok)]));

  lines.push("### 1. Backend per-frame cost (CPU time through the engine, decode to sink, vs a bare tokio-tungstenite reader in the same run)", "");
  table(
    ["frames", "engine", "bare reader", "ratio"],
    [
      [`1,000 preview frames (${fmt(engine.measures?.per_frame?.preview_px)} px JPEG, ${fmt(kib(engine.measures?.per_frame?.preview_frame_bytes))} KiB)`, fmt(e("measures.per_frame.engine.cpu_ms_per_1000_previews"), " ms"), fmt(e("measures.per_frame.bare_reader.cpu_ms_per_1000_previews"), " ms"), fmt(e("measures.per_frame.ratio_previews"), "×")],
      ["1,000 progress messages", fmt(e("measures.per_frame.engine.cpu_ms_per_1000_progress"), " ms"), fmt(e("measures.per_frame.bare_reader.cpu_ms_per_1000_progress"), " ms"), fmt(e("measures.per_frame.ratio_progress"), "×")],
    ],
  );

  lines.push("### 2. Progress → DOM latency (fake server stamps the send, the page the attribute change)", "");
  table(
    ["instances", "messages/s each", "samples", "not shown", "p50", "p99", "max", "CPU meanwhile: app / app + WebKit"],
    (a("measures.latency") ?? []).map((l) => [
      l.instances,
      l.messages_per_s_each,
      l.samples,
      l.not_shown,
      fmt(l.p50_ms, " ms"),
      fmt(l.p99_ms, " ms"),
      fmt(l.max_ms, " ms"),
      `${fmt(l.app_core_percent, " %")} / ${fmt(l.tree_core_percent, " %")} of a core`,
    ]),
  );

  lines.push("### 3. Preview path (one instance, 512 px JPEG frames)", "");
  table(
    ["source fps", "displayed fps", "displayed / sent", "CPU per 1,000 displayed (app tree)", "(app process)", "tree RSS start → end (max)"],
    (a("measures.preview") ?? []).map((p) => [
      p.source_fps,
      fmt(p.displayed_fps),
      fmt(p.displayed_per_sent),
      fmt(p.tree_cpu_s_per_1000_displayed, " s"),
      fmt(p.app_cpu_s_per_1000_displayed, " s"),
      `${fmt(p.tree_rss_mib_start)} → ${fmt(p.tree_rss_mib_end)} (${fmt(p.tree_rss_mib_max)}) MiB`,
    ]),
  );

  lines.push(`### 4. Scale (${fmt(scale.instances)} instances)`, "");
  table(
    ["", "app process", "app + WebKit processes"],
    [
      ["all connected, from process start", fmt(a("measures.scale.all_connected_ms_from_process_start"), " ms"), ""],
      ["idle: RSS", fmt(a("measures.scale.idle.app_rss_mib"), " MiB"), fmt(a("measures.scale.idle.tree_rss_mib"), " MiB")],
      ["idle: private memory (RSS less shared library pages)", fmt(a("measures.scale.idle.app_private_mib"), " MiB"), ""],
      ["idle: CPU", fmt(a("measures.scale.idle.app_core_percent"), " % of a core"), fmt(a("measures.scale.idle.tree_core_percent"), " %")],
      ["a job each at 10 progress/s: RSS", fmt(a("measures.scale.running.app_rss_mib"), " MiB"), fmt(a("measures.scale.running.tree_rss_mib"), " MiB")],
      ["a job each at 10 progress/s: private memory", fmt(a("measures.scale.running.app_private_mib"), " MiB"), ""],
      ["a job each at 10 progress/s: CPU", fmt(a("measures.scale.running.app_core_percent"), " % of a core"), fmt(a("measures.scale.running.tree_core_percent"), " %")],
    ],
  );

  const es = engine.measures?.scale;
  if (es) {
    lines.push(
      `The engine alone (\`comfy-bench\`, no window), ${fmt(es.instances)} idle instances in one process: all connected in ${fmt(es.all_connected_ms, " ms")}, ` +
        `${fmt(es.idle_core_percent, " %")} of a core, resident set +${fmt(es.rss_growth_mib, " MiB")} over the process before them ` +
        `(${fmt(es.rss_growth_per_instance_kib, " KiB")} per instance). The rest of the app process's memory is GTK and WebKit's UI side.`,
      "",
    );
  }

  lines.push("### 5. Reconnect (server restarted; until the engine is connected and tracking again)", "");
  const rc = engine.measures?.reconnect ?? {};
  table(
    ["restarts", "outage", "p50", "p99", "max", "of which backoff wait (p50 / p99)", "handshake (p50 / p99)"],
    [[
      fmt(e("measures.reconnect.restarts")),
      `${fmt(rc.outage_min_ms)}–${fmt(rc.outage_max_ms)} ms`,
      fmt(e("measures.reconnect.p50_ms"), " ms"),
      fmt(e("measures.reconnect.p99_ms"), " ms"),
      fmt(rc.max_ms, " ms"),
      `${fmt(rc.backoff_wait_p50_ms, " ms")} / ${fmt(rc.backoff_wait_p99_ms, " ms")}`,
      `${fmt(rc.handshake_p50_ms, " ms")} / ${fmt(rc.handshake_p99_ms, " ms")}`,
    ]],
  );

  lines.push("### 6. Cancel (WebDriver click on the card's Cancel)", "");
  table(
    ["runs", "click → request at the server (p50 / max)", "click → “Cancelling…” (p50 / max)"],
    [[
      fmt(a("measures.cancel.runs")),
      `${fmt(a("measures.cancel.click_to_request_p50_ms"), " ms")} / ${fmt(app.measures?.cancel?.click_to_request_max_ms, " ms")}`,
      `${fmt(a("measures.cancel.click_to_cancelling_p50_ms"), " ms")} / ${fmt(app.measures?.cancel?.click_to_cancelling_max_ms, " ms")}`,
    ]],
  );

  lines.push("### 7. Start-up (process start → first snapshot on screen)", "");
  table(
    ["instances", "jobs in the journal", "runs", "median", "max", "from the launch request, median"],
    [[fmt(a("measures.startup.instances")), fmt(a("measures.startup.jobs")), fmt(a("measures.startup.runs")), fmt(app.measures?.startup?.process_start_to_state_p50_ms, " ms"), fmt(app.measures?.startup?.process_start_to_state_max_ms, " ms"), fmt(app.measures?.startup?.launch_request_to_state_p50_ms, " ms")]],
  );

  lines.push("### 8. Soak (engine + journal on a real SQLite file, one instance)", "");
  const sk = engine.measures?.soak ?? {};
  table(
    ["preview frames sent (decoded)", "jobs (journalled)", "RSS after warm-up → end", "growth", "SQLite file + WAL at the end", "after closing"],
    [[
      `${fmt(e("measures.soak.previews_expected"))} (${fmt(sk.preview_events)})`,
      `${fmt(e("measures.soak.jobs"))} (${fmt(sk.terminal_states_written)})`,
      `${fmt(mib(sk.rss_start_kib * 1024))} → ${fmt(mib(sk.rss_end_kib * 1024))} MiB`,
      fmt(e("measures.soak.rss_growth_mib"), " MiB"),
      `${fmt(mib(e("measures.soak.db_total_bytes")))} MiB`,
      `${fmt(mib(sk.db_bytes_after_close))} MiB`,
    ]],
  );

  const errors = { ...(engine.errors ?? {}), ...(app.errors ?? {}) };
  if (Object.keys(errors).length > 0) {
    lines.push("### Measures that failed", "");
    for (const [what, why] of Object.entries(errors)) lines.push(`- ${what}: ${why}`);
    lines.push("");
  }
}

const accuracy = accuracySection();
if (accuracyOnly) lines.push(...accuracy);
const text = lines.join("\n");
console.log(accuracyOnly ? text : `${text}\n## Estimate accuracy\n\n${accuracy.join("\n")}`);

if (opts.json) {
  let record = { machine: m, engine, app };
  if (accuracyOnly) {
    // Only the accuracy figures are new: the others stay those of their own run.
    record = JSON.parse(readFileSync(opts.json, "utf8"));
    record.engine ??= { measures: {} };
    record.engine.measures ??= {};
    record.engine.measures.accuracy = engine.measures?.accuracy;
  }
  record.accuracy_run = { date: new Date().toISOString().slice(0, 10), mode: engine.mode, machine: m };
  writeFileSync(opts.json, JSON.stringify(record, null, 2) + "\n");
}

/** Replaces what is between `begin` and `end` in `doc`. */
function fill(doc, begin, end, body) {
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) {
    console.error(`${opts.markdown} has no ${begin} … ${end} section to fill`);
    process.exit(1);
  }
  return `${doc.slice(0, i + begin.length)}\n${body}\n${doc.slice(j)}`;
}
if (opts.markdown) {
  let doc = readFileSync(opts.markdown, "utf8");
  if (!accuracyOnly) doc = fill(doc, "<!-- bench:begin -->", "<!-- bench:end -->", text);
  doc = fill(doc, "<!-- accuracy:begin -->", "<!-- accuracy:end -->", accuracy.join("\n"));
  writeFileSync(opts.markdown, doc);
  console.error(`wrote ${opts.markdown}${opts.json ? ` and ${opts.json}` : ""}`);
}

// Written anyway, with "–" where a figure is missing: a measure that could not run is a finding.
if (missing.length) {
  console.error(`missing figures:\n  ${missing.join("\n  ")}`);
  process.exit(1);
}
