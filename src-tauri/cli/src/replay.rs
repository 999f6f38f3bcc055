//! `comfy-monitor replay`: a recorded session through the same decoder and tracker a live one
//! uses, offline. Outcome lookups are answered from the HTTP exchanges recorded in the trace;
//! without one, the outcome seen on the socket stands.

use crate::output::{Format, Printer};
use crate::trace::{Entry, Trace};
use crate::ReplayArgs;
use anyhow::{bail, Context};
use comfy_engine::processor::Processor;
use comfy_engine::tracker::{ActiveJob, Lookup, Request};
use comfy_engine::{ConnectionState, ConnectionStatus, Event, EventKind, InstanceId};
use comfy_protocol::http::{parse_history, parse_job};
use comfy_protocol::PromptId;
use serde_json::Value;
use std::time::Duration;

/// The id a replayed session's instance goes by (it is not saved).
const REPLAYED: InstanceId = InstanceId(-1);

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let trace = Trace::load(&args.trace)?;
    let instance = args
        .trace
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "replay".into());
    let events = replay(&trace, args.client.as_deref(), &instance)?;
    let format = if args.json {
        Format::Json
    } else {
        Format::Human
    };
    let mut printer = Printer::new(std::io::stdout().lock(), format);
    for e in &events {
        if let Err(err) = printer.print(e) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(err.into());
        }
    }
    Ok(())
}

fn client_id_from_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == "clientId")
        .map(|(_, v)| v.into_owned())
}

/// The recorded answer to "how did this job end?", if the trace has one.
fn recorded_outcome(trace: &Trace, id: &PromptId) -> Lookup {
    let mut found = Lookup::Unavailable;
    for e in &trace.entries {
        let Entry::Http {
            method,
            path,
            status: Some(200),
            response: Some(body),
            ..
        } = e
        else {
            continue;
        };
        if method != "GET" {
            continue;
        }
        let path = path.split('?').next().unwrap_or_default();
        let Some(last) = path.rsplit('/').next() else {
            continue;
        };
        if last != id.as_str() {
            continue;
        }
        let bytes = body.to_string();
        if path.ends_with(&format!("/history/{id}")) {
            if let Ok(entries) = parse_history(bytes.as_bytes()) {
                if let Some(f) = entries.into_iter().find(|f| &f.prompt_id == id) {
                    found = Lookup::Found(Box::new(f));
                }
            }
        } else if path.ends_with(&format!("/jobs/{id}")) {
            if let Some(f) = parse_job(bytes.as_bytes()).ok().and_then(|j| j.finished()) {
                found = Lookup::Found(Box::new(f));
            }
        }
    }
    found
}

enum Step<'a> {
    Entry(&'a Entry),
    Submitted(&'a Value, &'a Value),
}

/// Replays one socket of a trace and returns the events a live watch would have printed.
pub fn replay(trace: &Trace, client: Option<&str>, instance: &str) -> anyhow::Result<Vec<Event>> {
    let clients = trace.clients();
    let client = match client {
        Some(c) if clients.iter().any(|x| x == c) => c.to_owned(),
        Some(c) => bail!(
            "no socket named {c:?} received frames in this trace; sockets: {}",
            clients.join(", ")
        ),
        None => clients
            .first()
            .cloned()
            .context("this trace has no received frames")?,
    };
    let client_id = trace
        .entries
        .iter()
        .find_map(|e| match e {
            Entry::Event {
                client: c,
                event,
                url: Some(url),
                ..
            } if *c == client && event == "ws_connect" => client_id_from_url(url),
            _ => None,
        })
        .unwrap_or_else(|| client.clone());

    // Order: frames by arrival; our own submissions when they were sent (the graph is known
    // from then on, even if the HTTP answer arrives after the first frames).
    let mut steps: Vec<(f64, usize, Step<'_>)> = Vec::new();
    for (i, e) in trace.entries.iter().enumerate() {
        match e {
            Entry::Text {
                client: c, t_ms, ..
            }
            | Entry::Binary {
                client: c, t_ms, ..
            } if *c == client => steps.push((*t_ms, i, Step::Entry(e))),
            Entry::Event {
                client: c, t_ms, ..
            } if *c == client => steps.push((*t_ms, i, Step::Entry(e))),
            Entry::Http {
                method,
                path,
                t_sent_ms,
                request,
                status: Some(200),
                response: Some(resp),
                ..
            } if method == "POST"
                && path.trim_end_matches('/').ends_with("prompt")
                && request.get("client_id").and_then(Value::as_str) == Some(client_id.as_str()) =>
            {
                steps.push((*t_sent_ms, i, Step::Submitted(request, resp)))
            }
            _ => {}
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    let base = trace
        .recorded_at
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let base_ms = (base.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut processor = Processor::new(client_id.clone());
    let mut out = Vec::new();
    let mut opened = false;
    for (t_ms, _, step) in steps {
        let ts = base + Duration::from_micros((t_ms * 1000.0).max(0.0) as u64);
        let now = base_ms + t_ms as i64;
        let mut kinds = Vec::new();
        let mut requests = Vec::new();
        match step {
            Step::Entry(Entry::Text { frame, .. }) => {
                let (k, r) = processor.text(frame, now);
                kinds = k;
                requests = r;
            }
            Step::Entry(Entry::Binary { frame, .. }) => kinds = processor.binary(frame),
            Step::Entry(Entry::Event { event, .. }) if event == "ws_open" => {
                processor.connected(opened);
                opened = true;
                kinds.push(EventKind::Connection(ConnectionStatus {
                    state: ConnectionState::Connected,
                    detail: format!("replaying as client id {client_id}"),
                    retry_in_ms: None,
                }));
            }
            Step::Entry(Entry::Event { event, .. }) if event == "ws_closed" => {
                processor.disconnected();
                kinds.push(EventKind::Connection(ConnectionStatus {
                    state: ConnectionState::Reconnecting,
                    detail: "socket closed in the recording".into(),
                    retry_in_ms: None,
                }));
            }
            Step::Entry(_) => {}
            Step::Submitted(request, response) => {
                if let Some(id) = response.get("prompt_id").and_then(Value::as_str) {
                    let job = ActiveJob {
                        prompt_id: PromptId::from(id),
                        number: response.get("number").and_then(Value::as_f64),
                        client_id: Some(Some(client_id.clone())),
                        graph: request.get("prompt").cloned(),
                        outputs_to_execute: None,
                        create_time: None,
                    };
                    kinds.extend(
                        processor
                            .tracker_mut()
                            .describe_job(&job, now)
                            .into_iter()
                            .filter_map(|u| match u {
                                comfy_engine::tracker::Update::Job(j) => Some(EventKind::Job(j)),
                                _ => None,
                            }),
                    );
                }
            }
        }
        for r in requests {
            if let Request::Outcome(id) = r {
                let lookup = recorded_outcome(trace, &id);
                kinds.extend(processor.outcome(&id, lookup, now));
            }
        }
        out.extend(kinds.into_iter().map(|kind| Event {
            ts,
            instance_id: REPLAYED,
            instance: instance.to_owned(),
            kind,
        }));
    }
    // Jobs whose end was on the socket but whose lookup never came back.
    let end = base + Duration::from_secs(0);
    for id in processor.tracker().ending_jobs() {
        for kind in processor.outcome(&id, Lookup::Unavailable, base_ms) {
            out.push(Event {
                ts: end,
                instance_id: REPLAYED,
                instance: instance.to_owned(),
                kind,
            });
        }
    }
    Ok(out)
}
