//! The tray-and-notifications monitor's inboxes: what the rest of the shell tells it (engine
//! events, the window's focus, a cancel of ours, an instance's switches, a menu choice). Only
//! the sending side lives here, so the window, the tray and the commands can reach the monitor
//! without importing the task that runs it.

use comfy_engine::{Event, EventKind};
use comfy_model::{InstanceId, NotificationPrefs, PromptId};
use std::sync::{Arc, Mutex};
use tauri::{AppHandle, Manager, Runtime};
use tokio::sync::mpsc;

/// What the rest of the shell tells the monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// The main window gained or lost the focus.
    Focused(bool),
    /// This app is about to cancel the job: its interruption is ours, not news.
    CancelledByUs {
        instance: InstanceId,
        prompt_id: PromptId,
    },
    /// What this app's job is called in its notifications (its file's name, or its model and
    /// the first words of its prompt).
    JobLabel {
        instance: InstanceId,
        prompt_id: PromptId,
        label: String,
    },
    /// An instance's name and notification switches (on start and on every edit).
    Instance {
        id: InstanceId,
        name: String,
        prefs: NotificationPrefs,
    },
    /// An instance stopped being monitored.
    Forget(InstanceId),
    OnlyWhenUnfocused(bool),
    /// The user looked at the dashboard: failures are no longer unseen.
    MarkSeen,
    /// A tray menu item was chosen.
    Menu(String),
}

/// The monitor's inboxes. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct Monitor {
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

impl Monitor {
    /// Hands an engine event over. Previews and node text change nothing there and are not sent.
    pub fn observe(&self, event: &Event) {
        if matches!(event.kind, EventKind::Preview(_) | EventKind::Text { .. }) {
            return;
        }
        let _ = self.events.send(event.clone());
    }

    pub fn control(&self, control: Control) {
        let _ = self.control.send(control);
    }
}

/// The monitor once it runs; until then (and after it stops) messages go nowhere.
#[derive(Clone, Default)]
pub struct Bus(Arc<Mutex<Option<Monitor>>>);

impl Bus {
    fn monitor(&self) -> Option<Monitor> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn connect(&self, monitor: Monitor) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(monitor);
    }

    pub fn control(&self, control: Control) {
        if let Some(m) = self.monitor() {
            m.control(control);
        }
    }

    pub fn observe(&self, event: &Event) {
        if let Some(m) = self.monitor() {
            m.observe(event);
        }
    }
}

/// The bus, from a Tauri app handle (for window and tray callbacks).
pub fn of<R: Runtime>(app: &AppHandle<R>) -> Option<Bus> {
    app.try_state::<Bus>().map(|s| s.inner().clone())
}
