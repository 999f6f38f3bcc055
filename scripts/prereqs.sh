# Shared by scripts/test-all and scripts/run-app: installs what a fresh Debian 12 machine lacks.
# Source it; every function is idempotent and quiet when nothing is missing.

# Build: WebKitGTK 4.1 and friends for Tauri. Headless run and test: Xvfb, a session bus,
# WebKitWebDriver, ImageMagick for screenshots, and a font so text renders; for the end-to-end
# test's desktop, a window manager (openbox, driven by wmctrl) and a notification server (dunst).
# The keyring test (scripts/keyring-test): a Secret Service (gnome-keyring) on a private bus,
# gdbus to wait for it. GStreamer's plugins, so the gallery plays the videos (H.264 MP4, WebM)
# and sounds (FLAC, MP3, WAV) ComfyUI saves.
APT_PACKAGES=(
  build-essential pkg-config libssl-dev
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  xvfb xauth dbus-daemon dbus-x11 webkit2gtk-driver imagemagick fonts-dejavu-core
  dbus gnome-keyring libglib2.0-bin openbox wmctrl dunst
  gstreamer1.0-plugins-good gstreamer1.0-libav
  xfce4-panel xdotool x11-utils systemd
)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_toolchains() {
  export PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
  command -v npm >/dev/null || { echo "npm is missing: install Node.js 20.19+ first" >&2; exit 1; }
}

ensure_apt_packages() {
  local missing=()
  local pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  fi
}

# `npm ci` in a package folder, skipped locally when node_modules matches the lock file already.
# Install scripts are off: nothing here needs them, and some dependencies' scripts try to
# download browser drivers.
ensure_npm_deps() {
  local dir=$1
  if [ -z "${CI:-}" ] && [ -f "$dir/node_modules/.package-lock.json" ] &&
    [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    return
  fi
  step "npm ci ($dir)"
  npm --prefix "$dir" ci --ignore-scripts --no-audit --no-fund
}

ensure_tauri_driver() {
  if ! command -v tauri-driver >/dev/null; then
    step "cargo install tauri-driver"
    cargo install tauri-driver --locked
  fi
}
