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
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// Unique among instances; events refer to the instance by it.
    pub name: String,
    pub url: String,
    pub status: InstanceStatus,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    pub node_id: Option<String>,
    pub node_type: Option<String>,
    pub exception_type: Option<String>,
    pub message: String,
}

impl From<&ErrorDetails> for JobError {
    fn from(e: &ErrorDetails) -> Self {
        Self {
            node_id: e.node_id.as_ref().map(ToString::to_string),
            node_type: e.node_type.clone(),
            exception_type: e.exception_type.clone(),
            message: e.message.clone(),
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
        }
    }
}
