//! The tray's picture of every instance: the icon state, the aggregate progress and tooltip, the
//! menu lines, and when a repaint is worth it. Pure: events and instants in, values out.

use crate::notification::clock;
use comfy_engine::{ConnectionState, Event, EventKind, JobOrigin, JobState};
use comfy_protocol::PromptId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningJob {
    pub prompt_id: PromptId,
    pub origin: JobOrigin,
    /// 0–100; `None` for other clients' jobs, which get no invented progress.
    pub percent: Option<f64>,
    pub eta: Option<Duration>,
}

/// One instance as the tray sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    /// `None` until the engine said anything about the link.
    pub connection: Option<ConnectionState>,
    pub running: Vec<RunningJob>,
    pub pending: usize,
}

impl InstanceStatus {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            connection: None,
            running: Vec::new(),
            pending: 0,
        }
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

    /// The menu line: "Local — running 47%", "Studio — disconnected".
    pub fn line(&self) -> String {
        let state = match self.connection {
            Some(ConnectionState::Disabled) => "disabled".to_owned(),
            Some(ConnectionState::AuthFailed) => "credentials rejected".to_owned(),
            Some(ConnectionState::Unreachable) => "unreachable".to_owned(),
            Some(ConnectionState::Reconnecting) => "reconnecting".to_owned(),
            Some(ConnectionState::Connecting) | None => "connecting".to_owned(),
            Some(ConnectionState::Connected) => match self.current_job() {
                Some(job) => {
                    let mut s = match job.percent {
                        Some(p) => format!("running {}%", whole_percent(p)),
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
            },
        };
        format!("{} — {state}", self.name)
    }
}

/// Integer percent for display: floored, so 99.9 % is not shown as done.
fn whole_percent(p: f64) -> u8 {
    // The clamp keeps the cast in range; NaN becomes 0.
    p.clamp(0.0, 100.0).floor() as u8
}

/// Everything the tray icon and tooltip show, aggregated over the instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayState {
    pub icon: IconState,
    pub running: usize,
    /// The mean progress of the running jobs that have one.
    pub percent: Option<u8>,
    /// Until the last running job is expected to end.
    pub eta: Option<Duration>,
    pub disconnected: usize,
    pub unseen_failures: usize,
}

impl TrayState {
    pub fn from_instances<'a>(
        instances: impl IntoIterator<Item = &'a InstanceStatus>,
        unseen_failures: usize,
    ) -> Self {
        let (mut running, mut disconnected) = (0, 0);
        let (mut sum, mut with_percent) = (0.0, 0u32);
        let mut eta: Option<Duration> = None;
        for inst in instances {
            if inst.is_down() {
                disconnected += 1;
                continue;
            }
            for job in &inst.running {
                running += 1;
                if let Some(p) = job.percent {
                    sum += p;
                    with_percent += 1;
                }
                if let Some(e) = job.eta {
                    eta = Some(eta.map_or(e, |m| m.max(e)));
                }
            }
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
            percent: (with_percent > 0).then(|| whole_percent(sum / f64::from(with_percent))),
            eta,
            disconnected,
            unseen_failures,
        }
    }

    /// "2 running · 47% · ETA 1:20 · 1 disconnected", or "Idle".
    pub fn tooltip(&self) -> String {
        let mut parts = Vec::new();
        if self.running > 0 {
            parts.push(format!("{} running", self.running));
            if let Some(p) = self.percent {
                parts.push(format!("{p}%"));
            }
            if let Some(eta) = self.eta {
                parts.push(format!("ETA {}", clock(eta)));
            }
        }
        if self.disconnected > 0 {
            parts.push(format!("{} disconnected", self.disconnected));
        }
        if self.unseen_failures > 0 {
            parts.push(format!("{} failed", self.unseen_failures));
        }
        if parts.is_empty() {
            "Idle".to_owned()
        } else {
            parts.join(" · ")
        }
    }
}

/// Follows engine events into one [`InstanceStatus`] per instance. A failed job of any origin
/// turns the icon to error until [`mark_seen`](Self::mark_seen).
#[derive(Debug, Default)]
pub struct TrayModel {
    instances: BTreeMap<String, InstanceStatus>,
    unseen_failures: usize,
}

impl TrayModel {
    pub fn apply(&mut self, event: &Event) {
        let name = event.instance.as_str();
        let inst = self
            .instances
            .entry(name.to_owned())
            .or_insert_with(|| InstanceStatus::new(name));
        match &event.kind {
            EventKind::Connection(status) => {
                inst.connection = Some(status.state);
                if status.state != ConnectionState::Connected {
                    // Whatever ran is unknown now; the snapshot after reconnecting tells.
                    inst.running.clear();
                    inst.pending = 0;
                }
            }
            EventKind::Queue { running, pending } => {
                inst.pending = pending.len();
                inst.running.retain(|j| running.contains(&j.prompt_id));
                for id in running {
                    if !inst.running.iter().any(|j| j.prompt_id == *id) {
                        inst.running.push(RunningJob {
                            prompt_id: id.clone(),
                            origin: JobOrigin::Other,
                            percent: None,
                            eta: None,
                        });
                    }
                }
            }
            EventKind::Job(job) => {
                let slot = inst
                    .running
                    .iter()
                    .position(|j| j.prompt_id == job.prompt_id);
                match (job.state, slot) {
                    (JobState::Running, _) => {
                        let running = RunningJob {
                            prompt_id: job.prompt_id.clone(),
                            origin: job.origin,
                            percent: job.percent,
                            eta: job.eta_ms.map(Duration::from_millis),
                        };
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
                if job.state == JobState::Error {
                    self.unseen_failures += 1;
                }
            }
            _ => {}
        }
    }

    pub fn state(&self) -> TrayState {
        TrayState::from_instances(self.instances.values(), self.unseen_failures)
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
    }
}

/// Which parts of the tray to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repaint {
    pub icon: bool,
    pub tooltip: bool,
}

impl Repaint {
    pub fn any(self) -> bool {
        self.icon || self.tooltip
    }
}

/// Repaints only on a visible change (icon state or integer percent; tooltip text), and at most
/// once per interval. A change that comes too soon is not lost: [`retry_at`](Self::retry_at)
/// says when to check again.
#[derive(Debug)]
pub struct RepaintGate {
    min_interval: Duration,
    icon: Option<(IconState, Option<u8>)>,
    tooltip: Option<String>,
    last: Option<Instant>,
    withheld: bool,
}

impl Default for RepaintGate {
    /// Four repaints a second at most.
    fn default() -> Self {
        Self::new(Duration::from_millis(250))
    }
}

impl RepaintGate {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            icon: None,
            tooltip: None,
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
            percent,
            eta: eta_s.map(Duration::from_secs),
        }
    }

    fn inst(name: &str, state: ConnectionState, running: Vec<RunningJob>) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            connection: Some(state),
            running,
            pending: 0,
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
    fn menu_lines_say_state_percent_and_whose_job() {
        let mut i = inst(
            "Local",
            ConnectionState::Connected,
            vec![job("a", Some(47.6), None)],
        );
        i.pending = 2;
        assert_eq!(i.line(), "Local — running 47%, 2 queued");
        i.running[0].origin = JobOrigin::Other;
        i.running[0].percent = None;
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
            (IconState::Running, 1, Some(25))
        );
        assert_eq!(s.eta, Some(Duration::from_secs(5)));
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
    fn repaints_at_most_four_times_a_second_and_catches_up_on_retry() {
        let t0 = Instant::now();
        let mut g = RepaintGate::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut painted = 0;
        // Progress moves a whole percent every 50 ms for a second.
        for i in 0..20u32 {
            if g.check(&running_at(f64::from(i)), at(u64::from(i) * 50))
                .any()
            {
                painted += 1;
            }
        }
        assert_eq!(painted, 4);
        // The last value (19 %) was withheld; the gate says when to paint it.
        let retry = g.retry_at().unwrap();
        assert_eq!(retry, at(1000));
        assert!(g.check(&running_at(19.0), retry).icon);
        assert_eq!(g.retry_at(), None);
    }
}
