//! How WebKitGTK draws the window, chosen once before it starts (Linux; elsewhere nothing is
//! set). WebKit reads these from the environment when its first view is made, so they are set
//! at the start of the app, before any thread.
//!
//! - **No usable GPU** (no DRI render node: a VM, a remote box, a container): WebKit would
//!   composite in software GL, which costs far more CPU than the monitor itself. Compositing is
//!   turned off (`WEBKIT_DISABLE_COMPOSITING_MODE=1`: WebKit paints with cairo); on this
//!   project's GPU-less machine that halved the shown window's CPU (docs/benchmarks.md).
//! - **NVIDIA's own driver**: WebKitGTK's DMA-BUF renderer leaves the window blank on many of
//!   these machines, above all under Wayland; it is turned off
//!   (`WEBKIT_DISABLE_DMABUF_RENDERER=1`), WebKit's own advice for that case.
//!
//! The choice is the app's "Rendering" preference (saved in the profile's database, read here
//! before anything else opens it), or for one launch `COMFY_MONITOR_RENDERING`, which wins:
//! `gpu` keeps WebKit's defaults, `software` turns compositing off on any machine, `auto` (the
//! default) decides as above. A WebKit variable the user set is never changed.

use serde::{Deserialize, Serialize};
use std::path::Path;
use ts_rs::TS;

/// How the window is drawn, as the user chooses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum RenderingMode {
    /// Chosen from the machine: software painting without a GPU, the NVIDIA fix with one.
    #[default]
    Auto,
    /// WebKit's own defaults, whatever the machine.
    Gpu,
    /// No GPU compositing, on any machine.
    Software,
}

/// Where the mode in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum RenderingSource {
    /// `COMFY_MONITOR_RENDERING`, for this launch.
    Environment,
    /// The saved preference.
    Settings,
    /// Nothing was chosen: `auto`.
    Default,
}

/// What the window was started with; it holds until the app restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct RenderingInUse {
    pub mode: RenderingMode,
    pub decided_by: RenderingSource,
    /// A DRI render node was found (some GPU can render).
    pub gpu_found: bool,
    /// NVIDIA's own driver is loaded.
    pub nvidia: bool,
    /// GPU compositing is off (WebKit paints in software), whoever set the variable.
    pub compositing_off: bool,
    /// WebKit's DMA-BUF renderer is off, whoever set the variable.
    pub dmabuf_renderer_off: bool,
    /// WebKit variables that were set before the app started, and left as they were.
    pub inherited: Vec<String>,
}

/// Where the preference is kept (the store's `meta` table).
pub const SETTING: &str = "rendering";
pub const ENV: &str = "COMFY_MONITOR_RENDERING";
/// The WebKit variables a launch set itself, so the launch it restarts into (which inherits its
/// environment) does not take them for the user's.
const SET_BY_US: &str = "COMFY_MONITOR_RENDERING_SET";
const NO_COMPOSITING: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
const NO_DMABUF: &str = "WEBKIT_DISABLE_DMABUF_RENDERER";

type Mode = RenderingMode;

impl Mode {
    /// `None` for a value that is none of `auto`, `gpu`, `software`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "gpu" => Some(Self::Gpu),
            "software" => Some(Self::Software),
            _ => None,
        }
    }
}

/// What the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// A DRI render node (`/dev/dri/renderD*`): some GPU can render.
    pub render_node: bool,
    /// NVIDIA's own kernel driver is loaded (`/proc/driver/nvidia/version`).
    pub nvidia: bool,
}

/// The WebKit variables to set, and why; none the user has set (`set`).
pub fn plan(
    mode: Mode,
    machine: Machine,
    set: impl Fn(&str) -> bool,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let software = match mode {
        Mode::Software => true,
        Mode::Gpu => false,
        Mode::Auto => !machine.render_node,
    };
    if software && !set(NO_COMPOSITING) {
        out.push((NO_COMPOSITING, "1"));
    }
    if machine.nvidia && mode != Mode::Gpu && !set(NO_DMABUF) {
        out.push((NO_DMABUF, "1"));
    }
    out
}

/// Chooses the mode (the environment, else the preference saved in the database at `db`, else
/// `auto`), reads the machine, and sets what [`plan`] says. Call before any thread starts.
pub fn apply(db: Option<&Path>) -> RenderingInUse {
    let machine = if cfg!(target_os = "linux") {
        Machine {
            render_node: std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
            }),
            nvidia: Path::new("/proc/driver/nvidia/version").exists(),
        }
    } else {
        Machine {
            render_node: true,
            nvidia: false,
        }
    };
    // What a previous launch of the app set (this one is its restart) is not the user's.
    if let Some(ours) = std::env::var_os(SET_BY_US) {
        for name in ours.to_string_lossy().split(',') {
            if [NO_COMPOSITING, NO_DMABUF].contains(&name) {
                std::env::remove_var(name);
            }
        }
        std::env::remove_var(SET_BY_US);
    }
    let (mode, decided_by) = choose(std::env::var(ENV).ok(), || saved(db));
    let inherited = [NO_COMPOSITING, NO_DMABUF]
        .into_iter()
        .filter_map(|name| Some(format!("{name}={}", std::env::var(name).ok()?)))
        .collect();
    let mut ours = Vec::new();
    // WebKitGTK reads these; elsewhere the webview is not WebKitGTK.
    if cfg!(target_os = "linux") {
        for (name, value) in plan(mode, machine, |name| std::env::var_os(name).is_some()) {
            tracing::info!(?mode, ?decided_by, ?machine, "rendering: {name}={value}");
            std::env::set_var(name, value);
            ours.push(name);
        }
        if !ours.is_empty() {
            std::env::set_var(SET_BY_US, ours.join(","));
        }
    }
    RenderingInUse {
        mode,
        decided_by,
        gpu_found: machine.render_node,
        nvidia: machine.nvidia,
        compositing_off: turned_on(NO_COMPOSITING),
        dmabuf_renderer_off: turned_on(NO_DMABUF),
        inherited,
    }
}

/// Whether WebKit takes the variable as set: present, and anything but `0`.
fn turned_on(name: &str) -> bool {
    cfg!(target_os = "linux") && std::env::var_os(name).is_some_and(|v| v != "0")
}

/// The environment's mode if it names one, else the saved one, else `auto`.
fn choose(env: Option<String>, saved: impl FnOnce() -> Option<Mode>) -> (Mode, RenderingSource) {
    if let Some(asked) = env.filter(|v| !v.trim().is_empty()) {
        match Mode::parse(&asked) {
            Some(mode) => return (mode, RenderingSource::Environment),
            None => tracing::warn!("{ENV}={asked:?} is none of auto, gpu, software: ignored"),
        }
    }
    match saved() {
        Some(mode) => (mode, RenderingSource::Settings),
        None => (Mode::Auto, RenderingSource::Default),
    }
}

/// The preference saved in the profile's database, read without creating or changing anything.
fn saved(db: Option<&Path>) -> Option<Mode> {
    let path = match db {
        Some(path) => path.to_path_buf(),
        None => comfy_store::default_path().ok()?,
    };
    if !path.exists() {
        return None;
    }
    match comfy_store::Store::open_read_only(&path).and_then(|s| s.setting::<Mode>(SETTING)) {
        Ok(mode) => mode,
        Err(error) => {
            tracing::warn!(%error, "the rendering preference could not be read: using auto");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: Machine = Machine {
        render_node: true,
        nvidia: false,
    };
    const NONE: Machine = Machine {
        render_node: false,
        nvidia: false,
    };
    const NVIDIA: Machine = Machine {
        render_node: true,
        nvidia: true,
    };

    fn unset(_: &str) -> bool {
        false
    }

    #[test]
    fn without_a_gpu_compositing_is_turned_off_unless_the_user_says_otherwise() {
        assert_eq!(plan(Mode::Auto, NONE, unset), [(NO_COMPOSITING, "1")]);
        assert_eq!(plan(Mode::Auto, GPU, unset), []);
        assert_eq!(plan(Mode::Gpu, NONE, unset), []);
        assert_eq!(plan(Mode::Software, GPU, unset), [(NO_COMPOSITING, "1")]);
    }

    #[test]
    fn nvidias_driver_gets_the_dmabuf_renderer_turned_off() {
        assert_eq!(plan(Mode::Auto, NVIDIA, unset), [(NO_DMABUF, "1")]);
        assert_eq!(
            plan(Mode::Software, NVIDIA, unset),
            [(NO_COMPOSITING, "1"), (NO_DMABUF, "1")]
        );
        assert_eq!(
            plan(Mode::Gpu, NVIDIA, unset),
            [],
            "gpu keeps WebKit's defaults"
        );
    }

    #[test]
    fn a_variable_the_user_set_is_left_alone() {
        let set = |name: &str| name == NO_COMPOSITING;
        assert_eq!(plan(Mode::Auto, NONE, set), []);
        assert_eq!(plan(Mode::Software, NVIDIA, set), [(NO_DMABUF, "1")]);
    }

    #[test]
    fn the_environment_wins_over_the_saved_preference_which_wins_over_auto() {
        let never = || -> Option<Mode> {
            panic!("the preference is not read when the environment decides")
        };
        assert_eq!(
            choose(Some("software".into()), never),
            (Mode::Software, RenderingSource::Environment)
        );
        assert_eq!(
            choose(None, || Some(Mode::Gpu)),
            (Mode::Gpu, RenderingSource::Settings)
        );
        assert_eq!(
            choose(Some("nonsense".into()), || Some(Mode::Software)),
            (Mode::Software, RenderingSource::Settings),
            "an unknown value is ignored, not taken as auto"
        );
        assert_eq!(
            choose(Some(" ".into()), || None),
            (Mode::Auto, RenderingSource::Default)
        );
    }

    #[test]
    fn the_preference_is_read_from_the_profiles_database_without_creating_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("profile.db");
        assert_eq!(saved(Some(&db)), None);
        assert!(!db.exists(), "reading the preference made a database");
        let mut store = comfy_store::Store::open(&db).unwrap();
        assert_eq!(saved(Some(&db)), None);
        store.set_setting(SETTING, &Mode::Software).unwrap();
        assert_eq!(saved(Some(&db)), Some(Mode::Software));
        store.set_setting(SETTING, &"sideways").unwrap();
        assert_eq!(
            saved(Some(&db)),
            None,
            "a value no build knows reads as unset"
        );
    }

    #[test]
    fn the_mode_is_read_leniently_and_an_unknown_one_is_refused() {
        assert_eq!(Mode::parse(""), Some(Mode::Auto));
        assert_eq!(Mode::parse(" GPU "), Some(Mode::Gpu));
        assert_eq!(Mode::parse("software"), Some(Mode::Software));
        assert_eq!(Mode::parse("fast"), None);
    }
}
