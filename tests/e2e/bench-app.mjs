// App-level benchmarks: the real app in its real webview under Xvfb, against fake ComfyUI servers
// that generate load and stamp what they send. Measures, from the benchmark issue:
//   2. progress-to-DOM latency at 1, 20 and 100 instances (20 progress messages/s each);
//   3. the preview path: displayed versus sent frames, CPU per 1,000 displayed frames, memory
//      while the source outruns the display;
//   4. scale: 100 instances, time until all are connected, idle and busy RSS/CPU;
//   6. cancel: click → interrupt request at the server, and click → "Cancelling…" on screen;
//   7. start-up with 20 instances and 10,000 jobs in the journal.
// Writes one JSON file (`--out`); `scripts/bench` turns it into docs/benchmarks.md.
//
// Usage: node bench-app.mjs [--smoke] [--profile debug|release] --out FILE
// Needs an X display and a session bus (scripts/bench runs it under xvfb-run dbus-run-session).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  between,
  binaries,
  byId,
  closeApp,
  findProcess,
  freePortRange,
  launchApp,
  median,
  percentile,
  run,
  startFake,
  startedAtMs,
  stop,
  stopAll,
  until,
  usage,
} from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    profile: { type: "string", default: "debug" },
    out: { type: "string" },
    only: { type: "string" },
  },
});
assert.ok(opts.out, "--out FILE is required");
const SMOKE = opts.smoke;
const BIN = binaries(opts.profile);
const need = (binary) => assert.ok(existsSync(binary), `${binary} is missing: build it first (scripts/bench does)`);
need(BIN.app);
need(BIN.fake);

/** Seconds a measure runs: full mode, smoke mode. */
const secs = (full, smoke) => (SMOKE ? smoke : full) * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...args) => console.error("[bench]", ...args);
const round = (n, digits = 1) => (n === null || n === undefined ? null : Number(n.toFixed(digits)));

let tmp;

function names(count) {
  const width = String(count).length;
  return Array.from({ length: count }, (_, i) => `Bench ${String(i + 1).padStart(width, "0")}`);
}

/** `count` fake servers on consecutive ports with the given load flags, and a send log. */
async function fakes(count, load = []) {
  const first = await freePortRange(count);
  const sendLog = path.join(tmp, `send-${first}.ndjson`);
  const { child, servers } = await startFake(
    BIN.fake,
    ["--instances", String(count), "--port", String(first), "--send-log", sendLog, ...load],
    count,
  );
  const byPort = new Map(servers.map((s, i) => [s.port, names(count)[i]]));
  return { child, servers, sendLog, byPort };
}

function readLog(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Starts the app on a fresh profile watching `servers` (named Bench 1…n), or on the seeded
 * database `db`. A fresh profile also has the default "Local" instance, unreachable here, as on a
 * new install. */
async function app(servers, { db } = {}) {
  const profile = mkdtempSync(path.join(tmp, "profile-"));
  const dbPath = db ?? path.join(profile, "comfy-monitor.db");
  const list = servers.map((s, i) => `${names(servers.length)[i]}=${s.url}`).join(",");
  const launchedAt = Date.now();
  const session = await launchApp(BIN.app, {
    COMFY_MONITOR_DB: dbPath,
    COMFY_MONITOR_SECRETS: "file",
    ...(db ? {} : { COMFY_MONITOR_INSTANCES: list }),
  });
  const pid = await until("the app process", () => findProcess(BIN.app, session.driver.pid));
  return { ...session, pid, launchedAt, profile };
}

async function quit(session) {
  await closeApp(session);
  rmSync(session.profile, { recursive: true, force: true });
}

/** Waits until `count` instance cards say "connected"; returns when (epoch ms). */
async function allConnected(browser, count, timeout = 120_000) {
  await browser.waitUntil(
    async () =>
      (await browser.execute(
        () => [...document.querySelectorAll('[data-testid="connection-state"]')].filter((e) => e.textContent.trim() === "connected").length,
      )) >= count,
    { timeout, interval: 50, timeoutMsg: `not all ${count} instances connected` },
  );
  return Date.now();
}

/** Records, inside the page, every change of a live job's step (instance, prompt, step, when). */
function recordSteps(browser) {
  return browser.execute(() => {
    const seen = (window.__steps = []);
    const now = () => performance.timeOrigin + performance.now();
    const look = (el) => {
      const step = el.getAttribute("data-step");
      if (step === null) return;
      const card = el.closest("[data-instance]");
      seen.push([card?.getAttribute("data-instance"), el.getAttribute("data-prompt-id"), Number(step), now()]);
    };
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === "attributes") look(r.target);
        for (const n of r.addedNodes ?? []) {
          if (n.nodeType !== 1) continue;
          if (n.matches('[data-testid="job-progress"]')) look(n);
          n.querySelectorAll?.('[data-testid="job-progress"]').forEach(look);
        }
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-step"] });
  });
}

/** Latency of every progress message sent in [from, to]: the first time the page showed that
 * job at that step or a later one. Steps the page never reflected are counted, not guessed. */
function latencies(sent, shown, byPort, from, to) {
  const index = new Map();
  for (const [instance, prompt, step, at] of shown) {
    const key = `${instance}\u0000${prompt}`;
    if (!index.has(key)) index.set(key, []);
    index.get(key).push([step, at]);
  }
  const out = [];
  let missed = 0;
  for (const m of sent) {
    if (m.kind !== "progress" || m.sent_ms < from || m.sent_ms > to) continue;
    const rows = index.get(`${byPort.get(m.port)}\u0000${m.prompt_id}`) ?? [];
    const hit = rows.find(([step, at]) => step >= m.value && at >= m.sent_ms - 1);
    if (hit) out.push(hit[1] - m.sent_ms);
    else missed++;
  }
  return { values: out, missed };
}

// ---- 2. progress to DOM ----

async function latency(count) {
  const steps = 100;
  const rate = 20;
  const f = await fakes(count, ["--steps", String(steps), "--progress-rate", String(rate), "--jobs-per-minute", "30"]);
  const s = await app(f.servers);
  try {
    await allConnected(s.browser, count);
    await recordSteps(s.browser);
    const warm = secs(5, 2);
    const measure = secs(30, 4);
    await sleep(warm);
    const from = Date.now();
    const before = usage(s.pid);
    await sleep(measure);
    const cost = between(before, usage(s.pid));
    const to = Date.now();
    await sleep(500); // let the last messages land
    const shown = await s.browser.execute(() => window.__steps);
    const { values, missed } = latencies(readLog(f.sendLog), shown, f.byPort, from, to);
    assert.ok(values.length > 0, `no progress message reached the page at ${count} instances`);
    return {
      instances: count,
      messages_per_s_each: rate,
      samples: values.length,
      not_shown: missed,
      p50_ms: round(percentile(values, 0.5)),
      p99_ms: round(percentile(values, 0.99)),
      max_ms: round(Math.max(...values)),
      // What the latency costs: the app process and its whole tree (WebKit included) meanwhile.
      app_core_percent: round(cost.corePercent),
      tree_core_percent: round(cost.treeCorePercent),
    };
  } finally {
    await quit(s);
    await stop(f.child);
  }
}

// ---- 3. preview path ----

async function previews(fps) {
  const f = await fakes(1, ["--steps", "100000", "--progress-rate", "10", "--jobs-per-minute", "6", "--preview-fps", String(fps), "--preview-size", "512"]);
  const s = await app(f.servers);
  try {
    await allConnected(s.browser, 1);
    await s.browser.execute(() => {
      window.__frames = 0;
      document.addEventListener(
        "load",
        (e) => {
          if (e.target instanceof HTMLImageElement && e.target.matches('[data-testid="preview"]')) window.__frames++;
        },
        true,
      );
    });
    await until("the first preview frame", () => s.browser.execute(() => window.__frames > 0), 60_000);
    await sleep(secs(3, 1));
    const u0 = usage(s.pid);
    const f0 = await s.browser.execute(() => window.__frames);
    const samples = [u0.treeRssMib];
    const measure = secs(60, 5);
    for (let t = 0; t < measure; t += 1000) {
      await sleep(1000);
      samples.push(usage(s.pid).treeRssMib);
    }
    const u1 = usage(s.pid);
    const f1 = await s.browser.execute(() => window.__frames);
    const seconds = (u1.at - u0.at) / 1000;
    const displayed = f1 - f0;
    return {
      source_fps: fps,
      seconds: round(seconds),
      displayed_fps: round(displayed / seconds),
      displayed_per_sent: round(displayed / (fps * seconds), 3),
      tree_cpu_s_per_1000_displayed: displayed > 0 ? round(((u1.treeCpuS - u0.treeCpuS) / displayed) * 1000, 2) : null,
      app_cpu_s_per_1000_displayed: displayed > 0 ? round(((u1.cpuS - u0.cpuS) / displayed) * 1000, 2) : null,
      tree_rss_mib_start: round(u0.treeRssMib),
      tree_rss_mib_end: round(u1.treeRssMib),
      tree_rss_mib_max: round(Math.max(...samples)),
      processes: u1.processes,
    };
  } finally {
    await quit(s);
    await stop(f.child);
  }
}

// ---- 4. scale ----

/** CPU (share of a core) and memory of the app and of its whole process tree: the median of
 * `windows` readings over `ms` in all. */
async function costOver(pid, ms, windows = 3) {
  const readings = [];
  for (let i = 0; i < windows; i++) {
    const a = usage(pid);
    await sleep(ms / windows);
    readings.push(between(a, usage(pid)));
  }
  const mid = (key) => round(median(readings.map((r) => r[key])), 2);
  return {
    windows,
    app_core_percent: mid("corePercent"),
    tree_core_percent: mid("treeCorePercent"),
    app_rss_mib: mid("rssMib"),
    app_private_mib: mid("privateMib"),
    tree_rss_mib: mid("treeRssMib"),
  };
}

async function scale(count) {
  const idleFakes = await fakes(count);
  let s = await app(idleFakes.servers);
  const result = { instances: count };
  try {
    const connectedAt = await allConnected(s.browser, count);
    result.all_connected_ms_from_launch = connectedAt - s.launchedAt;
    result.all_connected_ms_from_process_start = round(connectedAt - startedAtMs(s.pid), 0);
    await sleep(secs(10, 1));
    result.idle = await costOver(s.pid, secs(30, 3));
  } finally {
    await quit(s);
    await stop(idleFakes.child);
  }
  const busy = await fakes(count, ["--steps", "100000", "--progress-rate", "10", "--jobs-per-minute", "6"]);
  s = await app(busy.servers);
  try {
    await allConnected(s.browser, count);
    await until(
      `a running job on each of the ${count} instances`,
      async () => (await s.browser.execute(() => document.querySelectorAll('[data-testid="job-progress"][data-step]').length)) >= count,
      120_000,
    );
    await sleep(secs(5, 1));
    result.running = { progress_per_s_each: 10, ...(await costOver(s.pid, secs(30, 3))) };
  } finally {
    await quit(s);
    await stop(busy.child);
  }
  return result;
}

// ---- 6. cancel ----

async function cancel(times) {
  const f = await fakes(1, ["--steps", "100000", "--progress-rate", "10", "--jobs-per-minute", "120"]);
  const s = await app(f.servers);
  const toRequest = [];
  const toCancelling = [];
  try {
    await allConnected(s.browser, 1);
    await s.browser.execute(() => {
      const now = () => performance.timeOrigin + performance.now();
      document.addEventListener("click", (e) => {
        if (e.target.closest?.('[data-testid="cancel-job"]')) window.__clickAt = now();
      }, true);
      new MutationObserver(() => {
        if (window.__cancellingAt === undefined && document.querySelector('[data-cancelling="true"]')) window.__cancellingAt = now();
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["data-cancelling"] });
    });
    for (let i = 0; i < times; i++) {
      const button = await s.browser.$(`${byId("cancel-job")}:not([disabled])`);
      await button.waitForClickable({ timeout: 60_000 });
      await s.browser.execute(() => {
        window.__clickAt = undefined;
        window.__cancellingAt = undefined;
      });
      await button.click();
      const { clickAt, cancellingAt } = await until("the click to register", async () => {
        const t = await s.browser.execute(() => ({ clickAt: window.__clickAt, cancellingAt: window.__cancellingAt }));
        return t.clickAt !== undefined && t.cancellingAt !== undefined ? t : null;
      });
      const request = await until("the cancel request at the server", () =>
        readLog(f.sendLog).find((m) => m.kind === "request" && m.method === "POST" && /interrupt|cancel/.test(m.path) && m.received_ms >= clickAt - 1),
      );
      toRequest.push(request.received_ms - clickAt);
      toCancelling.push(cancellingAt - clickAt);
      await sleep(200);
    }
  } finally {
    await quit(s);
    await stop(f.child);
  }
  return {
    runs: times,
    click_to_request_p50_ms: round(median(toRequest)),
    click_to_request_max_ms: round(Math.max(...toRequest)),
    click_to_cancelling_p50_ms: round(median(toCancelling)),
    click_to_cancelling_max_ms: round(Math.max(...toCancelling)),
  };
}

// ---- 7. start-up ----

async function startup(runs) {
  need(BIN.bench);
  const count = 20;
  const jobs = SMOKE ? 1000 : 10_000;
  const f = await fakes(count);
  const fromLaunch = [];
  const fromProcess = [];
  try {
    for (let i = 0; i < runs; i++) {
      const dir = mkdtempSync(path.join(tmp, "startup-"));
      const db = path.join(dir, "comfy-monitor.db");
      const urls = f.servers.map((s) => s.url).join(",");
      await run(BIN.bench, ["seed-db", "--db", db, "--instances", String(count), "--jobs", String(jobs), "--urls", urls]);
      const s = await app(f.servers, { db });
      try {
        const loadedAt = Number(
          await until("the first snapshot on screen", () =>
            s.browser.execute((n) => (document.querySelectorAll('[data-testid="instance-card"]').length >= n ? document.documentElement.dataset.loadedAt : null), count),
          ),
        );
        fromLaunch.push(loadedAt - s.launchedAt);
        fromProcess.push(loadedAt - startedAtMs(s.pid));
      } finally {
        await quit(s);
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await stop(f.child);
  }
  return {
    instances: count,
    jobs,
    runs,
    process_start_to_state_p50_ms: round(median(fromProcess), 0),
    process_start_to_state_max_ms: round(Math.max(...fromProcess), 0),
    launch_request_to_state_p50_ms: round(median(fromLaunch), 0),
  };
}

async function main() {
  tmp = mkdtempSync(path.join(os.tmpdir(), "comfy-bench-app-"));
  const wanted = opts.only ? new Set(opts.only.split(",")) : null;
  const want = (name) => !wanted || wanted.has(name);
  const out = { mode: SMOKE ? "smoke" : "full", profile: opts.profile, measures: {}, errors: {} };
  // Every figure is written as soon as it exists; a measure that fails is recorded with its
  // error (a finding in itself) and the others still run.
  const save = () => writeFileSync(opts.out, JSON.stringify(out, null, 2) + "\n");
  async function measure(name, key, f) {
    if (!want(name)) return;
    log(key);
    try {
      const figure = await f();
      if (Array.isArray(out.measures[name])) out.measures[name].push(figure);
      else out.measures[name] = figure;
    } catch (error) {
      log(`${key} failed: ${error.message ?? error}`);
      out.errors[key] = String(error.message ?? error).split("\n")[0];
      await stopAll();
    }
    save();
  }
  try {
    if (want("latency")) out.measures.latency = [];
    for (const n of SMOKE ? [1, 5] : [1, 20, 100]) await measure("latency", `latency at ${n} instances`, () => latency(n));
    if (want("preview")) out.measures.preview = [];
    for (const fps of SMOKE ? [10, 60] : [10, 30, 120]) await measure("preview", `previews at ${fps} fps`, () => previews(fps));
    await measure("scale", "scale", () => scale(SMOKE ? 10 : 100));
    await measure("cancel", "cancel", () => cancel(SMOKE ? 2 : 20));
    await measure("startup", "start-up", () => startup(SMOKE ? 1 : 5));
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  log(`wrote ${opts.out}`);
  if (Object.keys(out.errors).length > 0) process.exitCode = 1;
}

await main();
