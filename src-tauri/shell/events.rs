//! Every event the shell emits to the webview: its name and its payload. The one place event
//! names are spelled; the UI's copy (`ui/src/bindings/events.ts`) is generated from this module.
//!
//! Each payload carries the overview revision it was produced at, so a UI that loads a snapshot
//! while events are in flight can drop the ones the snapshot already contains.

use crate::shell::view::{InstanceStatus, JobSummary, LogEntry, QueueCounts, StatsView};
use comfy_model::{InstanceId, PromptId, ServerInfo};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use ts_rs::TS;

pub const VIEW_CHANGED: &str = "view-changed";
pub const INSTANCES_CHANGED: &str = "instances-changed";
pub const EVENT_LOGGED: &str = "event-logged";
pub const SHOW_REQUESTED: &str = "show-requested";
pub const CANCEL_CONFIRMATION_REQUESTED: &str = "cancel-confirmation-requested";
pub const SAVING_CHANGED: &str = "saving-changed";

/// A notification's "Show" was clicked: the window is back; the UI opens the instance (and job).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ShowRequested {
    pub instance_id: Option<InstanceId>,
    pub prompt_id: Option<PromptId>,
}

/// The tray's "Cancel current job" hit another client's job: the UI asks before cancelling.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct CancelConfirmationRequested {
    pub instance_id: InstanceId,
    pub prompt_id: PromptId,
}

/// Instances were added, removed or re-configured: the UI reloads its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct InstancesChanged {
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StatsChanged {
    pub revision: u64,
    pub instance_id: InstanceId,
    pub stats: StatsView,
}

/// A line was added to an instance's event log (connection changes, custom server events).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct EventLogged {
    pub instance_id: InstanceId,
    pub entry: LogEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct InstanceStatusChanged {
    pub revision: u64,
    pub instance_id: InstanceId,
    pub status: InstanceStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ServerInfoChanged {
    pub revision: u64,
    pub instance_id: InstanceId,
    pub server: ServerInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct QueueChanged {
    pub revision: u64,
    pub instance_id: InstanceId,
    pub queue: QueueCounts,
}

/// A job's new picture.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct JobUpdated {
    pub revision: u64,
    pub instance_id: InstanceId,
    pub job: JobSummary,
    /// The instance's unfinished jobs in display order (running first, then pending in queue
    /// order), sent only when this update changed that order. The order is the shell's: the
    /// webview never sorts jobs itself. Orders reach the webview in the order they were made.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<PromptId>>,
}

/// Every change of the webview's picture since the last batch, for all instances: at most one
/// of these per display frame (`batcher.rs`). Newest wins: one change per instance in each
/// list, one picture per job. Each change carries its own revision; the webview applies the
/// lists as they come, and the job pictures in order. It answers `batch_shown` with the batch
/// number once it has shown it; the next batch waits for that.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ViewChanged {
    pub batch: u64,
    pub statuses: Vec<InstanceStatusChanged>,
    pub servers: Vec<ServerInfoChanged>,
    pub queues: Vec<QueueChanged>,
    pub stats: Vec<StatsChanged>,
    pub jobs: Vec<JobUpdated>,
}

impl ViewChanged {
    pub fn empty(batch: u64) -> Self {
        Self {
            batch,
            statuses: Vec::new(),
            servers: Vec::new(),
            queues: Vec::new(),
            stats: Vec::new(),
            jobs: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.servers.is_empty()
            && self.queues.is_empty()
            && self.stats.is_empty()
            && self.jobs.is_empty()
    }
}

/// Where changes of the webview's picture made outside the event task go: into its batches.
pub struct ViewChanges(pub tokio::sync::mpsc::UnboundedSender<Update>);

/// Sends one update toward the webview. A change of its picture joins the next batch (once the
/// event task runs; before, it goes alone); anything else goes at once.
pub fn emit<R: Runtime>(app: &AppHandle<R>, update: &Update) {
    if update.only_paints() && !matches!(update, Update::ViewChanged(_)) {
        let batched = app
            .try_state::<ViewChanges>()
            .is_some_and(|changes| changes.0.send(update.clone()).is_ok());
        if batched {
            return;
        }
    }
    deliver(app, update);
}

/// Sends one update to the webview now; a failure is logged and the app goes on. While the
/// window is off screen, what only changes its paint is not sent (`visibility.rs`).
pub fn deliver<R: Runtime>(app: &AppHandle<R>, update: &Update) {
    let visible = app
        .try_state::<crate::shell::visibility::ViewVisibility>()
        .is_none_or(|v| v.is_visible());
    if !crate::shell::visibility::reaches_view(update, visible) {
        return;
    }
    if let Err(error) = update.emit(app) {
        tracing::warn!(%error, event = update.name(), "could not emit to the webview");
    }
}

/// One change to send to the webview.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    // Changes of the webview's picture: batched (`batcher.rs`); one sent before the event task
    // runs goes as a batch of its own.
    InstanceStatusChanged(InstanceStatusChanged),
    ServerInfoChanged(ServerInfoChanged),
    QueueChanged(QueueChanged),
    /// Boxed: a job's picture is far larger than the other payloads.
    JobUpdated(Box<JobUpdated>),
    StatsChanged(StatsChanged),
    /// A batch of the changes above.
    ViewChanged(ViewChanged),
    // The rest go as they are.
    InstancesChanged(InstancesChanged),
    EventLogged(EventLogged),
    ShowRequested(ShowRequested),
    CancelConfirmationRequested(CancelConfirmationRequested),
    /// Where saving outputs stands (a few changes per finished job).
    SavingChanged(comfy_model::SavingStatus),
}

impl Update {
    pub fn name(&self) -> &'static str {
        match self {
            Self::InstanceStatusChanged(_)
            | Self::ServerInfoChanged(_)
            | Self::QueueChanged(_)
            | Self::JobUpdated(_)
            | Self::StatsChanged(_)
            | Self::ViewChanged(_) => VIEW_CHANGED,
            Self::InstancesChanged(_) => INSTANCES_CHANGED,
            Self::EventLogged(_) => EVENT_LOGGED,
            Self::ShowRequested(_) => SHOW_REQUESTED,
            Self::CancelConfirmationRequested(_) => CANCEL_CONFIRMATION_REQUESTED,
            Self::SavingChanged(_) => SAVING_CHANGED,
        }
    }

    /// Whether this update only changes what the webview paints: its picture of instances,
    /// jobs, queues and stats, all of which a fresh snapshot holds. Log lines, instance list
    /// changes and requests to act are not paint.
    pub fn only_paints(&self) -> bool {
        matches!(
            self,
            Self::InstanceStatusChanged(_)
                | Self::ServerInfoChanged(_)
                | Self::QueueChanged(_)
                | Self::JobUpdated(_)
                | Self::StatsChanged(_)
                | Self::ViewChanged(_)
        )
    }

    /// Sends it now. A change of the picture that was not batched goes as a batch of its own,
    /// numbered 0 (which releases nothing when the webview says it showed it).
    pub fn emit<R: Runtime>(&self, app: &AppHandle<R>) -> tauri::Result<()> {
        let name = self.name();
        let mut alone = ViewChanged::empty(0);
        match self {
            Self::InstanceStatusChanged(c) => alone.statuses.push(c.clone()),
            Self::ServerInfoChanged(c) => alone.servers.push(c.clone()),
            Self::QueueChanged(c) => alone.queues.push(c.clone()),
            Self::StatsChanged(c) => alone.stats.push(c.clone()),
            Self::JobUpdated(c) => alone.jobs.push((**c).clone()),
            Self::ViewChanged(p) => return app.emit(name, p),
            Self::InstancesChanged(p) => return app.emit(name, p),
            Self::EventLogged(p) => return app.emit(name, p),
            Self::ShowRequested(p) => return app.emit(name, p),
            Self::CancelConfirmationRequested(p) => return app.emit(name, p),
            Self::SavingChanged(p) => return app.emit(name, p),
        }
        app.emit(name, alone)
    }
}

/// Every event with the TypeScript name of its payload, for the generated bindings.
#[cfg(test)]
pub(crate) fn catalogue(cfg: &ts_rs::Config) -> Vec<(&'static str, String)> {
    vec![
        (VIEW_CHANGED, ViewChanged::name(cfg)),
        (INSTANCES_CHANGED, InstancesChanged::name(cfg)),
        (EVENT_LOGGED, EventLogged::name(cfg)),
        (SHOW_REQUESTED, ShowRequested::name(cfg)),
        (
            CANCEL_CONFIRMATION_REQUESTED,
            CancelConfirmationRequested::name(cfg),
        ),
        (SAVING_CHANGED, comfy_model::SavingStatus::name(cfg)),
    ]
}
