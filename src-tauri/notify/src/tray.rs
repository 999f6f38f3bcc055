//! The tray's picture of every instance: the icon state, the aggregate progress and tooltip, the
//! menu lines, and when a repaint is worth it. Pure: events and instants in, values out.

use crate::local_time::wall_clock;
use crate::notification::clock;
use comfy_engine::{ConnectionState, Event, EventKind, JobOrigin, JobState, JobView};
use comfy_protocol::PromptId;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What the icon shows at a glance, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IconState {
    /// An enabled instance is down.
    Disconnected,
    /// A job failed since the user last looked.
    Error,
    Running,
    Idle,
}

/// A figure shown, and whether it was measured (the job's own progress) or estimated (learned
/// from the server's past runs). Estimated figures are marked: "≈ 42%", a dashed ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figure<T> {
    pub value: T,
    pub estimated: bool,
}

impl<T> Figure<T> {
    pub fn measured(value: T) -> Self {
        Self {
            value,
            estimated: false,
        }
    }

    pub fn estimated(value: T) -> Self {
        Self {
            value,
            estimated: true,
        }
    }

    /// "≈ " before an estimated figure, nothing before a measured one.
    fn mark(&self) -> &'static str {
        if self.estimated {
            "≈ "
        } else {
            ""
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningJob {
    pub prompt_id: PromptId,
    pub origin: JobOrigin,
    /// 0–100: measured when the job is followed live, else estimated; `None` when neither is
    /// known (no invented progress).
    pub percent: Option<Figure<f64>>,
    /// Until the job ends: estimated when there is an estimate, else measured.
    pub eta: Option<Figure<Duration>>,
    /// Running past what its earlier runs took, with no measured percent: said instead of one.
    pub longer_than_usual: bool,
}

impl RunningJob {
    /// A job known only by its id: nothing to show but that it runs.
    pub fn unknown(prompt_id: PromptId) -> Self {
        Self {
            prompt_id,
            origin: JobOrigin::Other,
            percent: None,
            eta: None,
            longer_than_usual: false,
        }
    }

    /// The figures of a job's picture: a measured percent over an estimated one, an estimated
    /// ETA over a measured one (the estimate knows the nodes still to come).
    pub fn from_view(job: &JobView) -> Self {
        let estimate = job.estimate.as_ref();
        let percent = job
            .percent
            .map(Figure::measured)
            .or_else(|| estimate.and_then(|e| e.percent).map(Figure::estimated));
        let eta = estimate
            .and_then(|e| e.eta_ms)
            .map(|ms| Figure::estimated(Duration::from_millis(ms)))
            .or_else(|| {
                job.eta_ms
                    .map(|ms| Figure::measured(Duration::from_millis(ms)))
            });
        Self {
            prompt_id: job.prompt_id.clone(),
            origin: job.origin,
            longer_than_usual: percent.is_none() && estimate.is_some_and(|e| e.longer_than_usual),
            percent,
            eta,
        }
    }

    /// "≈ 42% · ≈ 1m 20s left", "longer than usual", or nothing.
    fn progress(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(p) = &self.percent {
            parts.push(format!("{}{}%", p.mark(), whole_percent(p.value)));
        } else if self.longer_than_usual {
            parts.push("longer than usual".to_owned());
        }
        if let Some(eta) = &self.eta {
            parts.push(format!("{}{} left", eta.mark(), short_duration(eta.value)));
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    }
}

/// "45s", "1m 20s", "2h 5m".
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// One instance as the tray sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    /// `None` until the engine said anything about the link.
    pub connection: Option<ConnectionState>,
    pub running: Vec<RunningJob>,
    pub pending: usize,
    /// When the queue is expected to be empty: the last pending job's estimated end, or the
    /// running jobs' when nothing waits. `None` when idle or not known.
    pub queue_done: Option<OffsetDateTime>,
}

impl InstanceStatus {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            connection: None,
            running: Vec::new(),
            pending: 0,
            queue_done: None,
        }
    }

    /// Anything running or waiting.
    pub fn is_busy(&self) -> bool {
        !self.running.is_empty() || self.pending > 0
    }

    /// Down, as far as the icon is concerned: the engine is failing to reach it.
    pub fn is_down(&self) -> bool {
        matches!(
            self.connection,
            Some(
                ConnectionState::Reconnecting
                    | ConnectionState::Unreachable
                    | ConnectionState::AuthFailed
            )
        )
    }

    /// The job a "Cancel current job" menu item would cancel, with its origin so the shell can
    /// ask first when it is another client's.
    pub fn current_job(&self) -> Option<&RunningJob> {
        self.running.first()
    }

    /// The menu line: "Local — running 47% · 1m 20s left", "GPU box — running ≈ 42% · ≈ 1m 20s
    /// left", "Studio — disconnected".
    pub fn line(&self) -> String {
        let state = match self.connection {
            Some(ConnectionState::Disabled) => "disabled".to_owned(),
            Some(ConnectionState::AuthFailed) => "credentials rejected".to_owned(),
            Some(ConnectionState::Unreachable) => "unreachable".to_owned(),
            Some(ConnectionState::Reconnecting) => "reconnecting".to_owned(),
            Some(ConnectionState::Connecting) | None => "connecting".to_owned(),
            // On HTTP alone jobs are followed by polling (no live percent): said at the end.
            Some(ConnectionState::HttpOnly) => format!("{} (HTTP only)", self.activity()),
            Some(ConnectionState::Connected) => self.activity(),
        };
        format!("{} — {state}", self.name)
    }

    /// What the instance is doing, as the menu line says it while the server answers.
    fn activity(&self) -> String {
        match self.current_job() {
            Some(job) => {
                let mut s = match job.progress() {
                    Some(progress) => format!("running {progress}"),
                    None => "running".to_owned(),
                };
                if job.origin != JobOrigin::SelfApp {
                    s.push_str(" (another client's job)");
                }
                if self.pending > 0 {
                    s.push_str(&format!(", {} queued", self.pending));
                }
                s
            }
            None if self.pending > 0 => format!("{} queued", self.pending),
            None => "idle".to_owned(),
        }
    }
}

/// A running mean.
#[derive(Debug, Default)]
struct Mean {
    sum: f64,
    n: u32,
}

impl Mean {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
    }

    fn get(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

/// Integer percent for display: floored, so 99.9 % is not shown as done.
fn whole_percent(p: f64) -> u8 {
    // The clamp keeps the cast in range; NaN becomes 0.
    p.clamp(0.0, 100.0).floor() as u8
}

/// Everything the tray icon, tooltip and menu show, aggregated over the instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayState {
    pub icon: IconState,
    pub running: usize,
    /// The mean measured progress of the running jobs that have one; only when none has, the
    /// mean of their estimated progress (marked so). The two are never averaged together.
    pub percent: Option<Figure<u8>>,
    /// Until the last running job is expected to end; estimated if that job's is.
    pub eta: Option<Figure<Duration>>,
    /// No running job has a percent, and one runs longer than usual.
    pub longer_than_usual: bool,
    /// When every queue is expected to be empty: the latest over the instances, known only
    /// when every busy instance's is.
    pub queue_done: Option<OffsetDateTime>,
    /// `queue_done` on the wall clock: "14:32" in the local zone, "14:32 UTC" without one.
    pub queue_done_clock: Option<String>,
    pub disconnected: usize,
    pub unseen_failures: usize,
    /// The menu's informational lines: one per instance ([`InstanceStatus::line`]) in the order
    /// given, then "Queue done ≈ 14:32" while that is known (the tooltip's second line, in the
    /// menu too because some trays, such as Linux's, show no tooltip).
    pub lines: Vec<String>,
    /// Notifications are paused: the menu offers "Resume" instead of "Pause".
    pub paused: bool,
}

impl TrayState {
    /// The state with times told in UTC (see [`in_zone`](Self::in_zone)), not paused.
    pub fn from_instances<'a>(
        instances: impl IntoIterator<Item = &'a InstanceStatus>,
        unseen_failures: usize,
    ) -> Self {
        Self::in_zone(instances, unseen_failures, None)
    }

    /// The state with times told in `zone`; without one, in UTC and saying so. Not paused.
    pub fn in_zone<'a>(
        instances: impl IntoIterator<Item = &'a InstanceStatus>,
        unseen_failures: usize,
        zone: Option<&TimeZone>,
    ) -> Self {
        let (mut running, mut disconnected) = (0, 0);
        // Measured and estimated percents are averaged apart, never together.
        let (mut measured, mut estimated) = (Mean::default(), Mean::default());
        let mut eta: Option<Figure<Duration>> = None;
        let mut longer_than_usual = false;
        // `Some(None)`: busy, end not known.
        let mut queue_done: Option<Option<OffsetDateTime>> = None;
        let mut lines = Vec::new();
        for inst in instances {
            lines.push(inst.line());
            if inst.is_down() {
                disconnected += 1;
                continue;
            }
            if inst.is_busy() {
                queue_done = Some(match (queue_done, inst.queue_done) {
                    (Some(None), _) | (_, None) => None,
                    (Some(Some(a)), Some(b)) => Some(a.max(b)),
                    (None, Some(b)) => Some(b),
                });
            }
            for job in &inst.running {
                running += 1;
                if let Some(p) = job.percent {
                    if p.estimated {
                        estimated.add(p.value);
                    } else {
                        measured.add(p.value);
                    }
                }
                longer_than_usual |= job.longer_than_usual;
                if let Some(e) = job.eta {
                    // The later end; of two equal ones, the estimated (the humbler claim).
                    eta = Some(match eta {
                        Some(m) if (m.value, m.estimated) >= (e.value, e.estimated) => m,
                        _ => e,
                    });
                }
            }
        }
        let percent = match (measured.get(), estimated.get()) {
            (Some(m), _) => Some(Figure::measured(whole_percent(m))),
            (None, e) => e.map(|e| Figure::estimated(whole_percent(e))),
        };
        let queue_done = queue_done.flatten();
        let queue_done_clock = queue_done.map(|at| wall_clock(at, zone));
        if let Some(clock) = &queue_done_clock {
            lines.push(format!("Queue done ≈ {clock}"));
        }
        let icon = if disconnected > 0 {
            IconState::Disconnected
        } else if unseen_failures > 0 {
            IconState::Error
        } else if running > 0 {
            IconState::Running
        } else {
            IconState::Idle
        };
        Self {
            icon,
            running,
            longer_than_usual: longer_than_usual && percent.is_none(),
            percent,
            eta,
            queue_done,
            queue_done_clock,
            disconnected,
            unseen_failures,
            lines,
            paused: false,
        }
    }

    /// "2 running · 47% · ETA 1:20 · 1 disconnected", or "Idle"; estimated figures marked
    /// ("≈ 47% · ETA ≈ 1:20"), and a second line "queue done ≈ 14:32" when that is known.
    pub fn tooltip(&self) -> String {
        let mut parts = Vec::new();
        if self.running > 0 {
            parts.push(format!("{} running", self.running));
            if let Some(p) = self.percent {
                parts.push(format!("{}{}%", p.mark(), p.value));
            } else if self.longer_than_usual {
                parts.push("longer than usual".to_owned());
            }
            if let Some(eta) = self.eta {
                parts.push(format!("ETA {}{}", eta.mark(), clock(eta.value)));
            }
        }
        if self.disconnected > 0 {
            parts.push(format!("{} disconnected", self.disconnected));
        }
        if self.unseen_failures > 0 {
            parts.push(format!("{} failed", self.unseen_failures));
        }
        let mut text = if parts.is_empty() {
            "Idle".to_owned()
        } else {
            parts.join(" · ")
        };
        if let Some(clock) = &self.queue_done_clock {
            text.push_str("\nqueue done ≈ ");
            text.push_str(clock);
        }
        text
    }
}

/// Follows engine events into one [`InstanceStatus`] per instance. A failed job of any origin
/// turns the icon to error until [`mark_seen`](Self::mark_seen).
#[derive(Debug, Default)]
pub struct TrayModel {
    instances: BTreeMap<String, InstanceStatus>,
    ends: BTreeMap<String, QueueEnds>,
    unseen_failures: usize,
    /// The zone "queue done" is told in; without one, UTC.
    zone: Option<TimeZone>,
    /// Notifications are paused (the policy decides; the menu shows it).
    paused: bool,
}

/// When each job of one instance's queue is expected to end, as absolute times (the event's
/// time plus its estimate), so nothing needs working out again as the clock moves.
#[derive(Debug, Default)]
struct QueueEnds {
    /// Every job the last queue listing named, running or pending.
    listed: Vec<PromptId>,
    /// The last pending job, in run order.
    last_pending: Option<PromptId>,
    ends: HashMap<PromptId, OffsetDateTime>,
}

impl QueueEnds {
    /// The last pending job's end, else the latest running job's; `None` when any of those is
    /// not known, or nothing is queued.
    fn done(&self, running: &[RunningJob]) -> Option<OffsetDateTime> {
        if let Some(last) = &self.last_pending {
            return self.ends.get(last).copied();
        }
        running
            .iter()
            .map(|j| self.ends.get(&j.prompt_id).copied())
            .try_fold(None, |latest: Option<OffsetDateTime>, end| {
                end.map(|e| Some(latest.map_or(e, |l| l.max(e))))
            })
            .flatten()
    }
}

impl TrayModel {
    /// A model that tells times in `zone` ([`TimeZone::try_system`] for the user's own).
    pub fn new(zone: Option<TimeZone>) -> Self {
        Self {
            zone,
            ..Self::default()
        }
    }

    pub fn apply(&mut self, event: &Event) {
        let name = event.instance.as_str();
        let inst = self
            .instances
            .entry(name.to_owned())
            .or_insert_with(|| InstanceStatus::new(name));
        let ends = self.ends.entry(name.to_owned()).or_default();
        match &event.kind {
            EventKind::Connection(status) => {
                inst.connection = Some(status.state);
                if !status.state.is_up() {
                    // Whatever ran is unknown now; the snapshot after reconnecting tells.
                    inst.running.clear();
                    inst.pending = 0;
                    *ends = QueueEnds::default();
                }
            }
            EventKind::Queue { running, pending } => {
                inst.pending = pending.len();
                inst.running.retain(|j| running.contains(&j.prompt_id));
                for id in running {
                    if !inst.running.iter().any(|j| j.prompt_id == *id) {
                        inst.running.push(RunningJob::unknown(id.clone()));
                    }
                }
                // Jobs that left the queue take their ends along; a job not listed yet (just
                // submitted) keeps its own.
                let listed: Vec<PromptId> = running.iter().chain(pending).cloned().collect();
                let gone: Vec<&PromptId> = ends
                    .listed
                    .iter()
                    .filter(|id| !listed.contains(id))
                    .collect();
                for id in gone {
                    ends.ends.remove(id);
                }
                ends.listed = listed;
                ends.last_pending = pending.last().cloned();
            }
            EventKind::Job(job) => {
                let slot = inst
                    .running
                    .iter()
                    .position(|j| j.prompt_id == job.prompt_id);
                match (job.state, slot) {
                    (JobState::Running, _) => {
                        let running = RunningJob::from_view(job);
                        match slot {
                            Some(i) => inst.running[i] = running,
                            None => inst.running.push(running),
                        }
                    }
                    (_, Some(i)) => {
                        inst.running.remove(i);
                    }
                    (_, None) => {}
                }
                let end = match job.state {
                    JobState::Running | JobState::Pending => job
                        .estimate
                        .as_ref()
                        .and_then(|e| e.eta_ms)
                        .or(job.eta_ms.filter(|_| job.state == JobState::Running))
                        .and_then(|ms| i64::try_from(ms).ok())
                        .and_then(|ms| event.ts.checked_add(time::Duration::milliseconds(ms))),
                    _ => None,
                };
                match end {
                    Some(end) => ends.ends.insert(job.prompt_id.clone(), end),
                    None => ends.ends.remove(&job.prompt_id),
                };
                if job.state == JobState::Error {
                    self.unseen_failures += 1;
                }
            }
            _ => {}
        }
        inst.queue_done = ends.done(&inst.running);
    }

    pub fn state(&self) -> TrayState {
        let mut state = TrayState::in_zone(
            self.instances.values(),
            self.unseen_failures,
            self.zone.as_ref(),
        );
        state.paused = self.paused;
        state
    }

    /// Whether notifications are paused, for the menu; the host tells it whenever that may have
    /// changed (a pause for an hour ends on its own).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The instances in name order, for the menu.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceStatus> {
        self.instances.values()
    }

    /// The user looked (opened the window): failures are no longer news.
    pub fn mark_seen(&mut self) {
        self.unseen_failures = 0;
    }

    pub fn forget_instance(&mut self, name: &str) {
        self.instances.remove(name);
        self.ends.remove(name);
    }
}

/// Which parts of the tray to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repaint {
    pub icon: bool,
    pub tooltip: bool,
    /// The menu: its lines, or whether it offers "Pause" or "Resume".
    pub menu: bool,
}

impl Repaint {
    pub fn any(self) -> bool {
        self.icon || self.tooltip || self.menu
    }
}

/// Repaints only on a visible change (icon state, integer percent or whether it is estimated;
/// tooltip text; menu lines or pause), and at most once per interval. A change that comes too
/// soon is not lost: [`retry_at`](Self::retry_at) says when to check again.
#[derive(Debug)]
pub struct RepaintGate {
    min_interval: Duration,
    icon: Option<(IconState, Option<Figure<u8>>)>,
    tooltip: Option<String>,
    /// The menu's lines, and whether it said notifications are paused.
    menu: Option<(Vec<String>, bool)>,
    last: Option<Instant>,
    withheld: bool,
}

impl Default for RepaintGate {
    /// One repaint a second at most: the tray is read at a glance, and each repaint is a new icon
    /// and menu sent over D-Bus to the panel, which costs the panel as much as the app.
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl RepaintGate {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            icon: None,
            tooltip: None,
            menu: None,
            last: None,
            withheld: false,
        }
    }

    pub fn check(&mut self, state: &TrayState, now: Instant) -> Repaint {
        let icon = (state.icon, state.percent);
        let tooltip = state.tooltip();
        let wanted = Repaint {
            icon: self.icon != Some(icon),
            tooltip: self.tooltip.as_deref() != Some(tooltip.as_str()),
            menu: self
                .menu
                .as_ref()
                .is_none_or(|(lines, paused)| *lines != state.lines || *paused != state.paused),
        };
        if !wanted.any() {
            self.withheld = false;
            return Repaint::default();
        }
        if self.last.is_some_and(|t| now < t + self.min_interval) {
            self.withheld = true;
            return Repaint::default();
        }
        self.icon = Some(icon);
        self.tooltip = Some(tooltip);
        self.menu = Some((state.lines.clone(), state.paused));
        self.last = Some(now);
        self.withheld = false;
        wanted
    }

    /// When a withheld change may be painted.
    pub fn retry_at(&self) -> Option<Instant> {
        self.last
            .filter(|_| self.withheld)
            .map(|t| t + self.min_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::{ConnectionStatus, JobView};
    use time::OffsetDateTime;

    fn job(id: &str, percent: Option<f64>, eta_s: Option<u64>) -> RunningJob {
        RunningJob {
            prompt_id: id.into(),
            origin: JobOrigin::SelfApp,
            percent: percent.map(Figure::measured),
            eta: eta_s.map(|s| Figure::measured(Duration::from_secs(s))),
            longer_than_usual: false,
        }
    }

    fn inst(name: &str, state: ConnectionState, running: Vec<RunningJob>) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            connection: Some(state),
            running,
            pending: 0,
            queue_done: None,
        }
    }

    #[test]
    fn the_tooltip_sums_up_running_jobs_progress_eta_and_outages() {
        let all = [
            inst(
                "Local",
                ConnectionState::Connected,
                vec![job("a", Some(40.0), Some(80))],
            ),
            inst(
                "Studio",
                ConnectionState::Connected,
                vec![job("b", Some(54.9), Some(30))],
            ),
            inst("Cloud", ConnectionState::Unreachable, vec![]),
        ];
        let s = TrayState::from_instances(&all, 0);
        assert_eq!(s.tooltip(), "2 running · 47% · ETA 1:20 · 1 disconnected");
        assert_eq!(s.icon, IconState::Disconnected);
    }

    #[test]
    fn the_icon_state_goes_disconnected_then_error_then_running_then_idle() {
        let up = inst(
            "Local",
            ConnectionState::Connected,
            vec![job("a", None, None)],
        );
        let down = inst("Cloud", ConnectionState::AuthFailed, vec![]);
        let idle = inst("Local", ConnectionState::Connected, vec![]);
        let off = inst("Old", ConnectionState::Disabled, vec![]);
        let icon = |i: &[&InstanceStatus], f| TrayState::from_instances(i.iter().copied(), f).icon;
        assert_eq!(icon(&[&up, &down], 1), IconState::Disconnected);
        assert_eq!(icon(&[&up], 1), IconState::Error);
        assert_eq!(icon(&[&up, &off], 0), IconState::Running);
        assert_eq!(icon(&[&idle, &off], 0), IconState::Idle);
        let observed = TrayState::from_instances([&up], 0);
        assert_eq!(
            (observed.percent, observed.tooltip()),
            (None, "1 running".into())
        );
        assert_eq!(TrayState::from_instances([&idle], 0).tooltip(), "Idle");
    }

    #[test]
    fn an_instance_on_http_only_is_up_and_its_line_says_so() {
        let mut i = inst("Proxy", ConnectionState::HttpOnly, vec![]);
        assert!(!i.is_down());
        assert_eq!(i.line(), "Proxy — idle (HTTP only)");
        i.pending = 2;
        assert_eq!(i.line(), "Proxy — 2 queued (HTTP only)");
        let icon = TrayState::from_instances([&i], 0).icon;
        assert_eq!(icon, IconState::Idle, "not disconnected");
    }

    #[test]
    fn menu_lines_say_state_percent_and_whose_job() {
        let mut i = inst(
            "Local",
            ConnectionState::Connected,
            vec![job("a", Some(47.6), None)],
        );
        i.pending = 2;
        assert_eq!(i.line(), "Local — running 47%, 2 queued");
        i.running[0].eta = Some(Figure::measured(Duration::from_secs(80)));
        assert_eq!(i.line(), "Local — running 47% · 1m 20s left, 2 queued");
        i.running[0].origin = JobOrigin::Other;
        i.running[0].percent = None;
        i.running[0].eta = None;
        i.pending = 0;
        assert_eq!(i.line(), "Local — running (another client's job)");
        assert_eq!(
            inst("Cloud", ConnectionState::Unreachable, vec![]).line(),
            "Cloud — unreachable"
        );
    }

    fn ev(kind: EventKind) -> Event {
        Event {
            ts: OffsetDateTime::UNIX_EPOCH,
            instance_id: comfy_engine::InstanceId(1),
            instance: "Local".into(),
            kind,
        }
    }

    fn job_event(id: &str, state: JobState, percent: Option<f64>) -> Event {
        let mut v = JobView::new(id.into(), JobOrigin::SelfApp, state);
        v.percent = percent;
        v.eta_ms = percent.map(|_| 5_000);
        ev(EventKind::Job(Box::new(v)))
    }

    #[test]
    fn the_model_follows_jobs_queue_and_link_and_forgets_failures_once_seen() {
        let mut m = TrayModel::default();
        m.apply(&ev(EventKind::Connection(ConnectionStatus {
            state: ConnectionState::Connected,
            detail: String::new(),
            retry_in_ms: None,
        })));
        m.apply(&ev(EventKind::Queue {
            running: vec!["a".into()],
            pending: vec!["b".into()],
        }));
        m.apply(&job_event("a", JobState::Running, Some(25.0)));
        let s = m.state();
        assert_eq!(
            (s.icon, s.running, s.percent),
            (IconState::Running, 1, Some(Figure::measured(25)))
        );
        assert_eq!(s.eta, Some(Figure::measured(Duration::from_secs(5))));
        m.apply(&job_event("a", JobState::Error, None));
        m.apply(&ev(EventKind::Queue {
            running: vec![],
            pending: vec![],
        }));
        assert_eq!(m.state().icon, IconState::Error);
        assert_eq!(m.state().tooltip(), "1 failed");
        m.mark_seen();
        assert_eq!(m.state().icon, IconState::Idle);
        m.apply(&ev(EventKind::Connection(ConnectionStatus {
            state: ConnectionState::Reconnecting,
            detail: String::new(),
            retry_in_ms: None,
        })));
        assert_eq!(m.state().icon, IconState::Disconnected);
        assert_eq!(
            m.instances().map(InstanceStatus::line).collect::<Vec<_>>(),
            ["Local — reconnecting"]
        );
    }

    fn estimate(percent: Option<f64>, eta_ms: Option<u64>) -> comfy_model::Estimate {
        comfy_model::Estimate {
            basis: comfy_model::EstimateBasis::Workflow,
            samples: 3,
            typical_ms: 100_000,
            percent,
            eta_ms,
            starts_in_ms: None,
            longer_than_usual: false,
        }
    }

    fn view(
        id: &str,
        state: JobState,
        measured: (Option<f64>, Option<u64>),
        estimate: Option<comfy_model::Estimate>,
    ) -> JobView {
        let mut v = JobView::new(id.into(), JobOrigin::SelfApp, state);
        (v.percent, v.eta_ms) = measured;
        v.estimate = estimate;
        v
    }

    #[test]
    fn a_measured_percent_wins_over_an_estimated_one_and_an_estimated_eta_over_a_measured_one() {
        let live = RunningJob::from_view(&view(
            "a",
            JobState::Running,
            (Some(47.6), Some(30_000)),
            Some(estimate(Some(42.0), Some(80_000))),
        ));
        assert_eq!(live.percent, Some(Figure::measured(47.6)));
        assert_eq!(
            live.eta,
            Some(Figure::estimated(Duration::from_secs(80))),
            "the estimate knows the nodes still to come"
        );
        let watched = RunningJob::from_view(&view(
            "b",
            JobState::Running,
            (None, None),
            Some(estimate(Some(42.0), Some(80_000))),
        ));
        assert_eq!(watched.percent, Some(Figure::estimated(42.0)));
        assert_eq!(
            watched.eta,
            Some(Figure::estimated(Duration::from_secs(80)))
        );
        let unlearned = RunningJob::from_view(&view(
            "c",
            JobState::Running,
            (Some(10.0), Some(30_000)),
            None,
        ));
        assert_eq!(
            (unlearned.percent, unlearned.eta),
            (
                Some(Figure::measured(10.0)),
                Some(Figure::measured(Duration::from_secs(30)))
            )
        );
        let unknown = RunningJob::from_view(&view("d", JobState::Running, (None, None), None));
        assert_eq!((unknown.percent, unknown.eta), (None, None));
        assert!(!unknown.longer_than_usual);
    }

    #[test]
    fn estimated_figures_carry_an_approximately_sign_in_the_menu_and_the_tooltip() {
        let mut gpu = inst("GPU box", ConnectionState::Connected, vec![]);
        let mut other = RunningJob::from_view(&view(
            "a",
            JobState::Running,
            (None, None),
            Some(estimate(Some(42.4), Some(80_000))),
        ));
        other.origin = JobOrigin::Other;
        gpu.running.push(other);
        gpu.pending = 1;
        assert_eq!(
            gpu.line(),
            "GPU box — running ≈ 42% · ≈ 1m 20s left (another client's job), 1 queued"
        );
        let s = TrayState::from_instances([&gpu], 0);
        assert_eq!(s.percent, Some(Figure::estimated(42)));
        assert_eq!(s.tooltip(), "1 running · ≈ 42% · ETA ≈ 1:20");

        // A measured percent beside an estimated one: the measured one alone, never a mean of
        // both; the ETA is the later end's, marked as that one is.
        let local = inst(
            "Local",
            ConnectionState::Connected,
            vec![job("b", Some(50.0), Some(200))],
        );
        assert_eq!(local.line(), "Local — running 50% · 3m 20s left");
        let s = TrayState::from_instances([&gpu, &local], 0);
        assert_eq!(s.percent, Some(Figure::measured(50)));
        assert_eq!(s.tooltip(), "2 running · 50% · ETA 3:20");
        assert_eq!(
            s.lines,
            [gpu.line(), local.line()],
            "the menu lines, in the order given"
        );
    }

    #[test]
    fn the_tray_percent_averages_measured_percents_alone_else_estimated_ones_alone() {
        let figure = |p: Figure<f64>| RunningJob {
            percent: Some(p),
            ..job("x", None, None)
        };
        let running = |percents: Vec<Figure<f64>>| {
            let i = inst(
                "Local",
                ConnectionState::Connected,
                percents.into_iter().map(figure).collect(),
            );
            TrayState::from_instances([&i], 0).percent
        };
        assert_eq!(
            running(vec![Figure::estimated(20.0), Figure::estimated(40.0)]),
            Some(Figure::estimated(30))
        );
        assert_eq!(
            running(vec![
                Figure::measured(80.0),
                Figure::estimated(10.0),
                Figure::measured(60.0),
            ]),
            Some(Figure::measured(70)),
            "the estimate is left out, not averaged in"
        );
    }

    #[test]
    fn a_job_past_its_usual_run_says_so_instead_of_a_percent() {
        let mut late = estimate(None, None);
        late.longer_than_usual = true;
        let j = RunningJob::from_view(&view(
            "a",
            JobState::Running,
            (None, None),
            Some(late.clone()),
        ));
        assert!(j.longer_than_usual);
        let i = inst("Local", ConnectionState::Connected, vec![j]);
        assert_eq!(i.line(), "Local — running longer than usual");
        let s = TrayState::from_instances([&i], 0);
        assert_eq!((s.percent, s.longer_than_usual), (None, true));
        assert_eq!(s.tooltip(), "1 running · longer than usual");
        // A measured percent is the truth: it is shown, not the hunch.
        let followed = RunningJob::from_view(&view(
            "b",
            JobState::Running,
            (Some(99.0), None),
            Some(late),
        ));
        assert!(!followed.longer_than_usual);
        let i = inst("Local", ConnectionState::Connected, vec![followed]);
        assert_eq!(i.line(), "Local — running 99%");
    }

    fn at(instance: &str, ts: OffsetDateTime, kind: EventKind) -> Event {
        Event {
            ts,
            instance_id: comfy_engine::InstanceId(1),
            instance: instance.into(),
            kind,
        }
    }

    fn connected(m: &mut TrayModel, instance: &str) {
        m.apply(&at(
            instance,
            OffsetDateTime::UNIX_EPOCH,
            EventKind::Connection(ConnectionStatus {
                state: ConnectionState::Connected,
                detail: String::new(),
                retry_in_ms: None,
            }),
        ));
    }

    fn queue(instance: &str, ts: OffsetDateTime, running: &[&str], pending: &[&str]) -> Event {
        let ids = |ids: &[&str]| ids.iter().map(|&id| PromptId::from(id)).collect();
        at(
            instance,
            ts,
            EventKind::Queue {
                running: ids(running),
                pending: ids(pending),
            },
        )
    }

    fn with_estimate(
        instance: &str,
        ts: OffsetDateTime,
        id: &str,
        state: JobState,
        eta_ms: Option<u64>,
    ) -> Event {
        let e = estimate(None, eta_ms);
        at(
            instance,
            ts,
            EventKind::Job(Box::new(view(id, state, (None, None), Some(e)))),
        )
    }

    #[test]
    fn the_queue_is_done_at_the_latest_end_over_the_instances_and_only_when_all_are_known() {
        use time::macros::datetime;
        let t0 = datetime!(2025-07-01 12:00 UTC);
        let later = t0 + Duration::from_secs(30);
        let mut m = TrayModel::default();
        connected(&mut m, "Local");
        connected(&mut m, "Studio");
        // Local: "a" running, "b" and "c" waiting; "c" ends last, at 12:20.
        m.apply(&queue("Local", t0, &["a"], &["b", "c"]));
        m.apply(&with_estimate(
            "Local",
            t0,
            "a",
            JobState::Running,
            Some(60_000),
        ));
        m.apply(&with_estimate(
            "Local",
            t0,
            "b",
            JobState::Pending,
            Some(600_000),
        ));
        assert_eq!(
            m.state().queue_done,
            None,
            "the last pending job's end is not known"
        );
        m.apply(&with_estimate(
            "Local",
            t0,
            "c",
            JobState::Pending,
            Some(1_200_000),
        ));
        assert_eq!(m.state().queue_done, Some(datetime!(2025-07-01 12:20 UTC)));
        // Studio runs one job, with nothing waiting, and it ends later: 12:32, told 30 s on.
        m.apply(&queue("Studio", later, &["x"], &[]));
        assert_eq!(
            m.state().queue_done,
            None,
            "Studio is busy and its end not known"
        );
        m.apply(&with_estimate(
            "Studio",
            later,
            "x",
            JobState::Running,
            Some(1_890_000),
        ));
        let s = m.state();
        assert_eq!(s.queue_done, Some(datetime!(2025-07-01 12:32 UTC)));
        assert_eq!(
            s.tooltip(),
            "2 running · ETA ≈ 31:30\nqueue done ≈ 12:32 UTC",
            "no zone: UTC, saying so"
        );
        assert_eq!(
            s.lines,
            [
                "Local — running ≈ 1m 0s left, 2 queued",
                "Studio — running ≈ 31m 30s left",
                "Queue done ≈ 12:32 UTC"
            ],
            "the menu says it too, after the instances (Linux trays show no tooltip)"
        );
        // Kept as a time, not a countdown: later events that do not touch it leave it be.
        m.apply(&at(
            "Local",
            later + Duration::from_secs(60),
            EventKind::Text {
                prompt_id: None,
                node: "3".into(),
                text: "step".into(),
            },
        ));
        assert_eq!(m.state().queue_done, Some(datetime!(2025-07-01 12:32 UTC)));
        // Studio's job ends: Local's queue is the last to drain.
        m.apply(&at(
            "Studio",
            later,
            EventKind::Job(Box::new(view("x", JobState::Success, (None, None), None))),
        ));
        m.apply(&queue("Studio", later, &[], &[]));
        assert_eq!(m.state().queue_done, Some(datetime!(2025-07-01 12:20 UTC)));
        // Local's queue empties: nothing is expected, and the tooltip says nothing of it.
        m.apply(&queue("Local", later, &[], &[]));
        let s = m.state();
        assert_eq!(s.queue_done, None);
        assert_eq!(s.tooltip(), "Idle");
        assert_eq!(s.lines, ["Local — idle", "Studio — idle"]);
    }

    #[test]
    fn the_queue_done_line_is_told_in_the_local_zone() {
        use time::macros::datetime;
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let mut m = TrayModel::new(Some(berlin));
        connected(&mut m, "Local");
        // Winter time, then summer time: the offset at the expected end, not a fixed one.
        for (t0, told) in [
            (datetime!(2025-01-15 12:00 UTC), "13:32"),
            (datetime!(2025-07-01 12:00 UTC), "14:32"),
        ] {
            m.apply(&queue("Local", t0, &["a"], &[]));
            m.apply(&with_estimate(
                "Local",
                t0,
                "a",
                JobState::Running,
                Some(32 * 60_000),
            ));
            let s = m.state();
            assert_eq!(s.queue_done_clock.as_deref(), Some(told));
            assert!(
                s.tooltip().ends_with(&format!("\nqueue done ≈ {told}")),
                "{}",
                s.tooltip()
            );
            assert_eq!(
                s.lines.last().map(String::as_str),
                Some(format!("Queue done ≈ {told}").as_str())
            );
        }
        // A link lost: what ran is unknown, and so is when it ends.
        m.apply(&at(
            "Local",
            datetime!(2025-07-01 12:01 UTC),
            EventKind::Connection(ConnectionStatus {
                state: ConnectionState::Reconnecting,
                detail: String::new(),
                retry_in_ms: None,
            }),
        ));
        let s = m.state();
        assert_eq!((s.queue_done, s.queue_done_clock), (None, None));
        assert_eq!(s.lines, ["Local — reconnecting"]);
    }

    #[test]
    fn a_job_listed_after_its_estimate_keeps_its_end() {
        use time::macros::datetime;
        let t0 = datetime!(2025-07-01 12:00 UTC);
        let mut m = TrayModel::default();
        connected(&mut m, "Local");
        m.apply(&queue("Local", t0, &["a"], &[]));
        m.apply(&with_estimate(
            "Local",
            t0,
            "a",
            JobState::Running,
            Some(60_000),
        ));
        // Just submitted: its picture comes before the queue lists it.
        m.apply(&with_estimate(
            "Local",
            t0,
            "b",
            JobState::Pending,
            Some(300_000),
        ));
        m.apply(&queue("Local", t0, &["a"], &["b"]));
        assert_eq!(m.state().queue_done, Some(datetime!(2025-07-01 12:05 UTC)));
    }

    #[test]
    fn a_changed_menu_line_repaints_the_menu_even_when_the_tooltip_stays() {
        let t0 = Instant::now();
        let mut g = RepaintGate::default();
        let mk = |eta_a, eta_b| {
            TrayState::from_instances(
                [
                    &inst(
                        "A",
                        ConnectionState::Connected,
                        vec![job("a", None, Some(eta_a))],
                    ),
                    &inst(
                        "B",
                        ConnectionState::Connected,
                        vec![job("b", None, Some(eta_b))],
                    ),
                ],
                0,
            )
        };
        assert!(g.check(&mk(100, 50), t0).menu);
        // B's ETA moves; the tooltip shows A's (the later).
        let r = g.check(&mk(100, 40), t0 + Duration::from_secs(1));
        assert_eq!(
            r,
            Repaint {
                icon: false,
                tooltip: false,
                menu: true
            }
        );
    }

    #[test]
    fn only_the_text_of_the_queue_done_line_changes_as_the_expected_end_moves() {
        use time::macros::datetime;
        let t0 = datetime!(2025-07-01 12:00 UTC);
        let mut m = TrayModel::new(Some(TimeZone::fixed(jiff::tz::offset(2))));
        connected(&mut m, "Local");
        m.apply(&queue("Local", t0, &["a"], &[]));
        assert_eq!(
            m.state().lines,
            ["Local — running (another client's job)"],
            "not known yet: no line"
        );
        m.apply(&with_estimate(
            "Local",
            t0,
            "a",
            JobState::Running,
            Some(32 * 60_000),
        ));
        let before = m.state().lines;
        m.apply(&with_estimate(
            "Local",
            t0,
            "a",
            JobState::Running,
            Some(45 * 60_000),
        ));
        let after = m.state().lines;
        assert_eq!(before.len(), after.len());
        assert_eq!(
            (
                before.last().unwrap().as_str(),
                after.last().unwrap().as_str()
            ),
            ("Queue done ≈ 14:32", "Queue done ≈ 14:45")
        );
    }

    #[test]
    fn pausing_repaints_the_menu_at_once_even_when_nothing_else_changes() {
        let t0 = Instant::now();
        let mut g = RepaintGate::default();
        let mut m = TrayModel::default();
        m.apply(&ev(EventKind::Connection(ConnectionStatus {
            state: ConnectionState::Connected,
            detail: String::new(),
            retry_in_ms: None,
        })));
        assert!(g.check(&m.state(), t0).menu);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(g.check(&m.state(), later), Repaint::default(), "idle");
        m.set_paused(true);
        let s = m.state();
        assert!(s.paused);
        assert_eq!(
            g.check(&s, later),
            Repaint {
                icon: false,
                tooltip: false,
                menu: true
            }
        );
        // Resumed too soon after: withheld, then painted when the gate says.
        m.set_paused(false);
        assert_eq!(g.check(&m.state(), later), Repaint::default());
        let retry = g.retry_at().unwrap();
        assert!(g.check(&m.state(), retry).menu);
    }

    fn running_at(percent: f64) -> TrayState {
        TrayState::from_instances(
            [&inst(
                "Local",
                ConnectionState::Connected,
                vec![job("a", Some(percent), None)],
            )],
            0,
        )
    }

    #[test]
    fn repaints_only_when_the_integer_percent_or_state_changes() {
        let t0 = Instant::now();
        let mut g = RepaintGate::default();
        assert!(g.check(&running_at(10.2), t0).icon);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(g.check(&running_at(10.9), later), Repaint::default());
        assert!(g.check(&running_at(11.0), later).icon);
    }

    #[test]
    fn repaints_at_most_once_a_second_and_catches_up_on_retry() {
        let t0 = Instant::now();
        let mut g = RepaintGate::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut painted = 0;
        // Progress moves a whole percent every 50 ms for three seconds.
        for i in 0..60u32 {
            if g.check(&running_at(f64::from(i)), at(u64::from(i) * 50))
                .any()
            {
                painted += 1;
            }
        }
        assert_eq!(painted, 3);
        // The last value (59 %) was withheld; the gate says when to paint it.
        let retry = g.retry_at().unwrap();
        assert_eq!(retry, at(3000));
        assert!(g.check(&running_at(59.0), retry).icon);
        assert_eq!(g.retry_at(), None);
    }
}
