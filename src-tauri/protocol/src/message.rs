//! Text frames: `{"type": <name>, "data": {...}}`, decoded into [`ServerMessage`].
//!
//! Shapes follow ComfyUI's `server.py` / `execution.py` across versions: fields added later are
//! optional, counters are read as `f64`, ids as strings.

use crate::error::DecodeError;
use crate::lenient;
use comfy_model::{NodeId, PromptId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `exception_type` of the `execution_error` a node sends when it blocks one branch; execution
/// goes on, so it is not a terminal error.
pub const EXECUTION_BLOCKED: &str = "ExecutionBlocked";

/// One decoded text frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// Queue length changed, or the per-connection hello (the only one that carries `sid`).
    Status {
        queue_remaining: Option<u64>,
        sid: Option<String>,
    },
    ExecutionStart {
        prompt_id: PromptId,
        timestamp: Option<i64>,
    },
    ExecutionCached {
        prompt_id: PromptId,
        nodes: Vec<NodeId>,
        timestamp: Option<i64>,
    },
    /// A node started; `node: None` with a prompt id is the end of that job. On reconnect the
    /// server replays `{node}` with no prompt id.
    Executing {
        prompt_id: Option<PromptId>,
        node: Option<NodeId>,
        display_node: Option<NodeId>,
    },
    Executed {
        prompt_id: Option<PromptId>,
        node: NodeId,
        display_node: Option<NodeId>,
        /// The node's UI output (`{"images": [...]}`, `{"text": [...]}`, custom keys); may be null.
        output: Value,
    },
    Progress {
        prompt_id: Option<PromptId>,
        node: Option<NodeId>,
        value: f64,
        max: f64,
    },
    /// A full snapshot of every started node of one job: replace, don't merge.
    ProgressState {
        prompt_id: PromptId,
        nodes: BTreeMap<NodeId, NodeProgress>,
    },
    ExecutionSuccess {
        prompt_id: PromptId,
        timestamp: Option<i64>,
    },
    ExecutionError(Box<ExecutionError>),
    ExecutionInterrupted(ExecutionInterrupted),
    /// The server's answer to our `feature_flags`: an open map.
    FeatureFlags(Map<String, Value>),
    /// Node text sent as JSON (some servers and proxies); core sends it as binary type 3.
    ProgressText {
        prompt_id: Option<PromptId>,
        node: NodeId,
        text: String,
    },
    /// Any other type: custom nodes' broadcasts (`crystools.monitor`, ...), `logs`, Cloud's
    /// `notification`, and whatever comes next. Never an error; `data` is kept whole up to
    /// [`MAX_OTHER_DATA`] bytes of JSON, and past it is `{"bytes": n}`, never parsed.
    Other {
        kind: String,
        data: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionError {
    pub prompt_id: PromptId,
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub executed: Vec<NodeId>,
    #[serde(default)]
    pub exception_message: String,
    #[serde(default)]
    pub exception_type: String,
    #[serde(default)]
    pub traceback: Vec<String>,
    #[serde(default)]
    pub current_inputs: Value,
    #[serde(default)]
    pub current_outputs: Value,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    pub timestamp: Option<i64>,
}

impl ExecutionError {
    /// `ExecutionBlocked` errors report a blocked branch; the job continues.
    pub fn is_terminal(&self) -> bool {
        self.exception_type != EXECUTION_BLOCKED
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionInterrupted {
    pub prompt_id: PromptId,
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub executed: Vec<NodeId>,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    pub timestamp: Option<i64>,
}

/// One node's entry in a `progress_state` snapshot.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeProgress {
    #[serde(deserialize_with = "lenient::number", default)]
    pub value: f64,
    #[serde(deserialize_with = "lenient::number", default = "one")]
    pub max: f64,
    #[serde(default)]
    pub state: NodeRunState,
    #[serde(default)]
    pub display_node_id: Option<NodeId>,
    #[serde(default)]
    pub parent_node_id: Option<NodeId>,
    #[serde(default)]
    pub real_node_id: Option<NodeId>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeRunState {
    Pending,
    #[default]
    Running,
    Finished,
    Error,
    /// A state this client does not know yet.
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StatusData {
    #[serde(default)]
    status: Option<StatusInner>,
    #[serde(default)]
    sid: Option<String>,
}
#[derive(Deserialize)]
struct StatusInner {
    #[serde(default)]
    exec_info: Option<ExecInfo>,
}
#[derive(Deserialize)]
struct ExecInfo {
    #[serde(default, deserialize_with = "lenient::opt_number")]
    queue_remaining: Option<f64>,
}

#[derive(Deserialize)]
struct StartData {
    prompt_id: PromptId,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    timestamp: Option<i64>,
}
#[derive(Deserialize)]
struct CachedData {
    prompt_id: PromptId,
    #[serde(default)]
    nodes: Vec<NodeId>,
    #[serde(default, deserialize_with = "lenient::opt_millis")]
    timestamp: Option<i64>,
}
#[derive(Deserialize)]
struct ExecutingData {
    #[serde(default)]
    node: Option<NodeId>,
    #[serde(default)]
    display_node: Option<NodeId>,
    #[serde(default)]
    prompt_id: Option<PromptId>,
}
#[derive(Deserialize)]
struct ExecutedData {
    node: NodeId,
    #[serde(default)]
    display_node: Option<NodeId>,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    prompt_id: Option<PromptId>,
}
#[derive(Deserialize)]
struct ProgressData {
    #[serde(deserialize_with = "lenient::number")]
    value: f64,
    #[serde(deserialize_with = "lenient::number")]
    max: f64,
    #[serde(default)]
    prompt_id: Option<PromptId>,
    #[serde(default)]
    node: Option<NodeId>,
}
#[derive(Deserialize)]
struct ProgressStateData {
    prompt_id: PromptId,
    #[serde(default)]
    nodes: BTreeMap<NodeId, NodeProgress>,
}
#[derive(Deserialize)]
struct ProgressTextData {
    #[serde(default, alias = "nodeId", alias = "node_id")]
    node: Option<NodeId>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    prompt_id: Option<PromptId>,
}

/// The largest `data` of an unknown message type kept: custom nodes' broadcasts are small, and
/// parsed JSON costs many times its text (as much as 80 bytes a byte for `[0,0,…]`).
pub const MAX_OTHER_DATA: usize = 4 << 10;

/// An unknown message's `data`: parsed when small, its size alone otherwise.
fn other_data(raw: &str) -> Result<Value, serde_json::Error> {
    if raw.len() > MAX_OTHER_DATA {
        return Ok(serde_json::json!({ "bytes": raw.len() }));
    }
    serde_json::from_str(raw)
}

/// Decodes one text frame.
///
/// Unknown `type`s become [`ServerMessage::Other`]. A known type whose `data` does not have the
/// expected shape is a [`DecodeError::BadMessage`], so a loose server cannot make us guess.
pub fn decode_text(frame: &str) -> Result<ServerMessage, DecodeError> {
    let env: Envelope<'_> = serde_json::from_str(frame).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            DecodeError::InvalidJson(e)
        } else {
            DecodeError::NotAMessage(e)
        }
    })?;
    let raw = env.data.map(RawValue::get).unwrap_or("null");
    let kind = env.kind.as_ref();
    let bad = |source: serde_json::Error| DecodeError::BadMessage {
        kind: kind.to_owned(),
        source,
    };
    let msg = match kind {
        "status" => {
            let d: StatusData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::Status {
                queue_remaining: d
                    .status
                    .and_then(|s| s.exec_info)
                    .and_then(|e| e.queue_remaining)
                    .map(|n| n.max(0.0) as u64),
                sid: d.sid,
            }
        }
        "execution_start" => {
            let d: StartData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::ExecutionStart {
                prompt_id: d.prompt_id,
                timestamp: d.timestamp,
            }
        }
        "execution_cached" => {
            let d: CachedData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::ExecutionCached {
                prompt_id: d.prompt_id,
                nodes: d.nodes,
                timestamp: d.timestamp,
            }
        }
        "executing" => {
            let d: ExecutingData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::Executing {
                prompt_id: d.prompt_id,
                node: d.node,
                display_node: d.display_node,
            }
        }
        "executed" => {
            let d: ExecutedData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::Executed {
                prompt_id: d.prompt_id,
                node: d.node,
                display_node: d.display_node,
                output: d.output,
            }
        }
        "progress" => {
            let d: ProgressData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::Progress {
                prompt_id: d.prompt_id,
                node: d.node,
                value: d.value,
                max: d.max,
            }
        }
        "progress_state" => {
            let d: ProgressStateData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::ProgressState {
                prompt_id: d.prompt_id,
                nodes: d.nodes,
            }
        }
        "execution_success" => {
            let d: StartData = serde_json::from_str(raw).map_err(bad)?;
            ServerMessage::ExecutionSuccess {
                prompt_id: d.prompt_id,
                timestamp: d.timestamp,
            }
        }
        "execution_error" => {
            ServerMessage::ExecutionError(Box::new(serde_json::from_str(raw).map_err(bad)?))
        }
        "execution_interrupted" => {
            ServerMessage::ExecutionInterrupted(serde_json::from_str(raw).map_err(bad)?)
        }
        "feature_flags" => {
            // `{"type":"feature_flags"}` without data is legal from a client; be as lenient here.
            let v: Value = serde_json::from_str(raw).map_err(bad)?;
            match v {
                Value::Object(m) => ServerMessage::FeatureFlags(m),
                Value::Null => ServerMessage::FeatureFlags(Map::new()),
                other => ServerMessage::Other {
                    kind: kind.to_owned(),
                    data: other,
                },
            }
        }
        "progress_text" => {
            let d: ProgressTextData = serde_json::from_str(raw).map_err(bad)?;
            match d.node {
                Some(node) => ServerMessage::ProgressText {
                    prompt_id: d.prompt_id,
                    node,
                    text: d.text,
                },
                None => ServerMessage::Other {
                    kind: kind.to_owned(),
                    data: other_data(raw).map_err(bad)?,
                },
            }
        }
        _ => ServerMessage::Other {
            kind: kind.to_owned(),
            data: other_data(raw).map_err(bad)?,
        },
    };
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_status_carries_sid_and_queue_length() {
        let m = decode_text(
            r#"{"type":"status","data":{"status":{"exec_info":{"queue_remaining":2}},"sid":"abc"}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            ServerMessage::Status {
                queue_remaining: Some(2),
                sid: Some("abc".into())
            }
        );
    }

    #[test]
    fn progress_accepts_float_counters_and_numeric_node_ids() {
        let m = decode_text(
            r#"{"type":"progress","data":{"value":3.0,"max":20,"prompt_id":"p","node":7}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            ServerMessage::Progress {
                prompt_id: Some("p".into()),
                node: Some("7".into()),
                value: 3.0,
                max: 20.0
            }
        );
    }

    #[test]
    fn progress_from_servers_before_2024_has_no_ids() {
        let m = decode_text(r#"{"type":"progress","data":{"value":1,"max":4}}"#).unwrap();
        assert!(matches!(
            m,
            ServerMessage::Progress {
                prompt_id: None,
                node: None,
                ..
            }
        ));
    }

    #[test]
    fn executing_with_null_node_is_the_end_of_a_job() {
        let m =
            decode_text(r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#).unwrap();
        assert_eq!(
            m,
            ServerMessage::Executing {
                prompt_id: Some("p".into()),
                node: None,
                display_node: None
            }
        );
    }

    #[test]
    fn an_unknown_types_large_data_is_kept_as_its_size_unparsed() {
        let zeros = vec!["0"; MAX_OTHER_DATA].join(",");
        let frame = format!(r#"{{"type":"x.flood","data":[{zeros}]}}"#);
        match decode_text(&frame).unwrap() {
            ServerMessage::Other { kind, data } => {
                assert_eq!(kind, "x.flood");
                assert_eq!(data, serde_json::json!({ "bytes": zeros.len() + 2 }));
            }
            other => panic!("{other:?}"),
        }
        // Malformed past the limit is still malformed: the envelope is read whole.
        let broken = format!(r#"{{"type":"x.flood","data":[{zeros}"#);
        assert!(decode_text(&broken).is_err());
    }

    #[test]
    fn unknown_types_keep_their_raw_data() {
        let m =
            decode_text(r#"{"type":"crystools.monitor","data":{"cpu_utilization":12.5}}"#).unwrap();
        match m {
            ServerMessage::Other { kind, data } => {
                assert_eq!(kind, "crystools.monitor");
                assert_eq!(data["cpu_utilization"], 12.5);
            }
            other => panic!("expected Other, got {other:?}"),
        }
    }

    #[test]
    fn unknown_type_without_data_is_kept_with_null() {
        let m = decode_text(r#"{"type":"ping.custom"}"#).unwrap();
        assert_eq!(
            m,
            ServerMessage::Other {
                kind: "ping.custom".into(),
                data: Value::Null
            }
        );
    }

    #[test]
    fn execution_blocked_is_not_terminal() {
        let m = decode_text(r#"{"type":"execution_error","data":{"prompt_id":"p","node_id":"4","node_type":"X","executed":[],"exception_message":"Execution Blocked: no","exception_type":"ExecutionBlocked","traceback":[],"current_inputs":[],"current_outputs":[]}}"#).unwrap();
        match m {
            ServerMessage::ExecutionError(e) => assert!(!e.is_terminal()),
            other => panic!("expected ExecutionError, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_a_typed_error() {
        assert!(matches!(
            decode_text(r#"{"type":"status","data":"#),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_text("[1,2,3]"),
            Err(DecodeError::NotAMessage(_))
        ));
        assert!(matches!(
            decode_text(r#"{"data":{}}"#),
            Err(DecodeError::NotAMessage(_))
        ));
    }

    #[test]
    fn known_type_with_wrong_shape_names_the_type() {
        let err =
            decode_text(r#"{"type":"progress","data":{"value":"lots","max":4}}"#).unwrap_err();
        match err {
            DecodeError::BadMessage { kind, .. } => assert_eq!(kind, "progress"),
            other => panic!("expected BadMessage, got {other:?}"),
        }
    }

    #[test]
    fn progress_state_nodes_are_decoded_with_states() {
        let m = decode_text(r#"{"type":"progress_state","data":{"prompt_id":"p","nodes":{"1":{"value":3.0,"max":12.0,"state":"running","node_id":"1","prompt_id":"p","display_node_id":"1","parent_node_id":null,"real_node_id":"1"},"4":{"value":1.0,"max":1.0,"state":"finished","node_id":"4","prompt_id":"p","display_node_id":"4","parent_node_id":null,"real_node_id":"4"}}}}"#).unwrap();
        match m {
            ServerMessage::ProgressState { nodes, .. } => {
                assert_eq!(nodes.len(), 2);
                assert_eq!(nodes[&NodeId::from("1")].state, NodeRunState::Running);
                assert_eq!(nodes[&NodeId::from("4")].state, NodeRunState::Finished);
            }
            other => panic!("expected ProgressState, got {other:?}"),
        }
    }
}
