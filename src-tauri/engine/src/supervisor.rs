//! One supervisor task per instance: connect, stay connected, and turn traffic into events.
//!
//! The loop is an explicit state machine (`ConnectionState`): probe HTTP, detect capabilities,
//! open the socket, run a session, and on any failure decide between "socket dropped" (HTTP still
//! answers: reconnect soon) and "server down" (back off), or "auth failed" (retry slowly). HTTP
//! reads during a session run as child tasks so the socket is always read promptly; a slow
//! reader slows the server for every client (protocol §8.10).

use crate::api::{Api, ApiError};
use crate::backoff::{auth_retry_delay, reconnect_delay};
use crate::event::{ConnectionState, ConnectionStatus, EventKind, ServerInfo};
use crate::instance::InstanceSpec;
use crate::processor::Processor;
use crate::sink::EventSink;
use crate::tracker::{ActiveJob, Lookup, Millis, Request, Snapshot};
use crate::ws::{self, Socket};
use comfy_protocol::{PromptId, CLIENT_FEATURE_FLAGS, CLIENT_FEATURE_FLAGS_WITH_RELAY};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Keepalive: proxies cut idle sockets and ComfyUI never pings.
pub const PING_EVERY: Duration = Duration::from_secs(3);
/// A link with no frame (pong included) for this long is dead: detected within 10 s.
pub const LIVENESS: Duration = Duration::from_secs(8);
/// Safety poll of the queue while work is pending or running, and while idle.
pub const POLL_BUSY: Duration = Duration::from_secs(2);
pub const POLL_IDLE: Duration = Duration::from_secs(10);
/// How often estimates are looked at while anything is queued (they move with the clock; only
/// the ones that moved noticeably are published).
pub const ESTIMATE_EVERY: Duration = Duration::from_secs(1);
/// A session shorter than this does not reset the backoff (a server that accepts and drops).
const STABLE_SESSION: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) enum Command {
    /// Close the socket cleanly and stop.
    Shutdown,
    /// Re-read the queue now.
    Refresh,
    /// We are submitting this job: follow it before the server answers.
    Expect(Box<ActiveJob>),
    /// The server answered the submission of `expected` with `actual` (or refused it).
    Settle {
        expected: PromptId,
        actual: Option<PromptId>,
    },
}

/// What actions need to reach a connected server: its client (with the route prefix the probe
/// settled) and what it can do.
#[derive(Debug, Clone)]
pub(crate) struct Connected {
    pub(crate) api: Api,
    pub(crate) info: ServerInfo,
}

enum SessionEnd {
    Shutdown,
    Dropped(String),
}

enum HttpResult {
    /// With the number of `status` messages seen when it was requested.
    Snapshot(Result<Snapshot, ApiError>, u64),
    Outcome(PromptId, Result<Lookup, ApiError>),
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as Millis / 1_000_000
}

/// Notices a socket that stays open but receives nothing (protocol §2.1: a reused client id
/// unregisters the live socket when the stale one closes). Every queue change is broadcast as a
/// `status`, so two queue changes seen by polling with no `status` arriving meanwhile mean we
/// are deaf. Two, because one status may still be on its way when a poll answers.
#[derive(Debug, Default)]
struct DeafWatch {
    last: Option<(Vec<PromptId>, Vec<PromptId>)>,
    statuses_at_last: u64,
    strikes: u8,
}

impl DeafWatch {
    fn observe(&mut self, snap: &Snapshot, statuses_at_request: u64) -> bool {
        let ids = |v: &[crate::tracker::ActiveJob]| v.iter().map(|j| j.prompt_id.clone()).collect();
        let queue = (ids(&snap.running), ids(&snap.pending));
        let changed = self.last.as_ref().is_some_and(|l| *l != queue);
        if statuses_at_request != self.statuses_at_last {
            self.strikes = 0;
        } else if changed {
            self.strikes += 1;
        }
        self.last = Some(queue);
        self.statuses_at_last = statuses_at_request;
        self.strikes >= 2
    }
}

pub(crate) struct Supervisor {
    spec: InstanceSpec,
    api: Api,
    processor: Processor,
    sink: EventSink,
    status: watch::Sender<ConnectionStatus>,
    commands: mpsc::Receiver<Command>,
    info: ServerInfo,
    server: watch::Sender<Option<Connected>>,
}

impl Supervisor {
    pub(crate) fn new(
        spec: InstanceSpec,
        api: Api,
        sink: EventSink,
        status: watch::Sender<ConnectionStatus>,
        commands: mpsc::Receiver<Command>,
        server: watch::Sender<Option<Connected>>,
    ) -> Self {
        let processor = Processor::new(spec.client_id.clone());
        let info = ServerInfo {
            client_id: spec.client_id.clone(),
            ..ServerInfo::default()
        };
        Self {
            spec,
            api,
            processor,
            sink,
            status,
            commands,
            info,
            server,
        }
    }

    /// Hands the tracker the jobs the journal left unfinished and the timing it learned.
    pub(crate) fn restore(mut self, restored: crate::journal::Restore) -> Self {
        let tracker = self.processor.tracker_mut();
        tracker.set_timings(restored.timings);
        for r in restored.jobs {
            tracker.restore_job(&r.item, r.state, r.queued_at, r.started_at);
        }
        self
    }

    /// Applies a command that only touches the tracker; returns the others.
    async fn track(&mut self, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Expect(item) => {
                let events = self.processor.expect(&item, now_ms());
                self.publish(events).await;
                None
            }
            Command::Settle { expected, actual } => {
                let events = self.processor.settle(&expected, actual.as_ref(), now_ms());
                self.publish(events).await;
                None
            }
            other => Some(other),
        }
    }

    async fn set_status(
        &mut self,
        state: ConnectionState,
        detail: String,
        retry: Option<Duration>,
    ) {
        let status = ConnectionStatus {
            state,
            detail,
            retry_in_ms: retry.map(|d| d.as_millis() as u64),
        };
        if *self.status.borrow() == status {
            return;
        }
        self.status.send_replace(status.clone());
        self.sink.send(EventKind::Connection(status)).await;
    }

    pub(crate) async fn run(mut self) {
        if !self.spec.enabled {
            self.set_status(ConnectionState::Disabled, "disabled".into(), None)
                .await;
            // Wait for the handle to go away.
            while let Some(cmd) = self.commands.recv().await {
                if matches!(cmd, Command::Shutdown) {
                    return;
                }
            }
            return;
        }
        let mut attempt: u32 = 0;
        let mut auth_attempt: u32 = 0;
        let mut connected_before = false;
        // When the last working session ended (see `reconnect_delay`).
        let mut dropped_at: Option<Instant> = None;
        loop {
            // Announce the attempt, unless the last one failed: then the failure (with its
            // retry time) stays on display instead of flapping on every attempt.
            let failing = matches!(
                self.status.borrow().state,
                ConnectionState::Unreachable | ConnectionState::AuthFailed
            );
            if !failing {
                let (state, detail) = if connected_before {
                    (ConnectionState::Reconnecting, "reconnecting".to_owned())
                } else {
                    (
                        ConnectionState::Connecting,
                        format!("connecting to {}", self.spec.base_url),
                    )
                };
                self.set_status(state, detail, None).await;
            }
            let delay = match self.connect().await {
                Ok(socket) => {
                    auth_attempt = 0;
                    self.processor.connected(connected_before);
                    connected_before = true;
                    let started = Instant::now();
                    let end = self.session(socket).await;
                    dropped_at = Some(Instant::now());
                    self.processor.disconnected();
                    if started.elapsed() >= STABLE_SESSION {
                        attempt = 0;
                    }
                    match end {
                        SessionEnd::Shutdown => return,
                        SessionEnd::Dropped(reason) => {
                            self.after_drop(reason, &mut attempt, &mut auth_attempt)
                                .await
                        }
                    }
                }
                // Rejected credentials, or a certificate that is not the pinned one: both wait
                // for the user, so retries are slow.
                Err(e) if e.is_auth() => {
                    let msg = match e {
                        ApiError::Auth(m) | ApiError::BadCredentials(m) => m,
                        other => other.to_string(),
                    };
                    let d = auth_retry_delay(auth_attempt, rand::random());
                    auth_attempt = auth_attempt.saturating_add(1);
                    self.set_status(ConnectionState::AuthFailed, msg, Some(d))
                        .await;
                    d
                }
                Err(e) => {
                    let down_for = dropped_at.map(|t| t.elapsed());
                    let d = reconnect_delay(attempt, down_for, rand::random());
                    attempt = attempt.saturating_add(1);
                    self.set_status(ConnectionState::Unreachable, e.to_string(), Some(d))
                        .await;
                    d
                }
            };
            if self.wait(delay).await {
                return;
            }
        }
    }

    /// Tells "socket dropped" from "server down" with one HTTP probe, and picks the delay.
    async fn after_drop(
        &mut self,
        reason: String,
        attempt: &mut u32,
        auth_attempt: &mut u32,
    ) -> Duration {
        // Said at once: the probe may take a while against a server that stopped answering.
        self.set_status(
            ConnectionState::Reconnecting,
            format!("connection lost ({reason}); checking the server"),
            None,
        )
        .await;
        match self.api.probe().await {
            Ok(_) => {
                let d = reconnect_delay(*attempt, Some(Duration::ZERO), rand::random());
                *attempt = attempt.saturating_add(1);
                self.set_status(
                    ConnectionState::Reconnecting,
                    format!("socket dropped ({reason}); the server answers HTTP"),
                    Some(d),
                )
                .await;
                d
            }
            Err(e) if e.is_auth() => {
                let d = auth_retry_delay(*auth_attempt, rand::random());
                *auth_attempt = auth_attempt.saturating_add(1);
                self.set_status(ConnectionState::AuthFailed, e.to_string(), Some(d))
                    .await;
                d
            }
            Err(e) => {
                let d = reconnect_delay(*attempt, Some(Duration::ZERO), rand::random());
                *attempt = attempt.saturating_add(1);
                self.set_status(
                    ConnectionState::Unreachable,
                    format!("server down ({reason}; {e})"),
                    Some(d),
                )
                .await;
                d
            }
        }
    }

    /// Sleeps, unless told to stop; returns true when told to stop.
    async fn wait(&mut self, d: Duration) -> bool {
        let deadline = sleep(d);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return false,
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return true,
                    // "Refresh" while waiting means "try now".
                    Some(Command::Refresh) => return false,
                    Some(other) => {
                        self.track(other).await;
                    }
                },
            }
        }
    }

    /// Probe, detect capabilities, open the socket.
    async fn connect(&mut self) -> Result<Socket, ApiError> {
        let stats = self.api.probe().await?;
        self.info.version = stats.system.comfyui_version;
        let features = self.api.features().await?;
        self.info.feature_flags = features.is_some();
        self.info.jobs_api = self.api.has_jobs_api().await?;
        // Read on every connect: a server updated or restarted without the companion falls
        // back to observing other clients' jobs, and gets it back when it returns.
        self.info.companion = features
            .as_ref()
            .filter(|_| self.spec.use_companion)
            .and_then(comfy_protocol::http::companion_in);
        let socket = ws::connect(&self.spec).await?;
        self.server.send_replace(Some(Connected {
            api: self.api.clone(),
            info: self.info.clone(),
        }));
        Ok(socket)
    }

    async fn session(&mut self, mut socket: Socket) -> SessionEnd {
        // The first text frame is the only one the server reads for feature flags.
        let relay = self.info.companion.is_some();
        self.processor.tracker_mut().set_relay(relay);
        let flags = if relay {
            CLIENT_FEATURE_FLAGS_WITH_RELAY
        } else {
            CLIENT_FEATURE_FLAGS
        };
        if let Err(e) = socket.send(Message::text(flags)).await {
            return SessionEnd::Dropped(format!("send failed: {e}"));
        }
        self.set_status(
            ConnectionState::Connected,
            format!(
                "connected{}",
                self.info
                    .version
                    .as_deref()
                    .map(|v| format!(" to ComfyUI {v}"))
                    .unwrap_or_default()
            ),
            None,
        )
        .await;
        self.sink.send(EventKind::Server(self.info.clone())).await;
        if relay {
            // Connected mid-job: the companion's picture of it, through the same tracker path
            // as the relayed stream that follows.
            for frame in self.api.companion_catch_up().await {
                let (events, _) = self.processor.text(&frame, now_ms());
                self.publish(events).await;
            }
        }

        let mut http: JoinSet<HttpResult> = JoinSet::new();
        // One snapshot in flight at a time; another is owed when asked meanwhile (`Some(recent)`).
        let mut snapshot_again: Option<bool> = None;
        let mut outcomes_in_flight: HashSet<PromptId> = HashSet::new();
        let mut deaf = DeafWatch::default();
        self.spawn_snapshot(&mut http, true);
        let mut snapshot_in_flight = true;

        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let liveness = sleep(LIVENESS);
        tokio::pin!(liveness);
        let poll = sleep(POLL_BUSY);
        tokio::pin!(poll);
        let mut estimates =
            tokio::time::interval_at(Instant::now() + ESTIMATE_EVERY, ESTIMATE_EVERY);
        estimates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

        loop {
            let mut requests = Vec::new();
            tokio::select! {
                frame = socket.next() => {
                    liveness.as_mut().reset(Instant::now() + LIVENESS);
                    match frame {
                        Some(Ok(Message::Text(t))) => {
                            let (events, r) = self.processor.text(t.as_str(), now_ms());
                            self.publish(events).await;
                            requests = r;
                        }
                        Some(Ok(Message::Binary(b))) => {
                            let events = self.processor.binary(&b);
                            self.publish(events).await;
                        }
                        Some(Ok(Message::Close(c))) => {
                            let why = c.map(|c| format!("closed by server: {} {}", u16::from(c.code), c.reason))
                                .unwrap_or_else(|| "closed by server".into());
                            return SessionEnd::Dropped(why);
                        }
                        Some(Ok(_)) => {} // ping/pong: liveness only
                        Some(Err(e)) => return SessionEnd::Dropped(e.to_string()),
                        None => return SessionEnd::Dropped("connection closed".into()),
                    }
                }
                _ = ping.tick() => {
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        return SessionEnd::Dropped(format!("ping failed: {e}"));
                    }
                }
                _ = &mut liveness => {
                    // Half-open: say goodbye without waiting for an answer, then drop it.
                    let _ = tokio::time::timeout(Duration::from_millis(200), socket.close(None)).await;
                    return SessionEnd::Dropped(format!("no answer for {} s", LIVENESS.as_secs()));
                }
                _ = estimates.tick(), if self.processor.tracker().busy() => {
                    let events = self.processor.tick(now_ms());
                    self.publish(events).await;
                }
                _ = &mut poll => {
                    // The safety poll: cheap, without the recent-history read.
                    poll.as_mut().reset(Instant::now() + self.poll_every());
                    if snapshot_in_flight {
                        snapshot_again.get_or_insert(false);
                    } else {
                        self.spawn_snapshot(&mut http, false);
                        snapshot_in_flight = true;
                    }
                }
                Some(done) = http.join_next(), if !http.is_empty() => {
                    match done {
                        Ok(HttpResult::Snapshot(r, statuses)) => {
                            snapshot_in_flight = false;
                            if let Ok(snap) = &r {
                                if deaf.observe(snap, statuses) {
                                    return SessionEnd::Dropped(
                                        "the socket went deaf: the queue changed twice without a status message".into(),
                                    );
                                }
                            }
                            requests = self.on_snapshot(r).await;
                            if let Some(recent) = snapshot_again.take() {
                                self.spawn_snapshot(&mut http, recent);
                                snapshot_in_flight = true;
                            }
                        }
                        Ok(HttpResult::Outcome(id, r)) => {
                            outcomes_in_flight.remove(&id);
                            self.on_outcome(id, r).await;
                        }
                        Err(e) => {
                            tracing::warn!(instance = %self.spec.name, "HTTP task failed: {e}");
                            snapshot_in_flight = false;
                        }
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                        return SessionEnd::Shutdown;
                    }
                    Some(Command::Refresh) => requests.push(Request::Snapshot),
                    Some(other) => {
                        self.track(other).await;
                    }
                },
            }
            for r in requests {
                match r {
                    Request::Snapshot => {
                        // A `status` frame said the queue changed: also look for jobs that came
                        // and went between two polls.
                        poll.as_mut().reset(Instant::now() + self.poll_every());
                        if snapshot_in_flight {
                            snapshot_again = Some(true);
                        } else {
                            self.spawn_snapshot(&mut http, true);
                            snapshot_in_flight = true;
                        }
                    }
                    Request::Outcome(id) => {
                        if outcomes_in_flight.insert(id.clone()) {
                            let api = self.api.clone();
                            let jobs_api = self.info.jobs_api;
                            http.spawn(async move {
                                let r = api.outcome(&id, jobs_api).await;
                                HttpResult::Outcome(id, r)
                            });
                        }
                    }
                }
            }
        }
    }

    fn poll_every(&self) -> Duration {
        if self.processor.tracker().busy() {
            POLL_BUSY
        } else {
            POLL_IDLE
        }
    }

    fn spawn_snapshot(&mut self, http: &mut JoinSet<HttpResult>, include_recent: bool) {
        let api = self.api.clone();
        let jobs_api = self.info.jobs_api;
        let known: HashSet<PromptId> = self.processor.tracker().known_jobs();
        let statuses = self.processor.statuses_seen();
        // In the tracker's time, which never goes back: a clock set back must not make the
        // answer look older than the jobs it has to list.
        let requested_at = self.processor.tracker_mut().snapshot_requested(now_ms());
        http.spawn(async move {
            let snap = api.snapshot(jobs_api, &known, include_recent).await;
            HttpResult::Snapshot(snap.map(|s| Snapshot { requested_at, ..s }), statuses)
        });
    }

    async fn publish(&mut self, events: Vec<EventKind>) {
        for e in events {
            if let EventKind::ProtocolError { detail } = &e {
                tracing::warn!(instance = %self.spec.name, "undecodable {detail}");
            }
            self.sink.send(e).await;
        }
    }

    async fn on_snapshot(&mut self, r: Result<Snapshot, ApiError>) -> Vec<Request> {
        match r {
            Ok(snap) => {
                let (events, requests) = self.processor.snapshot(&snap, now_ms());
                self.publish(events).await;
                requests
            }
            Err(e) => {
                // The socket is the judge of the link; a failed poll is retried at the next one.
                tracing::warn!(instance = %self.spec.name, "queue poll failed: {e}");
                Vec::new()
            }
        }
    }

    async fn on_outcome(&mut self, id: PromptId, r: Result<Lookup, ApiError>) {
        let lookup = r.unwrap_or_else(|e| {
            tracing::warn!(instance = %self.spec.name, prompt_id = %id, "outcome lookup failed: {e}");
            Lookup::Unavailable
        });
        let events = self.processor.outcome(&id, lookup, now_ms());
        self.publish(events).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::ActiveJob;

    fn snap(running: &[&str]) -> Snapshot {
        Snapshot {
            running: running
                .iter()
                .map(|id| ActiveJob {
                    prompt_id: (*id).into(),
                    number: None,
                    client_id: None,
                    graph: None,
                    outputs_to_execute: None,
                    create_time: None,
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_queue_that_changes_twice_without_status_means_a_deaf_socket() {
        let mut w = DeafWatch::default();
        assert!(!w.observe(&snap(&["a"]), 3));
        assert!(
            !w.observe(&snap(&["b"]), 3),
            "one change may race its status"
        );
        assert!(w.observe(&snap(&["c"]), 3));
    }

    #[test]
    fn statuses_or_an_unchanged_queue_clear_the_suspicion() {
        let mut w = DeafWatch::default();
        w.observe(&snap(&["a"]), 1);
        assert!(!w.observe(&snap(&["b"]), 1));
        assert!(!w.observe(&snap(&["c"]), 2), "a status arrived");
        assert!(!w.observe(&snap(&["d"]), 2));
        assert!(!w.observe(&snap(&["d"]), 2), "no change, no strike");
        assert!(
            w.observe(&snap(&["e"]), 2),
            "two changes since the last status"
        );
    }
}
