//! Printing events: NDJSON (the contract scripts rely on) or readable lines.

use comfy_engine::{ConnectionState, Event, EventKind, Fidelity, JobOrigin, JobState, JobView};
use std::collections::HashMap;
use std::io::Write;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Human,
}

/// Writes events to a writer. Readable mode skips progress lines that say nothing new.
pub struct Printer<W: Write> {
    out: W,
    format: Format,
    last_line: HashMap<(String, String), String>,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: Format) -> Self {
        Self {
            out,
            format,
            last_line: HashMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn print(&mut self, event: &Event) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, event)?;
                self.out.write_all(b"\n")?;
            }
            Format::Human => {
                let Some(line) = human(&event.kind) else {
                    return Ok(());
                };
                if let EventKind::Job(j) = &event.kind {
                    let key = (event.instance.clone(), j.prompt_id.to_string());
                    if self.last_line.get(&key) == Some(&line) {
                        return Ok(());
                    }
                    if j.state.is_terminal() {
                        self.last_line.remove(&key);
                    } else {
                        self.last_line.insert(key, line.clone());
                    }
                }
                let ts = event
                    .ts
                    .format(&time::macros::format_description!(
                        "[hour]:[minute]:[second]"
                    ))
                    .unwrap_or_else(|_| event.ts.format(&Rfc3339).unwrap_or_default());
                writeln!(self.out, "{ts} {:<12} {line}", event.instance)?;
            }
        }
        self.out.flush()
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn origin(o: JobOrigin) -> &'static str {
    match o {
        JobOrigin::SelfApp => "this app",
        JobOrigin::Other => "other client",
        JobOrigin::Anonymous => "no client id",
    }
}

fn job_line(j: &JobView) -> String {
    let state = match j.state {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Success => "success",
        JobState::Error => "error",
        JobState::Interrupted => "interrupted",
        JobState::Deleted => "deleted",
        JobState::Lost => "lost",
    };
    let mut s = format!(
        "job {} [{}] {state}",
        short(j.prompt_id.as_str()),
        origin(j.origin)
    );
    if let Some(p) = j.percent.filter(|_| j.state == JobState::Running) {
        s.push_str(&format!(" {:.0}%", p.floor()));
    }
    if !j.state.is_terminal() {
        if let Some(node) = &j.node {
            let name = j.node_title.as_deref().or(j.node_type.as_deref());
            match name {
                Some(n) => s.push_str(&format!(" · {n} (#{node})")),
                None => s.push_str(&format!(" · node #{node}")),
            }
            if let (Some(v), Some(m)) = (j.node_value, j.node_max) {
                if m > 1.0 {
                    s.push_str(&format!(" {v:.0}/{m:.0}"));
                }
            }
        }
        if let Some(r) = j.steps_per_s {
            s.push_str(&format!(" · {r:.1} it/s"));
        }
        if let Some(eta) = j.eta_ms {
            s.push_str(&format!(" · ETA {}", duration(eta)));
        }
        if j.state == JobState::Running && j.fidelity == Fidelity::Observed && j.node.is_none() {
            s.push_str(" (observed: ComfyUI sends progress only to the client that queued it)");
        }
    } else {
        if let Some(e) = j.elapsed_ms {
            s.push_str(&format!(" in {}", duration(e)));
        }
        if !j.outputs.is_empty() {
            let names: Vec<&str> = j.outputs.iter().map(|o| o.filename.as_str()).collect();
            s.push_str(&format!(" → {}", names.join(", ")));
        }
        if let Some(e) = &j.error {
            let node = match (&e.node_type, &e.node_id) {
                (Some(t), Some(id)) => format!(" at {t} (#{id})"),
                (None, Some(id)) => format!(" at #{id}"),
                _ => String::new(),
            };
            let kind = e
                .exception_type
                .as_deref()
                .map(|t| format!("{t}: "))
                .unwrap_or_default();
            if j.state == JobState::Error {
                s.push_str(&format!(" —{node} {kind}{}", e.message));
            } else {
                s.push_str(&format!(" —{node}"));
            }
        }
        if let Some(d) = &j.detail {
            s.push_str(&format!(" ({d})"));
        }
    }
    for w in &j.warnings {
        s.push_str(&format!(" [warning: {w}]"));
    }
    s
}

fn human(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Connection(c) => {
            let state = match c.state {
                ConnectionState::Connecting => "connecting",
                ConnectionState::Connected => "connected",
                ConnectionState::Reconnecting => "reconnecting",
                ConnectionState::Unreachable => "unreachable",
                ConnectionState::AuthFailed => "auth failed",
                ConnectionState::Disabled => "disabled",
            };
            let retry = c
                .retry_in_ms
                .map(|ms| format!(", retrying in {}", duration(ms)))
                .unwrap_or_default();
            // Details often start with the state already ("auth failed: 401").
            if c.detail.starts_with(state) {
                format!("{}{retry}", c.detail)
            } else {
                format!("{state}: {}{retry}", c.detail)
            }
        }
        EventKind::Server(s) => format!(
            "server {} · {} · client id {}",
            s.version.as_deref().unwrap_or("(version unknown)"),
            if s.jobs_api {
                "other clients' jobs via /api/jobs"
            } else {
                "other clients' jobs via /queue + /history"
            },
            s.client_id
        ),
        EventKind::Queue { running, pending } => format!(
            "queue: {} running, {} pending",
            running.len(),
            pending.len()
        ),
        EventKind::Job(j) => job_line(j),
        // A line per preview frame would drown everything else.
        EventKind::Preview(_) => return None,
        EventKind::Text { node, text, .. } => format!("text #{node}: {}", text.trim_end()),
        EventKind::ServerEvent { kind, data } => {
            let mut d = data.to_string();
            if d.len() > 120 {
                let cut = (0..=117)
                    .rev()
                    .find(|i| d.is_char_boundary(*i))
                    .unwrap_or(0);
                d.truncate(cut);
                d.push('…');
            }
            format!("server event {kind}: {d}")
        }
        EventKind::ProtocolError { detail } => format!("undecodable {detail}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::ConnectionStatus;

    fn line(state: ConnectionState, detail: &str, retry_in_ms: Option<u64>) -> String {
        human(&EventKind::Connection(ConnectionStatus {
            state,
            detail: detail.into(),
            retry_in_ms,
        }))
        .unwrap()
    }

    #[test]
    fn a_connection_line_names_its_state_once() {
        assert_eq!(
            line(
                ConnectionState::AuthFailed,
                "auth failed: 401",
                Some(30_000)
            ),
            "auth failed: 401, retrying in 30.0 s"
        );
        assert_eq!(
            line(
                ConnectionState::Connected,
                "connected to ComfyUI 0.26.0",
                None
            ),
            "connected to ComfyUI 0.26.0"
        );
        assert_eq!(
            line(
                ConnectionState::Reconnecting,
                "server restarted",
                Some(1_000)
            ),
            "reconnecting: server restarted, retrying in 1.0 s"
        );
    }
}
