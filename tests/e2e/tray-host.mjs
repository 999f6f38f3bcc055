// A real status-notifier host for the tray test: xfce4-panel (Debian's 4.18) with its "Status
// Tray" plugin, which registers org.kde.StatusNotifierWatcher and hosts StatusNotifierItems
// (the app's libayatana-appindicator item) as well as XEmbed icons. Plus what the test reads
// the tray with: X screenshots turned into pixels, the item's properties and its menu
// (com.canonical.dbusmenu) over the session bus, and xdotool for the mouse and keyboard.
//
// Everything runs in a throwaway home: the panel's layout is preset through xfconf's files in
// $XDG_CONFIG_HOME, and the session bus is told to start its services (xfconfd above all, which
// the panel reaches through D-Bus activation) with that home too.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { run, start, until } from "./harness.mjs";

/** Height of the panel, in pixels; the tray's icons are drawn `ICON_SIZE` pixels high in it. */
export const PANEL_HEIGHT = 40;
const ICON_SIZE = 32;

/** One panel along the top of the screen with the systray plugin alone. */
const PANEL_XML = `<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="dark-mode" type="bool" value="false"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="${PANEL_HEIGHT}"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray">
      <property name="icon-size" type="int" value="${ICON_SIZE}"/>
      <property name="square-icons" type="bool" value="false"/>
    </property>
  </property>
</channel>
`;

/** Notifications at the bottom right, away from the panel and the menu under the icon. */
const DUNSTRC = `[global]
    origin = bottom-right
    offset = 10x10
`;

/** The environment of a throwaway desktop session in `home`. */
export function desktopEnv(home) {
  return {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local", "share"),
    XDG_CACHE_HOME: path.join(home, ".cache"),
    XDG_STATE_HOME: path.join(home, ".local", "state"),
    XDG_RUNTIME_DIR: path.join(home, "run"),
    // No accessibility bus: it would be the one of the real home, or missing.
    NO_AT_BRIDGE: "1",
  };
}

function bus(...args) {
  // After "--" no argument is an option: GetLayout's depth is -1.
  return run("busctl", [`--address=${process.env.DBUS_SESSION_BUS_ADDRESS}`, "--json=short", "--", ...args]);
}

async function busJson(...args) {
  const { stdout } = await bus(...args);
  return JSON.parse(stdout);
}

/** Whether a name has an owner on the session bus (asked without activating it). */
export async function nameOwned(name) {
  const { data } = await busJson("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
    "NameHasOwner", "s", name);
  return data[0] === true;
}

/** Starts the desktop in `home`: openbox, dunst and xfce4-panel with the status tray; resolves
 * once the panel hosts status-notifier items. Processes are stopped by the harness' stopAll. */
export async function startDesktop(home) {
  const env = desktopEnv(home);
  const channel = path.join(env.XDG_CONFIG_HOME, "xfce4", "xfconf", "xfce-perchannel-xml");
  mkdirSync(channel, { recursive: true });
  writeFileSync(path.join(channel, "xfce4-panel.xml"), PANEL_XML);
  mkdirSync(path.join(env.XDG_CONFIG_HOME, "dunst"), { recursive: true });
  writeFileSync(path.join(env.XDG_CONFIG_HOME, "dunst", "dunstrc"), DUNSTRC);
  mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  // Services the bus starts from now on (xfconfd, the portal) live in the same home.
  const activation = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  await run("dbus-update-activation-environment", [...activation, `DISPLAY=${process.env.DISPLAY}`]);
  const options = { env: { ...process.env, ...env } };
  start("openbox", ["--sm-disable"], options);
  await until("the window manager", () => run("wmctrl", ["-m"]).then(() => true, () => false));
  start("dunst", [], options);
  await until("the notification server", () => nameOwned("org.freedesktop.Notifications").catch(() => false));
  start("xfce4-panel", ["--disable-wm-check"], options);
  await until("the panel's status-notifier host", async () => {
    try {
      const { data } = await busJson("get-property", "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
        "org.kde.StatusNotifierWatcher", "IsStatusNotifierHostRegistered");
      return data === true;
    } catch {
      return false;
    }
  });
  return env;
}

// ---- the status-notifier item, over D-Bus ----

/** The registered items: `{ service, path }` for each. */
export async function sniItems() {
  const { data } = await busJson("get-property", "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
    "org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems");
  return data.map((entry) => {
    const slash = entry.indexOf("/");
    return slash < 0 ? { service: entry, path: "/StatusNotifierItem" } : { service: entry.slice(0, slash), path: entry.slice(slash) };
  });
}

/** Every property of an item, by name (values unwrapped). */
export async function sniProperties(item) {
  const { data } = await busJson("call", item.service, item.path, "org.freedesktop.DBus.Properties", "GetAll", "s",
    "org.kde.StatusNotifierItem");
  return Object.fromEntries(Object.entries(data[0]).map(([k, v]) => [k, v.data]));
}

/** The item whose Id matches `id`, once it is registered and has an icon; `{ item, props }`. */
export function waitForItem(id, timeout) {
  return until(
    `a status-notifier item ${id}`,
    async () => {
      for (const item of await sniItems().catch(() => [])) {
        const props = await sniProperties(item).catch(() => null);
        if (props && id.test(props.Id) && props.IconName) return { item, props };
      }
      return null;
    },
    timeout,
  );
}

/** The item's menu, flattened: `{ id, label, enabled, separator }` per entry, in order. */
export async function menuEntries(item, menuPath) {
  const { data } = await busJson("call", item.service, menuPath, "com.canonical.dbusmenu", "GetLayout", "iias", "0", "-1", "0");
  const [, [, , children]] = data;
  return children.map(({ data: [id, props] }) => ({
    id,
    label: props.label?.data ?? "",
    enabled: props.enabled?.data ?? true,
    visible: props.visible?.data ?? true,
    separator: props.type?.data === "separator",
  })).filter((e) => e.visible);
}

// ---- pixels ----

/** Takes an X screenshot of the whole screen into `file` (PNG); returns its pixels. */
export async function screenshot(file) {
  await run("import", ["-window", "root", file]);
  return readPixels(file);
}

/** The RGB pixels of a PNG: `{ width, height, at(x, y) -> [r, g, b] }`. */
export async function readPixels(file) {
  const { stdout: size } = await run("identify", ["-format", "%w %h", file]);
  const [width, height] = size.trim().split(" ").map(Number);
  const { stdout } = await run("convert", [file, "-depth", "8", "rgb:-"], { encoding: "buffer", maxBuffer: 64 << 20 });
  return {
    width,
    height,
    at(x, y) {
      const i = (Math.round(y) * width + Math.round(x)) * 3;
      return [stdout[i], stdout[i + 1], stdout[i + 2]];
    },
  };
}

export function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** The centre and side of the icon drawn in the panel strip: the bounding box of the pixels of
 * `glyph` (the icon's disc, a quarter of a side across each way from its centre). */
export function findIcon(pixels, glyph, tolerance = 6) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let y = 0; y < PANEL_HEIGHT; y++) {
    for (let x = 0; x < pixels.width; x++) {
      if (distance(pixels.at(x, y), glyph) <= tolerance) {
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
      }
    }
  }
  if (minX === Infinity) return null;
  // The disc's radius is 0.26 of the side; its blended edge pixels fall outside the tolerance.
  const across = Math.max(maxX - minX, maxY - minY) + 2;
  return { x: (minX + maxX) / 2, y: (minY + maxY) / 2, side: across / 0.52 };
}

/** The average colour of the 3×3 pixels around a point. */
export function colourAt(pixels, x, y) {
  const sum = [0, 0, 0];
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) pixels.at(x + dx, y + dy).forEach((v, i) => (sum[i] += v));
  return sum.map((v) => Math.round(v / 9));
}

/** What the progress ring around `icon` shows: the share of the ring's middle band in
 * `progress` colour (0–1) and how far clockwise from twelve o'clock it reaches (0–1). */
export function readRing(pixels, icon, progress) {
  let band = 0;
  let filled = 0;
  let reach = 0;
  const half = Math.ceil(icon.side / 2);
  for (let y = Math.floor(icon.y - half); y <= icon.y + half; y++) {
    for (let x = Math.floor(icon.x - half); x <= icon.x + half; x++) {
      const dx = x - icon.x;
      const dy = y - icon.y;
      const r = Math.hypot(dx, dy) / icon.side;
      // The ring spans 0.34–0.48 of the side; its middle avoids the blended edges.
      if (r < 0.37 || r > 0.45) continue;
      band++;
      if (distance(pixels.at(x, y), progress) > 40) continue;
      filled++;
      let angle = Math.atan2(dx, -dy);
      if (angle < 0) angle += 2 * Math.PI;
      reach = Math.max(reach, angle / (2 * Math.PI));
    }
  }
  return { filled: band ? filled / band : 0, reach, band };
}

// ---- mouse and keyboard ----

export function xdotool(...args) {
  return run("xdotool", args.map(String));
}

/** Clicks `button` (1 left, 3 right) at a point of the screen. */
export async function clickAt(x, y, button) {
  await xdotool("mousemove", Math.round(x), Math.round(y), "click", button);
}

/** Ids of the visible windows whose name matches `name` (a regular expression for xdotool). */
export async function visibleWindows(name) {
  const { stdout } = await run("xdotool", ["search", "--onlyvisible", "--name", name]).catch(() => ({ stdout: "" }));
  return stdout.split("\n").filter(Boolean);
}

/** The window's position and size as X has it. */
export async function geometry(window) {
  const { stdout } = await xdotool("getwindowgeometry", "--shell", window);
  const g = Object.fromEntries(stdout.trim().split("\n").map((l) => l.split("=")));
  return { x: Number(g.X), y: Number(g.Y), width: Number(g.WIDTH), height: Number(g.HEIGHT) };
}

/** The windows mapped over the screen, unframed, just under the panel: the panel's popup menus
 * (the notifications are popups too, at the bottom). */
export async function popups() {
  const { stdout } = await run("xwininfo", ["-root", "-children"]);
  const out = [];
  for (const line of stdout.split("\n")) {
    const m = line.match(/^\s+(0x[0-9a-f]+) .*: \(.*\)\s+(\d+)x(\d+)\+(-?\d+)\+(-?\d+)/);
    if (!m || Number(m[5]) >= PANEL_HEIGHT + 40) continue;
    const [, id, w, h, x, y] = m;
    const info = await run("xwininfo", ["-id", id]).then((r) => r.stdout, () => "");
    if (/Map State: IsViewable/.test(info) && /Override Redirect State: yes/.test(info) && Number(w) > 20 && Number(h) > 20 && Number(y) < PANEL_HEIGHT + 40) {
      out.push({ id, x: Number(x), y: Number(y), width: Number(w), height: Number(h) });
    }
  }
  return out;
}

/** Removes the throwaway home. The session's document portal mounts its FUSE file system in
 * $XDG_RUNTIME_DIR/doc, which is unmounted first. */
export async function removeHome(home) {
  const doc = path.join(desktopEnv(home).XDG_RUNTIME_DIR, "doc");
  for (const tool of ["fusermount3", "fusermount"]) {
    if (await run(tool, ["-u", "-z", doc]).then(() => true, () => false)) break;
  }
  try {
    rmSync(home, { recursive: true, force: true });
  } catch (error) {
    process.stderr.write(`the throwaway home ${home} is left behind: ${error.message}\n`);
  }
}
