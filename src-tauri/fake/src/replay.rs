//! Trace replay: serve what one recorded socket received, and the recorded HTTP answers.
//!
//! A trace is the recorder's JSON-lines format (`shared/comfyui-traces/README.md`): `text`
//! lines carry the parsed frame in `json`, `binary` lines the whole frame in `b64`, `http` lines
//! one exchange. Every socket that connects to a replaying server receives the frames recorded
//! for the chosen client, in order, and then stays open. This module only loads and looks up; it
//! does not decide when frames are sent.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use bytes::Bytes;

use crate::json::J;
use crate::state::Outbound;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read the trace")]
    Io(#[from] std::io::Error),
    #[error("line {line} of the trace is not valid JSON")]
    Line {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line} has a binary frame whose b64 does not decode")]
    Base64 {
        line: usize,
        #[source]
        source: base64::DecodeError,
    },
    #[error("the trace has no frames for client {0:?}")]
    NoFrames(String),
}

/// One recorded HTTP answer.
#[derive(Clone, Debug)]
pub struct RecordedHttp {
    pub method: String,
    /// Path with query string, as recorded.
    pub path: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What a replaying server sends.
#[derive(Debug)]
pub struct ReplayScript {
    pub(crate) frames: Vec<Outbound>,
    http: Vec<RecordedHttp>,
    served: Mutex<HashMap<String, usize>>,
}

impl ReplayScript {
    /// Loads the frames received by `client` (the trace's `client` field, e.g. `"monitor"`).
    pub fn load(path: impl AsRef<Path>, client: &str) -> Result<ReplayScript, TraceError> {
        let text = std::fs::read_to_string(path)?;
        ReplayScript::from_jsonl(&text, client)
    }

    pub fn from_jsonl(text: &str, client: &str) -> Result<ReplayScript, TraceError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut frames = Vec::new();
        let mut http = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record = J::parse(line).map_err(|source| TraceError::Line {
                line: i + 1,
                source,
            })?;
            let kind = record.get("kind").and_then(J::as_str).unwrap_or("");
            let from = record.get("client").and_then(J::as_str);
            match kind {
                "text" if from == Some(client) => {
                    if let Some(json) = record.get("json") {
                        frames.push(Outbound::Text(json.to_py_string()));
                    }
                }
                "binary" if from == Some(client) => {
                    let encoded = record.get("b64").and_then(J::as_str).unwrap_or("");
                    let bytes = b64.decode(encoded).map_err(|source| TraceError::Base64 {
                        line: i + 1,
                        source,
                    })?;
                    frames.push(Outbound::Binary(Bytes::from(bytes)));
                }
                "http" => {
                    let Some(status) = record.get("status").and_then(J::as_i64) else {
                        continue;
                    };
                    let body = if let Some(json) = record.get("response_json") {
                        json.to_py_string().into_bytes()
                    } else if let Some(text) = record.get("response_text").and_then(J::as_str) {
                        text.as_bytes().to_vec()
                    } else if let Some(encoded) = record.get("response_b64").and_then(J::as_str) {
                        b64.decode(encoded).unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    http.push(RecordedHttp {
                        method: record
                            .get("method")
                            .and_then(J::as_str)
                            .unwrap_or("GET")
                            .to_string(),
                        path: record
                            .get("path")
                            .and_then(J::as_str)
                            .unwrap_or("")
                            .to_string(),
                        status: u16::try_from(status).unwrap_or(500),
                        content_type: record
                            .get("content_type")
                            .and_then(J::as_str)
                            .filter(|c| !c.is_empty())
                            .map(str::to_string),
                        body,
                    });
                }
                _ => {}
            }
        }
        if frames.is_empty() {
            return Err(TraceError::NoFrames(client.to_string()));
        }
        Ok(ReplayScript {
            frames,
            http,
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Number of WebSocket frames a connecting client will receive.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// The recorded answer for a GET of `path` (with query). Repeated requests walk through the
    /// recorded answers in order and then keep returning the last one.
    pub fn answer(&self, method: &str, path: &str) -> Option<RecordedHttp> {
        if method != "GET" {
            return None;
        }
        let matching: Vec<&RecordedHttp> = self
            .http
            .iter()
            .filter(|h| h.method == "GET" && h.path == path)
            .collect();
        if matching.is_empty() {
            return None;
        }
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let n = served.entry(path.to_string()).or_insert(0);
        let pick = matching[(*n).min(matching.len() - 1)].clone();
        *n += 1;
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"{"t_ms": 1.0, "kind": "meta", "client": null}
{"t_ms": 2.0, "kind": "text", "client": "monitor", "json": {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "m"}}}
{"t_ms": 2.5, "kind": "text", "client": "other", "json": {"type": "status", "data": {}}}
{"t_ms": 3.0, "kind": "binary", "client": "monitor", "b64": "AAAAAQAAAAH/2P8="}
{"t_ms": 4.0, "kind": "http", "client": "http", "method": "GET", "path": "/queue", "status": 200, "content_type": "application/json; charset=utf-8", "response_json": {"queue_running": [], "queue_pending": []}}"#;

    #[test]
    fn loads_only_the_named_clients_frames_in_order() {
        let script = ReplayScript::from_jsonl(TRACE, "monitor").unwrap();
        assert_eq!(script.frame_count(), 2);
        match &script.frames[1] {
            Outbound::Binary(b) => assert_eq!(&b[..4], &[0, 0, 0, 1]),
            other => panic!("unexpected {other:?}"),
        }
        let answer = script.answer("GET", "/queue").unwrap();
        assert_eq!(
            String::from_utf8(answer.body).unwrap(),
            r#"{"queue_running": [], "queue_pending": []}"#
        );
        assert!(script.answer("GET", "/history").is_none());
    }

    #[test]
    fn unknown_client_is_an_error() {
        assert!(matches!(
            ReplayScript::from_jsonl(TRACE, "nobody"),
            Err(TraceError::NoFrames(_))
        ));
    }
}
