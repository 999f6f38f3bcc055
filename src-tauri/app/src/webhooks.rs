//! Webhooks for `comfy-monitor serve`: what happened on the monitored instances ([`HookRule`]),
//! posted to each target ([`Webhooks`]) as JSON, or as plain text with ntfy's headers.
//!
//! - A job's end is posted at once: finished, failed, interrupted, lost (whoever queued it).
//! - An instance's queue draining (busy, then nothing running or waiting) is posted once.
//! - An instance is posted down when it has stayed out of reach for [`DOWN_GRACE`], so a short
//!   blip pages nobody, and back when it answers again after that.
//!
//! Delivery never holds up monitoring: [`Webhooks::send`] only queues (each target has its own
//! bounded queue, and what does not fit is dropped and counted), and each target is posted to
//! by its own task, in order, retried with backoff while the receiver fails. With a secret, each
//! body is signed: `X-Comfy-Monitor-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.

use crate::metrics::millis;
use comfy_engine::{Event, EventKind};
use comfy_model::{InstanceId, JobOrigin, JobState, JobView};
use comfy_protocol::http::OutputFile;
use comfy_protocol::PromptId;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long an instance must stay out of reach before it is posted down.
pub const DOWN_GRACE: Duration = Duration::from_secs(30);
/// Deliveries waiting per target; more are dropped (and counted) while a receiver is slow.
pub const QUEUE_PER_TARGET: usize = 256;
/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Comfy-Monitor-Signature-256";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HookKind {
    #[serde(rename = "job.finished")]
    JobFinished,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.interrupted")]
    JobInterrupted,
    #[serde(rename = "job.lost")]
    JobLost,
    #[serde(rename = "queue.drained")]
    QueueDrained,
    #[serde(rename = "instance.down")]
    InstanceDown,
    #[serde(rename = "instance.back")]
    InstanceBack,
}

impl HookKind {
    /// The event's name, as in the JSON's `event` and the `X-Comfy-Monitor-Event` header.
    pub fn name(self) -> &'static str {
        match self {
            Self::JobFinished => "job.finished",
            Self::JobFailed => "job.failed",
            Self::JobInterrupted => "job.interrupted",
            Self::JobLost => "job.lost",
            Self::QueueDrained => "queue.drained",
            Self::InstanceDown => "instance.down",
            Self::InstanceBack => "instance.back",
        }
    }

    /// ntfy's tags (its emoji) and priority for the plain-text form.
    fn ntfy(self) -> (&'static str, &'static str) {
        match self {
            Self::JobFinished => ("white_check_mark", "default"),
            Self::JobFailed => ("x", "high"),
            Self::JobInterrupted => ("stop_sign", "default"),
            Self::JobLost => ("question", "high"),
            Self::QueueDrained => ("checkered_flag", "default"),
            Self::InstanceDown => ("warning", "high"),
            Self::InstanceBack => ("ok", "default"),
        }
    }
}

/// The job a hook is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookJob {
    pub prompt_id: PromptId,
    /// `self` (queued by comfy-monitor), `other` or `anonymous`.
    pub origin: JobOrigin,
    /// Seconds it ran, queue wait excluded, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Seconds it waited in the queue, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_wait_s: Option<f64>,
    /// The files it wrote, as the server names them (its `/view` triple).
    pub outputs: Vec<OutputFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<HookError>,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
    pub message: String,
}

/// One thing to post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookEvent {
    pub event: HookKind,
    /// The saved instance's id, which targets are chosen by.
    #[serde(skip)]
    pub instance_id: InstanceId,
    /// The saved instance's name.
    pub instance: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// One line for people: what the plain-text form posts as its title.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<HookJob>,
    /// Why an instance is down, or a lost job's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `instance.back`: how long it was out of reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_for_s: Option<f64>,
}

/// "1:05", "1:02:03": seconds as a clock.
fn clock(secs: f64) -> String {
    comfy_model::clock(Duration::from_secs_f64(secs.max(0.0).round()))
}

impl HookEvent {
    fn job(id: InstanceId, instance: &str, job: &JobView, ts: OffsetDateTime) -> Option<Self> {
        let kind = match job.state {
            JobState::Success => HookKind::JobFinished,
            JobState::Error => HookKind::JobFailed,
            JobState::Interrupted => HookKind::JobInterrupted,
            JobState::Lost => HookKind::JobLost,
            JobState::Deleted | JobState::Pending | JobState::Running => return None,
        };
        let duration_s = job.ran_ms().map(millis);
        let queue_wait_s = job.waited_ms().map(millis);
        let error = job.error.as_ref().map(|e| HookError {
            node_type: e.node_type.clone(),
            exception_type: e.exception_type.clone(),
            message: e.message.clone(),
        });
        let short = job.prompt_id.as_str().chars().take(8).collect::<String>();
        let summary = match kind {
            HookKind::JobFinished => match duration_s {
                Some(d) => format!("{instance}: job {short} finished in {}", clock(d)),
                None => format!("{instance}: job {short} finished"),
            },
            HookKind::JobFailed => match &error {
                Some(e) if !e.message.is_empty() => {
                    let node = e.node_type.as_deref().unwrap_or("a node");
                    let message: String = e
                        .message
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(200)
                        .collect();
                    format!("{instance}: job {short} failed in {node}: {message}")
                }
                _ => format!("{instance}: job {short} failed"),
            },
            HookKind::JobInterrupted => format!("{instance}: job {short} was stopped"),
            _ => format!("{instance}: job {short} was lost"),
        };
        Some(Self {
            event: kind,
            instance_id: id,
            instance: instance.to_owned(),
            ts,
            summary,
            job: Some(HookJob {
                prompt_id: job.prompt_id.clone(),
                origin: job.origin,
                duration_s,
                queue_wait_s,
                outputs: job.outputs.clone(),
                error,
            }),
            detail: job.detail.clone(),
            down_for_s: None,
        })
    }

    fn instance(kind: HookKind, id: InstanceId, instance: &str, ts: OffsetDateTime) -> Self {
        let summary = match kind {
            HookKind::QueueDrained => format!("{instance}: queue done"),
            HookKind::InstanceDown => format!("{instance} is down"),
            _ => format!("{instance} is back"),
        };
        Self {
            event: kind,
            instance_id: id,
            instance: instance.to_owned(),
            ts,
            summary,
            job: None,
            detail: None,
            down_for_s: None,
        }
    }

    /// The plain-text form's body: the summary, then what else is known.
    pub fn text(&self) -> String {
        let mut lines = vec![self.summary.clone()];
        if let Some(job) = &self.job {
            if let Some(e) = &job.error {
                if let Some(t) = &e.exception_type {
                    lines.push(t.clone());
                }
            }
            if !job.outputs.is_empty() {
                let names: Vec<&str> = job
                    .outputs
                    .iter()
                    .take(5)
                    .map(|o| o.filename.as_str())
                    .collect();
                let more = job.outputs.len().saturating_sub(names.len());
                let mut line = names.join(", ");
                if more > 0 {
                    line.push_str(&format!(" and {more} more"));
                }
                lines.push(line);
            }
        }
        if let Some(d) = &self.detail {
            lines.push(d.clone());
        }
        if let Some(s) = self.down_for_s {
            lines.push(format!("Out of reach for {}", clock(s)));
        }
        lines.join("\n")
    }
}

#[derive(Debug)]
struct Watched {
    name: String,
    up: bool,
    /// Out of reach since then, not yet posted.
    down_since: Option<Instant>,
    /// Posted down (out of reach since then); `back` is posted when it answers again.
    announced: Option<Instant>,
    detail: String,
    busy: bool,
}

/// Decides what to post, from the engine's events. Pure: time is passed in.
#[derive(Debug)]
pub struct HookRule {
    grace: Duration,
    instances: HashMap<InstanceId, Watched>,
}

impl HookRule {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            instances: HashMap::new(),
        }
    }

    /// An instance being monitored from `now`: it counts as out of reach until it connects.
    pub fn add_instance(&mut self, id: InstanceId, name: &str, now: Instant) {
        self.instances.insert(
            id,
            Watched {
                name: name.to_owned(),
                up: false,
                down_since: Some(now),
                announced: None,
                detail: "not reached yet".to_owned(),
                busy: false,
            },
        );
    }

    /// One engine event; the posts due by `now` come first.
    pub fn apply(&mut self, event: &Event, now: Instant) -> Vec<HookEvent> {
        let mut out = self.tick(now);
        let (ts, id) = (event.ts, event.instance_id);
        let w = self
            .instances
            .entry(event.instance_id)
            .or_insert_with(|| Watched {
                name: event.instance.clone(),
                up: false,
                down_since: None,
                announced: None,
                detail: String::new(),
                busy: false,
            });
        match &event.kind {
            EventKind::Connection(status) => {
                let up = status.state.is_up();
                if up {
                    w.down_since = None;
                    if let Some(since) = w.announced.take() {
                        let mut back = HookEvent::instance(HookKind::InstanceBack, id, &w.name, ts);
                        back.down_for_s = Some(now.saturating_duration_since(since).as_secs_f64());
                        out.push(back);
                    }
                } else {
                    w.detail.clone_from(&status.detail);
                    if w.up || (w.down_since.is_none() && w.announced.is_none()) {
                        w.down_since = Some(now);
                    }
                    w.busy = false;
                }
                w.up = up;
            }
            EventKind::Queue { running, pending } => {
                let busy = !(running.is_empty() && pending.is_empty());
                if w.busy && !busy && w.up {
                    out.push(HookEvent::instance(HookKind::QueueDrained, id, &w.name, ts));
                }
                w.busy = busy;
            }
            EventKind::Job(job) if job.state.is_terminal() => {
                out.extend(HookEvent::job(id, &w.name, job, ts));
            }
            _ => {}
        }
        out
    }

    /// Posts what is due by `now`: instances out of reach past the grace period.
    pub fn tick(&mut self, now: Instant) -> Vec<HookEvent> {
        let mut out = Vec::new();
        for (id, w) in &mut self.instances {
            if let Some(since) = w.down_since {
                if now >= since + self.grace {
                    w.down_since = None;
                    // Out of reach since then: what `back` reports, however late this tick.
                    w.announced = Some(since);
                    let mut down = HookEvent::instance(
                        HookKind::InstanceDown,
                        *id,
                        &w.name,
                        OffsetDateTime::now_utc(),
                    );
                    if !w.detail.is_empty() {
                        down.detail = Some(w.detail.clone());
                    }
                    out.push(down);
                }
            }
        }
        out
    }

    /// When [`tick`](Self::tick) next has something to post.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.instances
            .values()
            .filter_map(|w| w.down_since.map(|s| s + self.grace))
            .min()
    }
}

/// How a target is posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookFormat {
    /// A JSON object (see [`HookEvent`]) with a delivery `id`.
    #[default]
    Json,
    /// Plain text with ntfy's `Title`, `Tags` and `Priority` headers (ntfy, and receivers like it).
    Ntfy,
}

impl std::str::FromStr for HookFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "ntfy" | "text" => Ok(Self::Ntfy),
            other => Err(format!("unknown webhook format {other:?} (json or ntfy)")),
        }
    }
}

/// One receiver.
#[derive(Clone)]
pub struct HookTarget {
    pub url: url::Url,
    pub format: HookFormat,
    /// Signs each body (HMAC-SHA256) when set.
    pub secret: Option<Arc<[u8]>>,
    /// Only these instances' events; `None`: every instance's.
    pub instances: Option<BTreeSet<InstanceId>>,
}

impl std::fmt::Debug for HookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookTarget")
            .field("url", &redacted(&self.url))
            .field("format", &self.format)
            .field("signed", &self.secret.is_some())
            .field("instances", &self.instances)
            .finish()
    }
}

/// A target's address for logs: scheme, host and port (a path may hold a topic or a token).
pub fn redacted(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}/…", url.scheme()),
        (Some(h), None) => format!("{}://{h}/…", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

/// Checks a webhook address: http or https, with a host.
pub fn parse_target_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("webhook {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "webhook {url:?}: give an http:// or https:// address"
        ));
    }
    Ok(parsed)
}

/// A target as the user gives it (`--webhook`, or an instance's saved webhook): an http(s)
/// address, posted JSON, or `ntfy+` and the address, posted ntfy's plain text.
pub fn parse_target(given: &str, secret: Option<Arc<[u8]>>) -> Result<HookTarget, String> {
    let given = given.trim();
    let (format, url) = match given.strip_prefix("ntfy+") {
        Some(rest) => (HookFormat::Ntfy, rest),
        None => (HookFormat::Json, given),
    };
    Ok(HookTarget {
        url: parse_target_url(url)?,
        format,
        secret,
        instances: None,
    })
}

/// When a delivery is tried again.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first failure; doubled after each one.
    pub first: Duration,
    pub max: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 6,
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the deliveries came to, for the metrics.
#[derive(Debug, Default)]
pub struct HookStats {
    pub delivered: AtomicU64,
    /// Given up after every attempt failed, or refused by the receiver.
    pub failed: AtomicU64,
    /// Attempts that failed and were tried again.
    pub retried: AtomicU64,
    /// Not queued: the target's queue was full.
    pub dropped: AtomicU64,
}

struct Delivery {
    id: String,
    event: HookEvent,
}

struct Target {
    instances: Option<BTreeSet<InstanceId>>,
    tx: mpsc::Sender<Arc<Delivery>>,
}

/// The webhook targets, each with its queue and its delivery task.
pub struct Webhooks {
    targets: Vec<Target>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<HookStats>,
}

/// The JSON body: the event and its delivery id (the same on every attempt).
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    #[serde(flatten)]
    event: &'a HookEvent,
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("sha256={hex}")
}

/// The request for one delivery to one target.
fn request(client: &reqwest::Client, target: &HookTarget, d: &Delivery) -> reqwest::RequestBuilder {
    let (body, content_type) = match target.format {
        HookFormat::Json => (
            serde_json::to_vec(&Body {
                id: &d.id,
                event: &d.event,
            })
            .unwrap_or_default(),
            "application/json",
        ),
        HookFormat::Ntfy => (d.event.text().into_bytes(), "text/plain; charset=utf-8"),
    };
    let mut req = client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header("X-Comfy-Monitor-Event", d.event.event.name())
        .header("X-Comfy-Monitor-Delivery", &d.id);
    if target.format == HookFormat::Ntfy {
        let (tags, priority) = d.event.event.ntfy();
        // Header values must be bytes a header may hold: the title goes as UTF-8 bytes, with
        // control characters (a hostile instance name's newline) replaced.
        let title: String = d
            .event
            .summary
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if let Ok(v) = reqwest::header::HeaderValue::from_bytes(title.as_bytes()) {
            req = req.header("Title", v);
        }
        req = req.header("Tags", tags).header("Priority", priority);
    }
    if let Some(secret) = &target.secret {
        req = req.header(SIGNATURE_HEADER, sign(secret, &body));
    }
    req.body(body)
}

/// Whether a failed attempt is worth another: the receiver was unreachable, slow, overloaded or
/// broken for a moment. A refusal (4xx) or a redirect will not change.
fn worth_retrying(outcome: &Result<reqwest::StatusCode, reqwest::Error>) -> bool {
    match outcome {
        Ok(status) => {
            status.is_server_error()
                || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || *status == reqwest::StatusCode::REQUEST_TIMEOUT
        }
        Err(_) => true,
    }
}

async fn deliver_all(
    client: reqwest::Client,
    target: HookTarget,
    retry: Retry,
    stats: Arc<HookStats>,
    mut rx: mpsc::Receiver<Arc<Delivery>>,
) {
    let shown = redacted(&target.url);
    while let Some(d) = rx.recv().await {
        let mut wait = retry.first;
        for attempt in 1..=retry.attempts.max(1) {
            let sent =
                tokio::time::timeout(retry.timeout, request(&client, &target, &d).send()).await;
            let outcome = match sent {
                Ok(Ok(answer)) => Ok(answer.status()),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    tracing::debug!(target = %shown, "webhook: no answer in {:?}", retry.timeout);
                    Ok(reqwest::StatusCode::GATEWAY_TIMEOUT)
                }
            };
            if matches!(&outcome, Ok(s) if s.is_success()) {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target = %shown, event = d.event.event.name(), "webhook delivered");
                break;
            }
            let again = worth_retrying(&outcome) && attempt < retry.attempts;
            let why = match &outcome {
                Ok(s) => format!("answered {s}"),
                Err(e) => chain(e),
            };
            if !again {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target = %shown, event = d.event.event.name(), attempts = attempt, "webhook not delivered: {why}");
                break;
            }
            stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::info!(target = %shown, event = d.event.event.name(), "webhook {why}; trying again in {wait:?}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(retry.max);
        }
    }
}

impl Webhooks {
    /// Starts one delivery task per target. Must be called inside a tokio runtime.
    pub fn spawn(targets: Vec<HookTarget>, retry: Retry) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("comfy-monitor/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(retry.timeout)
            .build()
            .map_err(|e| format!("webhooks: {e}"))?;
        let stats = Arc::new(HookStats::default());
        let mut out = Vec::new();
        let mut tasks = Vec::new();
        for target in targets {
            let (tx, rx) = mpsc::channel(QUEUE_PER_TARGET);
            out.push(Target {
                instances: target.instances.clone(),
                tx,
            });
            tasks.push(tokio::spawn(deliver_all(
                client.clone(),
                target,
                retry,
                stats.clone(),
                rx,
            )));
        }
        Ok(Self {
            targets: out,
            tasks,
            stats,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn stats(&self) -> Arc<HookStats> {
        self.stats.clone()
    }

    /// Queues `event` for every target that wants it. Never waits: a target whose queue is
    /// full loses it (counted in [`HookStats::dropped`]).
    pub fn send(&self, event: HookEvent) {
        let id = event.instance_id;
        let delivery = Arc::new(Delivery {
            id: uuid::Uuid::new_v4().to_string(),
            event,
        });
        for t in &self.targets {
            if t.instances.as_ref().is_some_and(|set| !set.contains(&id)) {
                continue;
            }
            if t.tx.try_send(delivery.clone()).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event = delivery.event.event.name(),
                    "webhook dropped: the receiver is not keeping up"
                );
            }
        }
    }

    /// Stops taking events and gives what is queued until `deadline` to be delivered; what is
    /// left then is dropped.
    pub async fn close(self, deadline: Duration) {
        let Self { targets, tasks, .. } = self;
        drop(targets);
        let aborts: Vec<_> = tasks
            .iter()
            .map(tokio::task::JoinHandle::abort_handle)
            .collect();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
            tracing::warn!("webhooks still undelivered at exit were dropped");
        }
    }
}

/// An error with its causes, for a log line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::ConnectionStatus;
    use comfy_model::ConnectionState;

    fn event(kind: EventKind) -> Event {
        Event {
            ts: OffsetDateTime::UNIX_EPOCH,
            instance_id: InstanceId(1),
            instance: "gpu".into(),
            kind,
        }
    }

    fn connection(state: ConnectionState) -> Event {
        event(EventKind::Connection(ConnectionStatus {
            state,
            detail: format!("{state:?}"),
            retry_in_ms: None,
        }))
    }

    fn kinds(v: &[HookEvent]) -> Vec<HookKind> {
        v.iter().map(|e| e.event).collect()
    }

    #[test]
    fn a_blip_shorter_than_the_grace_posts_nothing_and_a_long_outage_posts_down_then_back() {
        let t0 = Instant::now();
        let mut rule = HookRule::new(Duration::from_secs(30));
        rule.add_instance(InstanceId(1), "gpu", t0);
        assert!(rule
            .apply(
                &connection(ConnectionState::Connected),
                t0 + Duration::from_secs(1)
            )
            .is_empty());
        assert_eq!(rule.next_deadline(), None);
        // 10 s away: nothing.
        assert!(rule
            .apply(
                &connection(ConnectionState::Reconnecting),
                t0 + Duration::from_secs(10)
            )
            .is_empty());
        assert!(rule
            .apply(
                &connection(ConnectionState::Connected),
                t0 + Duration::from_secs(20)
            )
            .is_empty());
        // Away for good.
        let gone = t0 + Duration::from_secs(100);
        assert!(rule
            .apply(&connection(ConnectionState::Reconnecting), gone)
            .is_empty());
        assert_eq!(rule.next_deadline(), Some(gone + Duration::from_secs(30)));
        assert!(rule.tick(gone + Duration::from_secs(29)).is_empty());
        let down = rule.tick(gone + Duration::from_secs(30));
        assert_eq!(kinds(&down), [HookKind::InstanceDown]);
        assert_eq!(down[0].detail.as_deref(), Some("Reconnecting"));
        // Retries while down post nothing more.
        assert!(rule
            .apply(
                &connection(ConnectionState::Reconnecting),
                gone + Duration::from_secs(40)
            )
            .is_empty());
        assert!(rule.tick(gone + Duration::from_secs(200)).is_empty());
        let back = rule.apply(
            &connection(ConnectionState::Connected),
            gone + Duration::from_secs(90),
        );
        assert_eq!(kinds(&back), [HookKind::InstanceBack]);
        assert_eq!(back[0].down_for_s, Some(90.0));
    }

    #[test]
    fn back_reports_the_whole_outage_even_when_the_tick_came_late() {
        let t0 = Instant::now();
        let mut rule = HookRule::new(Duration::from_secs(30));
        rule.add_instance(InstanceId(1), "gpu", t0);
        rule.apply(&connection(ConnectionState::Connected), t0);
        rule.apply(
            &connection(ConnectionState::Reconnecting),
            t0 + Duration::from_secs(10),
        );
        // The host ticked long after the grace ran out.
        assert_eq!(
            kinds(&rule.tick(t0 + Duration::from_secs(200))),
            [HookKind::InstanceDown]
        );
        let back = rule.apply(
            &connection(ConnectionState::Connected),
            t0 + Duration::from_secs(310),
        );
        assert_eq!(back[0].down_for_s, Some(300.0));
        assert!(
            back[0].text().ends_with("Out of reach for 5:00"),
            "{}",
            back[0].text()
        );
    }

    #[test]
    fn an_instance_never_reached_is_posted_down_after_the_grace() {
        let t0 = Instant::now();
        let mut rule = HookRule::new(Duration::from_secs(30));
        rule.add_instance(InstanceId(1), "gpu", t0);
        assert!(rule
            .apply(
                &connection(ConnectionState::Reconnecting),
                t0 + Duration::from_secs(5)
            )
            .is_empty());
        assert_eq!(
            kinds(&rule.tick(t0 + Duration::from_secs(30))),
            [HookKind::InstanceDown]
        );
    }

    #[test]
    fn the_queue_is_posted_drained_once_when_it_empties() {
        let t0 = Instant::now();
        let mut rule = HookRule::new(Duration::from_secs(30));
        rule.add_instance(InstanceId(1), "gpu", t0);
        rule.apply(&connection(ConnectionState::Connected), t0);
        let queue = |running: &[&str], pending: &[&str]| {
            event(EventKind::Queue {
                running: running.iter().map(|p| PromptId::from(*p)).collect(),
                pending: pending.iter().map(|p| PromptId::from(*p)).collect(),
            })
        };
        assert!(
            rule.apply(&queue(&[], &[]), t0).is_empty(),
            "idle from the start"
        );
        assert!(rule.apply(&queue(&["a"], &["b"]), t0).is_empty());
        assert!(rule.apply(&queue(&["b"], &[]), t0).is_empty());
        assert_eq!(
            kinds(&rule.apply(&queue(&[], &[]), t0)),
            [HookKind::QueueDrained]
        );
        assert!(rule.apply(&queue(&[], &[]), t0).is_empty());
    }

    #[test]
    fn each_ending_is_posted_with_the_job_and_a_deleted_job_is_not() {
        let t0 = Instant::now();
        let mut rule = HookRule::new(Duration::from_secs(30));
        let mut job = JobView::new("abcdef123456".into(), JobOrigin::Other, JobState::Error);
        job.queued_at_ms = 1_000;
        job.started_at_ms = Some(3_000);
        job.ended_at_ms = Some(68_000);
        job.error = Some(comfy_model::ErrorDetails {
            node_id: None,
            node_type: Some("KSampler".into()),
            exception_type: Some("torch.OutOfMemoryError".into()),
            message: "CUDA out of memory.\nTried to allocate".into(),
            traceback: vec![],
        });
        let posted = rule.apply(&event(EventKind::Job(Box::new(job.clone()))), t0);
        assert_eq!(kinds(&posted), [HookKind::JobFailed]);
        assert_eq!(
            posted[0].summary,
            "gpu: job abcdef12 failed in KSampler: CUDA out of memory."
        );
        let j = posted[0].job.as_ref().expect("job");
        assert_eq!((j.duration_s, j.queue_wait_s), (Some(65.0), Some(2.0)));
        let json = serde_json::to_value(&posted[0]).expect("json");
        assert_eq!(json["event"], "job.failed");
        assert_eq!(json["job"]["origin"], "other");
        assert_eq!(
            json["job"]["error"]["exception_type"],
            "torch.OutOfMemoryError"
        );
        job.state = JobState::Deleted;
        assert!(rule
            .apply(&event(EventKind::Job(Box::new(job.clone()))), t0)
            .is_empty());
        job.state = JobState::Success;
        job.error = None;
        assert_eq!(
            rule.apply(&event(EventKind::Job(Box::new(job))), t0)[0].summary,
            "gpu: job abcdef12 finished in 1:05"
        );
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_body() {
        // RFC 4231, test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_target_must_be_an_http_address() {
        assert!(parse_target_url("https://ntfy.sh/studio-gpus").is_ok());
        assert!(parse_target_url("ftp://x/y").is_err());
        assert!(parse_target_url("not a url").is_err());
        assert_eq!(
            redacted(&parse_target_url("https://hooks.example:8443/secret/token").expect("ok")),
            "https://hooks.example:8443/…"
        );
    }
}
