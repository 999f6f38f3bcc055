// End-to-end: the real app in its real webview, against a fake ComfyUI over real sockets.
//
// Starts `fake-comfyui` on a fixed free port (so it can be restarted mid-job), launches the app
// through tauri-driver (which drives Debian's WebKitWebDriver) with a throwaway database, and
// walks what a user does: add the server in the settings, close the window (the page is then
// sent nothing to paint) and get a desktop notification when a job finishes, bring the window
// back with the notification's Show (the page catches up at once), submit a
// workflow and watch it run with a live preview, cancel a job, delete a pending one, live through
// a server restart, and reload the window. A screenshot of every step goes to
// tests/e2e/screenshots/.
//
// Needs an X display (xvfb-run) and a session bus (dbus-run-session). On them it starts a window
// manager (openbox, so the window can be closed the way a user closes it) and a notification
// server (dunst), and watches the bus with dbus-monitor. Binaries come from
// $CARGO_TARGET_DIR/debug (default: <repo>/target/debug).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ROOT,
  TIMEOUT,
  binaries,
  byId,
  closeApp,
  freePort,
  launchApp,
  run,
  start,
  startFake as startFakeServers,
  stop,
  stopAll,
  pageOf,
  until,
} from "./harness.mjs";

const { app: APP, fake: FAKE } = binaries();
const SHOTS = path.join(ROOT, "tests", "e2e", "screenshots");
const FAKE_NAME = "Studio GPU";
/** An instance on a port nobody listens on, provisioned through the environment. */
const NOWHERE = "Nowhere";
const WINDOW_TITLE = "Comfy Monitor";

let session;
let browser;
const { el, click, waitForText, waitForAttr } = pageOf(() => browser);
let fake;
let fakePort;
let profile;
/** Everything dbus-monitor printed about notifications since the start. */
let busLog = "";

/** The folder the test's instance saves its outputs into. */
function outputs() {
  return path.join(profile, "outputs");
}

async function startFake() {
  // Slow steps, so a job is still running when the test acts on it.
  ({ child: fake } = await startFakeServers(FAKE, ["--instances", "1", "--port", String(fakePort), "--step-delay-ms", "60"]));
}

function stopFake() {
  return stop(fake, "SIGKILL");
}

async function shot(name) {
  const file = path.join(SHOTS, `${name}.png`);
  await browser.saveScreenshot(file);
  return file;
}

function card(name) {
  return el(byId("instance-card", `[data-instance="${name}"]`));
}

/** An API-format workflow the fake (and the real test nodes) run: a sampler with previews
 * (`MonitorTestPreviewMethodSampler` previews only when the job's preview method allows). */
function workflow(steps, prefix, sampler = "MonitorTestSampler") {
  return JSON.stringify({
    1: {
      class_type: sampler,
      inputs: { steps, step_delay_ms: 60, preview_size: 64, seed: Math.floor(Math.random() * 1e9) },
      _meta: { title: "Test sampler" },
    },
    2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: prefix } },
  });
}

/** Submits a workflow through the submit dialog, with the previews asked for ("default": the
 * server's setting); returns the new job's prompt id. */
async function submit(steps, prefix, { preview = "default", sampler } = {}) {
  const known = new Set(await seenPromptIds());
  await click(byId("open-submit"));
  const dialog = await el(byId("submit-dialog"));
  const text = await el(byId("workflow-text"), dialog);
  await text.setValue(workflow(steps, prefix, sampler));
  const select = await el(byId("submit-instance"), dialog);
  await select.selectByVisibleText(FAKE_NAME);
  await (await el(byId("submit-preview"), dialog)).selectByAttribute("value", preview);
  return confirmSubmit(dialog, known);
}

/** Confirms the submit dialog; returns the prompt id of the job that then appears (one the UI
 * did not show among `known` before). */
async function confirmSubmit(dialog, known) {
  await click(byId("submit-confirm"), dialog);
  await dialog.waitForExist({ reverse: true, timeout: TIMEOUT, timeoutMsg: "the submit dialog stayed open" });
  let id;
  await browser.waitUntil(
    async () => {
      id = (await seenPromptIds()).find((p) => !known.has(p));
      return id !== undefined;
    },
    { timeout: TIMEOUT, interval: 100, timeoutMsg: "the submitted job never appeared" },
  );
  return id;
}

/** Prompt ids of every job the UI shows anywhere right now. */
function seenPromptIds() {
  return browser.execute(() =>
    [...document.querySelectorAll("[data-prompt-id]")].map((e) => e.getAttribute("data-prompt-id")),
  );
}

/** Records every text a selector shows from now on (a MutationObserver inside the page), so a
 * state that lasts a moment is not missed between two polls. */
function record(key, selector, attr) {
  return browser.execute(
    (key, selector, attr) => {
      const seen = (window[`__seen_${key}`] = []);
      const look = () => {
        for (const e of document.querySelectorAll(selector)) {
          const v = attr ? e.getAttribute(attr) : e.textContent.trim();
          if (seen[seen.length - 1] !== v) seen.push(v);
        }
      };
      new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
      look();
    },
    key,
    selector,
    attr ?? null,
  );
}

function recorded(key) {
  return browser.execute((key) => window[`__seen_${key}`] ?? [], key);
}

/** Titles of the windows the window manager shows (a hidden window is not managed). */
async function managedWindows() {
  const { stdout } = await run("wmctrl", ["-l"]);
  return stdout.split("\n").filter(Boolean).map((line) => line.split(/\s+/).slice(3).join(" "));
}

/** The Notify calls seen on the session bus, parsed from dbus-monitor's text: app name, icon,
 * summary and body are the first strings; then come the action pairs and the hints. */
function notifications() {
  return busLog
    .split(/\n(?=\S)/)
    .filter((m) => m.startsWith("method call") && /member=Notify\b/.test(m))
    .map((m) => {
      const strings = [...m.matchAll(/^\s+string "([\s\S]*?)"$/gm)].map((x) => x[1]);
      const [appName, , summary, body] = strings;
      const rest = strings.slice(4);
      const at = rest.indexOf("default");
      return {
        appName,
        summary,
        body,
        defaultAction: at >= 0 ? rest[at + 1] : undefined,
        openFolder: rest.includes("open-folder"),
        image: rest.includes("image-data"),
      };
    });
}

describe("comfy-monitor desktop app", () => {
  before(async () => {
    for (const binary of [APP, FAKE]) {
      assert.ok(existsSync(binary), `${binary} is missing; build it first (see scripts/test-all)`);
    }
    rmSync(SHOTS, { recursive: true, force: true });
    mkdirSync(SHOTS, { recursive: true });
    profile = mkdtempSync(path.join(os.tmpdir(), "comfy-monitor-e2e-"));
    // A desktop for the app: a window manager (so closing the window is a real close request)
    // and a notification server, both up before the app starts.
    start("openbox", ["--sm-disable"]);
    await until("the window manager", () => run("wmctrl", ["-m"]).then(() => true, () => false));
    const monitor = start("dbus-monitor", ["--session", "interface='org.freedesktop.Notifications'"]);
    monitor.stdout.setEncoding("utf8");
    monitor.stdout.on("data", (chunk) => (busLog += chunk));
    start("dunst", []);
    // Asked without activating it: a bus call to the name itself would start a second dunst.
    const owned = () =>
      run("gdbus", ["call", "--session", "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus",
        "--method", "org.freedesktop.DBus.NameHasOwner", "org.freedesktop.Notifications"]).then(({ stdout }) => stdout.includes("true"), () => false);
    await until("the notification server", owned);
    fakePort = await freePort();
    await startFake();
    const closedPort = await freePort();
    session = await launchApp(APP, {
      COMFY_MONITOR_DB: path.join(profile, "comfy-monitor.db"),
      COMFY_MONITOR_SECRETS: "file",
      COMFY_MONITOR_INSTANCES: `${NOWHERE}=http://127.0.0.1:${closedPort}`,
    });
    browser = session.browser;
  });

  after(async () => {
    try {
      if (session) await closeApp(session);
    } finally {
      await stopAll();
      if (profile) rmSync(profile, { recursive: true, force: true });
      console.log(`screenshots: ${SHOTS}`);
    }
  });

  it("starts with the saved Local instance and the provisioned one, unreachable with a reason", async () => {
    await card("Local");
    const nowhere = await card(NOWHERE);
    await waitForText(byId("connection-state"), "unreachable", nowhere);
    assert.match(await (await el(byId("connection-detail"), nowhere)).getText(), /\S/);
    await shot("01-start");
  });

  it("runs the page under a content security policy that forbids eval", async () => {
    const verdict = await browser.execute(() => {
      try {
        // eslint-disable-next-line no-eval
        eval("1");
        return "allowed";
      } catch {
        return "blocked";
      }
    });
    assert.equal(verdict, "blocked");
  });

  it("adds an instance through the settings, after testing the connection", async () => {
    await click(byId("open-settings"));
    const settings = await el(byId("settings"));
    await click(byId("add-instance"), settings);
    await (await el(byId("instance-name"), settings)).setValue(FAKE_NAME);
    await (await el(byId("instance-url"), settings)).setValue(`http://127.0.0.1:${fakePort}`);
    // Outputs are saved without asking: into the folder suggested for the name, here one of the
    // test's own.
    assert.equal(await (await el(byId("instance-save"), settings)).isSelected(), true, "saving is on for a new server");
    const folder = await el(byId("instance-save-folder"), settings);
    await browser.waitUntil(async () => (await folder.getValue()).endsWith(`/ComfyUI/${FAKE_NAME}`), {
      timeout: TIMEOUT,
      timeoutMsg: "the suggested folder never followed the name",
    });
    await folder.setValue(outputs());
    await click(byId("test-connection"), settings);
    await waitForAttr(byId("test-step", '[data-step="http"]'), "data-ok", ["true"], settings);
    await waitForAttr(byId("test-step", '[data-step="websocket"]'), "data-ok", ["true"], settings);
    await shot("02-settings-tested");
    await click(byId("save-instance"), settings);
    await el(byId("settings-row", `[data-instance="${FAKE_NAME}"]`), settings);
    await click(byId("close-settings"));
    const fakeCard = await card(FAKE_NAME);
    await waitForText(byId("connection-state"), "connected", fakeCard);
    await shot("03-instance-added");
  });

  it("keeps monitoring with the window closed, notifies when a job finishes, and Show brings it back", async () => {
    assert.ok((await managedWindows()).includes(WINDOW_TITLE), "the window is not shown at the start");
    // Long enough (about 5 s) to be running still when the window has gone.
    const id = await submit(80, "e2e_closed");
    await run("dunstctl", ["close-all"]);
    const before = notifications().length;
    // What the user does: the window manager's close button.
    await run("wmctrl", ["-c", WINDOW_TITLE]);
    await until("the window to hide", async () => !(await managedWindows()).includes(WINDOW_TITLE));
    assert.equal(await browser.execute(() => document.visibilityState), "hidden");

    // The job finishes while nobody looks: one notification, with the image and a Show action.
    const done = await until("the job-finished notification", () =>
      notifications()
        .slice(before)
        .find((n) => n.summary === `Job finished on ${FAKE_NAME}`),
    );
    assert.equal(done.appName, "Comfy Monitor");
    assert.match(done.body, /took \d/);
    assert.match(done.body, /1 output/);
    assert.ok(done.image, "the notification carries no image");
    assert.equal(done.defaultAction, "Show job");
    assert.equal(await browser.execute(() => document.visibilityState), "hidden", "the window came back by itself");
    // Off screen the page is sent nothing to paint: the finished job is not on its card yet.
    const fakeCard = await card(FAKE_NAME);
    assert.equal(await (await fakeCard.$(byId("last-job"))).isExisting(), false, "a hidden page was sent the job");

    // Show: the window comes back with the job's instance open and its row highlighted.
    await record("highlight", '[data-highlighted="true"]', "data-prompt-id");
    assert.equal(await (await run("dunstctl", ["count", "displayed"])).stdout.trim(), "1");
    await run("dunstctl", ["action", "0"]);
    await until("the window to come back", async () => (await managedWindows()).includes(WINDOW_TITLE));
    await browser.waitUntil(async () => (await browser.execute(() => document.visibilityState)) === "visible", {
      timeout: TIMEOUT,
      timeoutMsg: "the page stayed hidden",
    });
    await el(byId("instance-detail", `[data-instance="${FAKE_NAME}"]`));
    await browser.waitUntil(async () => (await recorded("highlight")).includes(id), {
      timeout: TIMEOUT,
      timeoutMsg: "the finished job was not highlighted",
    });
    await shot("04-shown-from-notification");
    await click(byId("close-detail"));
    // Back on screen, the page fetched the whole picture: the card has the job that ended.
    await browser.waitUntil(
      async () => (await (await (await card(FAKE_NAME)).$(byId("last-job"))).getAttribute("data-prompt-id")) === id,
      { timeout: TIMEOUT, timeoutMsg: "the card did not show the job that ended while hidden" },
    );
  });

  it("saves a finished job's output into the folder without asking, and shows it in the gallery", async () => {
    const id = await submit(4, "e2e_kept");
    const saved = path.join(outputs(), "e2e_kept_00001_.png");
    await until("the output saved in the folder", () => existsSync(saved));
    assert.deepEqual([...readFileSync(saved).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a whole PNG");
    assert.deepEqual(
      readdirSync(outputs()).filter((f) => f.includes(".part")),
      [],
      "no partial file",
    );
    // Its notification can open the folder.
    await until("the notification with Open folder", () =>
      notifications().find((n) => n.openFolder && (n.summary?.includes("finished") || n.body?.startsWith("Latest:"))),
    );

    await click(byId("open-gallery"));
    const tile = await browser.$(`[data-testid="gallery-tile"][data-prompt-id="${id}"]`);
    await tile.waitForExist({ timeout: TIMEOUT, timeoutMsg: "the output never reached the gallery" });
    await browser.waitUntil(async () => (await tile.$("img")).isExisting() && (await browser.execute((t) => t.querySelector("img")?.naturalWidth ?? 0, tile)) > 0, {
      timeout: TIMEOUT,
      timeoutMsg: "the tile's thumbnail never showed",
    });
    await tile.click();
    const viewer = await el(byId("gallery-viewer"));
    // No screenshot here: WebKitWebDriver's never answers while the viewer is open (checked by
    // hand with an X screenshot; the page draws it whole).
    await waitForText(byId("viewer-save-state"), new RegExp(`^Saved: ${saved.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
    // The search finds it by its file name; a word it does not have finds nothing.
    await click(byId("close-gallery-viewer"), viewer);
    await viewer.waitForExist({ reverse: true, timeout: TIMEOUT });
    await (await el(byId("gallery-search"))).setValue("e2e_kept");
    await browser.waitUntil(async () => (await browser.$$(byId("gallery-tile"))).length === 1, {
      timeout: TIMEOUT,
      timeoutMsg: "the search did not narrow the gallery to the one file",
    });
    await (await el(byId("gallery-search"))).setValue("no-such-word");
    await browser.waitUntil(async () => (await browser.$$(byId("gallery-tile"))).length === 0, {
      timeout: TIMEOUT,
      timeoutMsg: "a search for a word no job has still shows files",
    });
    await (await el(byId("gallery-search"))).clearValue();
    await click(byId("open-gallery"));
  });

  it("submits a workflow and shows it run to 100% with a live preview", async () => {
    await record("percent", byId("job-percent"));
    const id = await submit(30, "e2e_ok");
    const fakeCard = await card(FAKE_NAME);
    await waitForAttr(byId("job", `[data-prompt-id="${id}"]`), "data-state", ["running"], fakeCard);
    const preview = await el(byId("preview"), fakeCard);
    await browser.waitUntil(async () => (await preview.getProperty("naturalWidth")) > 0, {
      timeout: TIMEOUT,
      timeoutMsg: "no preview frame was rendered",
    });
    await shot("05-running-with-preview");
    await waitForAttr(byId("last-job"), "data-state", ["success"], fakeCard);
    const percents = (await recorded("percent")).map((t) => parseFloat(t)).filter((n) => !Number.isNaN(n));
    assert.ok(percents.length > 2, `too few progress updates seen: ${percents}`);
    assert.equal(Math.max(...percents), 100, `the percent never reached 100: ${percents}`);
    await shot("06-finished");
  });

  it("queues a job without previews when asked, and the server is told so", async () => {
    const id = await submit(8, "e2e_no_preview", { preview: "none", sampler: "MonitorTestPreviewMethodSampler" });
    const fakeCard = await card(FAKE_NAME);
    await browser.waitUntil(
      async () => (await (await fakeCard.$(byId("last-job"))).getAttribute("data-prompt-id")) === id,
      { timeout: TIMEOUT, interval: 100, timeoutMsg: "the job without previews never finished" },
    );
    assert.equal(await (await fakeCard.$(byId("last-job"))).getAttribute("data-state"), "success");
    const job = await (await fetch(`http://127.0.0.1:${fakePort}/api/jobs/${id}`)).json();
    assert.equal(job.workflow?.extra_data?.preview_method, "none", JSON.stringify(job.workflow?.extra_data));
  });

  it("queues the prompt a saved image holds with new seeds, and it runs", async () => {
    // A PNG as ComfyUI's SaveImage writes it, as far as the prompt goes: its text chunks.
    const prompt = JSON.parse(workflow(6, "e2e_from_png"));
    prompt[1].inputs.seed = 7;
    const chunk = (kind, data) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.length);
      return Buffer.concat([len, Buffer.from(kind, "latin1"), data, Buffer.alloc(4)]);
    };
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("tEXt", Buffer.from(`prompt\0${JSON.stringify(prompt)}`, "latin1")),
      chunk("tEXt", Buffer.from('workflow\0{"nodes": [], "links": []}', "latin1")),
      chunk("IEND", Buffer.alloc(0)),
    ]);
    const known = new Set(await seenPromptIds());
    await click(byId("open-submit"));
    const dialog = await el(byId("submit-dialog"));
    // Chosen in the page's file input, as a person would pick it.
    await browser.execute(
      (bytes) => {
        const input = document.querySelector('[data-testid="workflow-file"]');
        const files = new DataTransfer();
        files.items.add(new File([new Uint8Array(bytes)], "ComfyUI_00001_.png", { type: "image/png" }));
        input.files = files.files;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      },
      [...png],
    );
    const text = await el(byId("workflow-text"), dialog);
    await browser.waitUntil(async () => (await text.getValue()).includes("e2e_from_png"), {
      timeout: TIMEOUT,
      timeoutMsg: "the image's prompt never filled the dialog",
    });
    await (await el(byId("submit-instance"), dialog)).selectByVisibleText(FAKE_NAME);
    await click(byId("submit-new-seed"), dialog);
    await shot("06b-queue-from-image");
    const id = await confirmSubmit(dialog, known);
    const fakeCard = await card(FAKE_NAME);
    await browser.waitUntil(
      async () => (await (await fakeCard.$(byId("last-job"))).getAttribute("data-prompt-id")) === id,
      { timeout: TIMEOUT, interval: 100, timeoutMsg: "the job from the image never finished" },
    );
    assert.equal(await (await fakeCard.$(byId("last-job"))).getAttribute("data-state"), "success");
    const job = await (await fetch(`http://127.0.0.1:${fakePort}/api/jobs/${id}`)).json();
    const ran = job.workflow?.prompt?.[1]?.inputs;
    assert.ok(ran, JSON.stringify(job.workflow));
    assert.equal(ran.steps, 6, "the image's prompt ran");
    assert.notEqual(ran.seed, 7, "with a new seed");
    // What it was, in its history row: the seed it ran with, drawn anew.
    await click(byId("open-detail"), fakeCard);
    const detail = await el(byId("instance-detail"));
    const row = await el(byId("history-row", `[data-prompt-id="${id}"]`), detail);
    await click(byId("toggle-summary"), row);
    await waitForText('[data-fact="Seed"]', String(ran.seed), row);
    await shot("06c-what-it-was");
    await click(byId("close-detail"));
    // Its notification names it by the file it came from: alone, or as the latest of a burst
    // of jobs that finished together.
    const named = (n) => n.summary === "ComfyUI_00001_.png finished" || n.body?.startsWith("Latest: ComfyUI_00001_.png");
    await until("the notification naming the file", () => notifications().find(named)).catch((e) => {
      throw new Error(`${e.message}; seen: ${JSON.stringify(notifications().map((n) => [n.summary, n.body]))}`);
    });
  });

  it("cancels a running job and marks it interrupted", async () => {
    const id = await submit(400, "e2e_cancel");
    const fakeCard = await card(FAKE_NAME);
    await waitForAttr(byId("job", `[data-prompt-id="${id}"]`), "data-state", ["running"], fakeCard);
    await click(byId("cancel-job"), fakeCard);
    await waitForAttr(byId("last-job"), "data-state", ["interrupted"], fakeCard);
    assert.equal(await (await fakeCard.$(byId("last-job"))).getAttribute("data-prompt-id"), id);
    await shot("07-cancelled");
  });

  it("deletes a pending job from the instance's queue", async () => {
    const running = await submit(400, "e2e_running");
    const pending = await submit(5, "e2e_pending");
    const fakeCard = await card(FAKE_NAME);
    await click(byId("open-detail"), fakeCard);
    const detail = await el(byId("instance-detail"));
    const row = await el(byId("queue-row", `[data-prompt-id="${pending}"]`), detail);
    assert.equal(await row.getAttribute("data-state"), "pending");
    assert.equal(await row.getAttribute("data-origin"), "self");
    await shot("08-queue");
    await click(byId("delete-job"), row);
    await row.waitForExist({ reverse: true, timeout: TIMEOUT, timeoutMsg: "the deleted job stayed in the queue" });
    await waitForAttr(byId("history-row", `[data-prompt-id="${pending}"]`), "data-state", ["deleted"], detail);
    // The running one was not touched.
    assert.equal(await (await el(byId("queue-row", `[data-prompt-id="${running}"]`), detail)).getAttribute("data-state"), "running");
    await shot("09-deleted");
    await click(byId("close-detail"));
  });

  it("lives through a server restart mid-job: the outage shown, connected again, and the job lost", async () => {
    const fakeCard = await card(FAKE_NAME);
    const job = await el(byId("job", '[data-state="running"]'), fakeCard);
    const id = await job.getAttribute("data-prompt-id");
    await record("state", `${byId("instance-card", `[data-instance="${FAKE_NAME}"]`)} ${byId("connection-state")}`);
    await stopFake();
    await startFake();
    await waitForText(byId("connection-state"), "connected", fakeCard);
    await waitForAttr(byId("last-job"), "data-state", ["lost"], fakeCard);
    assert.equal(await (await fakeCard.$(byId("last-job"))).getAttribute("data-prompt-id"), id);
    // The card paints the newest state once per frame: the outage shows as "reconnecting" or,
    // once the first attempt is refused (a few milliseconds later), "unreachable".
    const states = await recorded("state");
    const down = states.findIndex((s) => s === "reconnecting" || s === "unreachable");
    assert.ok(down >= 0, `never showed the outage: ${states}`);
    assert.ok(states.lastIndexOf("connected") > down, `did not come back: ${states}`);
    await shot("10-restarted");
  });

  it("shows the same state after the window reloads", async () => {
    const fakeCard = await card(FAKE_NAME);
    const before = await (await fakeCard.$(byId("last-job"))).getAttribute("data-prompt-id");
    await browser.refresh();
    const again = await card(FAKE_NAME);
    await waitForText(byId("connection-state"), "connected", again);
    assert.equal(await (await el(byId("last-job"), again)).getAttribute("data-prompt-id"), before);
    assert.equal(await (await el(byId("last-job"), again)).getAttribute("data-state"), "lost");
    await shot("11-reloaded");
  });
});
