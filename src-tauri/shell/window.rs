//! The main window. Closing it hides it: monitoring goes on, and the tray brings it back.

use tauri::{AppHandle, Manager, Runtime, Window, WindowEvent};

/// The label of the one window, as in `tauri.conf.json` and the capabilities.
pub const MAIN: &str = "main";

pub fn on_window_event<R: Runtime>(window: &Window<R>, event: &WindowEvent) {
    if let WindowEvent::CloseRequested { api, .. } = event {
        if window.label() == MAIN {
            api.prevent_close();
            if let Err(error) = window.hide() {
                tracing::warn!(%error, "could not hide the window");
            }
        }
    }
}

/// Shows, restores and focuses the main window.
pub fn show_main<R: Runtime>(app: &AppHandle<R>) {
    let Some(window) = app.get_webview_window(MAIN) else {
        tracing::warn!("the main window is gone");
        return;
    };
    let steps = [window.show(), window.unminimize(), window.set_focus()];
    for error in steps.into_iter().filter_map(Result::err) {
        tracing::warn!(%error, "could not bring the window back");
    }
}
