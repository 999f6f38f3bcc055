// End-to-end: the app's tray icon on a real status-notifier host, and the desktop integration
// around it (launch at login, a second launch, the window's place).
//
// Under Xvfb and a private session bus it starts a desktop in a throwaway home (openbox, dunst,
// and xfce4-panel with its status tray, which hosts the app's libayatana-appindicator item; see
// tray-host.mjs), a fake ComfyUI, and the app itself (`comfy-monitor --minimised`). Then it
// proves with X screenshots and pixel checks what the tray shows and does: the icon appears,
// its ring follows a running job's percent, its colour changes on a failure and on a
// disconnection, and the menu (opened with a real click on the icon) cancels the current job and
// pauses notifications. What Linux trays cannot do with Tauri's tray (libayatana-appindicator
// has no tooltip and no click events) is checked for what it does instead and said in a skip.
// Then the app quits from its menu, starts again under tauri-driver (the window where it was
// left), turns "Launch at login" on and off in its settings, and is launched a second time.
//
// Screenshots go to /tmp/tray-shots/ (or $TRAY_SHOTS).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  TIMEOUT,
  binaries,
  byId,
  closeApp,
  findProcess,
  freePort,
  launchApp,
  pageOf,
  run,
  start,
  startFake as startFakeServers,
  stop,
  stopAll,
  until,
} from "./harness.mjs";
import {
  clickAt,
  colourAt,
  distance,
  findIcon,
  geometry,
  menuEntries,
  popups,
  readRing,
  removeHome,
  screenshot,
  sniItems,
  sniProperties,
  startDesktop,
  visibleWindows,
  waitForItem,
  xdotool,
} from "./tray-host.mjs";

const { app: APP, fake: FAKE } = binaries();
const SHOTS = process.env.TRAY_SHOTS ?? "/tmp/tray-shots";
const INSTANCE = "Fake";
const WINDOW = "^Comfy Monitor$";
/** The item libayatana-appindicator registers for Tauri's tray "main". */
const ITEM_ID = /tray app main$/;

// The icon's colours (comfy-notify's icon.rs).
const COLOUR = {
  idle: [148, 163, 184],
  running: [59, 130, 246],
  error: [239, 68, 68],
  disconnected: [113, 113, 122],
  progress: [34, 197, 94],
};

let home;
let env;
let db;
let fake;
let fakePort;
let app;
/** The tray item on the bus: `{ item, props }`. */
let tray;
/** Where the panel draws the icon: centre and side, in screen pixels. */
let icon;
let panelBackground;
/** What dbus-monitor printed about notifications since the start. */
let busLog = "";
let shotCount = 0;
let browser;

async function shot(name) {
  shotCount += 1;
  const file = path.join(SHOTS, `${String(shotCount).padStart(2, "0")}-${name}.png`);
  return { file, pixels: await screenshot(file) };
}

async function startFake() {
  ({ child: fake } = await startFakeServers(FAKE, ["--instances", "1", "--port", String(fakePort), "--step-delay-ms", "60"]));
}

function startApp(args = []) {
  app = start(APP, ["--db", db, ...args], {
    env: { ...process.env, ...env, COMFY_MONITOR_SECRETS: "file" },
  });
  app.stdout.resume();
  return app;
}

/** This app's client id on the fake, from the profile: jobs queued with it are the app's own,
 * followed live (a measured percent, "Cancel current job" without asking). */
async function clientId() {
  const { stdout } = await run(APP, ["instances", "list", "--json", "--db", db], { env: { ...process.env, ...env } });
  const rec = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((r) => r.name === INSTANCE);
  assert.ok(rec?.client_id, stdout);
  return rec.client_id;
}

/** Queues a job on the fake as the app's own; returns its prompt id. */
async function queue(nodes) {
  const res = await fetch(`http://127.0.0.1:${fakePort}/prompt`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: nodes, client_id: await clientId() }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.prompt_id;
}

function sampler(steps, stepDelayMs, prefix) {
  return {
    1: { class_type: "MonitorTestSampler", inputs: { steps, step_delay_ms: stepDelayMs, seed: Math.floor(Math.random() * 1e9) } },
    2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: prefix } },
  };
}

async function jobStatus(id) {
  const res = await fetch(`http://127.0.0.1:${fakePort}/api/jobs/${id}`);
  return res.ok ? (await res.json()).status : undefined;
}

/** The tray menu as the host reads it, over D-Bus. */
function menu() {
  return menuEntries(tray.item, tray.props.Menu);
}

async function menuLabels() {
  return (await menu()).map((e) => (e.separator ? "---" : e.label));
}

/** The instance's line in the menu ("Fake — running 47% · 12s left"). */
async function instanceLine() {
  return (await menuLabels()).find((l) => l.startsWith(`${INSTANCE} — `));
}

/** Waits until the icon's glyph shows `colour` at its centre; returns that screenshot. */
function untilGlyph(name, colour, what) {
  let last;
  return until(what, async () => {
    const { file, pixels } = await shot(name);
    last = colourAt(pixels, icon.x, icon.y);
    if (distance(last, colour) <= 12) return { file, pixels };
    rmSync(file);
    shotCount -= 1;
    return null;
  }).catch((e) => {
    throw new Error(`${e.message}: the glyph's centre is ${last}`);
  });
}

/** The registered status-notifier items that are the app's tray icon. */
async function appItems() {
  const found = [];
  for (const item of await sniItems()) {
    const props = await sniProperties(item).catch(() => null);
    if (props && ITEM_ID.test(props.Id)) found.push(item);
  }
  return found;
}

/** Opens the tray menu with a click on the icon; resolves with its popup window. */
async function openMenu(button = 3) {
  assert.deepEqual(await popups(), [], "a menu is open already");
  await clickAt(icon.x, icon.y, button);
  return until("the tray menu to open", async () => (await popups())[0]);
}

/** Activates the menu entry whose label matches `label`, with the keyboard in the open menu:
 * Down moves through the sensitive entries from the first, Return activates. */
async function choose(label) {
  const entries = (await menu()).filter((e) => !e.separator && e.enabled);
  const at = entries.findIndex((e) => label.test(e.label));
  assert.ok(at >= 0, `no ${label} in ${JSON.stringify(entries.map((e) => e.label))}`);
  await xdotool("key", "--delay", "60", ...Array(at + 1).fill("Down"));
  await xdotool("key", "Return");
  await until("the menu to close", async () => (await popups()).length === 0);
  await mouseAway();
}

/** The pointer off the panel: over the icon, the panel draws its button pressed or lit. */
function mouseAway() {
  return xdotool("mousemove", 640, 500);
}

/** The Notify calls seen so far: their summaries. */
function notified() {
  return busLog
    .split(/\n(?=\S)/)
    .filter((m) => m.startsWith("method call") && /member=Notify\b/.test(m))
    .map((m) => [...m.matchAll(/^\s+string "([\s\S]*?)"$/gm)].map((x) => x[1])[2]);
}

describe("the tray icon on a status-notifier host (xfce4-panel)", () => {
  before(async () => {
    for (const binary of [APP, FAKE]) {
      assert.ok(existsSync(binary), `${binary} is missing; build it first (see scripts/test-all)`);
    }
    rmSync(SHOTS, { recursive: true, force: true });
    mkdirSync(SHOTS, { recursive: true });
    home = mkdtempSync(path.join(os.tmpdir(), "comfy-monitor-tray-"));
    db = path.join(home, "comfy-monitor.db");
    env = { ...(await startDesktop(home)), COMFY_MONITOR_SECRETS: "file" };
    const monitor = start("dbus-monitor", ["--session", "interface='org.freedesktop.Notifications'"]);
    monitor.stdout.setEncoding("utf8");
    monitor.stdout.on("data", (chunk) => (busLog += chunk));
    fakePort = await freePort();
    await startFake();
    // A profile with the fake alone: a new one also has "Local" (127.0.0.1:8188), down here,
    // which would keep the icon "disconnected".
    const cli = { env: { ...process.env, ...env } };
    await run(APP, ["instances", "add", "--db", db, "--name", INSTANCE, "--url", `http://127.0.0.1:${fakePort}`], cli);
    await run(APP, ["instances", "remove", "--db", db, "Local"], cli);
    // Hidden at start, as from autostart: a failure is then not seen at once.
    startApp(["--minimised"]);
  });

  after(async () => {
    try {
      await stopAll();
    } finally {
      if (home) await removeHome(home);
      console.log(`screenshots: ${SHOTS}`);
    }
  });

  it("shows the icon in the panel: idle, with the instance's line in its menu", async () => {
    tray = await waitForItem(ITEM_ID);
    assert.equal(tray.props.Status, "Active");
    assert.ok(tray.props.Menu, "the item exports no menu");
    await until("the instance connected and idle", async () => (await instanceLine()) === `${INSTANCE} — idle`);
    await mouseAway();
    const { file, pixels } = await until("the idle icon in the panel", async () => {
      const s = await shot("idle");
      icon = findIcon(s.pixels, COLOUR.idle);
      return icon && s;
    });
    assert.ok(icon.y < 40 && icon.side > 16 && icon.side < 48, `icon at ${JSON.stringify(icon)} (${file})`);
    panelBackground = colourAt(pixels, icon.x + icon.side * 1.5, icon.y);
    // No ring while idle: the band around the glyph is the panel's own colour.
    assert.equal(readRing(pixels, icon, COLOUR.progress).filled, 0);
    assert.ok(distance(colourAt(pixels, icon.x, icon.y - icon.side * 0.41), panelBackground) < 12, "a ring shows while idle");
  });

  let running;

  it("fills the ring with a running job's percent, and it moves", async (t) => {
    // About 20 s: still running when the menu cancels it, two tests on.
    running = await queue(sampler(400, 50, "tray_ring"));
    const readings = [];
    for (const [low, high] of [[10, 35], [45, 70]]) {
      const percent = await until(`the menu to say ${low}–${high}%`, async () => {
        const m = (await instanceLine())?.match(/running (\d+)%/);
        return m && Number(m[1]) >= low && Number(m[1]) <= high && Number(m[1]);
      });
      // The icon is repainted at most a few times a second: read it until it agrees.
      const reading = await until(`the ring at about ${percent}%`, async () => {
        const { file, pixels } = await shot(`running-${percent}`);
        const ring = readRing(pixels, icon, COLOUR.progress);
        const now = Number((await instanceLine())?.match(/running (\d+)%/)?.[1]);
        const agrees = distance(colourAt(pixels, icon.x, icon.y), COLOUR.running) <= 12 &&
          Math.abs(ring.reach * 100 - now) <= 8 && Math.abs(ring.filled * 100 - now) <= 8;
        if (agrees) return { ...ring, menu: now, file };
        rmSync(file);
        shotCount -= 1;
        return null;
      });
      readings.push(reading);
    }
    t.diagnostic(`ring readings: ${JSON.stringify(readings)}`);
    const [first, second] = readings;
    assert.ok(second.reach > first.reach + 0.15, `the ring did not move: ${JSON.stringify(readings)}`);
    assert.ok(second.filled > first.filled + 0.15, `the ring did not fill: ${JSON.stringify(readings)}`);
  });

  it("the item carries no tooltip: libayatana-appindicator has no ToolTip; the menu's lines say it", async () => {
    // tray-icon's set_tooltip is a no-op on Linux and the item has no ToolTip property (nor a
    // Title the app sets): a host has nothing to show. What the tooltip says (running, percent,
    // ETA) is in the menu's first lines instead.
    const props = (await waitForItem(ITEM_ID)).props;
    assert.equal(props.ToolTip, undefined);
    assert.ok(!props.Title?.includes("Comfy Monitor —"), `Title: ${props.Title}`);
    assert.match(await instanceLine(), new RegExp(`^${INSTANCE} — running \\d+% · (\\d+m )?\\d+s left$`));
  });

  it("cancels the current job from the menu opened on the icon", async () => {
    assert.equal(await jobStatus(running), "in_progress");
    await openMenu(3);
    await shot("menu-open");
    assert.ok((await menuLabels()).includes(`Cancel current job on ${INSTANCE}`), JSON.stringify(await menuLabels()));
    await choose(/^Cancel current job on /);
    await until("the job interrupted on the server", async () => (await jobStatus(running)) === "cancelled");
    await until("the menu without a job to cancel", async () => !(await menuLabels()).some((l) => l.startsWith("Cancel")));
    await untilGlyph("after-cancel", COLOUR.idle, "the idle icon after the cancel");
    const { stdout } = await run(APP, ["history", "--db", db, "--json"], { env: { ...process.env, ...env } });
    const line = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((j) => j.prompt_id === running);
    assert.equal(line?.state, "interrupted", stdout);
  });

  it("turns red on a failure nobody has looked at", async () => {
    const failing = await queue({
      1: { class_type: "MonitorTestFail", inputs: { steps: 6, step_delay_ms: 40, fail_after: 2 } },
      2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "tray_fail" } },
    });
    await until("the job failed on the server", async () => (await jobStatus(failing)) === "failed");
    const { pixels } = await untilGlyph("failed", COLOUR.error, "the red icon");
    assert.equal(readRing(pixels, icon, COLOUR.progress).filled, 0, "a ring after the job ended");
    await until("the failure announced", () => notified().some((s) => /failed/.test(s ?? "")));
  });

  it("pauses notifications from the menu, and resumes them", async () => {
    await openMenu(3);
    await choose(/^Pause notifications until resumed$/);
    await until("the menu to offer Resume", async () => (await menuLabels()).includes("Resume notifications"));
    const before = notified().length;
    const paused = await queue(sampler(4, 20, "tray_paused"));
    await until("the paused job done", async () => (await jobStatus(paused)) === "completed");
    await openMenu(3);
    await shot("menu-paused");
    await choose(/^Resume notifications$/);
    await until("the menu to offer Pause again", async () => (await menuLabels()).includes("Pause notifications for 1 hour"));
    // A job after the resume is announced; the one while paused never was.
    const resumed = await queue(sampler(4, 20, "tray_resumed"));
    await until("the resumed job done", async () => (await jobStatus(resumed)) === "completed");
    await until("the resumed job's notification", () => notified().slice(before).some((s) => /finished/.test(s ?? "")));
    const since = notified().slice(before).filter((s) => /finished/.test(s ?? ""));
    assert.equal(since.length, 1, `notified since the pause: ${JSON.stringify(notified().slice(before))}`);
  });

  it("turns hollow and grey when the server goes away", async () => {
    await stop(fake, "SIGKILL");
    const { pixels } = await untilGlyph("disconnected", panelBackground, "the hollow icon");
    const onGlyph = colourAt(pixels, icon.x + icon.side * 0.2, icon.y);
    assert.ok(distance(onGlyph, COLOUR.disconnected) <= 16, `the glyph's rim is ${onGlyph}`);
    await until("the menu to say so", async () => /^Fake — (reconnecting|unreachable)/.test((await instanceLine()) ?? ""));
    await startFake();
    await until("connected again", async () => (await instanceLine()) === `${INSTANCE} — idle`);
  });

  it("left click opens the menu (the item has no Activate), and Open dashboard shows the window", async () => {
    assert.deepEqual(await visibleWindows(WINDOW), [], "the window shows though started hidden");
    await openMenu(1);
    await choose(/^Open dashboard$/);
    const [window] = await until("the window to show", () => visibleWindows(WINDOW).then((w) => w.length && w));
    await until("the window to have the focus", async () => (await xdotool("getactivewindow")).stdout.trim() === window);
    // Seen: the failure is no longer red.
    await untilGlyph("seen", COLOUR.idle, "the icon back to idle once the window was seen");
    await shot("window-shown");
  });

  it("left click toggles the window", { skip: "Linux: Tauri's tray (tray-icon on libayatana-appindicator) gets no click events; a host's left click opens the menu (see above)" }, () => {});

  let left;

  it("quits from the menu, remembering where the window was", async () => {
    const [window] = await visibleWindows(WINDOW);
    await xdotool("windowsize", window, 900, 600);
    await xdotool("windowmove", window, 150, 120);
    left = await until("the window moved", async () => {
      const g = await geometry(window);
      return g.width === 900 && g.height === 600 && g.x !== 0 && g;
    });
    await openMenu(3);
    await choose(/^Quit$/);
    await until("the app to exit", () => app.exitCode !== null || app.signalCode !== null);
    assert.equal(app.exitCode, 0);
    await until("the tray item gone", async () => (await appItems()).length === 0);
  });

  describe("started again, under tauri-driver", () => {
    let session;
    const { el, click } = pageOf(() => browser);

    before(async () => {
      // One app at a time: a second one would only hand over to the first (single instance).
      if (app.exitCode === null && app.signalCode === null) await stop(app);
      session = await launchApp(APP, {
        ...env,
        COMFY_MONITOR_DB: db,
        COMFY_MONITOR_SECRETS: "file",
      });
      browser = session.browser;
      session.pid = findProcess(APP, session.driver.pid);
    });

    after(async () => {
      if (session) await closeApp(session);
    });

    it("opens the window where it was left", async () => {
      const [window] = await until("the window", () => visibleWindows(WINDOW).then((w) => w.length && w));
      const g = await until("the window placed", async () => {
        const now = await geometry(window);
        return now.width === left.width && now.height === left.height && now.x === left.x && now.y === left.y && now;
      }).catch(async (e) => {
        throw new Error(`${e.message}: left at ${JSON.stringify(left)}, now ${JSON.stringify(await geometry(window))}`);
      });
      assert.deepEqual(g, left);
      await shot("window-restored");
    });

    it("writes and removes the autostart entry with Launch at login", async () => {
      const autostart = path.join(env.XDG_CONFIG_HOME, "autostart");
      const entries = () => (existsSync(autostart) ? readdirSync(autostart).filter((f) => f.endsWith(".desktop")) : []);
      assert.deepEqual(entries(), []);
      await click(byId("open-settings"));
      const box = await el(byId("pref-launch-at-login"));
      await browser.waitUntil(async () => box.isEnabled(), { timeout: TIMEOUT, timeoutMsg: "the preferences never loaded" });
      assert.equal(await box.isSelected(), false);
      await box.click();
      const [entry] = await until("the autostart entry", () => entries().length && entries());
      const text = readFileSync(path.join(autostart, entry), "utf8");
      assert.match(text, /^\[Desktop Entry\]/m);
      assert.match(text, new RegExp(`^Exec=.*${path.basename(APP)}.* --minimised`, "m"));
      await browser.waitUntil(async () => box.isSelected(), { timeout: TIMEOUT, timeoutMsg: "the box did not stay ticked" });
      await shot("launch-at-login");
      await box.click();
      await until("the autostart entry removed", () => entries().length === 0);
      await click(byId("close-settings"));
    });

    it("a second launch brings the running app's window back and exits", async () => {
      // Hidden first, as the window manager's close button leaves it.
      await run("wmctrl", ["-c", "Comfy Monitor"]);
      await until("the window hidden", async () => (await visibleWindows(WINDOW)).length === 0);
      const second = start(APP, ["--db", db], { env: { ...process.env, ...env, COMFY_MONITOR_SECRETS: "file" } });
      second.stdout.resume();
      const started = Date.now();
      const code = await until("the second launch to exit", () => (second.exitCode !== null || second.signalCode !== null) && { code: second.exitCode });
      assert.equal(code.code, 0);
      assert.ok(Date.now() - started < 15_000, "the second launch took long to hand over");
      const [window] = await until("the first app's window back", () => visibleWindows(WINDOW).then((w) => w.length && w));
      await until("the window to have the focus", async () => (await xdotool("getactivewindow")).stdout.trim() === window);
      assert.equal(await browser.execute(() => document.visibilityState), "visible");
      // Still one app: one tray icon.
      assert.equal((await appItems()).length, 1);
    });
  });
});
