//! A job: whose it is, how much of it we can see, where it stands, how it failed, what it
//! wrote, and the picture of it at one moment ([`JobView`]) that every host shows.

use crate::ids::{NodeId, PromptId};
use serde::{Deserialize, Serialize};

/// Whose job this is (protocol §3.1: only the submitter's socket gets execution messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum JobOrigin {
    /// Queued with this app's client id: followed live. Only these keep their workflow.
    #[serde(rename = "self")]
    SelfApp,
    /// Queued by another client.
    #[serde(rename = "other")]
    Other,
    /// Queued without a client id.
    #[serde(rename = "anonymous")]
    Anonymous,
}

impl JobOrigin {
    /// The wire and database name (`self`, `other`, `anonymous`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfApp => "self",
            Self::Other => "other",
            Self::Anonymous => "anonymous",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "self" => Self::SelfApp,
            "other" => Self::Other,
            "anonymous" => Self::Anonymous,
            _ => return None,
        })
    }
}

/// How much of a job we can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Fidelity {
    /// Nodes, steps and previews from our socket.
    Live,
    /// Queue position, elapsed time and outcome from HTTP polling only.
    Observed,
    /// Another client's job, whose execution messages the server's comfy-monitor companion
    /// relays to us: nodes, steps and previews, like our own.
    Relayed,
}

impl Fidelity {
    /// What can be seen of a job by its origin alone: only our own jobs are seen live.
    pub fn of(origin: JobOrigin) -> Self {
        match origin {
            JobOrigin::SelfApp => Self::Live,
            JobOrigin::Other | JobOrigin::Anonymous => Self::Observed,
        }
    }

    /// Whether the job's execution messages reach us (our own, or relayed): nodes, steps,
    /// percent, ETA and previews are then known, not just its place in the queue.
    pub fn is_followed(self) -> bool {
        matches!(self, Self::Live | Self::Relayed)
    }
}

/// Where a job stands. It only moves forward: pending → running → one of the finished states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
    /// The one definition of "the job has ended": every state but pending and running. An
    /// ended job's state is final (published once, journalled once).
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// How the job ended, once it has.
    pub fn outcome(self) -> Option<JobOutcome> {
        Some(match self {
            Self::Success => JobOutcome::Success,
            Self::Error => JobOutcome::Error,
            Self::Interrupted => JobOutcome::Interrupted,
            Self::Deleted => JobOutcome::Deleted,
            Self::Lost => JobOutcome::Lost,
            Self::Pending | Self::Running => return None,
        })
    }

    /// The wire and database name (`pending`, …, `lost`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Success => "success",
            Self::Error => "error",
            Self::Interrupted => "interrupted",
            Self::Deleted => "deleted",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "success" => Self::Success,
            "error" => Self::Error,
            "interrupted" => Self::Interrupted,
            "deleted" => Self::Deleted,
            "lost" => Self::Lost,
            _ => return None,
        })
    }
}

/// How a job ended: the terminal subset of [`JobState`], so a non-terminal state cannot be
/// passed where an ending is expected (the journal's write-once terminal state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobOutcome {
    Success,
    Error,
    Interrupted,
    Deleted,
    Lost,
}

impl From<JobOutcome> for JobState {
    fn from(o: JobOutcome) -> Self {
        match o {
            JobOutcome::Success => Self::Success,
            JobOutcome::Error => Self::Error,
            JobOutcome::Interrupted => Self::Interrupted,
            JobOutcome::Deleted => Self::Deleted,
            JobOutcome::Lost => Self::Lost,
        }
    }
}

/// Why a job failed: the node, the exception and the server's traceback. The same shape on the
/// NDJSON, in the journal's `error_json` and in the webview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorDetails {
    pub node_id: Option<NodeId>,
    pub node_type: Option<String>,
    pub exception_type: Option<String>,
    #[serde(default)]
    pub message: String,
    /// The server's traceback lines, for copying into a bug report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<String>>", optional))]
    pub traceback: Vec<String>,
}

/// How long one node of a live job ran: from its first sign of running (`executing`,
/// `progress_state` running, a step) to its end (`progress_state` finished, the next node on old
/// servers, the job's success), in the app's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NodeDuration {
    /// The node's id as shown (its display id).
    pub node: NodeId,
    /// `class_type`, when the graph is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub node_type: Option<String>,
    pub ms: u64,
    /// How much work the node had, in the units its class's timing is learned in (steps ×
    /// megapixels × frames, each where the graph says; 1 otherwise). Written so a node class's
    /// speed can be learned again from the journal; absent in entries from earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub work: Option<f64>,
    /// The model files and methods the node works with (its own `*_name` inputs and those
    /// upstream), as a 16-hex-digit hash: its class's speed is learned per model too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub models: Option<String>,
}

/// One file a node produced (`{"filename", "subfolder", "type"}` inside a UI output), as
/// `/view` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutputFile {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    #[serde(rename = "type", default = "output_kind")]
    pub kind: String,
}

fn output_kind() -> String {
    "output".to_owned()
}

/// How the server makes a job's preview frames (`extra_data.preview_method`, honoured by
/// ComfyUI 0.5.0 and later; older servers use their own setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum PreviewMethod {
    /// The server's own setting (`--preview-method`); nothing is sent.
    #[default]
    Default,
    Auto,
    Latent2rgb,
    Taesd,
    /// No preview frames for this job.
    None,
}

impl PreviewMethod {
    /// The value sent as `extra_data.preview_method`, if any.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Self::Default => None,
            Self::Auto => Some("auto"),
            Self::Latent2rgb => Some("latent2rgb"),
            Self::Taesd => Some("taesd"),
            Self::None => Some("none"),
        }
    }
}

/// What an [`Estimate`] is learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum EstimateBasis {
    /// Earlier runs of this very workflow (same graph and cost inputs) on this instance.
    Workflow,
    /// This instance's speed per node class, scaled by each node's work: a workflow not seen
    /// before.
    Nodes,
}

/// Timing learned from a server's past jobs, for a job whose own progress does not say (or not
/// yet) how long it will take. Never mixed with what was measured: a job's `percent` and
/// `eta_ms` are measured, these are estimated, and every host marks them so ("≈").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Estimate {
    pub basis: EstimateBasis,
    /// How many earlier runs the estimate stands on (for `nodes`, the fewest of any node class
    /// it uses).
    pub samples: u32,
    /// How long the job is expected to run, queue wait excluded.
    pub typical_ms: u64,
    /// Running jobs: the estimated share done, 0–99; never 100 before the outcome, absent once
    /// the job runs longer than usual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub percent: Option<f64>,
    /// Running jobs: until the job ends. Pending jobs: until it ends, its wait included (known
    /// when every job ahead of it has an estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub eta_ms: Option<u64>,
    /// Pending jobs: until it starts, from the estimates of every job ahead of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub starts_in_ms: Option<u64>,
    /// A running job that has run past what was expected of it: "longer than usual", not 99 %.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(feature = "ts", ts(as = "Option<bool>", optional))]
    pub longer_than_usual: bool,
}

/// The picture of one job at one moment: what the NDJSON prints and what the webview shows.
/// Fields that are not known are absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobView {
    pub prompt_id: PromptId,
    pub origin: JobOrigin,
    pub fidelity: Fidelity,
    pub state: JobState,
    /// Queue priority (`number`); lower runs first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub number: Option<f64>,
    /// 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub percent: Option<f64>,
    /// The node shown as current (its display id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub node: Option<NodeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub node_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub node_title: Option<String>,
    /// Steps within the current node.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub node_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub node_max: Option<f64>,
    /// Every node running now (async nodes run concurrently on new servers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<NodeId>>", optional))]
    pub running_nodes: Vec<NodeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub nodes_done: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub nodes_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub eta_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub steps_per_s: Option<f64>,
    pub queued_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub ended_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub elapsed_ms: Option<u64>,
    /// Files the job wrote, as the server names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<OutputFile>>", optional))]
    pub outputs: Vec<OutputFile>,
    /// The node that wrote each of `outputs`, index for index (`None`, or a shorter list, where
    /// it is not known); read both with [`JobView::outputs_with_nodes`]. Kept beside `outputs`
    /// so those stay the server's own `/view` triple; not serialised (the journal stores it).
    #[serde(skip)]
    pub output_nodes: Vec<Option<NodeId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub error: Option<ErrorDetails>,
    /// Non-terminal problems, e.g. an `ExecutionBlocked` branch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<String>>", optional))]
    pub warnings: Vec<String>,
    /// On terminal states of live jobs: every node that ran to its end, in the order they
    /// started. Cached nodes did not run; a node cut short by an error or interrupt is left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<NodeDuration>>", optional))]
    pub node_durations: Vec<NodeDuration>,
    /// Why a job is `lost`, and similar notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub detail: Option<String>,
    /// The latest node text (`progress_text`) of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub last_text: Option<String>,
    /// Timing learned from this server's past jobs (pending and running jobs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub estimate: Option<Estimate>,
    /// The workflow's timing fingerprint (its graph and the inputs that change its cost), when
    /// the graph is known; the journal keeps it to learn from. Not serialised.
    #[serde(skip)]
    pub fingerprint: Option<String>,
    /// How long a job that succeeded ran, queue wait excluded, when both ends were seen on one
    /// clock: what timing is learned from. Not serialised (the journal stores it).
    #[serde(skip)]
    pub run_ms: Option<u64>,
}

impl JobView {
    /// A job known only by its id: no progress, no outputs yet. Fidelity follows the origin
    /// (only our own jobs are seen live).
    pub fn new(prompt_id: PromptId, origin: JobOrigin, state: JobState) -> Self {
        Self {
            prompt_id,
            origin,
            fidelity: Fidelity::of(origin),
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
            estimate: None,
            fingerprint: None,
            run_ms: None,
        }
    }

    /// How long an ended job ran, queue wait excluded: the tracker's own figure (`elapsed_ms`,
    /// which never mixes the server's clock and ours), else the span from its start to its end.
    /// `None` while it has not ended, or when neither is known.
    pub fn ran_ms(&self) -> Option<u64> {
        if !self.state.is_terminal() {
            return None;
        }
        self.elapsed_ms.or_else(|| {
            let (start, end) = (self.started_at_ms?, self.ended_at_ms?);
            u64::try_from(end - start).ok()
        })
    }

    /// How long the job waited in the queue before it started, when both are known and in
    /// order.
    pub fn waited_ms(&self) -> Option<u64> {
        let start = self.started_at_ms?;
        if self.queued_at_ms <= 0 {
            return None;
        }
        u64::try_from(start - self.queued_at_ms).ok()
    }

    /// Each output file with the node that wrote it, when known.
    pub fn outputs_with_nodes(&self) -> impl Iterator<Item = (&OutputFile, Option<&NodeId>)> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, f)| (f, self.output_nodes.get(i).and_then(Option::as_ref)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_job_ran_for_the_trackers_figure_else_its_span_and_waited_until_it_started() {
        let mut job = JobView::new("p".into(), JobOrigin::Other, JobState::Running);
        job.queued_at_ms = 1_000;
        job.started_at_ms = Some(3_000);
        job.ended_at_ms = Some(68_000);
        job.elapsed_ms = Some(5_000);
        assert_eq!(job.ran_ms(), None, "not ended yet");
        assert_eq!(job.waited_ms(), Some(2_000));
        job.state = JobState::Error;
        assert_eq!(job.ran_ms(), Some(5_000), "the tracker's own figure first");
        job.elapsed_ms = None;
        assert_eq!(job.ran_ms(), Some(65_000));
        job.ended_at_ms = Some(2_000);
        assert_eq!(job.ran_ms(), None, "an end before the start is no duration");
        job.started_at_ms = Some(500);
        assert_eq!(
            job.waited_ms(),
            None,
            "a start before the queueing is no wait"
        );
        job.queued_at_ms = 0;
        job.started_at_ms = Some(3_000);
        assert_eq!(job.waited_ms(), None, "queued at an unknown time");
    }

    #[test]
    fn state_and_origin_names_round_trip_through_their_wire_and_database_text() {
        for state in [
            JobState::Pending,
            JobState::Running,
            JobState::Success,
            JobState::Error,
            JobState::Interrupted,
            JobState::Deleted,
            JobState::Lost,
        ] {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        for origin in [JobOrigin::SelfApp, JobOrigin::Other, JobOrigin::Anonymous] {
            let json = serde_json::to_string(&origin).unwrap();
            assert_eq!(json, format!("\"{}\"", origin.as_str()));
            assert_eq!(JobOrigin::parse(origin.as_str()), Some(origin));
        }
        assert_eq!(JobState::parse("done"), None);
    }

    #[test]
    fn only_pending_and_running_jobs_are_not_terminal() {
        assert!(!JobState::Pending.is_terminal());
        assert!(!JobState::Running.is_terminal());
        assert!(JobState::Lost.is_terminal());
        assert!(JobState::Deleted.is_terminal());
    }

    #[test]
    fn error_details_written_by_earlier_versions_still_read() {
        let e: ErrorDetails =
            serde_json::from_str(r#"{"node_id":"3","node_type":null,"exception_type":null}"#)
                .unwrap();
        assert_eq!(e.node_id, Some(NodeId::from("3")));
        assert!(e.message.is_empty() && e.traceback.is_empty());
    }

    #[test]
    fn a_preview_choice_from_the_page_becomes_the_servers_preview_method() {
        let choice = |s: &str| serde_json::from_str::<PreviewMethod>(&format!("{s:?}")).unwrap();
        assert_eq!(
            choice("default").method(),
            None,
            "nothing sent: the server decides"
        );
        assert_eq!(choice("auto").method(), Some("auto"));
        assert_eq!(choice("latent2rgb").method(), Some("latent2rgb"));
        assert_eq!(choice("taesd").method(), Some("taesd"));
        assert_eq!(choice("none").method(), Some("none"));
        assert!(serde_json::from_str::<PreviewMethod>("\"fast\"").is_err());
    }
}
