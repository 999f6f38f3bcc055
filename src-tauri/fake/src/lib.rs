//! A fake ComfyUI server for tests, end-to-end runs and benchmarks.
//!
//! It speaks the real protocol over real sockets: HTTP and the `/ws` WebSocket on one port
//! (`127.0.0.1:0` by default), every route at `/X` and `/api/X`, the routing rule of who receives
//! which message, binary preview frames with real JPEG/PNG bytes, the job lifecycle in the
//! canonical message order, validation errors, interrupts, the jobs API and the known quirks
//! (heap-ordered `queue_pending`, the sid-reuse bug). Workflows are interpreted like ComfyUI runs
//! the test nodes of `shared/comfyui-peer/comfy_test_nodes`, so the same workflow works against
//! the fake and a real server. On top of that a test can misbehave on purpose: drop or stall
//! sockets, restart, go down, change authentication, flood a socket, hold its queue, start a job
//! the moment a request to remove it arrives (a lost cancel race), or replay a recorded trace.
//!
//! For benchmarks, [`FakeComfy::start_load`] submits jobs on behalf of the connected monitor at
//! a configured rate ([`Load`]: steps, progress rate, preview fps and size, node text and custom
//! events), and a [`SendLog`] in [`FakeConfig::send_log`] stamps every progress frame when it is
//! written to a socket and every HTTP request when it arrives, so the client's latency can be
//! measured against it.
//!
//! In companion mode ([`FakeConfig::companion`], [`FakeComfy::set_companion`]) it also speaks
//! the comfy-monitor companion protocol (`docs/companion-protocol.md`): execution messages and
//! previews of any job are copied to the sockets that opted in, and
//! `GET /comfy_monitor/v1/state` describes the running job.
//!
//! It must stay a test double: no persistence, no real image processing, no models.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fake_comfyui::{FakeComfy, FakeConfig};
//! let fake = FakeComfy::start(FakeConfig::default()).await?;
//! // ... connect a client to fake.ws_url("my-sid") and let it send its feature flags ...
//! let sid = fake.wait_for_client(Some("my-sid")).await;
//! let id = fake.submit(
//!     serde_json::json!({
//!         "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 4}},
//!         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
//!     }),
//!     Some(&sid),
//! );
//! fake.wait_idle().await;
//! # let _ = id; Ok(()) }
//! ```

mod auth;
mod busy;
mod catalog;
mod companion;
mod frames;
mod graph;
mod http;
mod images;
mod jobs;
mod json;
mod load;
mod misbehave;
mod replay;
mod sendlog;
mod state;
mod worker;
mod ws;

pub(crate) use json::obj;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::json::J;
use crate::state::{Outbound, Reply, Shared, State};

pub use load::Load;
pub use misbehave::HttpFault;
pub use replay::{RecordedHttp, ReplayScript, TraceError};
pub use sendlog::SendLog;

/// Which ComfyUI generation the fake imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ServerVersion {
    /// Before 0.3.45: no `/features`, no `feature_flags` reply, no `progress_state`, only type-1
    /// previews, no client-chosen prompt id, no targeted interrupt, no jobs API, no
    /// `comfyui_version` in `/system_stats`.
    Legacy,
    /// Like the recorded 0.3.64: feature flags, type-4 previews and `progress_state` to the
    /// submitter, client prompt ids accepted verbatim, targeted interrupt, every progress step
    /// sent; no jobs API, no cancel endpoints.
    V0_3_64,
    /// Like the recorded 0.26.0: everything of 0.3.64 plus the jobs API and its cancel endpoints,
    /// canonical-UUID prompt ids, progress throttling, `extra_data.create_time`,
    /// `extra_data.preview_method`, the `cancelled` status.
    #[default]
    V0_26,
}

impl ServerVersion {
    /// `system.comfyui_version`, absent on legacy servers.
    pub fn comfyui_version(self) -> Option<&'static str> {
        match self {
            ServerVersion::Legacy => None,
            ServerVersion::V0_3_64 => Some("0.3.64"),
            ServerVersion::V0_26 => Some("0.26.0"),
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerVersion::Legacy => "legacy",
            ServerVersion::V0_3_64 => "0.3.64",
            ServerVersion::V0_26 => "0.26",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown server version {0:?}: expected legacy, 0.3.64 or 0.26")]
pub struct UnknownVersion(String);

impl FromStr for ServerVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<ServerVersion, UnknownVersion> {
        match s.trim().trim_start_matches('v') {
            "legacy" => Ok(ServerVersion::Legacy),
            "0.3.64" => Ok(ServerVersion::V0_3_64),
            "0.26" | "0.26.0" => Ok(ServerVersion::V0_26),
            _ => Err(UnknownVersion(s.to_string())),
        }
    }
}

/// An authentication layer in front of the server. It applies to every HTTP route and to the
/// WebSocket upgrade, which is rejected with the same status before upgrading.
#[derive(Clone, PartialEq, Eq)]
pub enum FakeAuth {
    /// `Authorization: Bearer <token>`, else 401 with `WWW-Authenticate: Bearer`.
    Bearer(String),
    /// `Authorization: Basic ...`, else 401 with `WWW-Authenticate: Basic`.
    Basic { user: String, password: String },
    /// A custom header with an exact value, else 403.
    Header { name: String, value: String },
    /// ComfyUI-Login style: `?token=<t>` or `Authorization: Bearer <t>`, else 302 to `/login`.
    QueryToken(String),
}

impl fmt::Debug for FakeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets, not even fake ones: logs get copied around.
        f.write_str(match self {
            FakeAuth::Bearer(_) => "FakeAuth::Bearer(..)",
            FakeAuth::Basic { .. } => "FakeAuth::Basic { .. }",
            FakeAuth::Header { .. } => "FakeAuth::Header { .. }",
            FakeAuth::QueryToken(_) => "FakeAuth::QueryToken(..)",
        })
    }
}

/// How to start a fake server.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub version: ServerVersion,
    /// `None` = open, like core ComfyUI.
    pub auth: Option<FakeAuth>,
    pub bind: SocketAddr,
    /// Time per sampler step (and per `MonitorTestMessages` iteration) when the workflow does
    /// not set `step_delay_ms` / `delay_ms`.
    pub step_delay: Duration,
    /// Where to stamp progress writes, received requests (and previews, if the log asks for
    /// them); `None` = no stamping.
    pub send_log: Option<SendLog>,
    /// Start in companion mode (see [`FakeComfy::set_companion`]).
    pub companion: bool,
    /// How the `/ws` upgrade is answered (see [`FakeComfy::set_socket_mode`]).
    pub socket: SocketMode,
}

impl Default for FakeConfig {
    fn default() -> FakeConfig {
        FakeConfig {
            version: ServerVersion::V0_26,
            auth: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            step_delay: Duration::from_millis(20),
            send_log: None,
            companion: false,
            socket: SocketMode::Accept,
        }
    }
}

/// How the fake answers the `/ws` upgrade once past authentication: as ComfyUI does, or as a
/// proxy in front of it that does not pass WebSockets while HTTP goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SocketMode {
    /// Upgrade, as ComfyUI does.
    #[default]
    Accept,
    /// Answer with this status instead of upgrading: 400 or 404 (a proxy that does not pass
    /// WebSockets), 401 or 403 (one that refuses them), 3xx (a redirect to `/login`).
    Refuse(u16),
    /// Read the upgrade request and never answer it (the connection stays open).
    Hang,
    /// Upgrade, then close at once with a close frame (1011): a server or proxy that accepts
    /// the socket and drops it.
    AcceptThenClose,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown socket mode {0:?}: expected accept, refuse-STATUS, hang or close")]
pub struct UnknownSocketMode(String);

impl FromStr for SocketMode {
    type Err = UnknownSocketMode;

    /// `accept`, `refuse-403` (any status from 300 to 599), `hang`, `close`.
    fn from_str(s: &str) -> Result<SocketMode, UnknownSocketMode> {
        let bad = || UnknownSocketMode(s.to_string());
        match s.trim() {
            "accept" => Ok(SocketMode::Accept),
            "hang" => Ok(SocketMode::Hang),
            "close" => Ok(SocketMode::AcceptThenClose),
            other => {
                let status: u16 = other
                    .strip_prefix("refuse-")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                if (300..600).contains(&status) {
                    Ok(SocketMode::Refuse(status))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// One HTTP request (or WebSocket upgrade) the fake answered.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    /// Path with query string.
    pub path: String,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The status answered (101 for an accepted WebSocket upgrade).
    pub status: u16,
    pub body: Vec<u8>,
}

impl RequestRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A submission as another client would POST it to `/prompt`.
#[derive(Clone, Debug, Default)]
pub struct SubmitOptions {
    /// The API-format graph. Its key order is whatever `serde_json` gives (sorted keys unless
    /// `preserve_order` is on); POST over HTTP to keep an exact order.
    pub prompt: serde_json::Value,
    pub client_id: Option<String>,
    pub prompt_id: Option<String>,
    pub front: bool,
    pub number: Option<f64>,
    pub extra_data: Option<serde_json::Value>,
    pub partial_execution_targets: Option<Vec<String>>,
}

/// The 200 answer of an accepted submission.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub prompt_id: String,
    pub number: serde_json::Value,
    pub node_errors: serde_json::Value,
}

/// A submission the server refused, with the body it answered.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the fake server refused the prompt with HTTP {status}: {body}")]
pub struct SubmitRejected {
    pub status: u16,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Tasks {
    accept: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    busy: Option<JoinHandle<()>>,
    load: Option<JoinHandle<()>>,
}

/// A running fake server. Dropping it stops the server and every task it started; sockets are
/// cut without a close frame.
pub struct FakeComfy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    version: ServerVersion,
    tasks: Mutex<Tasks>,
}

impl FakeComfy {
    /// Binds `config.bind` and starts serving.
    pub async fn start(config: FakeConfig) -> io::Result<FakeComfy> {
        FakeComfy::launch(config, None).await
    }

    /// Starts a server that plays a recorded trace: every socket that connects receives the
    /// frames the trace's client received, in order, and then stays open; GETs of a recorded
    /// path get the recorded answer. Everything else behaves like [`FakeComfy::start`].
    pub async fn start_replay(config: FakeConfig, script: ReplayScript) -> io::Result<FakeComfy> {
        FakeComfy::launch(config, Some(script)).await
    }

    /// [`FakeComfy::start_replay`] with a trace file and the name of its recorded client.
    pub async fn start_replay_file(
        config: FakeConfig,
        trace: impl AsRef<Path>,
        client: &str,
    ) -> io::Result<FakeComfy> {
        let script = ReplayScript::load(trace, client)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        FakeComfy::start_replay(config, script).await
    }

    async fn launch(config: FakeConfig, script: Option<ReplayScript>) -> io::Result<FakeComfy> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let mut state = State::new(config.version, config.auth, config.step_delay, addr.port());
        let replaying = script.is_some();
        state.replay = script.map(Arc::new);
        state.send_log = config.send_log;
        state.companion = config.companion;
        state.socket_mode = config.socket;
        let shared = Shared::new(state);
        let router = http::router(shared.clone(), config.version);
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), router));
        let worker = (!replaying).then(|| tokio::spawn(worker::run(shared.clone(), 0)));
        Ok(FakeComfy {
            shared,
            addr,
            version: config.version,
            tasks: Mutex::new(Tasks {
                accept: Some(accept),
                worker,
                busy: None,
                load: None,
            }),
        })
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/ws?clientId=<client_id>`
    pub fn ws_url(&self, client_id: &str) -> String {
        format!("ws://{}/ws?clientId={client_id}", self.addr)
    }

    pub fn version(&self) -> ServerVersion {
        self.version
    }

    /// Queues a workflow as if another client POSTed it; `client_id: None` submits without one.
    /// Returns the prompt id.
    ///
    /// # Panics
    ///
    /// When the server rejects the workflow (a test bug); use [`FakeComfy::submit_with`] to see
    /// the rejection instead.
    pub fn submit(&self, prompt: serde_json::Value, client_id: Option<&str>) -> String {
        let options = SubmitOptions {
            prompt,
            client_id: client_id.map(str::to_string),
            ..SubmitOptions::default()
        };
        match self.submit_with(options) {
            Ok(done) => done.prompt_id,
            Err(rejected) => panic!("FakeComfy::submit: {rejected}"),
        }
    }

    /// Queues a workflow with every `POST /prompt` option; the answer is what HTTP would say.
    pub fn submit_with(&self, options: SubmitOptions) -> Result<Submitted, SubmitRejected> {
        let mut body = obj! { "prompt" => J::from_value(&options.prompt) };
        if let Some(client_id) = options.client_id {
            body.set("client_id", client_id);
        }
        if let Some(prompt_id) = options.prompt_id {
            body.set("prompt_id", prompt_id);
        }
        if options.front {
            body.set("front", true);
        }
        if let Some(number) = options.number {
            body.set("number", number);
        }
        if let Some(extra) = &options.extra_data {
            body.set("extra_data", J::from_value(extra));
        }
        if let Some(targets) = options.partial_execution_targets {
            body.set("partial_execution_targets", targets);
        }
        let answer = self
            .shared
            .lock()
            .post_prompt(body.to_py_string().as_bytes());
        match answer {
            Reply::Json(200, ok) => Ok(Submitted {
                prompt_id: ok
                    .get("prompt_id")
                    .and_then(J::as_str)
                    .unwrap_or_default()
                    .to_string(),
                number: ok.get("number").map(J::to_value).unwrap_or_default(),
                node_errors: ok.get("node_errors").map(J::to_value).unwrap_or_default(),
            }),
            Reply::Json(status, body) => Err(SubmitRejected {
                status,
                body: body.to_value(),
            }),
            Reply::Empty(status) => Err(SubmitRejected {
                status,
                body: serde_json::Value::Null,
            }),
            Reply::ServerError => Err(SubmitRejected {
                status: 500,
                body: serde_json::Value::Null,
            }),
        }
    }

    /// The running prompt id and the pending ids in run order.
    pub fn queue_snapshot(&self) -> (Option<String>, Vec<String>) {
        let s = self.shared.lock();
        (
            s.running.as_ref().map(|r| r.item.prompt_id.clone()),
            s.pending_sorted()
                .into_iter()
                .map(|i| i.prompt_id.clone())
                .collect(),
        )
    }

    /// Prompt ids in `/history`, oldest first.
    pub fn history_ids(&self) -> Vec<String> {
        self.shared
            .lock()
            .history
            .iter()
            .map(|e| e.item.prompt_id.clone())
            .collect()
    }

    /// Sids of the sockets in the routing table (what broadcasts reach).
    pub fn connected_clients(&self) -> Vec<String> {
        let mut sids: Vec<String> = self.shared.lock().routes.keys().cloned().collect();
        sids.sort();
        sids
    }

    /// Resolves once a socket whose sid starts with `sid_prefix` (any socket for `None`) is
    /// registered and its first JSON text frame (normally the feature flags) has been processed,
    /// so a job submitted afterwards uses the negotiated preview format. Returns its sid.
    pub async fn wait_for_client(&self, sid_prefix: Option<&str>) -> String {
        self.wait_for_conn(sid_prefix, true).await
    }

    /// Resolves once a matching socket is registered and its hello `status` queued, whether or
    /// not it ever sends anything. Returns its sid.
    pub async fn wait_for_socket(&self, sid_prefix: Option<&str>) -> String {
        self.wait_for_conn(sid_prefix, false).await
    }

    async fn wait_for_conn(&self, sid_prefix: Option<&str>, first_frame: bool) -> String {
        let mut changes = self.shared.lock().signals.clients.subscribe();
        loop {
            {
                let s = self.shared.lock();
                let found = s.conns.values().find(|c| {
                    sid_prefix.is_none_or(|p| c.sid.starts_with(p))
                        && (!first_frame || c.first_frame_done)
                });
                if let Some(conn) = found {
                    return conn.sid.clone();
                }
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once no socket is registered under `sid` (its routing entry is gone, for
    /// example because a displaced socket with the same sid closed).
    pub async fn wait_until_unregistered(&self, sid: &str) {
        let mut changes = self.shared.lock().signals.clients.subscribe();
        loop {
            if !self.shared.lock().routes.contains_key(sid) {
                return;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when nothing is pending and nothing runs (after the last job's end messages
    /// were queued to the sockets).
    pub async fn wait_idle(&self) {
        let changes = self.shared.lock().signals.queue.subscribe();
        let idle = |s: &State| s.pending.is_empty() && s.running.is_none();
        if !self.shared.until_queue(changes, idle).await {
            std::future::pending::<()>().await;
        }
    }

    /// Broadcasts `{"type": kind, "data": data}` like an extension (`crystools.monitor`, ...).
    pub fn broadcast_json(&self, kind: &str, data: serde_json::Value) {
        self.shared
            .lock()
            .send_event(kind, J::from_value(&data), None);
    }

    /// A raw text frame to every registered socket (malformed JSON, unknown shapes, ...).
    pub fn send_raw_text(&self, text: &str) {
        self.shared.lock().broadcast_text(text);
    }

    /// A raw binary frame to every registered socket (truncated headers, unknown types, ...).
    pub fn send_raw_binary(&self, bytes: Vec<u8>) {
        self.shared
            .lock()
            .broadcast_binary(&bytes::Bytes::from(bytes));
    }

    /// Sends `count` `progress` messages of a made-up prompt to the socket under `sid`, as fast
    /// as that socket accepts them (for backpressure tests and benchmarks).
    pub fn flood_progress(&self, sid: &str, count: usize) {
        self.shared.lock().send_to_sid(
            sid,
            Outbound::Flood {
                prompt_id: uuid::Uuid::new_v4().to_string(),
                count,
            },
        );
    }

    /// Like [`FakeComfy::flood_progress`], for a given prompt id (e.g. a job that is running).
    pub fn flood_progress_of(&self, sid: &str, prompt_id: &str, count: usize) {
        self.shared.lock().send_to_sid(
            sid,
            Outbound::Flood {
                prompt_id: prompt_id.to_owned(),
                count,
            },
        );
    }

    /// Cuts every socket's TCP connection without a close frame, as a killed process would.
    pub fn drop_sockets(&self) {
        let aborts = self.shared.lock().drop_sockets();
        for task in aborts {
            task.abort();
        }
    }

    /// Half-opens every socket: the TCP connection stays, but the server neither reads (client
    /// pings get no pong) nor writes anything on it again.
    pub fn stall_sockets(&self) {
        let s = self.shared.lock();
        for conn in s.conns.values() {
            let _ = conn.tx.send(Outbound::Stall);
        }
    }

    /// Like a process restart: sockets and HTTP connections cut without close frames; queue,
    /// running job, history, prompt counter, execution cache and temp files lost. Output files
    /// stay. The port stays bound, so reconnects succeed at once (use [`FakeComfy::set_down`]
    /// around it to simulate downtime).
    pub async fn restart(&self) {
        let (aborts, epoch) = {
            let mut s = self.shared.lock();
            let aborts = s.restart();
            (aborts, s.epoch)
        };
        for task in aborts {
            task.abort();
        }
        let old = self.tasks().worker.take();
        if let Some(old) = old {
            old.abort();
            let _ = old.await;
        }
        if self.shared.lock().replay.is_none() {
            let worker = tokio::spawn(worker::run(self.shared.clone(), epoch));
            self.tasks().worker = Some(worker);
        }
    }

    /// While down, every new TCP connection is accepted and closed at once (the client sees an
    /// EOF or reset, like a dead server behind a port forward), and going down cuts all open
    /// sockets and HTTP connections. The port stays bound so it cannot be taken by someone else.
    /// Jobs keep running meanwhile; combine with [`FakeComfy::restart`] for a real outage.
    pub fn set_down(&self, down: bool) {
        let aborts = {
            let mut s = self.shared.lock();
            s.down = down;
            if down {
                s.drop_all_connections()
            } else {
                Vec::new()
            }
        };
        for task in aborts {
            task.abort();
        }
    }

    /// While held, every `/view` answer (an output downloaded) sends its first half and waits
    /// for the release to send the rest: downloads under way, made to last.
    pub fn hold_views(&self, hold: bool) {
        self.shared.lock().signals.views_held.send_replace(hold);
    }

    /// `/view` answers being sent now, and the most there ever were at once.
    pub fn views_open(&self) -> (usize, usize) {
        *self.shared.lock().signals.views_open.borrow()
    }

    /// Waits until at least `n` `/view` answers are being sent at once.
    pub async fn until_views_open(&self, n: usize) {
        let mut open = self.shared.lock().signals.views_open.subscribe();
        let _ = open.wait_for(|(now, _)| *now >= n).await;
    }

    /// While held, the worker starts no new job: submissions stay pending (the running job, if
    /// any, goes on). Releasing wakes the worker.
    pub fn hold_queue(&self, hold: bool) {
        let mut s = self.shared.lock();
        s.hold = hold;
        if !hold {
            s.signals.worker.notify_one();
        }
    }

    /// Arms a one-shot race: the next request that would remove `prompt_id` from the queue
    /// (`POST /queue {"delete": [..]}`, `POST /api/jobs/{id}/cancel`, `POST /api/jobs/cancel`)
    /// first releases [`FakeComfy::hold_queue`], starts that job ahead of any other pending one
    /// and waits until it runs; only then is the request handled, so it finds the job running.
    /// This is "a pending job starts between the click and the request", made deterministic.
    /// If another job is running, the armed one starts when that one ends.
    pub fn start_before_removal(&self, prompt_id: &str) {
        self.shared.lock().start_before_removal = Some(prompt_id.to_owned());
    }

    /// Arms a one-shot race: the next request that would stop `prompt_id` while it runs
    /// (`POST /interrupt` naming it or naming nothing, `POST /api/jobs/{id}/cancel`) waits until
    /// the job has ended on its own and the next pending job has started; only then is the
    /// request handled, so it arrives after its job. This is "the job finishes between the click
    /// and the request", made deterministic.
    pub fn finish_before_interrupt(&self, prompt_id: &str) {
        self.shared.lock().finish_before_interrupt = Some(prompt_id.to_owned());
    }

    /// Whether the race armed by [`FakeComfy::finish_before_interrupt`] is still waiting for
    /// its request.
    pub fn interrupt_race_armed(&self) -> bool {
        self.shared.lock().finish_before_interrupt.is_some()
    }

    /// Whether the race armed by [`FakeComfy::start_before_removal`] is still waiting for its
    /// request (`false` once a removal of that job arrived).
    pub fn removal_race_armed(&self) -> bool {
        self.shared.lock().start_before_removal.is_some()
    }

    /// Turns companion mode on or off, as if the comfy-monitor companion
    /// (`docs/companion-protocol.md`) were installed or not. It takes effect at once, for the
    /// next message and the next request: while on, every execution message (`execution_start`,
    /// `execution_cached`, `executing`, `executed`, `progress`, `progress_state`,
    /// `execution_success`, `execution_error`, `execution_interrupted`) sent to one sid is also
    /// sent, unchanged and right after it, to every other registered socket whose first frame
    /// was `feature_flags` with a truthy `comfy_monitor_relay`, and every preview sent to one
    /// sid goes to them as binary type 4 with metadata; broadcasts are not copied. While off,
    /// nothing is copied and `GET /comfy_monitor/v1/state` is a 404. The sockets' flags are
    /// kept either way (ComfyUI keeps them), so switching back on relays to the sockets that
    /// opted in before. Not reset by [`FakeComfy::restart`]: a companion that vanishes across a
    /// restart is `set_companion(false)` then `restart().await`. Legacy servers never read the
    /// flags, so there they have no subscribers (the state route still answers).
    pub fn set_companion(&self, on: bool) {
        self.shared.lock().companion = on;
    }

    /// Whether companion mode is on.
    pub fn companion(&self) -> bool {
        self.shared.lock().companion
    }

    /// What `GET /comfy_monitor/v1/state` answers now, or `None` without companion mode.
    pub fn companion_state(&self) -> Option<serde_json::Value> {
        let s = self.shared.lock();
        s.companion.then(|| companion::state_json(&s).to_value())
    }

    /// Sids of the registered sockets that opted in to the companion's relay (whether or not
    /// companion mode is on).
    pub fn companion_subscribers(&self) -> Vec<String> {
        let s = self.shared.lock();
        let mut sids: Vec<String> = s
            .routes
            .keys()
            .filter(|sid| s.sid_flags.get(*sid).is_some_and(companion::opted_in))
            .cloned()
            .collect();
        sids.sort();
        sids
    }

    /// Makes every following GET of `route` (`"/view"`, `"/queue"`: given without `/api`, it
    /// applies at `/X` and `/api/X` whatever the query) answer with `fault` once past the
    /// authentication gate; `None` restores the normal answer.
    pub fn set_http_fault(&self, route: &str, fault: Option<HttpFault>) {
        let mut s = self.shared.lock();
        match fault {
            Some(f) => s.http_faults.insert(route.to_owned(), f),
            None => s.http_faults.remove(route),
        };
    }

    /// Changes how the following `/ws` upgrades are answered (after authentication), for
    /// proxies that break WebSockets while HTTP works: refused with a status, never answered,
    /// or accepted and closed at once. Open sockets are left alone.
    pub fn set_socket_mode(&self, mode: SocketMode) {
        self.shared.lock().socket_mode = mode;
    }

    /// Sends `count` messages of a new custom type each (`fake.flood.1`, `fake.flood.2`, …,
    /// `{"i": n}`) to every registered socket, paced at `per_sec` (in bursts every 10 ms; a socket
    /// that reads slowly gets them as fast as it takes them).
    pub fn flood_custom_events(&self, count: usize, per_sec: f64) {
        let s = self.shared.lock();
        for conn in s.conns.values() {
            let _ = conn.tx.send(Outbound::FloodEvents { count, per_sec });
        }
    }

    /// Changes the authentication layer for all following requests and upgrades.
    pub fn set_auth(&self, auth: Option<FakeAuth>) {
        self.shared.lock().auth = auth;
    }

    /// Every HTTP request and WebSocket upgrade so far, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_request_log(&self) {
        self.shared.lock().requests.clear();
    }

    /// How many interrupts took effect on the interrupt flag: global `POST /interrupt`s,
    /// targeted ones that matched the running job, and cancels of the running job.
    pub fn interrupt_count(&self) -> usize {
        self.shared.lock().interrupt_count
    }

    /// Keeps a realistic stream of work from "other clients" going until the server is dropped:
    /// every few seconds a `MonitorTestSampler` job with a random client id, some without one,
    /// now and then a failing job.
    pub fn start_busy_traffic(&self) {
        let mut tasks = self.tasks();
        if tasks.busy.is_none() {
            tasks.busy = Some(tokio::spawn(busy::run(self.shared.clone())));
        }
    }

    /// Starts (or replaces) the benchmark load until the server is dropped or
    /// [`FakeComfy::stop_load`]: jobs at `load.jobs_per_minute`, each queued with `client_id` =
    /// the sid of the most recently connected socket that has sent its first message (normally
    /// its feature flags), so that socket gets every message of the job as its submitter. With no
    /// such socket, nothing is submitted until one connects. At most [`Load::MAX_PENDING`] of
    /// the load's jobs wait in the queue. A load that is not [`Load::is_active`] submits
    /// nothing.
    pub fn start_load(&self, load: Load) {
        let task = tokio::spawn(load::run(self.shared.clone(), load));
        if let Some(old) = self.tasks().load.replace(task) {
            old.abort();
        }
    }

    /// Stops submitting load jobs; queued and running ones go on.
    pub fn stop_load(&self) {
        if let Some(task) = self.tasks().load.take() {
            task.abort();
        }
    }
}

impl Drop for FakeComfy {
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut *self.tasks());
        for task in [tasks.accept, tasks.worker, tasks.busy, tasks.load]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        let aborts = self.shared.lock().drop_all_connections();
        for task in aborts {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, router: axum::Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if shared.lock().down {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut s = shared.lock();
        let id = s.next_id();
        let done = shared.clone();
        // Spawned under the lock so the task cannot unregister before it is registered.
        let task = tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection ended with an error: {e}");
            }
            done.lock().http_conns.remove(&id);
        });
        s.http_conns.insert(id, task.abort_handle());
    }
}
