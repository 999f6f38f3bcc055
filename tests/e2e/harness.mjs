// What the end-to-end test and the app benchmarks share: child processes, free ports, the fake
// ComfyUI servers, the app under tauri-driver, and the app's process tree in /proc.
import { execFile, spawn } from "node:child_process";
import { readFileSync, readdirSync, readlinkSync, realpathSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { remote } from "webdriverio";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const TIMEOUT = 30_000;
/** How long a WebDriver request may take. The first one starts the app, which waits on the
 * session's desktop portal: a portal starting for the first time on a bare machine has been
 * seen to take 50 s. */
const REQUEST_TIMEOUT = 120_000;
export const run = promisify(execFile);
const NATIVE_DRIVER = process.env.NATIVE_DRIVER ?? "/usr/bin/WebKitWebDriver";
const TAURI_DRIVER = process.env.TAURI_DRIVER ?? "tauri-driver";

/** The binaries of one cargo profile (`debug` or `release`) under $CARGO_TARGET_DIR. */
export function binaries(profile = "debug") {
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, "target");
  const dir = path.join(target, profile);
  return {
    app: path.join(dir, "comfy-monitor"),
    fake: path.join(dir, "fake-comfyui"),
    bench: path.join(dir, "comfy-bench"),
  };
}

const children = [];

/** Starts a child in its own process group, with its stderr passed through under its name; it
 * is stopped by `stopAll`. The group is what is stopped: tauri-driver's WebKitWebDriver and
 * the app it launched are in it, and one left behind would keep this process alive. */
export function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true, ...options });
  children.push(child);
  child.stderr.on("data", (chunk) => process.stderr.write(`[${path.basename(command)}] ${chunk}`));
  return child;
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the whole group is gone already
  }
}

/** Sends `signal` to the child's process group and resolves once the child has exited; what
 * is still alive in the group five seconds later is killed. */
export function stop(child, signal = "SIGTERM") {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      // Whatever the child left in its group (a driver's browser, the app) goes with it.
      signalGroup(child, "SIGKILL");
      resolve();
    };
    const timer = setTimeout(() => signalGroup(child, "SIGKILL"), 5000);
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", done);
    signalGroup(child, signal);
  });
}

export async function stopAll() {
  await Promise.all(children.splice(0).reverse().map((c) => stop(c)));
}

/** Resolves with a value once `check` returns one; polls every 100 ms. */
export async function until(what, check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The lowest port of the kernel's ephemeral range: outgoing connections take their local
 * ports from there, so a port picked in it can be taken between the check and the bind. */
function ephemeralLow() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function canListen(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive ports free to listen on, below the ephemeral range, so nothing but
 * another listener can take one before the server binds it. */
export async function freePortRange(count) {
  const low = 10_000;
  const high = Math.min(ephemeralLow(), 65_536) - count;
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = low + Math.floor(Math.random() * (high - low));
    const free = await Promise.all(Array.from({ length: count }, (_, i) => canListen(first + i)));
    if (free.every(Boolean)) return first;
  }
  throw new Error(`no run of ${count} free ports found`);
}

/** One port free to listen on (see `freePortRange`). */
export function freePort() {
  return freePortRange(1);
}

export function accepts(port, host = "127.0.0.1") {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function waitForPort(port) {
  await until(`something to listen on port ${port}`, () => accepts(port));
}

/** Starts `fake-comfyui --json` with `args`; resolves with the child and the `count` servers it
 * announced (one JSON line each: url, port, …). */
export function startFake(binary, args, count = 1) {
  const child = start(binary, ["--json", ...args]);
  return new Promise((resolve, reject) => {
    const servers = [];
    const lines = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error("fake-comfyui did not announce its servers in time")), TIMEOUT);
    lines.on("line", (line) => {
      let server;
      try {
        server = JSON.parse(line);
      } catch {
        return; // not one of its JSON lines
      }
      servers.push(server);
      if (servers.length === count) {
        clearTimeout(timer);
        resolve({ child, servers });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`fake-comfyui exited early (${code})`));
    });
  });
}

/** Starts the session's desktop portal, as a desktop session has it running before any app.
 * GTK asks it for its inhibit interface when the app starts and waits for the answer; on a bare
 * machine its first start has taken 50 s, which the app's start would otherwise wait out.
 * A machine without the portal is left as it is. */
async function desktopPortal() {
  await run(
    "gdbus",
    ["call", "--session", "--timeout", String(REQUEST_TIMEOUT / 1000), "--dest", "org.freedesktop.DBus",
      "--object-path", "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.StartServiceByName",
      "org.freedesktop.portal.Desktop", "0"],
  ).catch((error) => process.stderr.write(`no desktop portal: ${error.stderr || error.message}\n`));
}

/** Launches the app through tauri-driver with `env` and opens a WebDriver session on it. */
export async function launchApp(app, env) {
  await desktopPortal();
  const port = await freePort();
  const nativePort = await freePort();
  const driver = start(TAURI_DRIVER, ["--port", String(port), "--native-port", String(nativePort), "--native-driver", NATIVE_DRIVER], {
    env: { ...process.env, ...env },
  });
  await waitForPort(port);
  const browser = await remote({
    hostname: "127.0.0.1",
    port,
    logLevel: "warn",
    connectionRetryTimeout: REQUEST_TIMEOUT,
    capabilities: { "tauri:options": { application: app } },
  });
  return { browser, driver };
}

/** Ends the WebDriver session (which closes the app) and stops tauri-driver. With the app's
 * `pid`, also makes sure the app is gone: one closed in the middle of its start-up can outlive
 * its session, and would hold on to tauri-driver's output pipe. */
export async function closeApp({ browser, driver, pid }) {
  try {
    await browser.deleteSession();
  } finally {
    await stop(driver);
    if (pid) await reap(pid);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after five seconds, for a process that is not our child. */
async function reap(pid) {
  if (!alive(pid)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

// ---- the page, through one WebDriver session ----

/** A `data-testid` selector, optionally narrowed (`[data-state="running"]`). */
export const byId = (id, extra = "") => `[data-testid="${id}"]${extra}`;

/** Element helpers for the session `getBrowser()` returns (it may be opened later, or again). */
export function pageOf(getBrowser) {
  async function el(selector, root = getBrowser(), timeout = TIMEOUT) {
    const found = await root.$(selector);
    await found.waitForExist({ timeout, timeoutMsg: `${selector} never appeared` });
    return found;
  }

  async function click(selector, root = getBrowser()) {
    const found = await el(selector, root);
    await found.waitForClickable({ timeout: TIMEOUT });
    await found.click();
  }

  /** Waits until `selector`'s text is `wanted` (a string, or a RegExp it must match). */
  async function waitForText(selector, wanted, root = getBrowser(), timeout = TIMEOUT) {
    let last;
    await getBrowser().waitUntil(
      async () => {
        const found = await root.$(selector);
        last = (await found.isExisting()) ? (await found.getText()).trim() : undefined;
        return wanted instanceof RegExp ? wanted.test(last ?? "") : last === wanted;
      },
      { timeout, interval: 100, timeoutMsg: `${selector}: expected ${wanted}, last saw ${last}` },
    );
    return last;
  }

  /** Waits until `selector`'s attribute `attr` is one of `wanted`. */
  async function waitForAttr(selector, attr, wanted, root = getBrowser(), timeout = TIMEOUT) {
    let last;
    await getBrowser().waitUntil(
      async () => {
        const found = await root.$(selector);
        last = (await found.isExisting()) ? await found.getAttribute(attr) : undefined;
        return wanted.includes(last);
      },
      { timeout, interval: 100, timeoutMsg: `${selector}[${attr}]: expected ${wanted.join("/")}, last saw ${last}` },
    );
    return last;
  }

  return { el, click, waitForText, waitForAttr };
}

// ---- /proc: the app's process tree ----

const CLOCK_TICKS = 100; // USER_HZ on Linux

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), utime: Number(fields[11]), stime: Number(fields[12]), starttime: Number(fields[19]) };
  } catch {
    return null;
  }
}

function pids() {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
}

/** The pid of the running `binary` that descends from `ancestor`. */
export function findProcess(binary, ancestor) {
  const wanted = realpathSync(binary);
  for (const pid of pids()) {
    let exe;
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      continue;
    }
    if (exe !== wanted) continue;
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = stat(p)?.ppid ?? 0, hops++) {
      if (p === ancestor) return pid;
    }
  }
  return null;
}

/** `root` and every process below it (the app and its WebKit processes). */
export function tree(root) {
  const parent = new Map(pids().map((pid) => [pid, stat(pid)?.ppid]));
  const inside = (pid) => {
    for (let p = pid, hops = 0; p && hops < 20; p = parent.get(p), hops++) if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter(inside);
}

function rssKib(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m);
    return line ? Number(line[1]) : 0;
  } catch {
    return 0;
  }
}

/** Memory only this process maps (private clean + dirty pages): its own heap and stacks, not
 * the shared libraries that RSS also counts. */
function privateKib(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    let sum = 0;
    for (const m of text.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+)\s+kB/gm)) sum += Number(m[1]);
    return sum;
  } catch {
    return 0;
  }
}

/** CPU seconds used so far and resident memory now, of `root` alone and of its whole tree. */
export function usage(root) {
  const all = tree(root);
  const cpu = (pid) => {
    const s = stat(pid);
    return s ? (s.utime + s.stime) / CLOCK_TICKS : 0;
  };
  return {
    at: performance.now(),
    cpuS: cpu(root),
    treeCpuS: all.reduce((sum, pid) => sum + cpu(pid), 0),
    rssMib: rssKib(root) / 1024,
    privateMib: privateKib(root) / 1024,
    treeRssMib: all.reduce((sum, pid) => sum + rssKib(pid), 0) / 1024,
    processes: all.length,
  };
}

/** Share of one core and memory between two `usage` readings. */
export function between(a, b) {
  const seconds = (b.at - a.at) / 1000;
  return {
    seconds,
    corePercent: (100 * (b.cpuS - a.cpuS)) / seconds,
    treeCorePercent: (100 * (b.treeCpuS - a.treeCpuS)) / seconds,
    rssMib: b.rssMib,
    privateMib: b.privateMib,
    treeRssMib: b.treeRssMib,
  };
}

/** When `pid` started, in milliseconds since the epoch (10 ms resolution). */
export function startedAtMs(pid) {
  const uptimeS = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  const bootMs = Date.now() - uptimeS * 1000;
  return bootMs + (stat(pid).starttime / CLOCK_TICKS) * 1000;
}

/** Nearest-rank percentile of numbers (`q` in 0..1). */
export function percentile(values, q) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values) {
  return percentile(values, 0.5);
}
