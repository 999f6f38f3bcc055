//! Recorded sessions: one JSON object per line (`kind` = meta | text | binary | sent | http |
//! event), as in the shared traces. Read leniently; a bad line is an error naming its number.

use anyhow::Context;
use base64::Engine as _;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone)]
pub enum Entry {
    Text {
        client: String,
        t_ms: f64,
        frame: String,
    },
    Binary {
        client: String,
        t_ms: f64,
        frame: bytes::Bytes,
    },
    Http {
        client: String,
        t_ms: f64,
        t_sent_ms: f64,
        method: String,
        path: String,
        request: Value,
        status: Option<u16>,
        response: Option<Value>,
    },
    Event {
        client: String,
        t_ms: f64,
        event: String,
        url: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub scenario: Option<String>,
    pub recorded_at: Option<time::OffsetDateTime>,
    pub entries: Vec<Entry>,
}

impl Trace {
    pub fn load(path: &Path) -> anyhow::Result<Trace> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Trace> {
        let mut trace = Trace::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("line {} is not JSON", i + 1))?;
            let s = |k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let t_ms = v.get("t_ms").and_then(Value::as_f64).unwrap_or(0.0);
            let client = s("client");
            match v.get("kind").and_then(Value::as_str) {
                Some("meta") => {
                    trace.scenario = v.get("scenario").and_then(Value::as_str).map(str::to_owned);
                    trace.recorded_at =
                        v.get("recorded_at_utc")
                            .and_then(Value::as_str)
                            .and_then(|t| {
                                time::OffsetDateTime::parse(
                                    t,
                                    &time::format_description::well_known::Rfc3339,
                                )
                                .ok()
                            });
                }
                Some("text") => {
                    let frame = match v.get("raw").and_then(Value::as_str) {
                        Some(raw) => raw.to_owned(),
                        None => v
                            .get("json")
                            .map(Value::to_string)
                            .with_context(|| format!("line {}: text frame without json", i + 1))?,
                    };
                    trace.entries.push(Entry::Text {
                        client,
                        t_ms,
                        frame,
                    });
                }
                Some("binary") => {
                    let b64 = v
                        .get("b64")
                        .and_then(Value::as_str)
                        .with_context(|| format!("line {}: binary frame without b64", i + 1))?;
                    let frame = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .with_context(|| format!("line {}: bad base64", i + 1))?;
                    trace.entries.push(Entry::Binary {
                        client,
                        t_ms,
                        frame: frame.into(),
                    });
                }
                Some("http") => trace.entries.push(Entry::Http {
                    client,
                    t_ms,
                    t_sent_ms: v.get("t_sent_ms").and_then(Value::as_f64).unwrap_or(t_ms),
                    method: s("method"),
                    path: s("path"),
                    request: v.get("request_json").cloned().unwrap_or(Value::Null),
                    status: v.get("status").and_then(Value::as_u64).map(|s| s as u16),
                    response: v.get("response_json").cloned(),
                }),
                Some("event") => trace.entries.push(Entry::Event {
                    client,
                    t_ms,
                    event: s("event"),
                    url: v.get("url").and_then(Value::as_str).map(str::to_owned),
                }),
                _ => {}
            }
        }
        Ok(trace)
    }

    /// Sockets that received frames, in order of first frame.
    pub fn clients(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for e in &self.entries {
            if let Entry::Text { client, .. } | Entry::Binary { client, .. } = e {
                if !seen.contains(client) {
                    seen.push(client.clone());
                }
            }
        }
        seen
    }
}
