//! Whether the main window is on screen. A monitor spends most of its life hidden in the tray,
//! and a webview that is sent progress and previews while nobody can see it still lays out,
//! paints and decodes them. While the window is not on screen (hidden, closed to the tray,
//! started minimised, or minimised: as the shell or the webview's own page visibility says),
//! the webview is sent nothing that only changes what it paints: no progress batches, no
//! preview announcements, no job, queue, status, server or stats changes. The tray, its tooltip
//! and notifications read the engine, not the webview, and lose nothing. When the window is on
//! screen again the webview is told to fetch the current picture (`instances-changed` at the
//! overview's revision), so it is right within a frame of showing.

use crate::shell::events::{emit, InstancesChanged, Update};
use crate::shell::state::AppState;
use std::sync::atomic::{AtomicBool, Ordering};
use tauri::{AppHandle, Manager, Runtime};

/// Whether the webview is on screen.
#[derive(Debug)]
pub struct ViewVisibility(AtomicBool);

impl ViewVisibility {
    pub fn new(visible: bool) -> Self {
        Self(AtomicBool::new(visible))
    }

    pub fn is_visible(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Records it; `true` when it has just come on screen (its picture must be fetched again).
    fn set(&self, visible: bool) -> bool {
        let was = self.0.swap(visible, Ordering::SeqCst);
        visible && !was
    }
}

/// Whether `update` goes to a webview that is on screen (`visible`) or not.
pub fn reaches_view(update: &Update, visible: bool) -> bool {
    visible || !update.only_paints()
}

/// The window came on screen or went off it: from the shell's own show and hide, and from the
/// webview's page visibility (which also sees minimising).
pub fn set_visible<R: Runtime>(app: &AppHandle<R>, visible: bool) {
    let Some(view) = app.try_state::<ViewVisibility>() else {
        return;
    };
    if !view.set(visible) {
        return;
    }
    // Back on screen: everything held back is in the overview; the webview fetches it whole.
    if let Some(state) = app.try_state::<AppState>() {
        let revision = state.overview.lock().revision();
        emit(
            app,
            &Update::InstancesChanged(InstancesChanged { revision }),
        );
    }
}

/// The webview's page visibility changed (`document.visibilityState`).
#[tauri::command(rename_all = "snake_case")]
pub fn view_visibility(app: AppHandle, visible: bool) {
    set_visible(&app, visible);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::events::{ShowRequested, ViewChanged};

    #[test]
    fn off_screen_the_webview_gets_only_what_is_not_paint() {
        let progress = Update::ViewChanged(ViewChanged::empty(1));
        assert!(reaches_view(&progress, true));
        assert!(!reaches_view(&progress, false));
        // What asks the window to act, or changes what a fresh picture is, always goes.
        for update in [
            Update::ShowRequested(ShowRequested {
                instance_id: None,
                prompt_id: None,
            }),
            Update::InstancesChanged(InstancesChanged { revision: 3 }),
        ] {
            assert!(reaches_view(&update, false), "{update:?}");
        }
    }

    #[test]
    fn coming_on_screen_is_told_once() {
        let v = ViewVisibility::new(false);
        assert!(!v.set(false));
        assert!(v.set(true), "came on screen");
        assert!(!v.set(true), "already on screen");
        assert!(!v.set(false));
        assert!(!v.is_visible());
        assert!(v.set(true));
    }
}
