//! What the engine publishes: connection states and job pictures, one type for every host.
//!
//! These types serialise to the NDJSON contract of `comfy-monitor watch --json` (the same shape
//! the desktop shell forwards), so there is one definition of each field.

use comfy_protocol::http::OutputFile;
use comfy_protocol::{NodeId, PromptId};
use serde::Serialize;
use time::OffsetDateTime;

/// Whose job this is (protocol §3.1: only the submitter's socket gets execution messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JobOrigin {
    /// Queued with this app's client id: followed live.
    #[serde(rename = "self")]
    SelfApp,
    /// Queued by another client.
    #[serde(rename = "other")]
    Other,
    /// Queued without a client id.
    #[serde(rename = "anonymous")]
    Anonymous,
}

/// How much of a job we can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fidelity {
    /// Nodes, steps and previews from our socket.
    Live,
    /// Queue position, elapsed time and outcome from HTTP polling only.
    Observed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Success,
    Error,
    Interrupted,
    /// Removed from the queue before it ran.
    Deleted,
    /// Vanished without a record, typically in a server restart.
    Lost,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetails {
    pub node_id: Option<NodeId>,
    pub node_type: Option<String>,
    pub exception_type: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traceback: Vec<String>,
}

/// How long one node of a live job ran: from its first sign of running (`executing`,
/// `progress_state` running, a step) to its end (`progress_state` finished, the next node on old
/// servers, the job's success), in the app's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeDuration {
    /// The node's id as shown (its display id).
    pub node: NodeId,
    /// `class_type`, when the graph is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    pub ms: u64,
}

/// The picture of one job at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub prompt_id: PromptId,
    pub origin: JobOrigin,
    pub fidelity: Fidelity,
    pub state: JobState,
    /// Queue priority (`number`); lower runs first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// The node shown as current (its display id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_max: Option<f64>,
    /// Every node running now (async nodes run concurrently on new servers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub running_nodes: Vec<NodeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes_done: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_s: Option<f64>,
    pub queued_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputFile>,
    /// The node that wrote each of `outputs`, index for index (`None`, or a shorter list, where
    /// it is not known); read both with [`JobView::outputs_with_nodes`]. Kept beside `outputs`
    /// so those stay the server's own `/view` triple; not serialised (the journal stores it).
    #[serde(skip)]
    pub output_nodes: Vec<Option<NodeId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetails>,
    /// Non-terminal problems, e.g. an `ExecutionBlocked` branch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// On terminal states of live jobs: every node that ran to its end, in the order they
    /// started. Cached nodes did not run; a node cut short by an error or interrupt is left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_durations: Vec<NodeDuration>,
    /// Why a job is `lost`, and similar notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_text: Option<String>,
}

impl JobView {
    /// A job known only by its id: no progress, no outputs yet. Fidelity follows the origin
    /// (only our own jobs are seen live).
    pub fn new(prompt_id: PromptId, origin: JobOrigin, state: JobState) -> Self {
        Self {
            prompt_id,
            origin,
            fidelity: match origin {
                JobOrigin::SelfApp => Fidelity::Live,
                JobOrigin::Other | JobOrigin::Anonymous => Fidelity::Observed,
            },
            state,
            number: None,
            percent: None,
            node: None,
            node_type: None,
            node_title: None,
            node_value: None,
            node_max: None,
            running_nodes: Vec::new(),
            nodes_done: None,
            nodes_total: None,
            eta_ms: None,
            steps_per_s: None,
            queued_at_ms: 0,
            started_at_ms: None,
            ended_at_ms: None,
            elapsed_ms: None,
            outputs: Vec::new(),
            output_nodes: Vec::new(),
            error: None,
            warnings: Vec::new(),
            node_durations: Vec::new(),
            detail: None,
            last_text: None,
        }
    }

    /// Each output file with the node that wrote it, when known.
    pub fn outputs_with_nodes(&self) -> impl Iterator<Item = (&OutputFile, Option<&NodeId>)> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, f)| (f, self.output_nodes.get(i).and_then(Option::as_ref)))
    }
}

/// The state of one instance's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// The socket dropped but the server answers HTTP; reconnecting soon.
    Reconnecting,
    /// The server does not answer.
    Unreachable,
    /// The server (or a proxy in front of it) rejects our credentials.
    AuthFailed,
    Disabled,
}

/// Connection state plus the reason, for display ("auth failed: 401", "reconnecting in 4 s").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    pub detail: String,
    /// When the next attempt is due, if one is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

/// What the server told us about itself when we connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ServerInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `/api/jobs` exists (≥0.6.0): other clients' jobs are followed through it.
    pub jobs_api: bool,
    /// `/features` exists (≥0.3.45): feature flags, type-4 previews, `progress_state`.
    pub feature_flags: bool,
    /// The client id this app uses on the instance.
    pub client_id: String,
}

/// One thing the engine says, about one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub instance: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Connection(ConnectionStatus),
    /// Capabilities, after every (re)connect.
    Server(ServerInfo),
    Queue {
        running: Vec<PromptId>,
        pending: Vec<PromptId>,
    },
    Job(Box<JobView>),
    Preview(Preview),
    Text {
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_id: Option<PromptId>,
        node: NodeId,
        text: String,
    },
    /// Custom and unknown server messages, never dropped silently.
    ServerEvent {
        #[serde(rename = "type")]
        kind: String,
        data: serde_json::Value,
    },
    /// A frame that could not be decoded; the connection stays up.
    ProtocolError {
        detail: String,
    },
}

/// A preview frame. The image bytes ride along for hosts that show them and are never
/// serialised: the JSON carries only their size.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<PromptId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    pub mime: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    pub bytes: usize,
    #[serde(skip)]
    pub image: bytes::Bytes,
}

impl EventKind {
    /// Events a slow consumer may lose (the next one supersedes them). Terminal job states,
    /// connection changes and everything else are never dropped.
    pub fn is_droppable(&self) -> bool {
        match self {
            Self::Preview(_) => true,
            Self::Job(j) => !j.state.is_terminal() && j.state == JobState::Running,
            _ => false,
        }
    }
}
