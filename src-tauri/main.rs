//! The `comfy-monitor` binary: runs a headless subcommand when one is given, otherwise opens the
//! desktop app. The one place that knows both hosts; neither host depends on the other.
//!
//! No `windows_subsystem = "windows"` here: the same binary prints to the terminal for its CLI
//! subcommands.

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = comfy_cli::run_cli() {
        return code;
    }
    let options = comfy_cli::app_options();
    comfy_monitor_app::run(comfy_monitor_app::Options {
        db: options.db,
        minimised: options.minimised,
    })
}
