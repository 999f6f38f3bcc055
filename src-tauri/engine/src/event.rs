//! What the engine publishes: connection states and job pictures, one type for every host.
//!
//! These types serialise to the NDJSON contract of `comfy-monitor watch --json`. The domain types
//! they carry (a job's picture, a connection's state) are `comfy-model`'s, re-exported here.

pub use comfy_model::{
    ConnectionState, ConnectionStatus, ErrorDetails, Estimate, EstimateBasis, Fidelity, InstanceId,
    JobOrigin, JobState, JobView, NodeDuration, ServerInfo,
};
use comfy_protocol::{NodeId, PromptId};
use serde::Serialize;
use time::OffsetDateTime;

/// One thing the engine says, about one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// The instance's id (the store's, for a saved instance); hosts route by it.
    #[serde(skip)]
    pub instance_id: InstanceId,
    /// The instance's name, for people and the NDJSON.
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
    /// Counts this preview among its instance's previews in the channel, until received.
    #[serde(skip)]
    pub in_flight: InFlight,
}

/// A token a preview holds while it waits in the event channel, so its sender knows how many
/// previews, each holding its image, sit there: the channel is bounded by count, and a host
/// that stops reading must not pin a thousand images. [`crate::Events`] drops it on receipt.
#[derive(Debug, Default)]
pub struct InFlight(Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>);

impl InFlight {
    /// A token counted in `alive` for as long as it (or a clone) lives.
    pub(crate) fn counted(alive: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        alive.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(Some(alive.clone()))
    }
}

impl Clone for InFlight {
    fn clone(&self) -> Self {
        match &self.0 {
            Some(alive) => Self::counted(alive),
            None => Self(None),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(alive) = &self.0 {
            alive.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl EventKind {
    /// Events a slow consumer may lose (the next one supersedes them). Terminal job states,
    /// connection changes and everything else are never dropped.
    pub fn is_droppable(&self) -> bool {
        match self {
            Self::Preview(_) => true,
            Self::Job(j) => j.state == JobState::Running,
            _ => false,
        }
    }
}
