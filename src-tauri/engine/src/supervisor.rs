//! One supervisor task per instance: connect, stay connected, and turn traffic into events.
//!
//! The loop is an explicit state machine (`ConnectionState`): probe HTTP, detect capabilities,
//! open the socket, run a session, and on any failure decide between "socket dropped" (HTTP still
//! answers: reconnect soon) and "server down" (back off), or "auth failed" (retry slowly). When
//! HTTP answers but the socket cannot be opened (a proxy that refuses the upgrade or never
//! completes it), the session runs on HTTP alone (`HttpOnly`): the queue and history are polled
//! at a steady rate, actions work, our own jobs are observed like everyone else's, and the socket
//! is tried again in the background; once it opens, the same session goes live. HTTP reads
//! during a session run as child tasks (outcome lookups a few at a time) so the socket is always
//! read promptly; a slow reader slows the server for every client (protocol §8.10).

use crate::api::{Api, ApiError};
use crate::backoff::{auth_retry_delay, reconnect_delay};
use crate::event::{ConnectionState, ConnectionStatus, EventKind, ServerInfo};
use crate::instance::InstanceSpec;
use crate::processor::Processor;
use crate::sink::EventSink;
use crate::tracker::{ActiveJob, Lookup, Millis, Request, Snapshot};
use crate::ws::{self, Socket, Wire};
use comfy_protocol::{PromptId, CLIENT_FEATURE_FLAGS, CLIENT_FEATURE_FLAGS_WITH_RELAY};
use futures_util::{SinkExt, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Keepalive: proxies cut idle sockets and ComfyUI never pings.
pub const PING_EVERY: Duration = Duration::from_secs(3);
/// A link that received no byte (pong included) for this long is dead: detected within 10 s.
/// Only time spent listening counts: a wait for the host to take events is not the link's
/// silence.
pub const LIVENESS: Duration = Duration::from_secs(8);
/// Safety poll of the queue while work is pending or running, and while idle.
pub const POLL_BUSY: Duration = Duration::from_secs(2);
pub const POLL_IDLE: Duration = Duration::from_secs(10);
/// The queue poll while only HTTP works: nothing else says when the queue changed.
pub const POLL_HTTP_ONLY: Duration = Duration::from_secs(2);
/// Outcome lookups in flight at once. After a restart, or with many journal entries restored,
/// every vanished job wants one, against a server that has just come back; the rest wait.
pub const MAX_LOOKUPS: usize = 4;
/// How often estimates are looked at while anything is queued (they move with the clock; only
/// the ones that moved noticeably are published).
pub const ESTIMATE_EVERY: Duration = Duration::from_secs(1);
/// A session shorter than this does not reset the backoff, nor start the restart window of
/// `reconnect_delay` again: a server that accepts the socket and drops it backs off.
const STABLE_SESSION: Duration = Duration::from_secs(10);
/// Failed polls in a row that end a session on HTTP alone (one may be a hiccup).
const HTTP_ONLY_FAILURES: u32 = 2;

#[derive(Debug)]
pub(crate) enum Command {
    /// Close the socket cleanly and stop.
    Shutdown,
    /// Re-read the queue now (on HTTP alone: and try the socket now).
    Refresh,
    /// We are submitting this job: follow it before the server answers.
    Expect(Box<ActiveJob>),
    /// The server answered the submission of `expected` with `actual` (or refused it).
    Settle {
        expected: PromptId,
        actual: Option<PromptId>,
    },
}

/// What actions need to reach a server that answers (live or on HTTP alone): its client (with
/// the route prefix the probe settled) and what it can do.
#[derive(Debug, Clone)]
pub(crate) struct Connected {
    pub(crate) api: Api,
    pub(crate) info: ServerInfo,
}

enum SessionEnd {
    Shutdown,
    Dropped(String),
}

/// How a session starts: with the socket, or on HTTP alone (and why the socket failed).
enum Opened {
    Socket(Box<ws::Connection>),
    HttpOnly(ApiError),
}

enum HttpResult {
    /// With the number of `status` messages seen when it was requested.
    Snapshot(Result<Snapshot, ApiError>, u64),
    Outcome(PromptId, Result<Lookup, ApiError>),
    /// A try at the socket while running on HTTP alone.
    Socket(Result<Box<ws::Connection>, ApiError>),
}

/// Outcome lookups: each job once, at most [`MAX_LOOKUPS`] in flight, the rest waiting in the
/// order they were asked for.
#[derive(Debug, Default)]
struct Lookups {
    in_flight: HashSet<PromptId>,
    waiting: VecDeque<PromptId>,
}

impl Lookups {
    fn want(&mut self, id: PromptId) {
        if !self.in_flight.contains(&id) && !self.waiting.contains(&id) {
            self.waiting.push_back(id);
        }
    }

    /// The next lookup to start, if one may start now.
    fn start(&mut self) -> Option<PromptId> {
        if self.in_flight.len() >= MAX_LOOKUPS {
            return None;
        }
        let id = self.waiting.pop_front()?;
        self.in_flight.insert(id.clone());
        Some(id)
    }

    fn done(&mut self, id: &PromptId) {
        self.in_flight.remove(id);
    }
}

/// The next frame of the socket, when there is one (never, on HTTP alone).
async fn next_frame(socket: &mut Option<Socket>) -> Option<Result<Message, WsError>> {
    match socket {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the socket's frame guard refused a frame.
async fn refusal(wire: &Option<Arc<Wire>>) {
    match wire {
        Some(w) => w.refusal().await,
        None => std::future::pending().await,
    }
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
            tracker.restore_job(&r.item, r.state, r.queued_at, r.started_at, now_ms());
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
        // When the outage began (see `reconnect_delay`): the end of the last stable session, or
        // of the first short one after it. Short sessions in a row do not start it again: a
        // server that accepts the socket and drops it at once is retried every second for the
        // restart window, then backs off, instead of every second forever.
        let mut outage_since: Option<Instant> = None;
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
                Ok(opened) => {
                    auth_attempt = 0;
                    self.processor.connected(connected_before);
                    connected_before = true;
                    let started = Instant::now();
                    let end = self.session(opened).await;
                    self.processor.disconnected();
                    let stable = started.elapsed() >= STABLE_SESSION;
                    if stable {
                        attempt = 0;
                    }
                    if stable || outage_since.is_none() {
                        outage_since = Some(Instant::now());
                    }
                    match end {
                        SessionEnd::Shutdown => return,
                        SessionEnd::Dropped(reason) => {
                            let down_for = outage_since.map(|t| t.elapsed());
                            self.after_drop(reason, down_for, &mut attempt, &mut auth_attempt)
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
                    let down_for = outage_since.map(|t| t.elapsed());
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
    /// `down_for`: how long the outage has lasted.
    async fn after_drop(
        &mut self,
        reason: String,
        down_for: Option<Duration>,
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
                let d = reconnect_delay(*attempt, down_for, rand::random());
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
                let d = reconnect_delay(*attempt, down_for, rand::random());
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

    /// Probe, detect capabilities, open the socket. A socket that cannot be opened while HTTP
    /// still answers means HTTP alone.
    async fn connect(&mut self) -> Result<Opened, ApiError> {
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
        let opened = match ws::connect(&self.spec).await {
            Ok(connection) => Opened::Socket(Box::new(connection)),
            Err(e) => {
                // A server going down between the probe and the socket is not a socket problem.
                self.api.probe().await?;
                Opened::HttpOnly(e)
            }
        };
        self.server.send_replace(Some(Connected {
            api: self.api.clone(),
            info: self.info.clone(),
        }));
        Ok(opened)
    }

    /// The socket is open: say hello with our feature flags (the first text frame is the only
    /// one the server reads for them), follow our jobs live (and other clients' through the
    /// companion), tell the host.
    async fn go_live(
        &mut self,
        connection: Box<ws::Connection>,
    ) -> Result<(Socket, Arc<Wire>), String> {
        let ws::Connection { mut socket, wire } = *connection;
        let relay = self.info.companion.is_some();
        let tracker = self.processor.tracker_mut();
        tracker.set_relay(relay);
        tracker.set_live(true);
        let flags = if relay {
            CLIENT_FEATURE_FLAGS_WITH_RELAY
        } else {
            CLIENT_FEATURE_FLAGS
        };
        if let Err(e) = socket.send(Message::text(flags)).await {
            return Err(format!("send failed: {e}"));
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
        Ok((socket, wire))
    }

    /// Runs on HTTP alone: our jobs are observed like everyone else's, the companion's relay is
    /// off (it needs the socket), and the status says why, with when the socket is tried again
    /// (`attempts` failed tries so far; slowly after a refusal that looks deliberate).
    async fn http_only(&mut self, why: &ApiError, attempts: u32) -> Duration {
        let entering = self.status.borrow().state != ConnectionState::HttpOnly;
        let tracker = self.processor.tracker_mut();
        tracker.set_live(false);
        tracker.set_relay(false);
        let d = if why.is_auth() {
            auth_retry_delay(attempts, rand::random())
        } else {
            reconnect_delay(attempts, None, rand::random())
        };
        let why = why.to_string();
        let why = why.strip_prefix("socket: ").unwrap_or(&why);
        // HTTP got through with these very credentials: a 401/403 on the upgrade alone is a
        // proxy refusing WebSockets, not rejected credentials.
        let why = match why.strip_prefix("auth failed: ") {
            Some(refusal) => format!("upgrade refused: {refusal}"),
            None => why.to_owned(),
        };
        self.set_status(
            ConnectionState::HttpOnly,
            format!("HTTP only: no live progress or previews (socket: {why})"),
            Some(d),
        )
        .await;
        if entering {
            self.sink.send(EventKind::Server(self.info.clone())).await;
            // Jobs followed until now are observed from here on: say so.
            let views = self.processor.tracker().active_jobs();
            let events = views
                .into_iter()
                .map(|j| EventKind::Job(Box::new(j)))
                .collect();
            self.publish(events).await;
        }
        d
    }

    async fn session(&mut self, opened: Opened) -> SessionEnd {
        let mut http: JoinSet<HttpResult> = JoinSet::new();
        // One snapshot in flight at a time; another is owed when asked meanwhile (`Some(recent)`).
        let mut snapshot_again: Option<bool> = None;
        let mut lookups = Lookups::default();
        let mut deaf = DeafWatch::default();
        // The socket while live, and what its reading side sees.
        let mut socket: Option<Socket> = None;
        let mut wire: Option<Arc<Wire>> = None;
        // On HTTP alone: failed tries at the socket, whether one is under way, failed polls in
        // a row.
        let mut socket_attempts: u32 = 0;
        let mut socket_trying = false;
        let mut failed_polls: u32 = 0;
        let socket_retry = sleep(Duration::ZERO);
        tokio::pin!(socket_retry);
        match opened {
            Opened::Socket(connection) => match self.go_live(connection).await {
                Ok((s, w)) => {
                    socket = Some(s);
                    wire = Some(w);
                }
                Err(reason) => return SessionEnd::Dropped(reason),
            },
            Opened::HttpOnly(why) => {
                let d = self.http_only(&why, 0).await;
                socket_retry.as_mut().reset(Instant::now() + d);
            }
        }

        self.spawn_snapshot(&mut http, true);
        let mut snapshot_in_flight = true;

        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let liveness = sleep(LIVENESS);
        tokio::pin!(liveness);
        let poll = sleep(self.poll_every(socket.is_some()));
        tokio::pin!(poll);
        let mut estimates =
            tokio::time::interval_at(Instant::now() + ESTIMATE_EVERY, ESTIMATE_EVERY);
        estimates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        self.sink.take_waited();

        loop {
            let mut requests = Vec::new();
            tokio::select! {
                frame = next_frame(&mut socket), if socket.is_some() => {
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
                () = refusal(&wire), if wire.is_some() => {
                    // Oversized frames the socket dropped unread: each one a protocol error,
                    // like any frame that cannot be decoded; the connection stays up.
                    let refused = wire.as_ref().map(|w| w.take_refusals()).unwrap_or_default();
                    let events = refused
                        .into_iter()
                        .map(|detail| EventKind::ProtocolError { detail })
                        .collect();
                    self.publish(events).await;
                }
                _ = ping.tick(), if socket.is_some() => {
                    if let Some(s) = socket.as_mut() {
                        if let Err(e) = s.send(Message::Ping(Default::default())).await {
                            return SessionEnd::Dropped(format!("ping failed: {e}"));
                        }
                    }
                }
                () = &mut liveness, if socket.is_some() => {
                    // Bytes of a frame still arriving are traffic too (a large preview on a
                    // slow link takes longer than the limit).
                    let heard = wire.as_ref().map(|w| w.last_byte() + LIVENESS);
                    match heard.filter(|due| *due > Instant::now()) {
                        Some(due) => liveness.as_mut().reset(due),
                        None => {
                            // Half-open: say goodbye without waiting for an answer, then drop it.
                            if let Some(s) = socket.as_mut() {
                                let _ = tokio::time::timeout(Duration::from_millis(200), s.close(None)).await;
                            }
                            return SessionEnd::Dropped(format!("no answer for {} s", LIVENESS.as_secs()));
                        }
                    }
                }
                () = &mut socket_retry, if socket.is_none() && !socket_trying => {
                    socket_trying = true;
                    let spec = self.spec.clone();
                    http.spawn(async move { HttpResult::Socket(ws::connect(&spec).await.map(Box::new)) });
                }
                _ = estimates.tick(), if self.processor.tracker().busy() => {
                    let events = self.processor.tick(now_ms());
                    self.publish(events).await;
                }
                () = &mut poll => {
                    // The safety poll: cheap, without the recent-history read, unless there is
                    // no socket to say when jobs come and go.
                    let live = socket.is_some();
                    poll.as_mut().reset(Instant::now() + self.poll_every(live));
                    if snapshot_in_flight {
                        let again = snapshot_again.get_or_insert(false);
                        *again |= !live;
                    } else {
                        self.spawn_snapshot(&mut http, !live);
                        snapshot_in_flight = true;
                    }
                }
                Some(done) = http.join_next(), if !http.is_empty() => {
                    match done {
                        Ok(HttpResult::Snapshot(r, statuses)) => {
                            snapshot_in_flight = false;
                            if socket.is_some() {
                                if let Ok(snap) = &r {
                                    if deaf.observe(snap, statuses) {
                                        return SessionEnd::Dropped(
                                            "the socket went deaf: the queue changed twice without a status message".into(),
                                        );
                                    }
                                }
                            } else {
                                // On HTTP alone the polls are the judge of the link.
                                match &r {
                                    Ok(_) => failed_polls = 0,
                                    Err(e) if e.is_auth() => {
                                        return SessionEnd::Dropped(format!("HTTP refused: {e}"));
                                    }
                                    // An answer too large is the queue's size, not the
                                    // link's health (it is warned about); anything else (no
                                    // answer, a proxy's 502, an error page) counts.
                                    Err(ApiError::TooLarge { .. }) => {}
                                    Err(e) => {
                                        failed_polls += 1;
                                        if failed_polls >= HTTP_ONLY_FAILURES {
                                            return SessionEnd::Dropped(format!("HTTP failed: {e}"));
                                        }
                                    }
                                }
                            }
                            requests = self.on_snapshot(r).await;
                            if let Some(recent) = snapshot_again.take() {
                                self.spawn_snapshot(&mut http, recent || socket.is_none());
                                snapshot_in_flight = true;
                            }
                        }
                        Ok(HttpResult::Outcome(id, r)) => {
                            lookups.done(&id);
                            self.on_outcome(id, r).await;
                        }
                        Ok(HttpResult::Socket(Ok(connection))) => {
                            socket_trying = false;
                            // The socket opened at last: the same session goes on, live. New
                            // binary layouts are negotiated; nothing was missed meanwhile (the
                            // polls went on), so this is no reconnect.
                            self.processor.connected(false);
                            match self.go_live(connection).await {
                                Ok((s, w)) => {
                                    socket = Some(s);
                                    wire = Some(w);
                                }
                                Err(reason) => return SessionEnd::Dropped(reason),
                            }
                            deaf = DeafWatch::default();
                            failed_polls = 0;
                            ping.reset();
                            liveness.as_mut().reset(Instant::now() + LIVENESS);
                            requests.push(Request::Snapshot);
                        }
                        Ok(HttpResult::Socket(Err(e))) => {
                            socket_trying = false;
                            socket_attempts = socket_attempts.saturating_add(1);
                            let d = self.http_only(&e, socket_attempts).await;
                            socket_retry.as_mut().reset(Instant::now() + d);
                        }
                        Err(e) => {
                            // Which task failed is unknown: let snapshots and socket tries
                            // start again.
                            tracing::warn!(instance = %self.spec.name, "HTTP task failed: {e}");
                            snapshot_in_flight = false;
                            socket_trying = false;
                        }
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => {
                        if let Some(s) = socket.as_mut() {
                            let _ = tokio::time::timeout(Duration::from_secs(1), s.close(None)).await;
                        }
                        return SessionEnd::Shutdown;
                    }
                    Some(Command::Refresh) => {
                        requests.push(Request::Snapshot);
                        if socket.is_none() && !socket_trying {
                            socket_retry.as_mut().reset(Instant::now());
                        }
                    }
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
                        poll.as_mut()
                            .reset(Instant::now() + self.poll_every(socket.is_some()));
                        if snapshot_in_flight {
                            snapshot_again = Some(true);
                        } else {
                            self.spawn_snapshot(&mut http, true);
                            snapshot_in_flight = true;
                        }
                    }
                    Request::Outcome(id) => lookups.want(id),
                }
            }
            while let Some(id) = lookups.start() {
                let api = self.api.clone();
                let jobs_api = self.info.jobs_api;
                http.spawn(async move {
                    let r = api.outcome(&id, jobs_api).await;
                    HttpResult::Outcome(id, r)
                });
            }
            // Time spent waiting for the host to take events was not spent listening.
            let waited = self.sink.take_waited();
            if !waited.is_zero() {
                let due = liveness.deadline() + waited;
                liveness.as_mut().reset(due);
            }
        }
    }

    fn poll_every(&self, live: bool) -> Duration {
        if !live {
            POLL_HTTP_ONLY
        } else if self.processor.tracker().busy() {
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
    fn lookups_start_a_few_at_a_time_each_job_once_in_order() {
        let mut l = Lookups::default();
        for id in ["a", "b", "a", "c", "d", "e", "f"] {
            l.want(id.into());
        }
        let started: Vec<PromptId> = std::iter::from_fn(|| l.start()).collect();
        assert_eq!(started, ["a", "b", "c", "d"].map(PromptId::from));
        l.want("b".into());
        assert_eq!(l.start(), None, "b is in flight, the rest wait");
        l.done(&"c".into());
        assert_eq!(l.start(), Some("e".into()));
        assert_eq!(l.start(), None);
        l.done(&"a".into());
        l.done(&"b".into());
        assert_eq!(l.start(), Some("f".into()));
        assert_eq!(l.start(), None);
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
