//! The fake server's whole mutable state: queue, running job, history, the sid routing table,
//! open sockets, output files and the execution cache.
//!
//! Everything sits behind one `std::sync::Mutex` that is never held across an `.await`; each
//! socket has its own unbounded outbound channel, so sending is a synchronous push made under the
//! lock and the relative order of messages is exactly the order they were produced in, as with
//! ComfyUI's single publish queue. Routing follows ComfyUI's `send_sync`: a message for a sid goes
//! to the socket currently registered under it (or nowhere), a message for no sid goes to every
//! registered socket; in companion mode an execution message or preview for a sid is then copied to
//! the subscribers (`companion`). This module must not await, sleep or touch the network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::AbortHandle;

use crate::companion;
use crate::frames;
use crate::graph::{self, Validation};
use crate::json::J;
use crate::obj;
use crate::replay::ReplayScript;
use crate::sendlog::{Record, SendLog, Stamp};
use crate::{FakeAuth, RequestRecord, ServerVersion};

/// ComfyUI keeps at most this many history entries.
const HISTORY_CAP: usize = 10_000;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Something the socket task should do, in order.
#[derive(Clone, Debug)]
pub enum Outbound {
    Text(String),
    Binary(Bytes),
    /// A text frame whose write time goes to the send log.
    StampedText(String, Stamp),
    /// A binary frame whose write time goes to the send log.
    StampedBinary(Bytes, Stamp),
    /// Write `count` progress messages as fast as the peer accepts them.
    Flood {
        prompt_id: String,
        count: usize,
    },
    /// Stop reading and writing for good, keeping the TCP connection open.
    Stall,
    /// Write `count` custom messages of a new type each, `per_sec` of them a second.
    FloodEvents {
        count: usize,
        per_sec: f64,
    },
}

/// One open WebSocket connection.
pub struct Conn {
    pub sid: String,
    pub tx: mpsc::UnboundedSender<Outbound>,
    pub abort: Option<AbortHandle>,
    /// The first parseable JSON text frame from the client was processed.
    pub first_frame_done: bool,
}

/// A value flowing along a link between nodes, as far as the fake needs to know it.
#[derive(Clone, Debug)]
pub enum Val {
    Image { w: u32, h: u32, batch: u32 },
    Int(i64),
    Other,
}

/// What ComfyUI's output cache remembers about one node signature.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub outputs: Vec<Val>,
    pub ui: Option<J>,
}

/// A file the fake pretends to have written.
#[derive(Clone, Copy, Debug)]
pub struct FileInfo {
    pub width: u32,
    pub height: u32,
    pub seed: u64,
}

/// `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Clone, Debug)]
pub struct QueueItem {
    pub number: J,
    pub prompt_id: String,
    pub prompt: J,
    pub extra_data: J,
    pub outputs: Vec<String>,
}

impl QueueItem {
    pub fn sort_key(&self) -> f64 {
        self.number.as_f64().unwrap_or(0.0)
    }

    pub fn client_id(&self) -> Option<String> {
        self.extra_data
            .get("client_id")
            .and_then(J::as_str)
            .map(str::to_string)
    }

    pub fn create_time(&self) -> Option<i64> {
        self.extra_data.get("create_time").and_then(J::as_i64)
    }

    pub fn to_json(&self) -> J {
        J::Arr(vec![
            self.number.clone(),
            J::from(&self.prompt_id),
            self.prompt.clone(),
            self.extra_data.clone(),
            J::from(self.outputs.clone()),
        ])
    }

    fn run_order(a: &QueueItem, b: &QueueItem) -> std::cmp::Ordering {
        a.sort_key()
            .total_cmp(&b.sort_key())
            .then_with(|| a.prompt_id.cmp(&b.prompt_id))
    }
}

pub struct Running {
    pub item: QueueItem,
    /// Display id of the node that last sent `executing`, for the reconnect replay (and the
    /// companion's state route).
    pub last_node: Option<String>,
    /// When the worker took the job, ms since the Unix epoch (the companion's `started_at`).
    pub started_at: i64,
    /// The `nodes` of the job's latest `progress_state` (`{}` before the first one).
    pub progress_state: J,
}

/// One finished job, as `/history` shows it.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub item: QueueItem,
    pub outputs: J,
    pub meta: J,
    pub status_str: &'static str,
    pub completed: bool,
    pub messages: Vec<(String, J)>,
}

impl HistoryEntry {
    pub fn status_json(&self) -> J {
        obj! {
            "status_str" => self.status_str,
            "completed" => self.completed,
            "messages" => J::Arr(self.messages.iter().map(|(k, v)| J::Arr(vec![J::from(k), v.clone()])).collect()),
        }
    }

    pub fn to_json(&self) -> J {
        obj! {
            "prompt" => self.item.to_json(),
            "outputs" => self.outputs.clone(),
            "status" => self.status_json(),
            "meta" => self.meta.clone(),
        }
    }

    pub fn last_message_type(&self) -> Option<&str> {
        self.messages.last().map(|(k, _)| k.as_str())
    }

    pub fn message_timestamp(&self, event: &str) -> Option<i64> {
        self.messages
            .iter()
            .find(|(k, _)| k == event)
            .and_then(|(_, v)| v.get("timestamp"))
            .and_then(J::as_i64)
    }
}

/// An HTTP answer, built under the lock and turned into a response outside it.
#[derive(Debug)]
pub enum Reply {
    Json(u16, J),
    Empty(u16),
    /// aiohttp's plain-text answer to an unhandled exception.
    ServerError,
}

/// Wake-ups for tasks that wait outside the lock.
pub struct Signals {
    pub worker: Arc<Notify>,
    pub interrupt: Arc<Notify>,
    /// Bumped when sockets register, unregister or process their first frame.
    pub clients: watch::Sender<u64>,
    /// Bumped when the queue or the running job changes.
    pub queue: watch::Sender<u64>,
    /// Set by [`crate::FakeComfy::hold_views`]: `/view` answers stop half-way until cleared.
    pub views_held: watch::Sender<bool>,
    /// `/view` answers being sent now, and the most ever at once.
    pub views_open: watch::Sender<(usize, usize)>,
}

impl Signals {
    fn new() -> Signals {
        Signals {
            worker: Arc::new(Notify::new()),
            interrupt: Arc::new(Notify::new()),
            clients: watch::channel(0).0,
            queue: watch::channel(0).0,
            views_held: watch::channel(false).0,
            views_open: watch::channel((0, 0)).0,
        }
    }

    pub fn bump_clients(&self) {
        self.clients.send_modify(|v| *v += 1);
    }

    pub fn bump_queue(&self) {
        self.queue.send_modify(|v| *v += 1);
    }
}

pub struct State {
    pub version: ServerVersion,
    pub auth: Option<FakeAuth>,
    pub step_delay: Duration,
    pub port: u16,
    /// Bumped by a restart; work started under an older epoch is abandoned silently.
    pub epoch: u64,
    pub counter: i64,
    pub pending: Vec<QueueItem>,
    pub running: Option<Running>,
    pub history: Vec<HistoryEntry>,
    /// sid -> connection id. One socket per sid, as in ComfyUI's `self.sockets`.
    pub routes: HashMap<String, u64>,
    /// sid -> the client's feature flags, as in ComfyUI's `sockets_metadata`.
    pub sid_flags: HashMap<String, J>,
    pub conns: HashMap<u64, Conn>,
    pub next_id: u64,
    pub http_conns: HashMap<u64, AbortHandle>,
    pub cache: HashMap<String, CacheEntry>,
    pub files: HashMap<(String, String, String), FileInfo>,
    pub file_counters: HashMap<(String, String, String), u32>,
    pub temp_prefix: String,
    pub interrupt_flag: bool,
    pub interrupt_count: usize,
    pub down: bool,
    /// Set by [`crate::FakeComfy::hold_queue`]: the worker starts no new job.
    pub hold: bool,
    /// Armed by [`crate::FakeComfy::start_before_removal`]: the next request removing this job
    /// first lets it start.
    pub start_before_removal: Option<String>,
    /// Armed by [`crate::FakeComfy::finish_before_interrupt`]: the next request stopping this
    /// job first lets it end on its own and the next one start.
    pub finish_before_interrupt: Option<String>,
    /// Started next, ahead of the run order, when the worker is free.
    pub next_up: Option<String>,
    pub requests: Vec<RequestRecord>,
    pub replay: Option<Arc<ReplayScript>>,
    /// Stamps of progress (and optionally preview) writes and of received requests.
    pub send_log: Option<SendLog>,
    /// Companion mode: copies of execution messages and previews go to the sockets that opted
    /// in, and `/comfy_monitor/v1/state` answers. Read per message and per request.
    pub companion: bool,
    /// How `/ws` upgrades are answered, set by [`crate::FakeComfy::set_socket_mode`].
    pub socket_mode: crate::SocketMode,
    /// Routes (without `/api`) that misbehave on GET, set by
    /// [`crate::FakeComfy::set_http_fault`].
    pub http_faults: HashMap<String, crate::HttpFault>,
    pub signals: Signals,
}

fn temp_prefix() -> String {
    let mut rng = rand::rng();
    let letters: String = (0..5)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("ComfyUI_temp_{letters}")
}

/// A canonical lowercase hyphenated UUID, as `str(uuid.UUID(x)) == x` requires.
pub fn is_canonical_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

impl State {
    pub fn new(
        version: ServerVersion,
        auth: Option<FakeAuth>,
        step_delay: Duration,
        port: u16,
    ) -> State {
        let mut files = HashMap::new();
        files.insert(
            (
                "input".to_string(),
                String::new(),
                "example.png".to_string(),
            ),
            FileInfo {
                width: 64,
                height: 64,
                seed: 7,
            },
        );
        State {
            version,
            auth,
            step_delay,
            port,
            epoch: 0,
            counter: 0,
            pending: Vec::new(),
            running: None,
            history: Vec::new(),
            routes: HashMap::new(),
            sid_flags: HashMap::new(),
            conns: HashMap::new(),
            next_id: 1,
            http_conns: HashMap::new(),
            cache: HashMap::new(),
            files,
            file_counters: HashMap::new(),
            temp_prefix: temp_prefix(),
            interrupt_flag: false,
            interrupt_count: 0,
            down: false,
            hold: false,
            start_before_removal: None,
            finish_before_interrupt: None,
            next_up: None,
            requests: Vec::new(),
            replay: None,
            send_log: None,
            companion: false,
            socket_mode: crate::SocketMode::Accept,
            http_faults: HashMap::new(),
            signals: Signals::new(),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- sending -------------------------------------------------------------------------

    pub fn queue_remaining(&self) -> usize {
        self.pending.len() + usize::from(self.running.is_some())
    }

    pub fn exec_info(&self) -> J {
        obj! { "exec_info" => obj! { "queue_remaining" => self.queue_remaining() } }
    }

    fn push(&self, conn_id: u64, out: Outbound) {
        if let Some(conn) = self.conns.get(&conn_id) {
            // A closed receiver means the socket task is gone; its guard cleans up.
            let _ = conn.tx.send(out);
        }
    }

    /// Sends to the socket registered under `sid`; dropped when none is.
    pub fn send_to_sid(&self, sid: &str, out: Outbound) {
        if let Some(conn_id) = self.routes.get(sid) {
            self.push(*conn_id, out);
        }
    }

    /// Sends to every registered socket (not to sockets displaced by a reused sid).
    pub fn broadcast_text(&self, text: &str) {
        for conn_id in self.routes.values() {
            self.push(*conn_id, Outbound::Text(text.to_string()));
        }
    }

    pub fn broadcast_binary(&self, bytes: &Bytes) {
        for conn_id in self.routes.values() {
            self.push(*conn_id, Outbound::Binary(bytes.clone()));
        }
    }

    /// ComfyUI's `send_sync(event, data, sid)`: `None` broadcasts. In companion mode an
    /// execution message for one sid is then copied to every other subscriber.
    pub fn send_event(&self, event: &str, data: J, sid: Option<&str>) {
        let text = frames::event_text(event, data);
        match sid {
            Some(sid) => {
                let copies = if companion::relays(event) {
                    self.subscribers(Some(sid))
                } else {
                    Vec::new()
                };
                if copies.is_empty() {
                    return self.send_to_sid(sid, Outbound::Text(text));
                }
                self.send_to_sid(sid, Outbound::Text(text.clone()));
                for (conn, _) in copies {
                    self.push(conn, Outbound::Text(text.clone()));
                }
            }
            None => self.broadcast_text(&text),
        }
    }

    /// The companion's subscribers that get a copy of a message for `sid`: in companion mode,
    /// every registered socket whose feature flags opted in, except the one under `sid`.
    /// Nobody for broadcasts (`None`) or without companion mode. Legacy servers never store
    /// the flags, so they have no subscribers.
    fn subscribers<'a>(&'a self, sid: Option<&str>) -> Vec<(u64, &'a str)> {
        let Some(sid) = sid.filter(|_| self.companion) else {
            return Vec::new();
        };
        self.routes
            .iter()
            .filter(|(to, _)| to.as_str() != sid)
            .filter(|(to, _)| self.sid_flags.get(*to).is_some_and(companion::opted_in))
            .map(|(to, conn)| (*conn, to.as_str()))
            .collect()
    }

    pub fn send_binary(&self, bytes: Bytes, sid: Option<&str>) {
        match sid {
            Some(sid) => self.send_to_sid(sid, Outbound::Binary(bytes)),
            None => self.broadcast_binary(&bytes),
        }
    }

    /// The sockets a message for `sid` reaches (every registered one for `None`), with their sid.
    fn targets<'a>(&'a self, sid: Option<&'a str>) -> Vec<(u64, &'a str)> {
        match sid {
            Some(sid) => self
                .routes
                .get(sid)
                .map(|conn| vec![(*conn, sid)])
                .unwrap_or_default(),
            None => self
                .routes
                .iter()
                .map(|(sid, conn)| (*conn, sid.as_str()))
                .collect(),
        }
    }

    /// A `progress` event, routed like [`State::send_event`]; with a send log, each socket's
    /// write of it is stamped.
    pub fn send_progress(
        &self,
        prompt_id: &str,
        node: &str,
        value: u64,
        max: u64,
        sid: Option<&str>,
    ) {
        let data =
            obj! { "value" => value, "max" => max, "prompt_id" => prompt_id, "node" => node };
        let Some(log) = &self.send_log else {
            return self.send_event("progress", data, sid);
        };
        let text = frames::event_text("progress", data);
        // Relayed copies are stamped like the original: one line per socket the frame goes to.
        let copies = self.subscribers(sid);
        for (conn, to) in self.targets(sid).into_iter().chain(copies) {
            let record = Record::Progress {
                port: self.port,
                sid: to.to_string(),
                prompt_id: prompt_id.to_string(),
                node: node.to_string(),
                value,
                max,
            };
            let stamp = Stamp {
                log: log.clone(),
                record,
            };
            self.push(conn, Outbound::StampedText(text.clone(), stamp));
        }
    }

    /// A binary preview frame of node `node_id` of `prompt_id`, routed like
    /// [`State::send_binary`]; stamped when the send log records previews. In companion mode a
    /// preview for one sid is then copied, as type 4 with metadata, to every other subscriber.
    pub fn send_preview(&self, frame: Bytes, sid: Option<&str>, prompt_id: &str, node_id: &str) {
        let subscribers = self.subscribers(sid);
        let copy = if subscribers.is_empty() {
            None
        } else {
            companion::preview_copy(&frame, node_id, prompt_id)
        };
        let copies = copy.into_iter().flat_map(|copy| {
            subscribers
                .iter()
                .map(move |(c, to)| (*c, *to, copy.clone()))
        });
        let sends = self
            .targets(sid)
            .into_iter()
            .map(|(c, to)| (c, to, frame.clone()))
            .chain(copies);
        let log = self.send_log.as_ref().filter(|l| l.logs_previews());
        for (conn, to, bytes) in sends {
            let out = match log {
                Some(log) => {
                    let record = Record::Preview {
                        port: self.port,
                        sid: to.to_string(),
                        prompt_id: prompt_id.to_string(),
                    };
                    let stamp = Stamp {
                        log: log.clone(),
                        record,
                    };
                    Outbound::StampedBinary(bytes, stamp)
                }
                None => Outbound::Binary(bytes),
            };
            self.push(conn, out);
        }
    }

    /// ComfyUI's `queue_updated()`.
    pub fn broadcast_status(&self) {
        self.send_event("status", obj! { "status" => self.exec_info() }, None);
    }

    /// Whether the socket under `sid` negotiated type-4 previews.
    pub fn wants_metadata(&self, sid: &str) -> bool {
        self.version != ServerVersion::Legacy
            && self
                .sid_flags
                .get(sid)
                .and_then(|f| f.get("supports_preview_metadata"))
                .is_some_and(J::truthy)
    }

    pub fn server_features(&self) -> J {
        let mut flags = obj! {
            "supports_preview_metadata" => true,
            "max_upload_size" => 104_857_600i64,
        };
        if self.version == ServerVersion::V0_26 {
            flags.set(
                "extension",
                obj! { "manager" => obj! { "supports_v4" => true } },
            );
            flags.set("node_replacements", true);
            flags.set("assets", false);
        }
        if self.companion {
            // As the companion does: it lists itself in the server's feature flags.
            flags.set(
                "comfy_monitor_companion",
                obj! { "version" => companion::VERSION, "protocol" => 1i64 },
            );
        }
        flags
    }

    // ---- queue ---------------------------------------------------------------------------

    pub fn put(&mut self, item: QueueItem) {
        self.pending.push(item);
        self.broadcast_status();
        self.signals.worker.notify_one();
        self.signals.bump_queue();
    }

    /// Pending items in run order (what `/queue` callers should sort to).
    pub fn pending_sorted(&self) -> Vec<&QueueItem> {
        let mut items: Vec<&QueueItem> = self.pending.iter().collect();
        items.sort_by(|a, b| QueueItem::run_order(a, b));
        items
    }

    /// Pending items in a valid binary-heap layout that is not sorted once there are three or
    /// more, so clients that forget to sort by `number` notice.
    pub fn pending_heap_order(&self) -> Vec<&QueueItem> {
        let mut items = self.pending_sorted();
        if items.len() >= 3 {
            // Children of the root may be in either order; a heap stays a heap.
            items.swap(1, 2);
        }
        items
    }

    /// The worker takes the next job: it becomes the running one, `status` is broadcast.
    pub fn take_next(&mut self) -> Option<QueueItem> {
        if self.running.is_some() || self.pending.is_empty() || self.hold {
            return None;
        }
        let promoted = self
            .next_up
            .take()
            .and_then(|id| self.pending.iter().position(|i| i.prompt_id == id));
        let pos = match promoted {
            Some(pos) => pos,
            None => {
                self.pending
                    .iter()
                    .enumerate()
                    .min_by(|a, b| QueueItem::run_order(a.1, b.1))?
                    .0
            }
        };
        let item = self.pending.remove(pos);
        self.running = Some(Running {
            item: item.clone(),
            last_node: None,
            started_at: now_ms(),
            progress_state: J::obj(),
        });
        // The flag is reset when a job starts, so a stale interrupt never hits the next job.
        self.interrupt_flag = false;
        self.broadcast_status();
        self.signals.bump_queue();
        Some(item)
    }

    /// ComfyUI's `delete_queue_item`: removing the last pending item wipes the queue, which
    /// broadcasts `status` a second time.
    pub fn delete_pending(&mut self, prompt_id: &str) -> bool {
        let Some(pos) = self.pending.iter().position(|i| i.prompt_id == prompt_id) else {
            return false;
        };
        if self.pending.len() == 1 {
            self.wipe_queue();
        } else {
            self.pending.remove(pos);
        }
        self.broadcast_status();
        self.signals.bump_queue();
        true
    }

    pub fn wipe_queue(&mut self) {
        self.pending.clear();
        self.broadcast_status();
        self.signals.bump_queue();
    }

    /// `POST /interrupt`: `target` is the body's `prompt_id` when there is one.
    pub fn interrupt(&mut self, target: Option<&str>) {
        if let Some(target) = target.filter(|_| self.version != ServerVersion::Legacy) {
            let running = self.running.as_ref().map(|r| r.item.prompt_id.as_str());
            if running != Some(target) {
                return;
            }
        }
        self.raise_interrupt();
    }

    fn raise_interrupt(&mut self) {
        self.interrupt_flag = true;
        self.interrupt_count += 1;
        self.signals.interrupt.notify_waiters();
    }

    /// `POST /api/jobs/{id}/cancel`: interrupt if running, dequeue if pending.
    pub fn cancel_job(&mut self, prompt_id: &str) -> bool {
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.item.prompt_id == prompt_id)
        {
            self.raise_interrupt();
            return true;
        }
        self.delete_pending(prompt_id)
    }

    // ---- submit --------------------------------------------------------------------------

    fn no_prompt() -> Reply {
        Reply::Json(
            400,
            obj! {
                "error" => obj! {
                    "type" => "no_prompt",
                    "message" => "No prompt provided",
                    "details" => "No prompt provided",
                    "extra_info" => J::obj(),
                },
                "node_errors" => J::obj(),
            },
        )
    }

    fn invalid_prompt_id() -> Reply {
        Reply::Json(
            400,
            obj! {
                "error" => obj! {
                    "type" => "invalid_prompt_id",
                    "message" => "prompt_id must be a valid UUID",
                    "details" => "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server generate one",
                    "extra_info" => J::obj(),
                },
                "node_errors" => J::obj(),
            },
        )
    }

    /// `POST /prompt` with the raw request body, in ComfyUI's processing order: parse, number
    /// (the counter advances even when the prompt is then rejected), prompt id, validation.
    pub fn post_prompt(&mut self, body: &[u8]) -> Reply {
        let Ok(json) = J::parse_slice(body) else {
            return Reply::ServerError;
        };
        let number = match json.get("number") {
            Some(n) => match n
                .as_f64()
                .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
            {
                Some(f) => J::float(f),
                None => return Reply::ServerError,
            },
            None => {
                let mut n = self.counter;
                if json.get("front").is_some_and(J::truthy) {
                    n = -n;
                }
                self.counter += 1;
                J::from(n)
            }
        };
        let Some(prompt) = json.get("prompt") else {
            return State::no_prompt();
        };
        let minted = || uuid::Uuid::new_v4().to_string();
        let prompt_id = match (self.version, json.get("prompt_id")) {
            (ServerVersion::Legacy, _) | (_, None) => minted(),
            (ServerVersion::V0_3_64, Some(J::Str(s))) => s.clone(),
            (ServerVersion::V0_3_64, Some(other)) => other.python_str(),
            (ServerVersion::V0_26, Some(J::Null)) => minted(),
            (ServerVersion::V0_26, Some(J::Str(s))) if is_canonical_uuid(s) => s.clone(),
            (ServerVersion::V0_26, Some(_)) => return State::invalid_prompt_id(),
        };
        let targets: Option<Vec<String>> = match self.version {
            ServerVersion::Legacy => None,
            _ => json
                .get("partial_execution_targets")
                .and_then(J::as_array)
                .map(|t| t.iter().filter_map(J::as_str).map(str::to_string).collect()),
        };
        let (outputs, node_errors) = match graph::validate(prompt, self.version, targets.as_deref())
        {
            Validation::Valid {
                outputs,
                node_errors,
            } => (outputs, node_errors),
            Validation::Invalid { error, node_errors } => {
                return Reply::Json(400, obj! { "error" => error, "node_errors" => node_errors });
            }
        };
        let mut extra_data = match json.get("extra_data") {
            Some(e @ J::Obj(_)) => e.clone(),
            _ => J::obj(),
        };
        if let Some(client_id) = json.get("client_id") {
            extra_data.set("client_id", client_id.clone());
        }
        if self.version == ServerVersion::V0_26 {
            extra_data.set("create_time", now_ms());
            // Partner-node credentials are split out of the queue tuple since 0.3.68.
            extra_data.remove("auth_token_comfy_org");
            extra_data.remove("api_key_comfy_org");
        }
        let item = QueueItem {
            number: number.clone(),
            prompt_id: prompt_id.clone(),
            prompt: prompt.clone(),
            extra_data,
            outputs,
        };
        self.put(item);
        Reply::Json(
            200,
            obj! { "prompt_id" => prompt_id, "number" => number, "node_errors" => node_errors },
        )
    }

    // ---- history -------------------------------------------------------------------------

    /// `GET /history?max_items=&offset=`, oldest first, as ComfyUI's `get_history`.
    pub fn history_json(&self, max_items: Option<usize>, offset: Option<i64>) -> J {
        let mut offset = offset.unwrap_or(-1);
        if offset < 0 {
            if let Some(max) = max_items {
                offset = self.history.len() as i64 - max as i64;
            }
        }
        let mut out = Vec::new();
        for (i, entry) in self.history.iter().enumerate() {
            if i as i64 >= offset {
                out.push((entry.item.prompt_id.clone(), entry.to_json()));
                if max_items.is_some_and(|m| out.len() >= m) {
                    break;
                }
            }
        }
        J::Obj(out)
    }

    pub fn history_entry(&self, prompt_id: &str) -> Option<&HistoryEntry> {
        self.history.iter().find(|e| e.item.prompt_id == prompt_id)
    }

    /// End of a job, in ComfyUI's order: history written, `status` broadcast, then
    /// `executing {node: null}` to the submitter.
    pub fn finish_job(&mut self, entry: HistoryEntry) {
        let client = entry.item.client_id();
        let prompt_id = entry.item.prompt_id.clone();
        self.history.retain(|e| e.item.prompt_id != prompt_id);
        self.history.push(entry);
        if self.history.len() > HISTORY_CAP {
            self.history.remove(0);
        }
        self.running = None;
        self.broadcast_status();
        if let Some(client) = client {
            self.send_event(
                "executing",
                obj! { "node" => J::Null, "prompt_id" => prompt_id },
                Some(&client),
            );
        }
        self.signals.bump_queue();
    }

    // ---- files ---------------------------------------------------------------------------

    /// Records `count` new files like ComfyUI's `get_save_image_path` numbering.
    pub fn write_images(&mut self, kind: &str, prefix: &str, count: u32, info: FileInfo) -> Vec<J> {
        let (subfolder, base) = match prefix.rsplit_once('/') {
            Some((dir, base)) => (dir.to_string(), base.to_string()),
            None => (String::new(), prefix.to_string()),
        };
        let key = (kind.to_string(), subfolder.clone(), base.clone());
        let mut items = Vec::new();
        for _ in 0..count.max(1) {
            let counter = self.file_counters.entry(key.clone()).or_insert(0);
            *counter += 1;
            let filename = format!("{base}_{:05}_.png", *counter);
            self.files.insert(
                (kind.to_string(), subfolder.clone(), filename.clone()),
                info,
            );
            items.push(
                obj! { "filename" => filename, "subfolder" => subfolder.as_str(), "type" => kind },
            );
        }
        items
    }

    // ---- restart ---------------------------------------------------------------------------

    /// Forgets everything a process restart forgets and returns the tasks to abort (after the
    /// lock is released) for the sockets that die with it.
    pub fn restart(&mut self) -> Vec<AbortHandle> {
        self.epoch += 1;
        self.counter = 0;
        self.pending.clear();
        self.running = None;
        self.history.clear();
        self.cache.clear();
        self.interrupt_flag = false;
        // Temp files are deleted at start-up; output files stay on disk.
        self.files.retain(|(kind, _, _), _| kind != "temp");
        self.file_counters.retain(|(kind, _, _), _| kind != "temp");
        self.temp_prefix = temp_prefix();
        let aborts = self.drop_all_connections();
        self.signals.bump_queue();
        aborts
    }

    /// Unregisters every socket and returns their tasks to abort. The sockets' own cleanup then
    /// finds nothing to do, so a client reconnecting quickly is not unregistered by it.
    pub fn drop_sockets(&mut self) -> Vec<AbortHandle> {
        let aborts = self.conns.drain().filter_map(|(_, c)| c.abort).collect();
        self.routes.clear();
        self.sid_flags.clear();
        self.signals.bump_clients();
        aborts
    }

    /// Unregisters every socket and HTTP connection and returns their tasks to abort.
    pub fn drop_all_connections(&mut self) -> Vec<AbortHandle> {
        let mut aborts = self.drop_sockets();
        aborts.extend(self.http_conns.drain().map(|(_, a)| a));
        aborts
    }
}

/// The state plus nothing else: shared by the HTTP handlers, socket tasks and the worker.
pub struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub fn new(state: State) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(state),
        })
    }

    /// Locks the state. A panic while holding the lock must not take the fake down with it.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by every request that removes jobs from the queue, before it touches the queue.
    /// When one of `ids` is the job armed by [`crate::FakeComfy::start_before_removal`], the
    /// hold is released, that job is started ahead of the others, and this waits until it runs
    /// (or is gone), so the request then finds it running: the race a user loses when a job
    /// starts between the click and the request. One-shot.
    pub async fn start_if_armed(&self, ids: &[&str]) {
        let (id, changes) = {
            let mut s = self.lock();
            let Some(id) = s
                .start_before_removal
                .take_if(|armed| ids.contains(&armed.as_str()))
            else {
                return;
            };
            s.hold = false;
            s.next_up = Some(id.clone());
            let changes = s.signals.queue.subscribe();
            s.signals.worker.notify_one();
            (id, changes)
        };
        self.until_queue(changes, |s| {
            let running = s.running.as_ref().is_some_and(|r| r.item.prompt_id == id);
            let pending = s.pending.iter().any(|i| i.prompt_id == id);
            running || !pending
        })
        .await;
    }

    /// When a request that stops `target` (`None`: whatever runs) meets the job armed by
    /// [`crate::FakeComfy::finish_before_interrupt`], waits until that job has ended on its own
    /// and the next pending one (if any) runs, so the request arrives too late for it.
    pub async fn finish_if_armed(&self, target: Option<&str>) {
        let (id, changes) = {
            let mut s = self.lock();
            let Some(id) = s
                .finish_before_interrupt
                .take_if(|armed| target.is_none_or(|t| t == armed.as_str()))
            else {
                return;
            };
            (id, s.signals.queue.subscribe())
        };
        self.until_queue(changes, |s| {
            let ours_left = s.running.as_ref().is_none_or(|r| r.item.prompt_id != id)
                && s.pending.iter().all(|i| i.prompt_id != id);
            let next_runs = s.running.is_some() || s.pending.is_empty() || s.hold;
            ours_left && next_runs
        })
        .await;
    }

    /// Waits, across the queue changes `changes` sees, until `done` holds of the state.
    /// `false` if the server went away first.
    pub async fn until_queue(
        &self,
        mut changes: watch::Receiver<u64>,
        done: impl Fn(&State) -> bool,
    ) -> bool {
        loop {
            if done(&self.lock()) {
                return true;
            }
            if changes.changed().await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: ServerVersion) -> State {
        State::new(version, None, Duration::from_millis(1), 0)
    }

    const PROMPT: &str = r#"{"prompt": {"1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 2}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}}"#;

    #[test]
    fn rejected_prompts_still_consume_a_number() {
        let mut s = state(ServerVersion::V0_26);
        assert!(matches!(s.post_prompt(b"{}"), Reply::Json(400, _)));
        let Reply::Json(200, ok) = s.post_prompt(PROMPT.as_bytes()) else {
            panic!("rejected");
        };
        assert_eq!(ok.get("number").and_then(J::as_i64), Some(1));
    }

    #[test]
    fn malformed_json_is_a_server_error() {
        let mut s = state(ServerVersion::V0_26);
        assert!(matches!(s.post_prompt(b"{nope"), Reply::ServerError));
    }

    #[test]
    fn newest_generation_requires_canonical_prompt_ids() {
        let mut s = state(ServerVersion::V0_26);
        for bad in [
            "job-1",
            "5EFB26A0-1289-473F-BEAA-246DCC73D638",
            "5efb26a01289473fbeaa246dcc73d638",
        ] {
            let body = PROMPT.replacen('{', &format!("{{\"prompt_id\": \"{bad}\", "), 1);
            let Reply::Json(400, err) = s.post_prompt(body.as_bytes()) else {
                panic!("accepted {bad}");
            };
            assert_eq!(
                err.get("error")
                    .and_then(|e| e.get("type"))
                    .and_then(J::as_str),
                Some("invalid_prompt_id")
            );
        }
        let mut old = state(ServerVersion::V0_3_64);
        let body = PROMPT.replacen('{', "{\"prompt_id\": \"job-1\", ", 1);
        let Reply::Json(200, ok) = old.post_prompt(body.as_bytes()) else {
            panic!("rejected");
        };
        assert_eq!(ok.get("prompt_id").and_then(J::as_str), Some("job-1"));
    }

    #[test]
    fn explicit_number_is_echoed_as_float_and_front_negates() {
        let mut s = state(ServerVersion::V0_26);
        let body = PROMPT.replacen('{', "{\"number\": 5, ", 1);
        let Reply::Json(200, ok) = s.post_prompt(body.as_bytes()) else {
            panic!("rejected");
        };
        assert_eq!(
            ok.get("number").map(J::to_py_string).as_deref(),
            Some("5.0")
        );
        s.post_prompt(PROMPT.as_bytes());
        let body = PROMPT.replacen('{', "{\"front\": true, ", 1);
        let Reply::Json(200, ok) = s.post_prompt(body.as_bytes()) else {
            panic!("rejected");
        };
        assert_eq!(ok.get("number").and_then(J::as_i64), Some(-1));
    }

    #[test]
    fn a_held_queue_starts_nothing_and_a_promoted_job_jumps_the_run_order() {
        let mut s = state(ServerVersion::V0_3_64);
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let body = PROMPT.replacen('{', &format!("{{\"prompt_id\": \"p{i}\", "), 1);
                s.post_prompt(body.as_bytes());
                format!("p{i}")
            })
            .collect();
        s.hold = true;
        assert!(s.take_next().is_none());
        s.hold = false;
        s.next_up = Some(ids[2].clone());
        assert_eq!(s.take_next().map(|i| i.prompt_id), Some(ids[2].clone()));
        s.running = None;
        assert_eq!(
            s.take_next().map(|i| i.prompt_id),
            Some(ids[0].clone()),
            "the promotion was used once"
        );
    }

    #[test]
    fn heap_order_is_unsorted_from_three_items_but_runs_in_number_order() {
        let mut s = state(ServerVersion::V0_26);
        for _ in 0..4 {
            s.post_prompt(PROMPT.as_bytes());
        }
        let heap: Vec<i64> = s
            .pending_heap_order()
            .iter()
            .filter_map(|i| i.number.as_i64())
            .collect();
        assert_eq!(heap, [0, 2, 1, 3]);
        let order: Vec<i64> = std::iter::from_fn(|| {
            let item = s.take_next()?;
            s.running = None;
            item.number.as_i64()
        })
        .collect();
        assert_eq!(order, [0, 1, 2, 3]);
    }

    #[test]
    fn history_max_items_keeps_the_newest_oldest_first() {
        let mut s = state(ServerVersion::V0_26);
        for i in 0..5 {
            let item = QueueItem {
                number: J::from(i as i64),
                prompt_id: format!("p{i}"),
                prompt: J::obj(),
                extra_data: J::obj(),
                outputs: Vec::new(),
            };
            s.finish_job(HistoryEntry {
                item,
                outputs: J::obj(),
                meta: J::obj(),
                status_str: "success",
                completed: true,
                messages: Vec::new(),
            });
        }
        let keys: Vec<String> = s
            .history_json(Some(2), None)
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(keys, ["p3", "p4"]);
        let keys: Vec<String> = s
            .history_json(Some(2), Some(1))
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(keys, ["p1", "p2"]);
    }
}
