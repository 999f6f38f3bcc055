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

pub const INSTANCE_STATUS_CHANGED: &str = "instance-status-changed";
pub const SERVER_INFO_CHANGED: &str = "server-info-changed";
pub const QUEUE_CHANGED: &str = "queue-changed";
pub const JOB_UPDATED: &str = "job-updated";
pub const JOBS_PROGRESSED: &str = "jobs-progressed";
pub const INSTANCES_CHANGED: &str = "instances-changed";
pub const STATS_CHANGED: &str = "stats-changed";
pub const EVENT_LOGGED: &str = "event-logged";
pub const SHOW_REQUESTED: &str = "show-requested";
pub const CANCEL_CONFIRMATION_REQUESTED: &str = "cancel-confirmation-requested";

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

/// A job's new picture, sent as it happens: every state change except progress while running,
/// which goes in `JobsProgressed` batches.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct JobUpdated {
    pub revision: u64,
    pub instance_id: InstanceId,
    pub job: JobSummary,
    /// The instance's unfinished jobs in display order (running first, then pending in queue
    /// order), sent only when this update changed that order. The order is the shell's: the
    /// webview never sorts jobs itself. An update that carries an order is never held back
    /// for a progress batch, so orders reach the webview in the order they were made.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<PromptId>>,
}

/// Progress of running jobs, one picture per job, for every instance whose display-rate window
/// passed since the last batch: at most one of these per display frame, however many instances
/// are busy. Each picture carries its own revision. The webview answers `progress_shown` with
/// the batch number once it has shown it; the next batch waits for that.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct JobsProgressed {
    pub batch: u64,
    pub updates: Vec<JobUpdated>,
}

/// Sends one update to the webview; a failure is logged and the app goes on. While the window
/// is off screen, what only changes its paint is not sent (`visibility.rs`).
pub fn emit<R: Runtime>(app: &AppHandle<R>, update: &Update) {
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
    InstanceStatusChanged(InstanceStatusChanged),
    ServerInfoChanged(ServerInfoChanged),
    QueueChanged(QueueChanged),
    /// Boxed: a job's picture is far larger than the other payloads.
    JobUpdated(Box<JobUpdated>),
    JobsProgressed(JobsProgressed),
    InstancesChanged(InstancesChanged),
    StatsChanged(StatsChanged),
    EventLogged(EventLogged),
    ShowRequested(ShowRequested),
    CancelConfirmationRequested(CancelConfirmationRequested),
}

impl Update {
    pub fn name(&self) -> &'static str {
        match self {
            Self::InstanceStatusChanged(_) => INSTANCE_STATUS_CHANGED,
            Self::ServerInfoChanged(_) => SERVER_INFO_CHANGED,
            Self::QueueChanged(_) => QUEUE_CHANGED,
            Self::JobUpdated(_) => JOB_UPDATED,
            Self::JobsProgressed(_) => JOBS_PROGRESSED,
            Self::InstancesChanged(_) => INSTANCES_CHANGED,
            Self::StatsChanged(_) => STATS_CHANGED,
            Self::EventLogged(_) => EVENT_LOGGED,
            Self::ShowRequested(_) => SHOW_REQUESTED,
            Self::CancelConfirmationRequested(_) => CANCEL_CONFIRMATION_REQUESTED,
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
                | Self::JobsProgressed(_)
                | Self::StatsChanged(_)
        )
    }

    pub fn emit<R: Runtime>(&self, app: &AppHandle<R>) -> tauri::Result<()> {
        let name = self.name();
        match self {
            Self::InstanceStatusChanged(p) => app.emit(name, p),
            Self::ServerInfoChanged(p) => app.emit(name, p),
            Self::QueueChanged(p) => app.emit(name, p),
            Self::JobUpdated(p) => app.emit(name, p),
            Self::JobsProgressed(p) => app.emit(name, p),
            Self::InstancesChanged(p) => app.emit(name, p),
            Self::StatsChanged(p) => app.emit(name, p),
            Self::EventLogged(p) => app.emit(name, p),
            Self::ShowRequested(p) => app.emit(name, p),
            Self::CancelConfirmationRequested(p) => app.emit(name, p),
        }
    }
}

/// Every event with the TypeScript name of its payload, for the generated bindings.
#[cfg(test)]
pub(crate) fn catalogue(cfg: &ts_rs::Config) -> Vec<(&'static str, String)> {
    vec![
        (INSTANCE_STATUS_CHANGED, InstanceStatusChanged::name(cfg)),
        (SERVER_INFO_CHANGED, ServerInfoChanged::name(cfg)),
        (QUEUE_CHANGED, QueueChanged::name(cfg)),
        (JOB_UPDATED, JobUpdated::name(cfg)),
        (JOBS_PROGRESSED, JobsProgressed::name(cfg)),
        (INSTANCES_CHANGED, InstancesChanged::name(cfg)),
        (STATS_CHANGED, StatsChanged::name(cfg)),
        (EVENT_LOGGED, EventLogged::name(cfg)),
        (SHOW_REQUESTED, ShowRequested::name(cfg)),
        (
            CANCEL_CONFIRMATION_REQUESTED,
            CancelConfirmationRequested::name(cfg),
        ),
    ]
}
