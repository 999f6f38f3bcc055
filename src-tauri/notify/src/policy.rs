//! The notification policy: engine events and the time in, notifications out. Pure: it owns no
//! clock, does no I/O and spawns nothing, so tests drive it with explicit instants.

use crate::notification::{clock, Action, ImageRef, Notification, NotificationKind};
use comfy_engine::{ConnectionState, ErrorDetails, Event, EventKind, JobOrigin, JobState, JobView};
use comfy_model::NotificationPrefs;
use comfy_protocol::http::OutputFile;
use comfy_protocol::PromptId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The user's notification settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Stay silent while the app's window has the focus: the window shows it all.
    pub only_when_unfocused: bool,
    /// Per instance, by name; an instance missing here gets [`NotificationPrefs::default`].
    pub instances: BTreeMap<String, NotificationPrefs>,
}

impl Settings {
    pub fn instance(&self, name: &str) -> NotificationPrefs {
        self.instances.get(name).copied().unwrap_or_default()
    }
}

/// The policy's clocks. The defaults suit people; tests shorten nothing, they pass instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long an instance must stay down before "disconnected" is shown.
    pub disconnect_grace: Duration,
    /// How long an instance must stay up before an outage is over (and "back online" shown).
    /// A link that drops again sooner is still the same outage: no second notice.
    pub recovery: Duration,
    /// After a job notification, further jobs of the same kind on the same instance wait this
    /// long and then go out as one "N jobs finished on X".
    pub coalesce_window: Duration,
    /// How long every queue must stay empty before "queue drained" is shown.
    pub drain_settle: Duration,
    /// Fewer finished jobs than this since the last drain make no "queue drained": for a single
    /// job, its own notification says it all.
    pub drain_min_jobs: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            disconnect_grace: Duration::from_secs(30),
            recovery: Duration::from_secs(10),
            coalesce_window: Duration::from_secs(10),
            drain_settle: Duration::from_secs(5),
            drain_min_jobs: 2,
        }
    }
}

/// Notifications are paused until a given time, or until resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    Until(Instant),
    UntilResumed,
}

/// Jobs, labels and cancellations remembered per policy; older ones are forgotten first.
const MEMORY: usize = 1024;
/// Error messages longer than this are cut: a notification is not a traceback viewer.
const MAX_MESSAGE_CHARS: usize = 240;

/// See the crate documentation for the rules.
#[derive(Debug)]
pub struct Policy {
    settings: Settings,
    timing: Timing,
    focused: bool,
    pause: Option<Pause>,
    instances: BTreeMap<String, Instance>,
    cancelled: Recent<(String, PromptId)>,
    seen: Recent<(String, PromptId)>,
    labels: VecDeque<((String, PromptId), String)>,
    drain: Drain,
    keys: u64,
}

#[derive(Debug, Default)]
struct Instance {
    link: Link,
    queue_len: usize,
    done: Burst,
    failed: Burst,
}

#[derive(Debug, Default)]
enum Link {
    /// Not connected yet in this session: not being there is no outage.
    #[default]
    Unknown,
    Up,
    Down(Outage),
    /// Disabled by the user.
    Off,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    /// Connected again since then; the outage ends after [`Timing::recovery`].
    up_since: Option<Instant>,
    /// The latest down state was a credentials rejection.
    auth: bool,
    told_down: bool,
    told_auth: bool,
    key: String,
}

/// Jobs of one outcome on one instance, rate limited.
#[derive(Debug, Default)]
struct Burst {
    /// When the burst's notification last went out; `None` before the first.
    shown_at: Option<Instant>,
    /// Jobs shown so far in this burst.
    shown: usize,
    /// Jobs waiting for the window to pass, and the latest of them.
    held: usize,
    latest: Option<Finished>,
    key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Failed,
}

/// What a notification needs to know about a finished job.
#[derive(Debug)]
struct Finished {
    prompt_id: PromptId,
    label: Option<String>,
    took: Option<Duration>,
    image: Option<OutputFile>,
    first_output: Option<OutputFile>,
    outputs: usize,
    error: Option<ErrorDetails>,
}

#[derive(Debug, Default)]
struct Drain {
    work: BTreeMap<String, Work>,
    due: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Work {
    done: usize,
    failed: usize,
}

/// When held-back notices may go out.
enum Gate {
    Open,
    OpensAt(Instant),
    Closed,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

impl Policy {
    pub fn new(settings: Settings) -> Self {
        Self::with_timing(settings, Timing::default())
    }

    pub fn with_timing(settings: Settings, timing: Timing) -> Self {
        Self {
            settings,
            timing,
            focused: false,
            pause: None,
            instances: BTreeMap::new(),
            cancelled: Recent::default(),
            seen: Recent::default(),
            labels: VecDeque::new(),
            drain: Drain::default(),
            keys: 0,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// New settings apply to what happens next; nothing already shown is taken back.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    pub fn set_instance_settings(&mut self, instance: &str, settings: NotificationPrefs) {
        self.settings
            .instances
            .insert(instance.to_owned(), settings);
    }

    /// Forgets an instance's connection, queue and bursts (it was removed). Its settings stay.
    pub fn forget_instance(&mut self, instance: &str) {
        self.instances.remove(instance);
        self.drain.work.remove(instance);
    }

    /// Whether the desktop's notification sound goes with `n`: its instance's sound switch for
    /// its kind. The queue-drained summary, about every instance, and back-online notices are
    /// silent.
    pub fn wants_sound(&self, n: &Notification) -> bool {
        let Some(name) = &n.instance else {
            return false;
        };
        let s = self.settings.instance(name);
        match n.kind {
            NotificationKind::JobDone => s.sound_job_done,
            NotificationKind::JobFailed | NotificationKind::JobInterrupted => s.sound_job_failed,
            NotificationKind::Disconnected | NotificationKind::AuthFailed => s.sound_disconnected,
            NotificationKind::QueueDrained | NotificationKind::BackOnline => false,
        }
    }

    /// Tells the policy this app cancelled a job, so its interruption is not news.
    pub fn cancelled_by_us(&mut self, instance: &str, prompt_id: &PromptId) {
        self.cancelled
            .insert((instance.to_owned(), prompt_id.clone()));
    }

    /// A name for a job (its workflow's), used instead of the instance name in its texts.
    pub fn set_job_label(&mut self, instance: &str, prompt_id: &PromptId, label: &str) {
        if self.labels.len() >= MEMORY {
            self.labels.pop_front();
        }
        self.labels
            .push_back(((instance.to_owned(), prompt_id.clone()), label.to_owned()));
    }

    /// Whether the app's window has the focus (matters with `only_when_unfocused`). Losing it
    /// releases connection notices that were held back.
    pub fn set_focused(&mut self, focused: bool, now: Instant) -> Vec<Notification> {
        self.focused = focused;
        self.tick(now)
    }

    /// Pauses notifications for `duration`, or until [`resume`](Self::resume) with `None`.
    /// Job notices during a pause are dropped; connection notices still true when it ends are
    /// shown then.
    pub fn pause(&mut self, now: Instant, duration: Option<Duration>) {
        self.pause = Some(match duration {
            Some(d) => Pause::Until(now + d),
            None => Pause::UntilResumed,
        });
    }

    pub fn resume(&mut self, now: Instant) -> Vec<Notification> {
        self.pause = None;
        self.tick(now)
    }

    /// The pause in force at `now`, for the tray menu.
    pub fn paused(&self, now: Instant) -> Option<Pause> {
        match self.pause {
            Some(Pause::Until(t)) if now >= t => None,
            p => p,
        }
    }

    /// One engine event. Timers due by `now` fire first, so a host that ticks late loses
    /// nothing.
    pub fn apply(&mut self, event: &Event, now: Instant) -> Vec<Notification> {
        let mut out = self.tick(now);
        let open = self.gate_open(now);
        let name = event.instance.as_str();
        match &event.kind {
            EventKind::Connection(status) => {
                self.on_connection(name, status.state, now);
                self.link_notices(name, now, open, &mut out);
            }
            EventKind::Queue { running, pending } => {
                self.instance(name).queue_len = running.len() + pending.len();
            }
            EventKind::Job(job) if job.state.is_terminal() => {
                self.on_terminal(name, job, now, open, &mut out);
            }
            _ => {}
        }
        self.arm_drain(now);
        out
    }

    /// Fires the timers due by `now`: disconnect grace, recovery, coalesced bursts, the drain.
    pub fn tick(&mut self, now: Instant) -> Vec<Notification> {
        if let Some(Pause::Until(t)) = self.pause {
            if now >= t {
                self.pause = None;
            }
        }
        let open = self.gate_open(now);
        let mut out = Vec::new();
        let names: Vec<String> = self.instances.keys().cloned().collect();
        for name in &names {
            self.link_notices(name, now, open, &mut out);
            self.flush(name, Outcome::Done, now, open, &mut out);
            self.flush(name, Outcome::Failed, now, open, &mut out);
        }
        self.arm_drain(now);
        if self.drain.due.is_some_and(|due| now >= due) {
            self.drain.due = None;
            let work = std::mem::take(&mut self.drain.work);
            if open {
                let key = self.key("drained", "all");
                out.push(drained(&work, key));
            }
        }
        out
    }

    /// When [`tick`](Self::tick) next has something to do. `None`: nothing until the next
    /// event, focus change or resume.
    pub fn next_deadline(&self) -> Option<Instant> {
        let gate = self.gate();
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(Pause::Until(t)) = self.pause {
            at(t);
        }
        for (name, inst) in &self.instances {
            for b in [&inst.done, &inst.failed] {
                if let (Some(shown), true) = (b.shown_at, b.held > 0) {
                    at(shown + self.timing.coalesce_window);
                }
            }
            if let Link::Down(o) = &inst.link {
                if let Some(up) = o.up_since {
                    at(up + self.timing.recovery);
                } else if !o.auth
                    && !o.told_down
                    && !o.told_auth
                    && self.settings.instance(name).disconnected
                {
                    let due = o.since + self.timing.disconnect_grace;
                    match gate {
                        Gate::Open => at(due),
                        Gate::OpensAt(t) => at(due.max(t)),
                        Gate::Closed => {}
                    }
                }
            }
        }
        if let Some(due) = self.drain.due {
            at(due);
        }
        next
    }

    fn gate(&self) -> Gate {
        if self.settings.only_when_unfocused && self.focused {
            return Gate::Closed;
        }
        match self.pause {
            None => Gate::Open,
            Some(Pause::Until(t)) => Gate::OpensAt(t),
            Some(Pause::UntilResumed) => Gate::Closed,
        }
    }

    fn gate_open(&self, now: Instant) -> bool {
        match self.gate() {
            Gate::Open => true,
            Gate::OpensAt(t) => now >= t,
            Gate::Closed => false,
        }
    }

    fn key(&mut self, what: &str, instance: &str) -> String {
        self.keys += 1;
        format!("{what}/{instance}/{}", self.keys)
    }

    fn instance(&mut self, name: &str) -> &mut Instance {
        self.instances.entry(name.to_owned()).or_default()
    }

    fn on_connection(&mut self, name: &str, state: ConnectionState, now: Instant) {
        let key = self.key("link", name);
        let inst = self.instance(name);
        match state {
            ConnectionState::Disabled => inst.link = Link::Off,
            // On HTTP alone the server answers and jobs are followed (by polling): up.
            ConnectionState::Connected | ConnectionState::HttpOnly => match &mut inst.link {
                Link::Down(o) => {
                    o.up_since.get_or_insert(now);
                }
                link => *link = Link::Up,
            },
            ConnectionState::Connecting
            | ConnectionState::Reconnecting
            | ConnectionState::Unreachable
            | ConnectionState::AuthFailed => {
                let auth = state == ConnectionState::AuthFailed;
                match &mut inst.link {
                    Link::Down(o) => {
                        o.up_since = None;
                        o.auth = auth;
                    }
                    // Never reached yet: only a rejection is worth telling.
                    Link::Unknown | Link::Off if !auth => {}
                    link => {
                        *link = Link::Down(Outage {
                            since: now,
                            up_since: None,
                            auth,
                            told_down: false,
                            told_auth: false,
                            key,
                        })
                    }
                }
            }
        }
    }

    /// The outage rules: auth at once, disconnected after the grace period, back online after
    /// the recovery period, each at most once per outage.
    fn link_notices(&mut self, name: &str, now: Instant, open: bool, out: &mut Vec<Notification>) {
        let settings = self.settings.instance(name);
        let timing = self.timing;
        let Some(inst) = self.instances.get_mut(name) else {
            return;
        };
        let Link::Down(o) = &mut inst.link else {
            return;
        };
        if let Some(up) = o.up_since {
            if now >= up + timing.recovery {
                if (o.told_down || o.told_auth) && open {
                    out.push(back_online(name, o, up));
                }
                inst.link = Link::Up;
            }
        } else if o.auth {
            if !o.told_auth && settings.auth_rejected && open {
                out.push(auth_failed(name, o));
                o.told_auth = true;
            }
        } else if !o.told_down
            && !o.told_auth
            && settings.disconnected
            && open
            && now >= o.since + timing.disconnect_grace
        {
            out.push(disconnected(name, o, now));
            o.told_down = true;
        }
    }

    fn on_terminal(
        &mut self,
        name: &str,
        job: &JobView,
        now: Instant,
        open: bool,
        out: &mut Vec<Notification>,
    ) {
        let id = (name.to_owned(), job.prompt_id.clone());
        if self.seen.contains(&id) {
            return;
        }
        self.seen.insert(id.clone());
        let by_us = self.cancelled.remove(&id);
        let label = self
            .labels
            .iter()
            .position(|(k, _)| *k == id)
            .and_then(|i| self.labels.remove(i))
            .map(|(_, label)| label);
        let settings = self.settings.instance(name);
        if job.origin != JobOrigin::SelfApp && !settings.other_clients_jobs {
            return;
        }
        let outcome = match job.state {
            JobState::Success => Outcome::Done,
            JobState::Error => Outcome::Failed,
            JobState::Interrupted => {
                if !by_us && settings.job_interrupted_by_other && open {
                    out.push(interrupted(name, job, label));
                }
                return;
            }
            // Lost with the server (a restart, a crash): as unwelcome as a failure.
            JobState::Lost => {
                if settings.job_failed && open {
                    out.push(lost(name, job, label));
                }
                return;
            }
            _ => return,
        };
        if settings.queue_drained {
            // The drain settles from the last job on.
            self.drain.due = None;
            let work = self.drain.work.entry(name.to_owned()).or_default();
            match outcome {
                Outcome::Done => work.done += 1,
                Outcome::Failed => work.failed += 1,
            }
        }
        let wanted = match outcome {
            Outcome::Done => settings.job_done,
            Outcome::Failed => settings.job_failed,
        };
        if wanted {
            self.push(name, outcome, finished(job, label), now, open, out);
        }
    }

    /// A job goes out at once, unless the burst's window is open: then it waits to be counted.
    fn push(
        &mut self,
        name: &str,
        outcome: Outcome,
        job: Finished,
        now: Instant,
        open: bool,
        out: &mut Vec<Notification>,
    ) {
        let window = self.timing.coalesce_window;
        let key = self.key(outcome.word(), name);
        let inst = self.instance(name);
        let burst = match outcome {
            Outcome::Done => &mut inst.done,
            Outcome::Failed => &mut inst.failed,
        };
        match burst.shown_at {
            Some(t) if now < t + window => {
                burst.held += 1;
                burst.latest = Some(job);
            }
            _ if open => {
                out.push(single(name, outcome, &job, key.clone()));
                *burst = Burst {
                    shown_at: Some(now),
                    shown: 1,
                    held: 0,
                    latest: None,
                    key,
                };
            }
            _ => {}
        }
    }

    /// Held jobs go out as one notification counting the whole burst, replacing its last one.
    fn flush(
        &mut self,
        name: &str,
        outcome: Outcome,
        now: Instant,
        open: bool,
        out: &mut Vec<Notification>,
    ) {
        let window = self.timing.coalesce_window;
        let Some(inst) = self.instances.get_mut(name) else {
            return;
        };
        let burst = match outcome {
            Outcome::Done => &mut inst.done,
            Outcome::Failed => &mut inst.failed,
        };
        let Some(shown_at) = burst.shown_at else {
            return;
        };
        if burst.held == 0 || now < shown_at + window {
            return;
        }
        let held = std::mem::take(&mut burst.held);
        let latest = burst.latest.take();
        if let (true, Some(latest)) = (open, latest) {
            burst.shown += held;
            burst.shown_at = Some(now);
            out.push(coalesced(
                name,
                outcome,
                burst.shown,
                &latest,
                burst.key.clone(),
            ));
        }
    }

    /// Arms the drain timer when every queue is empty after enough work; disarms it otherwise.
    /// An instance down with work of its own keeps it disarmed; one down without is ignored.
    fn arm_drain(&mut self, now: Instant) {
        let jobs: usize = self.drain.work.values().map(|w| w.done + w.failed).sum();
        let idle = self.instances.iter().all(|(name, inst)| match inst.link {
            Link::Down(_) => !self.drain.work.contains_key(name),
            Link::Off => true,
            Link::Up | Link::Unknown => inst.queue_len == 0,
        });
        if idle && jobs >= self.timing.drain_min_jobs.max(1) {
            self.drain.due.get_or_insert(now + self.timing.drain_settle);
        } else {
            self.drain.due = None;
        }
    }
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

fn is_image(file: &OutputFile) -> bool {
    let name = file.filename.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn finished(job: &JobView, label: Option<String>) -> Finished {
    let took = job.ran_ms().map(Duration::from_millis);
    Finished {
        prompt_id: job.prompt_id.clone(),
        label,
        took,
        image: job.outputs.iter().find(|f| is_image(f)).cloned(),
        first_output: job.outputs.first().cloned(),
        outputs: job.outputs.len(),
        error: job.error.clone(),
    }
}

fn short(id: &PromptId) -> String {
    id.as_str().chars().take(8).collect()
}

/// "KSampler (node 3): OutOfMemoryError: CUDA out of memory", cut to a readable length.
fn describe_error(error: Option<&ErrorDetails>) -> String {
    let Some(e) = error else {
        return "No error details.".to_owned();
    };
    let node = match (&e.node_type, &e.node_id) {
        (Some(t), Some(id)) => Some(format!("{t} (node {id})")),
        (Some(t), None) => Some(t.clone()),
        (None, Some(id)) => Some(format!("Node {id}")),
        (None, None) => None,
    };
    let kind = e
        .exception_type
        .as_deref()
        .and_then(|t| t.rsplit('.').next())
        .filter(|t| !t.is_empty() && !e.message.starts_with(t));
    let mut message = match kind {
        Some(k) => format!("{k}: {}", e.message.trim()),
        None => e.message.trim().to_owned(),
    };
    if message.chars().count() > MAX_MESSAGE_CHARS {
        message = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        message.push('…');
    }
    match node {
        Some(n) => format!("{n}: {message}"),
        None => message,
    }
}

fn single(name: &str, outcome: Outcome, job: &Finished, key: String) -> Notification {
    let (summary, kind) = match (outcome, &job.label) {
        (Outcome::Done, Some(l)) => (format!("{l} finished"), NotificationKind::JobDone),
        (Outcome::Done, None) => (format!("Job finished on {name}"), NotificationKind::JobDone),
        (Outcome::Failed, Some(l)) => (format!("{l} failed"), NotificationKind::JobFailed),
        (Outcome::Failed, None) => (format!("Job failed on {name}"), NotificationKind::JobFailed),
    };
    let mut facts = Vec::new();
    if job.label.is_some() {
        facts.push(format!("on {name}"));
    }
    if let Some(took) = job.took {
        facts.push(format!("took {}", clock(took)));
    }
    let body = match outcome {
        Outcome::Done => {
            match job.outputs {
                0 => {}
                1 => facts.push("1 output".to_owned()),
                n => facts.push(format!("{n} outputs")),
            }
            facts.join(" · ")
        }
        Outcome::Failed => {
            let error = describe_error(job.error.as_ref());
            if facts.is_empty() {
                error
            } else {
                format!("{error}\n{}", facts.join(" · "))
            }
        }
    };
    Notification {
        key,
        kind,
        instance: Some(name.to_owned()),
        summary,
        body,
        image: image_of(name, outcome, job),
        actions: actions(name, Some(&job.prompt_id), outcome, job),
        jobs: 1,
        sound: false,
    }
}

fn coalesced(
    name: &str,
    outcome: Outcome,
    count: usize,
    latest: &Finished,
    key: String,
) -> Notification {
    let what = latest
        .label
        .clone()
        .unwrap_or_else(|| format!("job {}", short(&latest.prompt_id)));
    let (summary, body, kind) = match outcome {
        Outcome::Done => {
            let took = latest
                .took
                .map(|t| format!(" · took {}", clock(t)))
                .unwrap_or_default();
            (
                format!("{count} jobs finished on {name}"),
                format!("Latest: {what}{took}"),
                NotificationKind::JobDone,
            )
        }
        Outcome::Failed => (
            format!("{count} jobs failed on {name}"),
            format!("Latest: {what}: {}", describe_error(latest.error.as_ref())),
            NotificationKind::JobFailed,
        ),
    };
    Notification {
        key,
        kind,
        instance: Some(name.to_owned()),
        summary,
        body,
        image: image_of(name, outcome, latest),
        actions: actions(name, None, outcome, latest),
        jobs: count,
        sound: false,
    }
}

fn image_of(name: &str, outcome: Outcome, job: &Finished) -> Option<ImageRef> {
    match outcome {
        Outcome::Done => job.image.clone().map(|file| ImageRef {
            instance: name.to_owned(),
            file,
        }),
        Outcome::Failed => None,
    }
}

fn actions(
    name: &str,
    prompt_id: Option<&PromptId>,
    outcome: Outcome,
    job: &Finished,
) -> Vec<Action> {
    let mut actions = vec![Action::Show {
        instance: Some(name.to_owned()),
        prompt_id: prompt_id.cloned(),
    }];
    if let (Outcome::Done, Some(file)) = (outcome, job.image.as_ref().or(job.first_output.as_ref()))
    {
        actions.push(Action::OpenFolder {
            instance: name.to_owned(),
            file: file.clone(),
        });
    }
    actions
}

fn interrupted(name: &str, job: &JobView, label: Option<String>) -> Notification {
    let summary = match &label {
        Some(l) => format!("{l} interrupted"),
        None => format!("Job interrupted on {name}"),
    };
    let body = match &label {
        Some(_) => format!("Stopped from outside this app, on {name}."),
        None => format!(
            "Job {} was stopped from outside this app.",
            short(&job.prompt_id)
        ),
    };
    one_job(
        name,
        job,
        "interrupted",
        NotificationKind::JobInterrupted,
        summary,
        body,
    )
}

/// A notice about one job, without an image, that shows the job when clicked.
fn one_job(
    name: &str,
    job: &JobView,
    what: &str,
    kind: NotificationKind,
    summary: String,
    body: String,
) -> Notification {
    Notification {
        key: format!("{what}/{name}/{}", job.prompt_id),
        kind,
        instance: Some(name.to_owned()),
        summary,
        body,
        image: None,
        actions: vec![Action::Show {
            instance: Some(name.to_owned()),
            prompt_id: Some(job.prompt_id.clone()),
        }],
        jobs: 1,
        sound: false,
    }
}

fn lost(name: &str, job: &JobView, label: Option<String>) -> Notification {
    let summary = match &label {
        Some(l) => format!("{l} was lost"),
        None => format!("Job lost on {name}"),
    };
    let why = job
        .detail
        .clone()
        .unwrap_or_else(|| "the server no longer knows it".to_owned());
    let again = if job.origin == JobOrigin::SelfApp {
        " Queue it again from the history."
    } else {
        ""
    };
    let body = match &label {
        Some(_) => format!("On {name}: {why}.{again}"),
        None => format!("Job {}: {why}.{again}", short(&job.prompt_id)),
    };
    one_job(
        name,
        job,
        "lost",
        NotificationKind::JobFailed,
        summary,
        body,
    )
}

fn show_instance(name: &str) -> Vec<Action> {
    vec![Action::Show {
        instance: Some(name.to_owned()),
        prompt_id: None,
    }]
}

fn disconnected(name: &str, o: &Outage, now: Instant) -> Notification {
    Notification {
        key: o.key.clone(),
        kind: NotificationKind::Disconnected,
        instance: Some(name.to_owned()),
        summary: format!("{name} disconnected"),
        body: format!(
            "No connection for {}. You will be told once when it is back.",
            clock(now - o.since)
        ),
        image: None,
        actions: show_instance(name),
        jobs: 0,
        sound: false,
    }
}

fn auth_failed(name: &str, o: &Outage) -> Notification {
    Notification {
        key: o.key.clone(),
        kind: NotificationKind::AuthFailed,
        instance: Some(name.to_owned()),
        summary: format!("{name} rejects our credentials"),
        body: "Check the user name, password or token saved for this instance.".to_owned(),
        image: None,
        actions: show_instance(name),
        jobs: 0,
        sound: false,
    }
}

fn back_online(name: &str, o: &Outage, up: Instant) -> Notification {
    Notification {
        key: o.key.clone(),
        kind: NotificationKind::BackOnline,
        instance: Some(name.to_owned()),
        summary: format!("{name} is back online"),
        body: format!("It was down for {}.", clock(up - o.since)),
        image: None,
        actions: show_instance(name),
        jobs: 0,
        sound: false,
    }
}

fn drained(work: &BTreeMap<String, Work>, key: String) -> Notification {
    let counts = |w: &Work| match w.failed {
        0 => format!("{} finished", w.done),
        f => format!("{} finished, {f} failed", w.done),
    };
    let jobs = work.values().map(|w| w.done + w.failed).sum();
    let (summary, body, instance) = match work.iter().collect::<Vec<_>>().as_slice() {
        [(name, w)] => (
            format!("Queue drained on {name}"),
            format!("All jobs are done: {}.", counts(w)),
            Some((*name).clone()),
        ),
        all => (
            "All queues drained".to_owned(),
            all.iter()
                .map(|(name, w)| format!("{name}: {}", counts(w)))
                .collect::<Vec<_>>()
                .join(" · "),
            None,
        ),
    };
    Notification {
        key,
        kind: NotificationKind::QueueDrained,
        actions: vec![Action::Show {
            instance: instance.clone(),
            prompt_id: None,
        }],
        instance,
        summary,
        body,
        image: None,
        jobs,
        sound: false,
    }
}

/// A bounded set: the oldest entry goes when it is full.
#[derive(Debug)]
struct Recent<T> {
    items: VecDeque<T>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
        }
    }
}

impl<T: PartialEq> Recent<T> {
    fn insert(&mut self, item: T) {
        if self.items.len() >= MEMORY {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    fn contains(&self, item: &T) -> bool {
        self.items.contains(item)
    }

    fn remove(&mut self, item: &T) -> bool {
        match self.items.iter().position(|i| i == item) {
            Some(i) => {
                self.items.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
