// A walk through the real app against a real ComfyUI, by hand (CI has no ComfyUI): what a new
// user does, with a screenshot of every step.
//
//   1. add the server in the settings, after testing the connection;
//   2. queue a workflow from the submit dialog and watch its preview change;
//   3. another client queues a job (plain HTTP, its own client id): it waits, labelled as such;
//   4. cancel ours from its card: it is interrupted, the other client's job runs untouched;
//   5. quit the app while a job of ours runs; it finishes meanwhile; start the app again on the
//      same profile: the history holds every job above, and that one's real outcome.
//
// The server must have the test nodes (MonitorTestSampler) that ../shared/comfyui-peer installs.
//
// Usage (binaries from $CARGO_TARGET_DIR/debug, like the end-to-end test):
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \
//     node tests/e2e/real-comfyui.mjs --url http://127.0.0.1:8189 [--shots DIR]
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ROOT, TIMEOUT, binaries, byId, closeApp, launchApp, pageOf, stopAll, until } from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8188" },
    name: { type: "string", default: "Studio" },
    shots: { type: "string", default: path.join(ROOT, "tests", "e2e", "screenshots", "real") },
  },
});
const { app: APP } = binaries();
assert.ok(existsSync(APP), `${APP} is missing; build it first (cargo build -p comfy-monitor)`);
const log = (...a) => console.error("[real]", ...a);
let browser;
const { el, click, waitForText, waitForAttr } = pageOf(() => browser);
const LONG = 120_000;

async function shot(name) {
  const file = path.join(opts.shots, `${name}.png`);
  await browser.saveScreenshot(file);
  log("screenshot", file);
}

function workflow(steps, delayMs, prefix) {
  return {
    1: {
      class_type: "MonitorTestSampler",
      inputs: { steps, step_delay_ms: delayMs, preview_size: 256, seed: Math.floor(Math.random() * 1e9) },
      _meta: { title: "Sampler" },
    },
    2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: prefix }, _meta: { title: "Save" } },
  };
}

/** Queues through the submit dialog; returns the new job's prompt id. */
async function submitFromDialog(wf) {
  const before = new Set(await promptIds());
  await click(byId("open-submit"));
  const dialog = await el(byId("submit-dialog"));
  await (await el(byId("workflow-text"), dialog)).setValue(JSON.stringify(wf));
  await (await el(byId("submit-instance"), dialog)).selectByVisibleText(opts.name);
  await click(byId("submit-confirm"), dialog);
  await dialog.waitForExist({ reverse: true, timeout: TIMEOUT, timeoutMsg: "the submit dialog stayed open" });
  return until("the submitted job on screen", async () => (await promptIds()).find((p) => !before.has(p)));
}

function promptIds() {
  return browser.execute(() => [...document.querySelectorAll("[data-prompt-id]")].map((e) => e.getAttribute("data-prompt-id")));
}

/** Another client: a plain POST /prompt with a client id that is not the app's. */
async function queueAsOtherClient(wf) {
  const res = await fetch(new URL("/prompt", opts.url), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: wf, client_id: "browser-tab-1" }),
  });
  const body = await res.text();
  assert.equal(res.status, 200, `the server refused the other client's job: ${body}`);
  return JSON.parse(body).prompt_id;
}

async function serverHistory(id) {
  const res = await fetch(new URL(`/history/${id}`, opts.url));
  return (await res.json())[id];
}

function card() {
  return el(byId("instance-card", `[data-instance="${opts.name}"]`));
}

async function launch(db) {
  const session = await launchApp(APP, { COMFY_MONITOR_DB: db, COMFY_MONITOR_SECRETS: "file" });
  browser = session.browser;
  return session;
}

async function main() {
  rmSync(opts.shots, { recursive: true, force: true });
  mkdirSync(opts.shots, { recursive: true });
  const profile = mkdtempSync(path.join(os.tmpdir(), "comfy-monitor-real-"));
  const db = path.join(profile, "comfy-monitor.db");
  let session = await launch(db);
  try {
    log("1. add the server in the settings");
    await click(byId("open-settings"));
    const settings = await el(byId("settings"));
    await click(byId("add-instance"), settings);
    await (await el(byId("instance-name"), settings)).setValue(opts.name);
    await (await el(byId("instance-url"), settings)).setValue(opts.url);
    await click(byId("test-connection"), settings);
    await waitForAttr(byId("test-step", '[data-step="websocket"]'), "data-ok", ["true"], settings, LONG);
    await shot("01-settings-tested");
    await click(byId("save-instance"), settings);
    await el(byId("settings-row", `[data-instance="${opts.name}"]`), settings);
    await click(byId("close-settings"));
    await waitForText(byId("connection-state"), "connected", await card());
    await shot("02-connected");

    log("2. queue a workflow from the submit dialog; watch the preview change");
    const ours = await submitFromDialog(workflow(60, 150, "monitor_real"));
    const c = await card();
    await waitForAttr(byId("job", `[data-prompt-id="${ours}"]`), "data-state", ["running"], c, LONG);
    const preview = await el(byId("preview"), c, 60_000);
    await browser.waitUntil(async () => (await preview.getProperty("naturalWidth")) > 0, { timeout: 60_000, timeoutMsg: "no preview rendered" });
    const src1 = await preview.getAttribute("src");
    await shot("03-running-preview-a");
    await browser.waitUntil(async () => (await preview.getAttribute("src")) !== src1, { timeout: 30_000, timeoutMsg: "the preview never changed" });
    await new Promise((r) => setTimeout(r, 1500));
    await shot("04-running-preview-b");

    log("3. another client queues a job: it waits, labelled as another client's");
    const theirs = await queueAsOtherClient(workflow(8, 100, "other_client"));
    await click(byId("open-detail"), c);
    const detail = await el(byId("instance-detail"));
    const row = await el(byId("queue-row", `[data-prompt-id="${theirs}"]`), detail, 30_000);
    assert.equal(await row.getAttribute("data-state"), "pending");
    assert.equal(await row.getAttribute("data-origin"), "other");
    await shot("05-detail-other-client-pending");
    await click(byId("close-detail"));

    log("4. cancel ours from its card; the other client's job runs untouched");
    await click(byId("cancel-job"), await card());
    await waitForAttr(byId("last-job"), "data-state", ["interrupted"], await card(), LONG);
    await shot("06-cancelled");
    await until("the other client's job to finish on the server", async () => (await serverHistory(theirs))?.status?.completed === true, 120_000);
    await click(byId("open-detail"), await card());
    const detail2 = await el(byId("instance-detail"));
    await waitForAttr(byId("history-row", `[data-prompt-id="${theirs}"]`), "data-state", ["success"], detail2, 30_000);
    await waitForAttr(byId("history-row", `[data-prompt-id="${ours}"]`), "data-state", ["interrupted"], detail2, 30_000);
    await shot("07-history-after-cancel");
    await click(byId("close-detail"));

    log("5. quit while a job of ours runs; it finishes meanwhile; start again");
    const whileClosed = await submitFromDialog(workflow(20, 250, "while_closed"));
    await waitForAttr(byId("job", `[data-prompt-id="${whileClosed}"]`), "data-state", ["running"], await card(), LONG);
    await closeApp(session);
    session = undefined;
    await until("the job to finish with the app closed", async () => (await serverHistory(whileClosed))?.status?.completed === true, 120_000);
    session = await launch(db);
    await click(byId("open-detail"), await card());
    const detail3 = await el(byId("instance-detail"));
    await waitForAttr(byId("history-row", `[data-prompt-id="${whileClosed}"]`), "data-state", ["success"], detail3, 60_000);
    for (const [id, state] of [[ours, "interrupted"], [theirs, "success"]]) {
      assert.equal(await (await el(byId("history-row", `[data-prompt-id="${id}"]`), detail3)).getAttribute("data-state"), state);
    }
    await shot("08-reopened-history");
    log(`done: screenshots in ${opts.shots}`);
  } finally {
    if (session) await closeApp(session).catch(() => undefined);
    await stopAll();
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
