//! Bodies of the HTTP endpoints a monitor reads: `/queue`, `/history`, `/api/jobs`,
//! `/system_stats`. Pure parsing into normalised shapes; the requests themselves are the
//! engine's business.

use crate::error::DecodeError;
use crate::lenient;
use crate::message::{ExecutionError, ExecutionInterrupted};
use comfy_model::{NodeId, PromptId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One job in `/queue`: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub number: f64,
    pub prompt_id: PromptId,
    /// The API-format graph.
    pub prompt: Value,
    /// Who queued it (`extra_data.client_id`); `None` for jobs queued without one.
    pub client_id: Option<String>,
    pub create_time: Option<i64>,
    pub outputs_to_execute: Vec<NodeId>,
}

/// `/queue`, with `pending` in run order (the server returns heap order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queue {
    pub running: Vec<QueueItem>,
    pub pending: Vec<QueueItem>,
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError::BadMessage {
        kind: what.to_owned(),
        source: serde::de::Error::custom(format!("unexpected shape of {what}")),
    }
}

fn json(body: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(body).map_err(DecodeError::InvalidJson)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn node_ids(v: &Value) -> Vec<NodeId> {
    v.as_array()
        .map(|a| a.iter().filter_map(as_id).map(NodeId::from).collect())
        .unwrap_or_default()
}

/// Parses one `[number, id, prompt, extra_data, outputs]` tuple. Comfy Cloud swaps the last two
/// (`[..., outputs, metadata]`); tell them apart by which one is an array.
pub fn parse_queue_item(v: &Value) -> Result<QueueItem, DecodeError> {
    let a = v.as_array().ok_or_else(|| bad("queue item"))?;
    let number = a
        .first()
        .and_then(as_number)
        .ok_or_else(|| bad("queue item number"))?;
    let prompt_id = a
        .get(1)
        .and_then(as_id)
        .ok_or_else(|| bad("queue item id"))?;
    let prompt = a.get(2).cloned().unwrap_or(Value::Null);
    let (extra, outputs) = match (a.get(3), a.get(4)) {
        (Some(x @ Value::Array(_)), meta) => (meta, Some(x)),
        (extra, outputs) => (extra, outputs),
    };
    let extra = extra.and_then(Value::as_object);
    Ok(QueueItem {
        number,
        prompt_id: PromptId::from(prompt_id),
        prompt,
        client_id: extra
            .and_then(|e| e.get("client_id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        create_time: extra
            .and_then(|e| e.get("create_time"))
            .and_then(as_number)
            .map(|n| n as i64),
        outputs_to_execute: outputs.map(node_ids).unwrap_or_default(),
    })
}

/// Parses `GET /queue`.
pub fn parse_queue(body: &[u8]) -> Result<Queue, DecodeError> {
    let v = json(body)?;
    let list = |key: &'static str| -> Result<Vec<QueueItem>, DecodeError> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(parse_queue_item).collect(),
            Some(_) => Err(bad(key)),
        }
    };
    let running = list("queue_running")?;
    let mut pending = list("queue_pending")?;
    sort_run_order(&mut pending);
    Ok(Queue { running, pending })
}

/// Sorts pending jobs into the order the server will run them: by `number`, ties by id.
pub fn sort_run_order(pending: &mut [QueueItem]) {
    pending.sort_by(|a, b| {
        a.number
            .total_cmp(&b.number)
            .then_with(|| a.prompt_id.cmp(&b.prompt_id))
    });
}

pub use comfy_model::OutputFile;

/// Every file referenced in a node's UI output, whatever the key (`images`, `gifs`, `audio`,
/// `video`, custom keys).
pub fn output_files(ui: &Value) -> Vec<OutputFile> {
    let Some(map) = ui.as_object() else {
        return Vec::new();
    };
    map.values()
        .filter_map(Value::as_array)
        .flatten()
        .filter(|item| item.get("filename").is_some_and(Value::is_string))
        .filter_map(|item| serde_json::from_value(item.clone()).ok())
        .collect()
}

/// How a finished job ended, as the server recorded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    Error(Box<ExecutionError>),
    Interrupted(ExecutionInterrupted),
    /// Recorded as failed without a usable error message.
    Failed,
}

/// A finished job, from `/history/{id}` or `/api/jobs/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedJob {
    pub prompt_id: PromptId,
    pub outcome: Outcome,
    /// Per node id, its UI output.
    pub outputs: Map<String, Value>,
    pub client_id: Option<String>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
}

impl FinishedJob {
    /// Files from every node's output, in node order.
    pub fn files(&self) -> Vec<OutputFile> {
        self.outputs.values().flat_map(output_files).collect()
    }
}

#[derive(Deserialize)]
struct HistoryStatus {
    #[serde(default)]
    status_str: Option<String>,
    #[serde(default)]
    messages: Vec<(String, Value)>,
}

fn message_time(v: &Value) -> Option<i64> {
    v.get("timestamp").and_then(as_number).map(|n| n as i64)
}

/// Outcome from a history `status` object: `status_str` is `"error"` for both failures and
/// interrupts, so the last terminal message decides.
fn outcome_from_status(status: &HistoryStatus) -> (Outcome, Option<i64>, Option<i64>) {
    let mut started = None;
    let mut ended = None;
    let mut outcome = None;
    for (kind, data) in &status.messages {
        match kind.as_str() {
            "execution_start" => started = message_time(data),
            "execution_success" => {
                ended = message_time(data);
                outcome = Some(Outcome::Success);
            }
            "execution_error" => {
                if let Ok(e) = serde_json::from_value::<ExecutionError>(data.clone()) {
                    if e.is_terminal() {
                        ended = message_time(data);
                        outcome = Some(Outcome::Error(Box::new(e)));
                    }
                }
            }
            "execution_interrupted" => {
                ended = message_time(data);
                outcome = serde_json::from_value(data.clone())
                    .ok()
                    .map(Outcome::Interrupted);
            }
            _ => {}
        }
    }
    let outcome = outcome.unwrap_or(match status.status_str.as_deref() {
        Some("success") => Outcome::Success,
        _ => Outcome::Failed,
    });
    (outcome, started, ended)
}

fn finished_from_history(id: &str, entry: &Value) -> Result<FinishedJob, DecodeError> {
    let status: HistoryStatus = match entry.get("status") {
        Some(s) if !s.is_null() => {
            serde_json::from_value(s.clone()).map_err(|source| DecodeError::BadMessage {
                kind: "history status".into(),
                source,
            })?
        }
        // Servers before 2024-01 have no status: a history entry then means it ran to the end.
        _ => HistoryStatus {
            status_str: Some("success".into()),
            messages: Vec::new(),
        },
    };
    let (outcome, started_ms, ended_ms) = outcome_from_status(&status);
    let item = entry.get("prompt").map(parse_queue_item).transpose()?;
    Ok(FinishedJob {
        prompt_id: PromptId::from(id),
        outcome,
        outputs: entry
            .get("outputs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        client_id: item.and_then(|i| i.client_id),
        started_ms,
        ended_ms,
    })
}

/// Parses `GET /history` or `/history/{id}`: entries in the server's (completion) order.
pub fn parse_history(body: &[u8]) -> Result<Vec<FinishedJob>, DecodeError> {
    let v = json(body)?;
    let map = v.as_object().ok_or_else(|| bad("history"))?;
    map.iter()
        .map(|(id, entry)| finished_from_history(id, entry))
        .collect()
}

/// `/api/jobs` status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    Cancelled,
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// One job from `/api/jobs` (light) or `/api/jobs/{id}` (with outputs and workflow when finished).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiJob {
    pub id: PromptId,
    pub status: JobStatus,
    #[serde(default, deserialize_with = "lenient::opt_number")]
    pub priority: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    pub create_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    pub execution_start_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    pub execution_end_time: Option<i64>,
    #[serde(default)]
    pub execution_error: Option<ExecutionError>,
    #[serde(default)]
    pub outputs: Option<Map<String, Value>>,
    #[serde(default)]
    pub execution_status: Option<Value>,
    #[serde(default)]
    pub workflow: Option<Value>,
}

impl ApiJob {
    pub fn client_id(&self) -> Option<String> {
        self.workflow
            .as_ref()
            .and_then(|w| w.get("extra_data"))
            .and_then(|e| e.get("client_id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The finished form, if this job has finished.
    pub fn finished(&self) -> Option<FinishedJob> {
        if !self.status.is_terminal() {
            return None;
        }
        let outcome = match self.status {
            JobStatus::Completed => Outcome::Success,
            JobStatus::Cancelled => {
                Outcome::Interrupted(self.interrupt_details().unwrap_or(ExecutionInterrupted {
                    prompt_id: self.id.clone(),
                    node_id: None,
                    node_type: None,
                    executed: Vec::new(),
                    timestamp: self.execution_end_time,
                }))
            }
            _ => match (&self.execution_error, self.interrupt_details()) {
                (Some(e), _) => Outcome::Error(Box::new(e.clone())),
                // 0.6–0.8 report interrupted jobs as `failed`; the recorded messages tell.
                (None, Some(i)) => Outcome::Interrupted(i),
                (None, None) => Outcome::Failed,
            },
        };
        Some(FinishedJob {
            prompt_id: self.id.clone(),
            outcome,
            outputs: self.outputs.clone().unwrap_or_default(),
            client_id: self.client_id(),
            started_ms: self.execution_start_time,
            ended_ms: self.execution_end_time,
        })
    }

    fn interrupt_details(&self) -> Option<ExecutionInterrupted> {
        let status: HistoryStatus = serde_json::from_value(self.execution_status.clone()?).ok()?;
        match outcome_from_status(&status).0 {
            Outcome::Interrupted(i) => Some(i),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct JobsList {
    #[serde(default)]
    jobs: Vec<ApiJob>,
}

/// Parses `GET /api/jobs`.
pub fn parse_jobs(body: &[u8]) -> Result<Vec<ApiJob>, DecodeError> {
    let l: JobsList = serde_json::from_slice(body).map_err(|source| DecodeError::BadMessage {
        kind: "jobs list".into(),
        source,
    })?;
    Ok(l.jobs)
}

/// Parses `GET /api/jobs/{id}`.
pub fn parse_job(body: &[u8]) -> Result<ApiJob, DecodeError> {
    serde_json::from_slice(body).map_err(|source| DecodeError::BadMessage {
        kind: "job".into(),
        source,
    })
}

/// The parts of `/system_stats` a monitor shows.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct SystemStats {
    #[serde(default)]
    pub system: SystemInfo,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct SystemInfo {
    #[serde(default)]
    pub os: Option<String>,
    /// Absent before 0.3.11.
    #[serde(default)]
    pub comfyui_version: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_number")]
    pub ram_total: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_number")]
    pub ram_free: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Device {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient::opt_number")]
    pub vram_total: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_number")]
    pub vram_free: Option<f64>,
}

pub fn parse_system_stats(body: &[u8]) -> Result<SystemStats, DecodeError> {
    serde_json::from_slice(body).map_err(|source| DecodeError::BadMessage {
        kind: "system_stats".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_queue_comes_back_in_run_order() {
        let body = br#"{"queue_running":[[0,"a",{},{"client_id":"me"},["3"]]],
            "queue_pending":[[3,"d",{},{},["3"]],[1,"b",{},{"client_id":"x"},["3"]],[2.0,"c",{},{},["3"]]]}"#;
        let q = parse_queue(body).unwrap();
        assert_eq!(q.running[0].client_id.as_deref(), Some("me"));
        let ids: Vec<_> = q.pending.iter().map(|i| i.prompt_id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "d"]);
    }

    #[test]
    fn cloud_queue_items_with_swapped_tail_still_parse() {
        let item = serde_json::json!([5, "p", {}, ["9"], {"client_id": "c"}]);
        let i = parse_queue_item(&item).unwrap();
        assert_eq!(i.outputs_to_execute, vec![NodeId::from("9")]);
        assert_eq!(i.client_id.as_deref(), Some("c"));
    }

    #[test]
    fn interrupted_history_entry_is_not_an_error() {
        let body = br#"{"p":{"prompt":[1,"p",{},{"client_id":"x"},["3"]],"outputs":{},
          "status":{"status_str":"error","completed":false,"messages":[
            ["execution_start",{"prompt_id":"p","timestamp":10}],
            ["execution_interrupted",{"prompt_id":"p","node_id":"1","node_type":"S","executed":[],"timestamp":20}]]}}}"#;
        let h = parse_history(body).unwrap();
        assert!(matches!(h[0].outcome, Outcome::Interrupted(_)));
        assert_eq!((h[0].started_ms, h[0].ended_ms), (Some(10), Some(20)));
        assert_eq!(h[0].client_id.as_deref(), Some("x"));
    }

    #[test]
    fn output_files_are_found_under_any_key() {
        let ui = serde_json::json!({"images":[{"filename":"a.png","subfolder":"","type":"output"}],
            "gifs":[{"filename":"b.gif","subfolder":"s","type":"temp"}], "text":["hello"]});
        let files = output_files(&ui);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].filename, "a.png");
        assert_eq!(files[1].subfolder, "s");
    }

    #[test]
    fn cancelled_api_job_is_interrupted() {
        let j = parse_job(br#"{"id":"p","status":"cancelled","priority":3,"outputs_count":0}"#)
            .unwrap();
        assert!(matches!(
            j.finished().unwrap().outcome,
            Outcome::Interrupted(_)
        ));
    }
}

/// One node's validation errors from a `/prompt` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeValidationError {
    pub node_id: String,
    pub class_type: Option<String>,
    /// `(type, message, details)` per problem, e.g. `value_not_in_list`.
    pub errors: Vec<ValidationProblem>,
    /// The output nodes this failure keeps from running.
    pub dependent_outputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationProblem {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub details: String,
}

/// `POST /prompt` accepted the job (200).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptAccepted {
    pub prompt_id: PromptId,
    pub number: Option<f64>,
    /// Non-empty when the server dropped invalid outputs and queued the rest: the user must
    /// be told.
    pub node_errors: Vec<NodeValidationError>,
}

/// `POST /prompt` refused the job (400, or anything that is not a 200).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptRejected {
    pub status: u16,
    /// `prompt_outputs_failed_validation`, `missing_node_type`, `invalid_prompt_id`, ...; for
    /// bodies that are not JSON, `server_error` (as the official frontend does).
    pub error_type: String,
    pub message: String,
    pub details: String,
    pub node_errors: Vec<NodeValidationError>,
}

fn node_errors(v: Option<&Value>) -> Vec<NodeValidationError> {
    let Some(map) = v.and_then(Value::as_object) else {
        return Vec::new();
    };
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    map.iter()
        .map(|(id, e)| NodeValidationError {
            node_id: id.clone(),
            class_type: e
                .get("class_type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            errors: e
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|p| ValidationProblem {
                            kind: text(p, "type"),
                            message: text(p, "message"),
                            details: text(p, "details"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            dependent_outputs: e
                .get("dependent_outputs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(as_id).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// Reads the answer to `POST /prompt`.
pub fn parse_prompt_response(status: u16, body: &[u8]) -> Result<PromptAccepted, PromptRejected> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if status == 200 {
        if let Some(id) = parsed
            .as_ref()
            .and_then(|v| v.get("prompt_id"))
            .and_then(as_id)
        {
            let v = parsed.as_ref();
            return Ok(PromptAccepted {
                prompt_id: PromptId::from(id),
                number: v.and_then(|v| v.get("number")).and_then(as_number),
                node_errors: node_errors(v.and_then(|v| v.get("node_errors"))),
            });
        }
    }
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match error {
        Some(Value::Object(_)) => Err(PromptRejected {
            status,
            error_type: text("type"),
            message: text("message"),
            details: text("details"),
            node_errors: node_errors(parsed.as_ref().and_then(|v| v.get("node_errors"))),
        }),
        // Cloud and proxies: `{"error": "text"}`.
        Some(Value::String(s)) => Err(PromptRejected {
            status,
            error_type: "server_error".into(),
            message: s.clone(),
            details: String::new(),
            node_errors: Vec::new(),
        }),
        _ => Err(PromptRejected {
            status,
            error_type: "server_error".into(),
            message: format!("HTTP {status}"),
            details: String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned(),
            node_errors: Vec::new(),
        }),
    }
}

/// Why a workflow file cannot be queued as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("this is a UI-format workflow (it has \"nodes\" and \"links\"); ComfyUI can only queue the API format: in ComfyUI use Workflow → Export (API), or enable dev mode and use \"Save (API Format)\"")]
    UiFormat,
    #[error("a workflow must be a JSON object of nodes, got {0}")]
    NotAnObject(&'static str),
    #[error("the workflow has no nodes")]
    Empty,
    #[error("node {0:?} has no class_type")]
    NoClassType(String),
}

/// Checks that a workflow is in the API format `POST /prompt` accepts.
pub fn check_api_workflow(v: &Value) -> Result<(), WorkflowError> {
    let map = match v {
        Value::Object(m) => m,
        Value::Array(_) => return Err(WorkflowError::NotAnObject("an array")),
        Value::String(_) => return Err(WorkflowError::NotAnObject("a string")),
        _ => return Err(WorkflowError::NotAnObject("a scalar")),
    };
    if map.contains_key("nodes") && map.contains_key("links") {
        return Err(WorkflowError::UiFormat);
    }
    if map.is_empty() {
        return Err(WorkflowError::Empty);
    }
    for (id, node) in map {
        if !node.get("class_type").is_some_and(Value::is_string) {
            return Err(WorkflowError::NoClassType(id.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod prompt_tests {
    use super::*;

    #[test]
    fn accepted_with_node_errors_lists_the_dropped_outputs() {
        let body = br#"{"prompt_id":"p","number":3,"node_errors":{"5":{"errors":[{"type":"exception_during_validation","message":"Exception when validating node","details":"KeyError","extra_info":{}}],"dependent_outputs":["5"],"class_type":"SaveImage"}}}"#;
        let a = parse_prompt_response(200, body).unwrap();
        assert_eq!(a.prompt_id.as_str(), "p");
        assert_eq!(a.node_errors.len(), 1);
        assert_eq!(a.node_errors[0].class_type.as_deref(), Some("SaveImage"));
    }

    #[test]
    fn rejected_validation_names_each_node() {
        let body = br#"{"error":{"type":"prompt_outputs_failed_validation","message":"Prompt outputs failed validation","details":"","extra_info":{}},"node_errors":{"1":{"errors":[{"type":"required_input_missing","message":"Required input is missing","details":"steps","extra_info":{"input_name":"steps"}}],"dependent_outputs":["3"],"class_type":"MonitorTestSampler"}}}"#;
        let r = parse_prompt_response(400, body).unwrap_err();
        assert_eq!(r.error_type, "prompt_outputs_failed_validation");
        assert_eq!(r.node_errors[0].errors[0].kind, "required_input_missing");
        assert_eq!(r.node_errors[0].dependent_outputs, ["3"]);
    }

    #[test]
    fn plain_text_failures_become_server_errors() {
        let r = parse_prompt_response(413, b"Request Entity Too Large").unwrap_err();
        assert_eq!(r.error_type, "server_error");
        assert!(r.details.contains("Too Large"));
    }

    #[test]
    fn ui_format_workflows_are_recognised() {
        let ui = serde_json::json!({"nodes": [], "links": [], "version": 0.4});
        assert_eq!(check_api_workflow(&ui), Err(WorkflowError::UiFormat));
        let api = serde_json::json!({"1": {"class_type": "X", "inputs": {}}});
        assert_eq!(check_api_workflow(&api), Ok(()));
        let bad = serde_json::json!({"1": {"inputs": {}}});
        assert_eq!(
            check_api_workflow(&bad),
            Err(WorkflowError::NoClassType("1".into()))
        );
    }
}

/// The comfy-monitor companion's version, when the server's feature flags (`/features`) list
/// one that speaks a protocol revision this monitor knows (`docs/companion-protocol.md`).
pub fn companion_in(features: &Value) -> Option<String> {
    let c = features.get(COMPANION_FLAG)?;
    let protocol = c.get("protocol").and_then(as_number)?;
    let version = c.get("version").and_then(Value::as_str)?;
    (protocol >= 1.0).then(|| version.to_owned())
}

/// The key the companion adds to the server's feature flags.
pub const COMPANION_FLAG: &str = "comfy_monitor_companion";

/// The companion's read-only state route, under the server's API prefix.
pub const COMPANION_STATE_ROUTE: &str = "comfy_monitor/v1/state";

/// The running job in the companion's state route, as the socket messages that would have told
/// it (`executing` for its current node, then its latest `progress_state`), so a monitor that
/// connects mid-job feeds them through the same decoder and tracker as the relayed stream.
/// Nothing when no job runs or the body is not the companion's.
pub fn companion_catch_up(body: &[u8]) -> Vec<String> {
    let Ok(state) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(running) = state.get("running").filter(|r| r.is_object()) else {
        return Vec::new();
    };
    let Some(prompt_id) = running.get("prompt_id").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut frames = Vec::new();
    if let Some(node) = running.get("node").and_then(Value::as_str) {
        frames.push(
            serde_json::json!({"type": "executing",
                "data": {"node": node, "display_node": node, "prompt_id": prompt_id}})
            .to_string(),
        );
    }
    if let Some(nodes) = running
        .get("progress_state")
        .filter(|n| n.as_object().is_some_and(|o| !o.is_empty()))
    {
        frames.push(
            serde_json::json!({"type": "progress_state",
                "data": {"prompt_id": prompt_id, "nodes": nodes}})
            .to_string(),
        );
    }
    frames
}

#[cfg(test)]
mod companion_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_running_at_the_companion_becomes_the_messages_that_would_have_told_it() {
        let body = json!({"companion": "0.1.0", "protocol": 1, "comfyui": "0.26.0",
            "running": {"prompt_id": "p", "client_id": "browser", "started_at": 1, "node": "3",
                "nodes": {"3": {"class_type": "KSampler", "title": null}},
                "progress_state": {"3": {"value": 4, "max": 20, "state": "running",
                    "node_id": "3", "display_node_id": "3", "prompt_id": "p",
                    "parent_node_id": null, "real_node_id": "3"}}}})
        .to_string();
        let frames = companion_catch_up(body.as_bytes());
        assert_eq!(frames.len(), 2);
        assert!(matches!(
            crate::decode_text(&frames[0]),
            Ok(crate::ServerMessage::Executing { .. })
        ));
        assert!(matches!(
            crate::decode_text(&frames[1]),
            Ok(crate::ServerMessage::ProgressState { .. })
        ));
        let idle = json!({"companion": "0.1.0", "protocol": 1, "running": null}).to_string();
        assert!(companion_catch_up(idle.as_bytes()).is_empty());
        assert!(companion_catch_up(b"not json").is_empty());
    }

    #[test]
    fn the_companion_is_found_in_the_servers_feature_flags() {
        let with = json!({"supports_preview_metadata": true,
            "comfy_monitor_companion": {"version": "0.1.0", "protocol": 1}});
        assert_eq!(companion_in(&with).as_deref(), Some("0.1.0"));
        assert_eq!(
            companion_in(&json!({"supports_preview_metadata": true})),
            None
        );
        let unknown = json!({"comfy_monitor_companion": {"version": "9", "protocol": 0}});
        assert_eq!(
            companion_in(&unknown),
            None,
            "no revision this monitor speaks"
        );
        assert_eq!(
            companion_in(&json!({"comfy_monitor_companion": "yes"})),
            None
        );
    }
}
