//! The `comfy-monitor` binary: runs a headless subcommand when one is given, otherwise opens the
//! desktop app.
//!
//! No `windows_subsystem = "windows"` here: the same binary prints to the terminal for its CLI
//! subcommands.

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = comfy_cli::run_cli() {
        return code;
    }
    comfy_monitor_app::run()
}
