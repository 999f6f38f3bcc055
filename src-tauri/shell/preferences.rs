//! App-wide preferences: start hidden in the tray, launch at login, notify only when the window
//! is not focused, how the window is drawn. Kept in the store's `meta` table; "launch at login"
//! is the autostart plugin's entry itself (an XDG autostart file on Linux), so it is read back
//! from there. The rendering mode is read at start (`rendering::apply`), so a change holds from
//! the next start; `restart_app` is that next start.

use crate::shell::bus::Control;
use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::rendering::{self, RenderingInUse, RenderingMode};
use crate::shell::state::AppState;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Runtime, State};
use tauri_plugin_autostart::ManagerExt;
use ts_rs::TS;

pub const START_MINIMISED: &str = "start_minimised";
pub const ONLY_WHEN_UNFOCUSED: &str = "notify_only_when_unfocused";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AppSettings {
    /// Open hidden, in the tray (the window is one click away).
    pub start_minimised: bool,
    /// Start with the desktop session (hidden, in the tray).
    pub launch_at_login: bool,
    /// Stay silent while the window has the focus: it shows everything already.
    pub notify_only_when_unfocused: bool,
    /// How the window is drawn, from the next start.
    pub rendering: RenderingMode,
}

/// The saved preferences (defaults where none was saved).
pub fn load<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> AppSettings {
    let profile = state.profile().ok();
    let store = profile.map(|p| p.journal());
    let read = |key: &str| {
        store
            .as_ref()
            .and_then(|j| j.store().setting::<bool>(key).ok().flatten())
            .unwrap_or(false)
    };
    AppSettings {
        start_minimised: read(START_MINIMISED),
        launch_at_login: app.autolaunch().is_enabled().unwrap_or(false),
        notify_only_when_unfocused: read(ONLY_WHEN_UNFOCUSED),
        rendering: store
            .as_ref()
            .and_then(|j| j.store().setting(rendering::SETTING).ok().flatten())
            .unwrap_or_default(),
    }
}

#[tauri::command(rename_all = "snake_case")]
pub fn get_app_settings(app: AppHandle, state: State<'_, AppState>) -> AppSettings {
    load(&app, &state)
}

#[tauri::command(rename_all = "snake_case")]
pub fn set_app_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: AppSettings,
) -> Result<AppSettings, CommandError> {
    {
        let mut journal = state.profile()?.journal();
        let store = journal.store_mut();
        store.set_setting(START_MINIMISED, &settings.start_minimised)?;
        store.set_setting(ONLY_WHEN_UNFOCUSED, &settings.notify_only_when_unfocused)?;
        store.set_setting(rendering::SETTING, &settings.rendering)?;
    }
    let autolaunch = app.autolaunch();
    let changed = if settings.launch_at_login {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    };
    if let Err(e) = changed {
        // A missing entry is already disabled.
        if settings.launch_at_login || autolaunch.is_enabled().unwrap_or(false) {
            return Err(CommandError::new(
                ErrorCode::Io,
                format!("could not change launching at login: {e}"),
            ));
        }
    }
    state.bus.control(Control::OnlyWhenUnfocused(
        settings.notify_only_when_unfocused,
    ));
    Ok(load(&app, &state))
}

/// How this launch draws the window, and why.
#[tauri::command(rename_all = "snake_case")]
pub fn get_rendering(in_use: State<'_, RenderingInUse>) -> RenderingInUse {
    in_use.inner().clone()
}

/// Quits and starts the app again (a changed rendering mode holds from a start). Monitoring
/// resumes from the journal, as after any start.
#[tauri::command(rename_all = "snake_case")]
pub fn restart_app(app: AppHandle) {
    tracing::info!("restarting, as asked from the preferences");
    app.request_restart();
}
