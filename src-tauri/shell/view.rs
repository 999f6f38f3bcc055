//! What the webview is shown: the domain types of `comfy-model` (a job's picture, a
//! connection's state), gathered per instance, plus the few projections that exist only for
//! display (a job's latest preview frame and node text, memory bars, journal rows). Nothing
//! here mirrors a domain type; the TypeScript in `ui/src/bindings/` is generated from these and
//! from `comfy-model`.

use comfy_model::{
    ConnectionStatus, ErrorDetails, InstanceId, JobOrigin, JobState, JobView, OutputFile, PromptId,
    ServerInfo,
};
use serde::Serialize;
use ts_rs::TS;

/// Everything the UI shows, at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Snapshot {
    /// Every event with a revision up to this one is already reflected here.
    pub revision: u64,
    pub instances: Vec<InstanceView>,
    /// What the user must be told about the app itself: the secrets fallback file, a database
    /// that could not be opened.
    pub notices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct InstanceView {
    /// The saved instance's id: every event, command and `media:` URL names the instance by it.
    pub id: InstanceId,
    /// Unique among instances, for people.
    pub name: String,
    pub url: String,
    pub enabled: bool,
    /// Whether the user lets the app use the server's comfy-monitor companion (the instance's
    /// setting; `server.companion` says whether the server has one and it is used).
    pub use_companion: bool,
    pub status: InstanceStatus,
    /// RAM and VRAM while connected: read every 5 s while jobs are queued, every 30 s when idle.
    pub stats: Option<StatsView>,
    /// Known once connected.
    pub server: Option<ServerInfo>,
    pub queue: QueueCounts,
    /// Jobs not yet finished: running first, then pending in queue order.
    pub jobs: Vec<JobSummary>,
    /// The most recently finished job.
    pub last_job: Option<JobSummary>,
}

/// A connection's status and when the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub status: ConnectionStatus,
    /// Unix milliseconds when the engine reported this status (`retry_in_ms` counts from here).
    pub changed_at_ms: i64,
}

/// Memory of the machine ComfyUI runs on, from `/system_stats`, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StatsView {
    pub ram_total: Option<f64>,
    pub ram_free: Option<f64>,
    /// The first compute device (what ComfyUI runs on).
    pub device: Option<String>,
    pub vram_total: Option<f64>,
    pub vram_free: Option<f64>,
}

impl From<&comfy_protocol::http::SystemStats> for StatsView {
    fn from(s: &comfy_protocol::http::SystemStats) -> Self {
        let device = s.devices.first();
        Self {
            ram_total: s.system.ram_total,
            ram_free: s.system.ram_free,
            device: device.map(|d| d.name.clone()),
            vram_total: device.and_then(|d| d.vram_total),
            vram_free: device.and_then(|d| d.vram_free),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, TS)]
pub struct QueueCounts {
    pub running: usize,
    pub pending: usize,
}

/// A job as the dashboard shows it: the engine's picture, plus what only the display keeps
/// (the latest preview frame, the text nodes streamed). The shell's overview keeps it whole:
/// every summary sent is final, the webview replaces its copy with it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct JobSummary {
    #[serde(flatten)]
    pub job: JobView,
    /// The latest preview frame, served at `media://localhost/preview/<instance id>`.
    pub preview: Option<PreviewRef>,
    /// Text nodes streamed (`progress_text`), latest per node.
    pub node_text: Vec<NodeText>,
}

impl JobSummary {
    pub fn new(job: JobView) -> Self {
        Self {
            job,
            preview: None,
            node_text: Vec::new(),
        }
    }
}

/// A summary reads as the job it shows.
impl std::ops::Deref for JobSummary {
    type Target = JobView;

    fn deref(&self) -> &JobView {
        &self.job
    }
}

/// Which preview frame is the latest; the bytes are served by the `media:` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct PreviewRef {
    /// Grows with every frame shown; a new value means a new image.
    pub seq: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NodeText {
    pub node: String,
    pub text: String,
}

/// One line of an instance's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct LogEntry {
    pub id: i64,
    /// Unix milliseconds.
    pub ts: i64,
    /// `connected`, `reconnecting`, `auth_failed`, `server_event`, ...
    pub kind: String,
    pub detail: Option<String>,
    /// The server event's payload, as JSON text.
    pub data: Option<String>,
}

impl From<comfy_store::EventRecord> for LogEntry {
    fn from(r: comfy_store::EventRecord) -> Self {
        Self {
            id: r.id.0,
            ts: r.ts,
            kind: r.kind,
            detail: r.detail,
            data: r.data_json,
        }
    }
}

/// A job from the journal.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct HistoryEntry {
    pub prompt_id: PromptId,
    pub state: JobState,
    pub origin: JobOrigin,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub error: Option<ErrorDetails>,
    pub outputs: Vec<OutputFile>,
    pub detail: Option<String>,
    /// This app queued it and kept its workflow: it can be queued again.
    pub can_resubmit: bool,
    /// What the job is called (its file, or its model and prompt), when its graph was known.
    pub label: Option<String>,
    /// The folder its outputs were saved to, when one was (filled by the history command).
    pub saved_folder: Option<String>,
}

impl From<comfy_store::JobRecord> for HistoryEntry {
    fn from(r: comfy_store::JobRecord) -> Self {
        // The journal's JSON columns hold the very types, serialised.
        let error = r
            .error_json
            .as_deref()
            .and_then(|j| serde_json::from_str::<ErrorDetails>(j).ok());
        let outputs = r
            .outputs_json
            .as_deref()
            .and_then(|j| serde_json::from_str::<Vec<OutputFile>>(j).ok())
            .unwrap_or_default();
        Self {
            prompt_id: PromptId::from(r.prompt_id),
            can_resubmit: comfy_app::jobs::can_resubmit(r.origin, r.has_workflow, r.state),
            state: r.state,
            origin: r.origin,
            queued_at_ms: r.queued_at,
            started_at_ms: r.started_at,
            finished_at_ms: r.finished_at,
            error,
            outputs,
            detail: r.detail,
            label: r.label,
            saved_folder: None,
        }
    }
}
