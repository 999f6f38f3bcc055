//! The main window. Closing it hides it: monitoring goes on, and the tray brings it back. Its
//! focus is told to the monitor ("notify only when the window is not focused"; a focused window
//! means failures have been seen).

use crate::shell::bus::{self, Control};
use crate::shell::visibility;
use tauri::{AppHandle, Manager, Runtime, Window, WindowEvent};

/// The label of the one window, as in `tauri.conf.json` and the capabilities.
pub const MAIN: &str = "main";

pub fn on_window_event<R: Runtime>(window: &Window<R>, event: &WindowEvent) {
    if window.label() != MAIN {
        return;
    }
    match event {
        WindowEvent::CloseRequested { api, .. } => {
            api.prevent_close();
            if let Err(error) = window.hide() {
                tracing::warn!(%error, "could not hide the window");
            }
            visibility::set_visible(window.app_handle(), false);
            focus_changed(window.app_handle(), false);
        }
        WindowEvent::Focused(focused) => focus_changed(window.app_handle(), *focused),
        _ => {}
    }
}

fn focus_changed<R: Runtime>(app: &AppHandle<R>, focused: bool) {
    if let Some(m) = bus::of(app) {
        m.control(Control::Focused(focused));
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
    visibility::set_visible(app, true);
}

/// Left click on the tray: hides a visible window, brings back a hidden one.
pub fn toggle_main<R: Runtime>(app: &AppHandle<R>) {
    let visible = app
        .get_webview_window(MAIN)
        .and_then(|w| w.is_visible().ok())
        .unwrap_or(false);
    if visible {
        if let Some(window) = app.get_webview_window(MAIN) {
            if let Err(error) = window.hide() {
                tracing::warn!(%error, "could not hide the window");
            }
        }
        visibility::set_visible(app, false);
        focus_changed(app, false);
    } else {
        show_main(app);
    }
}
