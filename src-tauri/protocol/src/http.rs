//! Bodies of the HTTP endpoints a monitor reads: `/queue`, `/history`, `/api/jobs`,
//! `/system_stats`. Pure parsing into normalised shapes; the requests themselves are the
//! engine's business.

use crate::error::DecodeError;
use crate::lenient;
use crate::message::{ExecutionError, ExecutionInterrupted};
use comfy_model::{NodeId, PromptId};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// One job in `/queue`: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub number: f64,
    pub prompt_id: PromptId,
    /// The API-format graph (`null` where it was not needed: history entries).
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

/// Reads a body straight into the shape wanted: what that shape does not name (the UI workflow
/// in `extra_data`, history's `meta`) is skipped unread instead of built into a tree.
fn typed<'a, T: Deserialize<'a>>(body: &'a [u8], kind: &str) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            DecodeError::InvalidJson(e)
        } else {
            DecodeError::BadMessage {
                kind: kind.to_owned(),
                source: e,
            }
        }
    })
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

/// A millisecond timestamp from a loose JSON value (see [`lenient::millis`]).
fn as_millis(v: &Value) -> Option<i64> {
    as_number(v).and_then(lenient::millis)
}

/// An id that may arrive as a string or a number.
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        as_id(&Value::deserialize(d)?)
            .map(Id)
            .ok_or_else(|| de::Error::custom("an id must be a string or a number"))
    }
}

#[derive(Deserialize)]
struct Num(#[serde(deserialize_with = "lenient::number")] f64);

/// The fourth and fifth elements of a queue tuple: `extra_data` (of which only who queued the
/// job and when is read) and `outputs_to_execute`, in either order.
enum Tail {
    Outputs(Vec<NodeId>),
    Extra {
        client_id: Option<String>,
        create_time: Option<i64>,
    },
    Other,
}

impl<'de> Deserialize<'de> for Tail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tail;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("extra_data or outputs_to_execute")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tail, A::Error> {
                let mut ids = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    ids.extend(as_id(&v).map(NodeId::from));
                }
                Ok(Tail::Outputs(ids))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tail, A::Error> {
                let (mut client_id, mut create_time) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "client_id" => {
                            client_id = map
                                .next_value::<Value>()?
                                .as_str()
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned);
                        }
                        "create_time" => create_time = as_millis(&map.next_value::<Value>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Tail::Extra {
                    client_id,
                    create_time,
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
            fn visit_unit<E>(self) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
            fn visit_none<E>(self) -> Result<Tail, E> {
                Ok(Tail::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads one `[number, id, prompt, extra_data, outputs]` tuple; with `graph: false` the graph
/// is skipped unread (a history entry needs only who queued the job).
#[derive(Clone, Copy)]
struct ItemSeed {
    graph: bool,
}

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = QueueItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<QueueItem, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = QueueItem;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a queue item [number, prompt_id, prompt, extra_data, outputs_to_execute]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<QueueItem, A::Error> {
        let Num(number) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let Id(prompt_id) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let mut ended = false;
        let prompt = if self.graph {
            seq.next_element::<Value>()?
        } else {
            seq.next_element::<IgnoredAny>()?.map(|_| Value::Null)
        };
        let mut next_tail = |ended: &mut bool| -> Result<Option<Tail>, A::Error> {
            if *ended {
                return Ok(None);
            }
            let t = seq.next_element::<Tail>()?;
            *ended = t.is_none();
            Ok(t)
        };
        ended |= prompt.is_none();
        let third = next_tail(&mut ended)?;
        let fourth = next_tail(&mut ended)?;
        // Comfy Cloud swaps the last two (`[..., outputs, metadata]`).
        let (extra, outputs) = match third {
            Some(Tail::Outputs(o)) => (fourth, Some(o)),
            extra => match fourth {
                Some(Tail::Outputs(o)) => (extra, Some(o)),
                _ => (extra, None),
            },
        };
        if !ended {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        let (client_id, create_time) = match extra {
            Some(Tail::Extra {
                client_id,
                create_time,
            }) => (client_id, create_time),
            _ => (None, None),
        };
        Ok(QueueItem {
            number,
            prompt_id: PromptId::from(prompt_id),
            prompt: prompt.unwrap_or(Value::Null),
            client_id,
            create_time,
            outputs_to_execute: outputs.unwrap_or_default(),
        })
    }
}

impl<'de> Deserialize<'de> for QueueItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ItemSeed { graph: true }.deserialize(d)
    }
}

/// Parses one `[number, id, prompt, extra_data, outputs]` tuple. Comfy Cloud swaps the last two
/// (`[..., outputs, metadata]`); tell them apart by which one is an array.
pub fn parse_queue_item(v: &Value) -> Result<QueueItem, DecodeError> {
    QueueItem::deserialize(v).map_err(|source| DecodeError::BadMessage {
        kind: "queue item".into(),
        source,
    })
}

fn items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<QueueItem>, D::Error> {
    Option::<Vec<QueueItem>>::deserialize(d).map(Option::unwrap_or_default)
}

#[derive(Deserialize)]
struct QueueBody {
    #[serde(default, deserialize_with = "items")]
    queue_running: Vec<QueueItem>,
    #[serde(default, deserialize_with = "items")]
    queue_pending: Vec<QueueItem>,
}

/// Parses `GET /queue`: each job's number, id, graph, submitter and outputs; the rest of
/// `extra_data` (the UI workflow the frontend attaches to every job) is skipped unread.
pub fn parse_queue(body: &[u8]) -> Result<Queue, DecodeError> {
    let QueueBody {
        queue_running: running,
        queue_pending: mut pending,
    } = typed(body, "queue")?;
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
    v.get("timestamp").and_then(as_millis)
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

/// One `/history` entry as read: the graph inside `prompt` and `meta` are skipped unread.
#[derive(Deserialize)]
struct HistoryEntry<'a> {
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default)]
    outputs: Value,
    #[serde(default)]
    status: Option<HistoryStatus>,
}

fn finished_from_history(id: &str, raw: &RawValue) -> Result<FinishedJob, serde_json::Error> {
    let entry: HistoryEntry = serde_json::from_str(raw.get())?;
    // Servers before 2024-01 have no status: a history entry then means it ran to the end.
    let status = entry.status.unwrap_or(HistoryStatus {
        status_str: Some("success".into()),
        messages: Vec::new(),
    });
    let (outcome, started_ms, ended_ms) = outcome_from_status(&status);
    // The tuple only tells who queued the job: one that cannot be read costs only that.
    let client_id = entry.prompt.and_then(|p| {
        ItemSeed { graph: false }
            .deserialize(&mut serde_json::Deserializer::from_str(p.get()))
            .ok()?
            .client_id
    });
    Ok(FinishedJob {
        prompt_id: PromptId::from(id),
        outcome,
        outputs: match entry.outputs {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        client_id,
        started_ms,
        ended_ms,
    })
}

/// `/history` or `/history/{id}` as read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// The entries that could be read, in the server's (completion) order.
    pub jobs: Vec<FinishedJob>,
    /// Ids whose entries could not be read: they ended, but how is not known.
    pub unreadable: Vec<PromptId>,
}

/// The top-level object of `/history`, each entry kept as its raw text so that one malformed
/// entry is skipped alone.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of history entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads `GET /history` or `/history/{id}`. An entry that cannot be read is skipped and named
/// in [`History::unreadable`]; only a body that is not an object of entries is an error.
pub fn read_history(body: &[u8]) -> Result<History, DecodeError> {
    let Entries(entries) = typed(body, "history")?;
    let mut history = History::default();
    for (id, raw) in entries {
        match finished_from_history(&id, raw) {
            Ok(job) => history.jobs.push(job),
            Err(_) => history.unreadable.push(PromptId::from(id)),
        }
    }
    Ok(history)
}

/// Parses `GET /history` or `/history/{id}`: the readable entries in the server's (completion)
/// order (see [`read_history`]).
pub fn parse_history(body: &[u8]) -> Result<Vec<FinishedJob>, DecodeError> {
    read_history(body).map(|h| h.jobs)
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
    pub workflow: Option<JobWorkflow>,
}

/// What a monitor reads of a job's `workflow` (`{prompt, extra_data}`): who queued it. The
/// graph and the rest of `extra_data` (the UI workflow) are skipped unread.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct JobWorkflow {
    #[serde(default)]
    extra_data: Option<JobExtra>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
struct JobExtra {
    #[serde(default)]
    client_id: Option<Value>,
}

impl ApiJob {
    pub fn client_id(&self) -> Option<String> {
        self.workflow
            .as_ref()
            .and_then(|w| w.extra_data.as_ref())
            .and_then(|e| e.client_id.as_ref())
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
    fn a_malformed_history_entry_is_skipped_and_the_good_ones_are_kept() {
        let body = br#"{
          "a":{"prompt":[1,"a",{},{"client_id":"x"},["3"]],"outputs":{},
               "status":{"status_str":"success","messages":[]}},
          "bad-status":{"prompt":[2,"bad-status",{},{},[]],"outputs":{},"status":"garbage"},
          "not-an-object":5,
          "bad-prompt":{"prompt":"nonsense","outputs":{"9":{"images":[]}},
               "status":{"status_str":"success","messages":[]}},
          "b":{"prompt":[3,"b",{},{},[]],"outputs":[],"status":null}}"#;
        let h = read_history(body).unwrap();
        let ids: Vec<_> = h.jobs.iter().map(|j| j.prompt_id.as_str()).collect();
        assert_eq!(ids, ["a", "bad-prompt", "b"], "in the server's order");
        assert_eq!(h.jobs[0].client_id.as_deref(), Some("x"));
        assert_eq!(
            h.jobs[1].client_id, None,
            "an unreadable tuple only loses who queued it"
        );
        assert!(h.jobs[2].outputs.is_empty());
        let unreadable: Vec<_> = h.unreadable.iter().map(PromptId::as_str).collect();
        assert_eq!(unreadable, ["bad-status", "not-an-object"]);
        assert_eq!(parse_history(body).unwrap().len(), 3);
        assert!(
            parse_history(b"[1, 2]").is_err(),
            "not an object of entries"
        );
        assert!(matches!(
            parse_history(b"{\"a\": {"),
            Err(DecodeError::InvalidJson(_))
        ));
    }

    #[test]
    fn the_ui_workflow_and_the_history_graph_are_not_kept() {
        let body = br#"{"queue_running":[[0,"a",{"1":{"class_type":"K","inputs":{}}},
            {"client_id":"me","create_time":1700000000000,
             "extra_pnginfo":{"workflow":{"nodes":[1,2,3],"links":[]}}},["1"]]],
            "queue_pending":null}"#;
        let q = parse_queue(body).unwrap();
        let item = &q.running[0];
        assert_eq!(item.prompt["1"]["class_type"], "K", "the graph is kept");
        assert_eq!(item.client_id.as_deref(), Some("me"));
        assert_eq!(item.create_time, Some(1_700_000_000_000));
        assert_eq!(item.outputs_to_execute, vec![NodeId::from("1")]);
        assert!(q.pending.is_empty());
        let history = br#"{"a":{"prompt":[1,"a",{"1":{"class_type":"K"}},{"client_id":"me"},[]],
            "outputs":{},"status":null}}"#;
        let h = parse_history(history).unwrap();
        assert_eq!(h[0].client_id.as_deref(), Some("me"));
        let job = parse_job(
            br#"{"id":"p","status":"completed",
            "workflow":{"prompt":{"1":{}},"extra_data":{"client_id":"c","extra_pnginfo":{}}}}"#,
        )
        .unwrap();
        assert_eq!(job.client_id().as_deref(), Some("c"));
    }

    #[test]
    fn absurd_server_timestamps_are_absent() {
        let body = br#"{"queue_running":[],"queue_pending":[
            [1,"a",{},{"create_time":"inf"},[]],
            [2,"b",{},{"create_time":1700000000000000},[]],
            [3,"c",{},{"create_time":-5},[]]]}"#;
        let q = parse_queue(body).unwrap();
        assert!(q.pending.iter().all(|i| i.create_time.is_none()), "{q:?}");
        let history = br#"{"p":{"outputs":{},"status":{"status_str":"success","messages":[
            ["execution_start",{"prompt_id":"p","timestamp":"NaN"}],
            ["execution_success",{"prompt_id":"p","timestamp":9.9e300}]]}}}"#;
        let h = parse_history(history).unwrap();
        assert_eq!((h[0].started_ms, h[0].ended_ms), (None, None));
        assert!(matches!(h[0].outcome, Outcome::Success));
        let job = parse_job(
            br#"{"id":"p","status":"completed","create_time":"NaN","priority":"inf",
            "execution_start_time":1e30,"execution_end_time":1700000000000}"#,
        )
        .unwrap();
        assert_eq!(job.create_time, None);
        assert_eq!(job.priority, None);
        assert_eq!(job.execution_start_time, None);
        assert_eq!(job.execution_end_time, Some(1_700_000_000_000));
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

/// The largest seed drawn anew (2^50, as the ComfyUI page draws them): every seed drawn stays
/// exact in JSON readers that hold numbers as doubles, the page and this app's webview among them.
pub const MAX_DRAWN_SEED: u64 = 1 << 50;

/// The inputs ComfyUI's samplers take their seed from (`KSampler`, `KSamplerAdvanced`,
/// `RandomNoise` and most custom samplers).
pub const SEED_INPUTS: [&str; 2] = ["seed", "noise_seed"];

/// Gives every seed input of an API-format workflow that holds a number a new value from
/// `next` (one each, in node order); a seed fed by another node's output is left to it.
/// Returns how many were changed. Queued again with the same seeds, ComfyUI answers a job
/// from its cache instead of running it.
pub fn reseed(workflow: &mut Value, mut next: impl FnMut() -> u64) -> usize {
    let Value::Object(nodes) = workflow else {
        return 0;
    };
    let mut changed = 0;
    for node in nodes.values_mut() {
        let Some(Value::Object(inputs)) = node.get_mut("inputs") else {
            continue;
        };
        for name in SEED_INPUTS {
            if let Some(seed) = inputs.get_mut(name).filter(|v| v.is_number()) {
                *seed = Value::from(next());
                changed += 1;
            }
        }
    }
    changed
}

#[cfg(test)]
mod prompt_tests {
    use super::*;

    #[test]
    fn reseeding_changes_every_literal_seed_and_leaves_linked_ones() {
        let mut w = serde_json::json!({
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "model": ["4", 0]}},
            "5": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 2, "cfg": 7.5}},
            "6": {"class_type": "KSampler", "inputs": {"seed": ["9", 0]}},
            "7": {"class_type": "SaveImage", "inputs": {"filename_prefix": "seed"}},
            "8": {"class_type": "Note"}
        });
        let mut n = 100;
        let changed = reseed(&mut w, || {
            n += 1;
            n
        });
        assert_eq!(changed, 2);
        assert_eq!(w["3"]["inputs"]["seed"], 101);
        assert_eq!(w["3"]["inputs"]["steps"], 20, "only seeds change");
        assert_eq!(w["5"]["inputs"]["noise_seed"], 102);
        assert_eq!(w["6"]["inputs"]["seed"], serde_json::json!(["9", 0]));
        assert_eq!(w["7"]["inputs"]["filename_prefix"], "seed");
        assert_eq!(reseed(&mut serde_json::json!([1]), || 0), 0);
    }

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
