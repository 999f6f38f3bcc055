//! What the webview sees: plain data types mirroring the engine's, shaped for display.
//!
//! The engine's types cannot derive `TS` (the engine never depends on UI tooling), so these
//! mirror them and the TypeScript in `ui/src/bindings/` is generated from here. Field names are
//! camelCase; enum values keep the engine's snake_case wire names.

use comfy_engine::{
    ConnectionState, ConnectionStatus, ErrorDetails, Fidelity, JobOrigin, JobState, JobView,
    ServerInfo,
};
use serde::Serialize;
use ts_rs::TS;

/// Everything the UI shows, at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Every event with a revision up to this one is already reflected here.
    pub revision: u64,
    pub instances: Vec<InstanceView>,
    /// What the user must be told about the app itself: the secrets fallback file, a database
    /// that could not be opened.
    pub notices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// The saved instance's id (settings, history and the event log use it).
    pub id: i64,
    /// Unique among instances; events refer to the instance by it.
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub status: InstanceStatus,
    /// RAM and VRAM while connected: read every 5 s while jobs are queued, every 30 s when idle.
    pub stats: Option<StatsView>,
    /// Known once connected.
    pub server: Option<ServerView>,
    pub queue: QueueCounts,
    /// Jobs not yet finished: running first, then pending in queue order.
    pub jobs: Vec<JobSummary>,
    /// The most recently finished job.
    pub last_job: Option<JobSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStateView {
    Connecting,
    Connected,
    Reconnecting,
    Unreachable,
    AuthFailed,
    Disabled,
}

impl From<ConnectionState> for ConnectionStateView {
    fn from(state: ConnectionState) -> Self {
        match state {
            ConnectionState::Connecting => Self::Connecting,
            ConnectionState::Connected => Self::Connected,
            ConnectionState::Reconnecting => Self::Reconnecting,
            ConnectionState::Unreachable => Self::Unreachable,
            ConnectionState::AuthFailed => Self::AuthFailed,
            ConnectionState::Disabled => Self::Disabled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub state: ConnectionStateView,
    /// Why, for display: "auth failed: 401", "connection refused".
    pub detail: String,
    /// When the next attempt is due, counted from `changedAtMs`.
    pub retry_in_ms: Option<u64>,
    /// Unix milliseconds when the engine reported this status.
    pub changed_at_ms: i64,
}

impl InstanceStatus {
    pub fn new(status: &ConnectionStatus, changed_at_ms: i64) -> Self {
        Self {
            state: status.state.into(),
            detail: status.detail.clone(),
            retry_in_ms: status.retry_in_ms,
            changed_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub version: Option<String>,
    /// `/api/jobs` exists: jobs queued by other clients are followed too.
    pub jobs_api: bool,
    pub feature_flags: bool,
}

impl From<&ServerInfo> for ServerView {
    fn from(info: &ServerInfo) -> Self {
        Self {
            version: info.version.clone(),
            jobs_api: info.jobs_api,
            feature_flags: info.feature_flags,
        }
    }
}

/// Memory of the machine ComfyUI runs on, from `/system_stats`, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobStateView {
    Pending,
    Running,
    Success,
    Error,
    Interrupted,
    Deleted,
    Lost,
}

impl From<JobState> for JobStateView {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Pending => Self::Pending,
            JobState::Running => Self::Running,
            JobState::Success => Self::Success,
            JobState::Error => Self::Error,
            JobState::Interrupted => Self::Interrupted,
            JobState::Deleted => Self::Deleted,
            JobState::Lost => Self::Lost,
        }
    }
}

/// Whose job it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobOriginView {
    /// Queued by this app: followed live.
    #[serde(rename = "self")]
    SelfApp,
    Other,
    Anonymous,
}

impl From<JobOrigin> for JobOriginView {
    fn from(origin: JobOrigin) -> Self {
        match origin {
            JobOrigin::SelfApp => Self::SelfApp,
            JobOrigin::Other => Self::Other,
            JobOrigin::Anonymous => Self::Anonymous,
        }
    }
}

/// How much of a job the app can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FidelityView {
    /// Nodes and steps, from the server's socket.
    Live,
    /// Queue position, timing and outcome only.
    Observed,
}

impl From<Fidelity> for FidelityView {
    fn from(fidelity: Fidelity) -> Self {
        match fidelity {
            Fidelity::Live => Self::Live,
            Fidelity::Observed => Self::Observed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub prompt_id: String,
    pub state: JobStateView,
    pub origin: JobOriginView,
    pub fidelity: FidelityView,
    /// Queue priority; lower runs first.
    pub number: Option<f64>,
    /// 0–100.
    pub percent: Option<f64>,
    /// The node shown as current.
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub node_title: Option<String>,
    /// Steps within the current node.
    pub node_value: Option<f64>,
    pub node_max: Option<f64>,
    pub nodes_done: Option<usize>,
    pub nodes_total: Option<usize>,
    pub eta_ms: Option<u64>,
    pub steps_per_s: Option<f64>,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub elapsed_ms: Option<u64>,
    pub error: Option<JobError>,
    /// Why a job is lost, and similar notes.
    pub detail: Option<String>,
    /// Warnings that did not end the job (e.g. an output branch the server dropped).
    pub warnings: Vec<String>,
    /// Files the job wrote, as the server names them.
    pub outputs: Vec<OutputRef>,
    /// The latest preview frame, served at `media://localhost/preview/<instance>`.
    pub preview: Option<PreviewRef>,
    /// Text nodes streamed (`progress_text`), latest per node.
    pub node_text: Vec<NodeText>,
}

/// A file on the server, as `/view` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct OutputRef {
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    pub kind: String,
}

impl From<&comfy_protocol::http::OutputFile> for OutputRef {
    fn from(f: &comfy_protocol::http::OutputFile) -> Self {
        Self {
            filename: f.filename.clone(),
            subfolder: f.subfolder.clone(),
            kind: f.kind.clone(),
        }
    }
}

impl From<&OutputRef> for comfy_protocol::http::OutputFile {
    fn from(o: &OutputRef) -> Self {
        Self {
            filename: o.filename.clone(),
            subfolder: o.subfolder.clone(),
            kind: o.kind.clone(),
        }
    }
}

/// Which preview frame is the latest; the bytes are served by the `media:` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRef {
    /// Grows with every frame shown; a new value means a new image.
    pub seq: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NodeText {
    pub node: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    pub node_id: Option<String>,
    pub node_type: Option<String>,
    pub exception_type: Option<String>,
    pub message: String,
    /// The server's traceback lines, for copying into a bug report.
    pub traceback: Vec<String>,
}

impl From<&ErrorDetails> for JobError {
    fn from(e: &ErrorDetails) -> Self {
        Self {
            node_id: e.node_id.as_ref().map(ToString::to_string),
            node_type: e.node_type.clone(),
            exception_type: e.exception_type.clone(),
            message: e.message.clone(),
            traceback: e.traceback.clone(),
        }
    }
}

impl JobSummary {
    pub fn is_finished(&self) -> bool {
        !matches!(self.state, JobStateView::Pending | JobStateView::Running)
    }
}

impl From<&JobView> for JobSummary {
    fn from(job: &JobView) -> Self {
        Self {
            prompt_id: job.prompt_id.to_string(),
            state: job.state.into(),
            origin: job.origin.into(),
            fidelity: job.fidelity.into(),
            number: job.number,
            percent: job.percent,
            node: job.node.as_ref().map(ToString::to_string),
            node_type: job.node_type.clone(),
            node_title: job.node_title.clone(),
            node_value: job.node_value,
            node_max: job.node_max,
            nodes_done: job.nodes_done,
            nodes_total: job.nodes_total,
            eta_ms: job.eta_ms,
            steps_per_s: job.steps_per_s,
            queued_at_ms: job.queued_at_ms,
            started_at_ms: job.started_at_ms,
            ended_at_ms: job.ended_at_ms,
            elapsed_ms: job.elapsed_ms,
            error: job.error.as_ref().map(JobError::from),
            detail: job.detail.clone(),
            warnings: job.warnings.clone(),
            outputs: job.outputs.iter().map(OutputRef::from).collect(),
            preview: None,
            node_text: Vec::new(),
        }
    }
}

/// One line of an instance's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
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
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub prompt_id: String,
    pub state: JobStateView,
    pub origin: JobOriginView,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub error: Option<JobError>,
    pub outputs: Vec<OutputRef>,
    pub detail: Option<String>,
    /// This app queued it and kept its workflow: it can be queued again.
    pub can_resubmit: bool,
}

impl From<comfy_store::JobRecord> for HistoryEntry {
    fn from(r: comfy_store::JobRecord) -> Self {
        let state = match r.state {
            comfy_store::JobState::Pending => JobStateView::Pending,
            comfy_store::JobState::Running => JobStateView::Running,
            comfy_store::JobState::Success => JobStateView::Success,
            comfy_store::JobState::Error => JobStateView::Error,
            comfy_store::JobState::Interrupted => JobStateView::Interrupted,
            comfy_store::JobState::Deleted => JobStateView::Deleted,
            comfy_store::JobState::Lost => JobStateView::Lost,
        };
        let origin = match r.origin {
            comfy_store::JobOrigin::SelfApp => JobOriginView::SelfApp,
            comfy_store::JobOrigin::Other => JobOriginView::Other,
            comfy_store::JobOrigin::Anonymous => JobOriginView::Anonymous,
        };
        let error = r
            .error_json
            .as_deref()
            .and_then(|j| serde_json::from_str::<StoredError>(j).ok())
            .map(|e| JobError {
                node_id: e.node_id,
                node_type: e.node_type,
                exception_type: e.exception_type,
                message: e.message,
                traceback: e.traceback,
            });
        let outputs = r
            .outputs_json
            .as_deref()
            .and_then(|j| serde_json::from_str::<Vec<comfy_protocol::http::OutputFile>>(j).ok())
            .unwrap_or_default()
            .iter()
            .map(OutputRef::from)
            .collect();
        Self {
            prompt_id: r.prompt_id,
            can_resubmit: r.has_workflow && origin == JobOriginView::SelfApp && state.is_finished(),
            state,
            origin,
            queued_at_ms: r.queued_at,
            started_at_ms: r.started_at,
            finished_at_ms: r.finished_at,
            error,
            outputs,
            detail: r.detail,
        }
    }
}

/// The journal's error JSON (the engine's `ErrorDetails`, serialised).
#[derive(serde::Deserialize)]
struct StoredError {
    node_id: Option<String>,
    node_type: Option<String>,
    exception_type: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    traceback: Vec<String>,
}

impl JobStateView {
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}
