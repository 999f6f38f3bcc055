// The installed package, run as a user would (scripts/package-test installs it first): a
// profile made with the installed CLI in a fresh home, the app launched from the command in its
// menu entry's Exec line, showing that profile's last-known state, and `serve` run from the
// systemd unit's ExecStart line, stopped with SIGTERM.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  TIMEOUT, binaries, byId, closeApp, freePort, launchApp, pageOf, run, start, startFake, stop, stopAll, until,
} from "./harness.mjs";

const HOME = process.env.PACKAGE_TEST_HOME;
const DESKTOP = "/usr/share/applications/comfy-monitor.desktop";
const UNIT = "/usr/lib/systemd/user/comfy-monitor.service";
const INSTANCE = "Studio GPU";

/** The environment of a user whose home is HOME, with no profile given on the command line. */
function userEnv() {
  const env = {
    ...process.env,
    HOME,
    XDG_DATA_HOME: path.join(HOME, ".local/share"),
    XDG_CONFIG_HOME: path.join(HOME, ".config"),
    XDG_CACHE_HOME: path.join(HOME, ".cache"),
    // No keyring on a test machine: the owner-only file in the profile's folder.
    COMFY_MONITOR_SECRETS: "file",
  };
  delete env.COMFY_MONITOR_DB;
  return env;
}

/** A desktop entry's or unit's key, split into words, without desktop field codes (%U, %f…). */
function commandLine(file, key) {
  const line = readFileSync(file, "utf8").split("\n").find((l) => l.startsWith(`${key}=`));
  assert.ok(line, `${file} has no ${key}=`);
  return line.slice(key.length + 1).trim().split(/\s+/).filter((w) => !/^%[a-zA-Z]$/.test(w));
}

/** Resolves a command's first word through PATH, as the desktop does. */
async function which(command) {
  if (command.includes("/")) return command;
  const { stdout } = await run("sh", ["-c", `command -v "$0"`, command]);
  return stdout.trim();
}

const cli = (args) => run("comfy-monitor", args, { env: userEnv() });

let fake;
let fakePort;
let session;
let jobId;
const { el, click, waitForText, waitForAttr } = pageOf(() => session.browser);

async function startFakeOn(port) {
  ({ child: fake } = await startFake(binaries().fake, ["--instances", "1", "--port", String(port), "--step-delay-ms", "5"]));
}

describe("the installed package", () => {
  before(async () => {
    assert.ok(HOME && existsSync(HOME), "PACKAGE_TEST_HOME: a fresh home folder (scripts/package-test makes one)");
    fakePort = await freePort();
    await startFakeOn(fakePort);
    // The profile, made with the installed CLI in the user's default place.
    await cli(["instances", "add", "--name", INSTANCE, "--url", `http://127.0.0.1:${fakePort}`]);
    await cli(["instances", "remove", "Local"]);
    const workflow = path.join(HOME, "workflow.json");
    writeFileSync(workflow, JSON.stringify({
      1: { class_type: "MonitorTestSampler", inputs: { steps: 3, step_delay_ms: 5, preview_size: 32, seed: 11 } },
      2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "pkg" } },
    }));
    const { stdout } = await cli(["submit", workflow, "--instance", INSTANCE, "--wait", "--json"]);
    const ended = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).filter((e) => e.event === "job").pop();
    assert.equal(ended?.state, "success", stdout);
    jobId = ended.prompt_id;
    // The server goes away: the app must show what it last knew.
    await stop(fake, "SIGKILL");
  });

  after(async () => {
    try {
      if (session) await closeApp(session);
    } finally {
      await stopAll();
    }
  });

  it("has a menu entry whose Exec line starts the app, showing the last-known state", async () => {
    const [command, ...args] = commandLine(DESKTOP, "Exec");
    const app = await which(command);
    assert.equal(app, "/usr/bin/comfy-monitor");
    assert.deepEqual(args, [], "the entry starts the app with no arguments");
    session = await launchApp(app, userEnv());
    const title = await session.browser.getTitle();
    assert.equal(title, "Comfy Monitor");
    const card = await el(byId("instance-card", `[data-instance="${INSTANCE}"]`));
    await waitForText(byId("connection-state"), "unreachable", card);
    // The job journalled before, in the instance's history.
    await click(byId("open-detail"), card);
    const detail = await el(byId("instance-detail"));
    await waitForAttr(byId("history-row", `[data-prompt-id="${jobId}"]`), "data-state", ["success"], detail);
    await closeApp(session);
    session = undefined;
  });

  it("runs serve from the systemd unit's ExecStart, and stops on SIGTERM", async () => {
    await startFakeOn(fakePort);
    const metricsPort = await freePort();
    const words = commandLine(UNIT, "ExecStart").map((w) =>
      w === "$COMFY_MONITOR_SERVE_ARGS" ? `--metrics 127.0.0.1:${metricsPort}` : w).join(" ").split(" ");
    assert.equal(words[0], "/usr/bin/comfy-monitor");
    const serve = start(words[0], words.slice(1), { env: userEnv() });
    const exited = new Promise((resolve) => serve.once("exit", (code, signal) => resolve({ code, signal })));
    const scrape = async () => {
      try {
        const answer = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        return answer.ok ? answer.text() : undefined;
      } catch {
        return undefined;
      }
    };
    await until("serve's metrics with the instance up", async () => (await scrape())?.includes(`comfyui_up{instance="${INSTANCE}"} 1`));
    process.kill(serve.pid, "SIGTERM");
    const { code } = await Promise.race([
      exited,
      new Promise((_, reject) => setTimeout(() => reject(new Error("serve did not stop on SIGTERM")), TIMEOUT)),
    ]);
    assert.equal(code, 0, "serve exits 0 on SIGTERM");
    // The journal is the user's, and the job is in it.
    const { stdout } = await cli(["history", "--json"]);
    assert.ok(stdout.includes(jobId), stdout);
  });
});
