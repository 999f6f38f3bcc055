//! Printing events: NDJSON (the contract scripts rely on) or readable lines.

use comfy_engine::{ConnectionState, Event, EventKind, Fidelity, JobOrigin, JobState, JobView};
use comfy_notify::{wall_clock, TimeZone};
use std::collections::HashMap;
use std::io::Write;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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
    /// The zone "done ≈ 14:32" is told in, as the tray and the webview tell it.
    zone: Option<TimeZone>,
}

impl<W: Write> Printer<W> {
    /// A printer telling times in the system's zone (in UTC, saying so, where none is found).
    pub fn new(out: W, format: Format) -> Self {
        Self {
            out,
            format,
            last_line: HashMap::new(),
            zone: TimeZone::try_system().ok(),
        }
    }

    /// Tells times in `zone` instead; without one, in UTC and saying so.
    pub fn in_zone(mut self, zone: Option<TimeZone>) -> Self {
        self.zone = zone;
        self
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
                let Some(line) = human(&event.kind, event.ts, self.zone.as_ref()) else {
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
                // In the zone "done ≈" is told in (UTC where none is found).
                let at = comfy_notify::local(event.ts, self.zone.as_ref()).unwrap_or(event.ts);
                let ts = at
                    .format(&time::macros::format_description!(
                        "[hour]:[minute]:[second]"
                    ))
                    .unwrap_or_else(|_| at.format(&Rfc3339).unwrap_or_default());
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

/// A learned duration, always shown after "≈": "4.2s", "42s", "1m20s", "3m", "2h05m". Rougher
/// than a measured one ([`duration`]), as an estimate is.
pub(crate) fn approx(ms: u64) -> String {
    if ms < 10_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let s = ms.saturating_add(500) / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m{r:02}s", s / 60),
        }
    } else {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    }
}

/// What an estimate stands on: "3 runs" of this workflow, or "3 runs of its nodes" for a
/// workflow not seen before (estimated from its node classes; the fewest runs of any of them).
pub(crate) fn runs(j: &JobView) -> Option<String> {
    let e = j.estimate.as_ref()?;
    let runs = match e.samples {
        1 => "1 run".to_owned(),
        n => format!("{n} runs"),
    };
    // The basis by its NDJSON name: this crate does not name the model's types.
    let by_nodes = serde_json::to_value(e.basis).is_ok_and(|b| b == "nodes");
    Some(if by_nodes {
        format!("{runs} of its nodes")
    } else {
        runs
    })
}

/// The estimate of an unfinished job, from the server's past runs, every figure marked "≈"
/// (measured ones are never replaced): a running job's share done (when nothing measured says)
/// and time left, or that it runs longer than usual; a pending job's run time and, when its
/// place in the queue is known, when it starts and ends. `at` is the event's time; the end is
/// told in `zone` ("14:32"), else in UTC saying so ("14:32 UTC").
fn estimate_part(j: &JobView, at: OffsetDateTime, zone: Option<&TimeZone>) -> Option<String> {
    let e = j.estimate.as_ref()?;
    let runs = runs(j)?;
    match j.state {
        JobState::Running => {
            if e.longer_than_usual {
                return Some(format!(
                    "longer than usual (typically {})",
                    approx(e.typical_ms)
                ));
            }
            let mut parts = Vec::new();
            if let Some(p) = e.percent.filter(|_| j.percent.is_none()) {
                parts.push(format!("≈{:.0}%", p.floor()));
            }
            match e.eta_ms {
                Some(eta) => parts.push(format!("≈{} left", approx(eta))),
                None => parts.push(format!("≈{} run", approx(e.typical_ms))),
            }
            Some(format!("{} ({runs})", parts.join(" ")))
        }
        JobState::Pending => {
            let run = format!("≈{} run", approx(e.typical_ms));
            let Some(eta) = e.eta_ms else {
                return Some(format!("{run} ({runs})"));
            };
            let starts = e
                .starts_in_ms
                .filter(|s| *s >= 1000)
                .map(|s| format!(", starts in ≈{}", approx(s)))
                .unwrap_or_default();
            // An end past any calendar (a server's absurd figures) is not told.
            let done = i64::try_from(eta)
                .ok()
                .and_then(|ms| at.checked_add(time::Duration::milliseconds(ms)))
                .map(|done| format!(", done ≈{}", wall_clock(done, zone)))
                .unwrap_or_default();
            Some(format!("{run}{starts}{done} ({runs})"))
        }
        _ => None,
    }
}

fn origin(o: JobOrigin) -> &'static str {
    match o {
        JobOrigin::SelfApp => "this app",
        JobOrigin::Other => "other client",
        JobOrigin::Anonymous => "no client id",
    }
}

fn job_line(j: &JobView, at: OffsetDateTime, zone: Option<&TimeZone>) -> String {
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
        if let Some(e) = estimate_part(j, at, zone) {
            s.push_str(&format!(" · {e}"));
        }
        if j.state == JobState::Running && j.fidelity == Fidelity::Observed && j.node.is_none() {
            // Our own job is observed only when the socket cannot be opened (HTTP only).
            s.push_str(if j.origin == JobOrigin::SelfApp {
                " (observed: no socket to the server, so no live progress)"
            } else {
                " (observed: ComfyUI sends progress only to the client that queued it)"
            });
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

fn human(kind: &EventKind, at: OffsetDateTime, zone: Option<&TimeZone>) -> Option<String> {
    Some(match kind {
        EventKind::Connection(c) => {
            let state = match c.state {
                ConnectionState::Connecting => "connecting",
                ConnectionState::Connected => "connected",
                ConnectionState::Reconnecting => "reconnecting",
                ConnectionState::Unreachable => "unreachable",
                ConnectionState::AuthFailed => "auth failed",
                ConnectionState::Disabled => "disabled",
                ConnectionState::HttpOnly => "HTTP only",
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
        EventKind::Job(j) => job_line(j, at, zone),
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
        human(
            &EventKind::Connection(ConnectionStatus {
                state,
                detail: detail.into(),
                retry_in_ms,
            }),
            OffsetDateTime::UNIX_EPOCH,
            None,
        )
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

    /// A job picture in `state`, with the estimate given by its NDJSON fields.
    fn job(origin: JobOrigin, state: JobState, estimate: serde_json::Value) -> JobView {
        let mut j = JobView::new("0b5c1d70-6a8e-4b3f".into(), origin, state);
        j.estimate = serde_json::from_value(estimate).expect("an estimate");
        j
    }

    fn at(hms: (u8, u8, u8)) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
            .replace_time(time::Time::from_hms(hms.0, hms.1, hms.2).expect("a time"))
    }

    /// A job's line with times told in UTC as the zone (no " UTC" said).
    fn utc_line(j: &JobView, at: OffsetDateTime) -> String {
        job_line(j, at, Some(&TimeZone::UTC))
    }

    const OBSERVED: &str = " (observed: ComfyUI sends progress only to the client that queued it)";

    #[test]
    fn learned_durations_are_rough() {
        assert_eq!(approx(420), "0.4s");
        assert_eq!(approx(4_240), "4.2s");
        assert_eq!(approx(42_400), "42s");
        assert_eq!(approx(80_000), "1m20s");
        assert_eq!(approx(65_000), "1m05s");
        assert_eq!(approx(180_200), "3m");
        assert_eq!(approx(7_500_000), "2h05m");
    }

    #[test]
    fn a_running_observed_job_shows_its_estimated_share_and_time_left() {
        let j = job(
            JobOrigin::Other,
            JobState::Running,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 140_000,
                               "percent": 42.7, "eta_ms": 80_000}),
        );
        assert_eq!(
            utc_line(&j, at((14, 0, 0))),
            format!("job 0b5c1d70 [other client] running · ≈42% ≈1m20s left (3 runs){OBSERVED}")
        );
        let one = job(
            JobOrigin::Other,
            JobState::Running,
            serde_json::json!({"basis": "nodes", "samples": 1, "typical_ms": 140_000,
                               "percent": 5.0, "eta_ms": 133_000}),
        );
        assert_eq!(
            utc_line(&one, at((14, 0, 0))),
            format!("job 0b5c1d70 [other client] running · ≈5% ≈2m13s left (1 run of its nodes){OBSERVED}")
        );
    }

    #[test]
    fn our_own_job_observed_without_a_socket_says_why() {
        let mut j = job(
            JobOrigin::SelfApp,
            JobState::Running,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 140_000,
                               "percent": 42.0, "eta_ms": 80_000}),
        );
        j.fidelity = Fidelity::Observed;
        assert_eq!(
            utc_line(&j, at((14, 0, 0))),
            "job 0b5c1d70 [this app] running · ≈42% ≈1m20s left (3 runs) (observed: no socket to \
             the server, so no live progress)"
        );
    }

    #[test]
    fn a_running_job_past_its_usual_time_says_so_instead_of_a_share() {
        let j = job(
            JobOrigin::Anonymous,
            JobState::Running,
            serde_json::json!({"basis": "workflow", "samples": 5, "typical_ms": 130_000,
                               "longer_than_usual": true}),
        );
        assert_eq!(
            utc_line(&j, at((14, 0, 0))),
            format!("job 0b5c1d70 [no client id] running · longer than usual (typically 2m10s){OBSERVED}")
        );
    }

    #[test]
    fn a_followed_job_keeps_its_measured_figures_and_adds_the_estimate_after_them() {
        let mut j = job(
            JobOrigin::SelfApp,
            JobState::Running,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 140_000,
                               "percent": 30.0, "eta_ms": 80_000}),
        );
        j.percent = Some(40.0);
        j.node = Some("3".into());
        j.node_type = Some("KSampler".into());
        j.node_value = Some(8.0);
        j.node_max = Some(20.0);
        j.steps_per_s = Some(3.1);
        j.eta_ms = Some(4_000);
        let measured =
            "job 0b5c1d70 [this app] running 40% · KSampler (#3) 8/20 · 3.1 it/s · ETA 4.0 s";
        assert_eq!(
            utc_line(&j, at((14, 0, 0))),
            format!("{measured} · ≈1m20s left (3 runs)"),
            "no estimated share beside the measured one"
        );
        j.estimate = None;
        assert_eq!(
            utc_line(&j, at((14, 0, 0))),
            measured,
            "unchanged without one"
        );
    }

    #[test]
    fn a_pending_job_shows_when_it_starts_and_ends_when_its_place_is_known() {
        let placed = job(
            JobOrigin::SelfApp,
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 130_000,
                               "starts_in_ms": 180_000, "eta_ms": 310_000}),
        );
        assert_eq!(
            utc_line(&placed, at((14, 29, 0))),
            "job 0b5c1d70 [this app] pending · ≈2m10s run, starts in ≈3m, done ≈14:34 (3 runs)"
        );
        let next = job(
            JobOrigin::SelfApp,
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 2, "typical_ms": 80_000,
                               "starts_in_ms": 0, "eta_ms": 80_000}),
        );
        assert_eq!(
            utc_line(&next, at((23, 59, 0))),
            "job 0b5c1d70 [this app] pending · ≈1m20s run, done ≈00:00 (2 runs)",
            "nothing ahead: no start to wait for"
        );
        let unplaced = job(
            JobOrigin::Other,
            JobState::Pending,
            serde_json::json!({"basis": "nodes", "samples": 5, "typical_ms": 130_000}),
        );
        assert_eq!(
            utc_line(&unplaced, at((14, 29, 0))),
            "job 0b5c1d70 [other client] pending · ≈2m10s run (5 runs of its nodes)"
        );
        let unknown = job(
            JobOrigin::SelfApp,
            JobState::Pending,
            serde_json::Value::Null,
        );
        assert_eq!(
            utc_line(&unknown, at((14, 29, 0))),
            "job 0b5c1d70 [this app] pending"
        );
    }

    #[test]
    fn the_printer_prints_the_estimate_of_a_queued_job_and_again_only_when_its_line_changes() {
        let mut j = job(
            JobOrigin::SelfApp,
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 80_000,
                               "starts_in_ms": 0, "eta_ms": 80_000}),
        );
        let event = |j: &JobView, ts| Event {
            ts,
            instance_id: comfy_engine::InstanceId(1),
            instance: "gpu".into(),
            kind: EventKind::Job(Box::new(j.clone())),
        };
        let mut p = Printer::new(Vec::new(), Format::Human).in_zone(Some(TimeZone::UTC));
        p.print(&event(&j, at((14, 29, 0)))).expect("printed");
        p.print(&event(&j, at((14, 29, 10)))).expect("printed");
        j.state = JobState::Running;
        j.estimate = serde_json::from_value(serde_json::json!(
            {"basis": "workflow", "samples": 3, "typical_ms": 80_000, "percent": 0.0, "eta_ms": 80_000}
        ))
        .expect("an estimate");
        p.print(&event(&j, at((14, 29, 1)))).expect("printed");
        let out = String::from_utf8(p.into_inner()).expect("utf-8");
        assert_eq!(
            out,
            "14:29:00 gpu          job 0b5c1d70 [this app] pending · ≈1m20s run, done ≈14:30 (3 runs)\n\
             14:29:01 gpu          job 0b5c1d70 [this app] running · ≈0% ≈1m20s left (3 runs)\n"
        );
    }

    #[test]
    fn a_pending_jobs_end_is_told_in_the_local_zone_or_in_utc_saying_so() {
        let placed = job(
            JobOrigin::SelfApp,
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 130_000,
                               "starts_in_ms": 180_000, "eta_ms": 310_000}),
        );
        let two_hours_east = TimeZone::posix("EET-2").expect("a POSIX zone");
        assert_eq!(
            job_line(&placed, at((14, 29, 0)), Some(&two_hours_east)),
            "job 0b5c1d70 [this app] pending · ≈2m10s run, starts in ≈3m, done ≈16:34 (3 runs)"
        );
        assert_eq!(
            job_line(&placed, at((14, 29, 0)), None),
            "job 0b5c1d70 [this app] pending · ≈2m10s run, starts in ≈3m, done ≈14:34 UTC (3 runs)"
        );
        // The line's own time is told in the same zone.
        let event = Event {
            ts: at((14, 29, 0)),
            instance_id: comfy_engine::InstanceId(1),
            instance: "gpu".into(),
            kind: EventKind::Job(Box::new(placed)),
        };
        let mut p = Printer::new(Vec::new(), Format::Human).in_zone(Some(two_hours_east));
        p.print(&event).expect("printed");
        let out = String::from_utf8(p.into_inner()).expect("utf-8");
        assert!(out.starts_with("16:29:00 gpu "), "{out}");
        assert!(out.contains("done ≈16:34 (3 runs)"), "{out}");
    }

    #[test]
    fn absurd_figures_print_without_panicking() {
        assert_eq!(approx(u64::MAX), "5124095576030h25m");
        let far = job(
            JobOrigin::Other,
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 1, "typical_ms": u64::MAX,
                               "starts_in_ms": u64::MAX, "eta_ms": u64::MAX}),
        );
        let line = job_line(&far, OffsetDateTime::UNIX_EPOCH, None);
        assert!(
            line.starts_with("job 0b5c1d70 [other client] pending · ≈"),
            "{line}"
        );
        assert!(!line.contains("done"), "no end past any calendar: {line}");
        let late = OffsetDateTime::UNIX_EPOCH
            .replace_year(9999)
            .expect("a year");
        let soon = job(
            JobOrigin::Other,
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 1, "typical_ms": 1_000,
                               "starts_in_ms": 0, "eta_ms": 400 * 24 * 3_600_000u64}),
        );
        assert!(!job_line(&soon, late, None).contains("done"));
    }
}
