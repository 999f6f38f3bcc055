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
//! `COMFY_MONITOR_RENDERING=gpu` keeps WebKit's defaults, `software` turns compositing off on any
//! machine, `auto` (the default) decides as above. A WebKit variable the user set is never
//! changed.

/// What the user asked for (`COMFY_MONITOR_RENDERING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Gpu,
    Software,
}

pub const ENV: &str = "COMFY_MONITOR_RENDERING";
const NO_COMPOSITING: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
const NO_DMABUF: &str = "WEBKIT_DISABLE_DMABUF_RENDERER";

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

/// Reads the mode and the machine, and sets what [`plan`] says. Call before any thread starts.
pub fn apply() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let asked = std::env::var(ENV).unwrap_or_default();
    let mode = Mode::parse(&asked).unwrap_or_else(|| {
        tracing::warn!("{ENV}={asked:?} is none of auto, gpu, software: using auto");
        Mode::Auto
    });
    let machine = Machine {
        render_node: std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        }),
        nvidia: std::path::Path::new("/proc/driver/nvidia/version").exists(),
    };
    for (name, value) in plan(mode, machine, |name| std::env::var_os(name).is_some()) {
        tracing::info!(?mode, ?machine, "rendering: {name}={value}");
        std::env::set_var(name, value);
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
    fn the_mode_is_read_leniently_and_an_unknown_one_is_refused() {
        assert_eq!(Mode::parse(""), Some(Mode::Auto));
        assert_eq!(Mode::parse(" GPU "), Some(Mode::Gpu));
        assert_eq!(Mode::parse("software"), Some(Mode::Software));
        assert_eq!(Mode::parse("fast"), None);
    }
}
