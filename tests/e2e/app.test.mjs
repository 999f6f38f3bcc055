// End-to-end: the real app in its real webview, against fake ComfyUI servers.
//
// Starts `fake-comfyui --instances 2 --json`, launches the app through tauri-driver (which drives
// Debian's WebKitWebDriver) with COMFY_MONITOR_INSTANCES pointing at the fakes, and checks what
// the cards show. Needs an X display (run under xvfb-run) and a session bus (dbus-run-session).
//
// Binaries come from $CARGO_TARGET_DIR/debug (default: <repo>/target/debug).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { remote } from "webdriverio";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TARGET = process.env.CARGO_TARGET_DIR
  ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(ROOT, "target");
const APP = path.join(TARGET, "debug", "comfy-monitor");
const FAKE = path.join(TARGET, "debug", "fake-comfyui");
const NATIVE_DRIVER = process.env.NATIVE_DRIVER ?? "/usr/bin/WebKitWebDriver";
const TAURI_DRIVER = process.env.TAURI_DRIVER ?? "tauri-driver";
const FAKES = ["Fake A", "Fake B"];
/** An instance on a port nobody listens on. */
const NOWHERE = "Nowhere";
const TIMEOUT = 30_000;

const children = [];
let browser;

function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  children.push(child);
  child.stderr.on("data", (chunk) => process.stderr.write(`[${path.basename(command)}] ${chunk}`));
  return child;
}

/** Reads `count` JSON lines (one per fake instance) from the fake server's stdout. */
function readUrls(child, count) {
  return new Promise((resolve, reject) => {
    const urls = [];
    const lines = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error("fake-comfyui printed no URLs in time")), TIMEOUT);
    lines.on("line", (line) => {
      try {
        urls.push(JSON.parse(line).url);
      } catch {
        return;
      }
      if (urls.length === count) {
        clearTimeout(timer);
        resolve(urls);
      }
    });
    child.once("exit", (code) => reject(new Error(`fake-comfyui exited early (${code})`)));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function accepts(port, host = "127.0.0.1") {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function waitForPort(port) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (await accepts(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listened on port ${port}`);
}

async function card(name) {
  const el = await browser.$(`[data-test="instance-card"][data-instance="${name}"]`);
  await el.waitForExist({ timeout: TIMEOUT, timeoutMsg: `no card for ${name}` });
  return el;
}

async function waitForState(name, wanted) {
  const el = await card(name);
  let last;
  await browser.waitUntil(
    async () => {
      last = await el.getAttribute("data-state");
      return wanted.includes(last);
    },
    { timeout: TIMEOUT, interval: 200, timeoutMsg: `${name}: expected ${wanted.join("/")}, last saw ${last}` },
  );
  return el;
}

describe("comfy-monitor desktop app", () => {
  let localListens = false;

  before(async () => {
    for (const binary of [APP, FAKE]) {
      assert.ok(existsSync(binary), `${binary} is missing; build it first (see scripts/test-all)`);
    }
    localListens = await accepts(8188);

    const fake = start(FAKE, ["--instances", String(FAKES.length), "--json"]);
    const urls = await readUrls(fake, FAKES.length);
    const closedPort = await freePort();
    const instances = [...FAKES.map((name, i) => `${name}=${urls[i]}`), `${NOWHERE}=http://127.0.0.1:${closedPort}`].join(",");

    const port = await freePort();
    const nativePort = await freePort();
    start(TAURI_DRIVER, ["--port", String(port), "--native-port", String(nativePort), "--native-driver", NATIVE_DRIVER], {
      env: { ...process.env, COMFY_MONITOR_INSTANCES: instances },
    });
    await waitForPort(port);

    browser = await remote({
      hostname: "127.0.0.1",
      port,
      logLevel: "warn",
      connectionRetryTimeout: TIMEOUT,
      capabilities: {
        "tauri:options": { application: APP },
      },
    });
  });

  after(async () => {
    try {
      await browser?.deleteSession();
    } finally {
      for (const child of children.reverse()) child.kill("SIGTERM");
    }
  });

  it("shows a card per instance, the local one first", async () => {
    await card(NOWHERE);
    const names = await browser.$$('[data-test="instance-card"]').map((el) => el.getAttribute("data-instance"));
    assert.deepEqual(names, ["Local", ...FAKES, NOWHERE]);
  });

  it("connects to every fake server and shows its version", async () => {
    for (const name of FAKES) {
      const el = await waitForState(name, ["connected"]);
      assert.equal(await el.$('[data-test="state"]').getText(), "Connected");
      const version = await el.$('[data-test="version"]');
      await version.waitForExist({ timeout: TIMEOUT });
      assert.match(await version.getText(), /^ComfyUI \d/);
    }
  });

  it("reports an instance nobody answers for as unreachable, with the next retry", async () => {
    const el = await waitForState(NOWHERE, ["unreachable"]);
    assert.equal(await el.$('[data-test="state"]').getText(), "Unreachable");
    const detail = await el.$('[data-test="detail"]');
    await detail.waitForExist({ timeout: TIMEOUT });
    assert.match(await detail.getText(), /retrying (in \d+ s|now)/);
  });

  it("reports the local instance as unreachable when nothing listens on 8188", async (t) => {
    if (localListens) {
      t.skip("something listens on 127.0.0.1:8188 here");
      return;
    }
    const el = await waitForState("Local", ["unreachable"]);
    assert.equal(await el.$('[data-test="state"]').getText(), "Unreachable");
    const detail = await el.$('[data-test="detail"]');
    await detail.waitForExist({ timeout: TIMEOUT });
    assert.match(await detail.getText(), /retrying (in \d+ s|now)/);
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

  it("counts the connected instances in the header", async () => {
    const expected = FAKES.length + (localListens ? 1 : 0);
    const summary = await browser.$('[data-test="summary"]');
    await browser.waitUntil(async () => (await summary.getText()).includes(`${expected} of ${FAKES.length + 2} connected`), {
      timeout: TIMEOUT,
      timeoutMsg: "summary never showed the connected count",
    });
  });
});
