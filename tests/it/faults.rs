//! The fault matrix over real sockets on loopback: a server killed with SIGKILL, half-open and
//! slow links and idle-cutting middleboxes (a TCP proxy of our own), credentials and socket
//! upgrades refused, an upgrade never answered, a slow-loris server, oversized, truncated and
//! malformed frames, a flood of custom events, a host that stops reading, and HTTP-only mode.
//!
//! Servers are the fake ComfyUI (in this process, or as a process of its own where the fault is
//! about the process), or `RawServer` below where the fault is about the bytes of a frame.
//! Paused tokio time wherever everything runs in this process; real time where another process
//! takes part. Nothing sleeps to synchronise: waits are for events, with guards against hangs.

use crate::live::{
    connected, connection, engine, fake, job, post, sampler, spec, terminal, until, GUARD,
};
use comfy_engine::actions::{CancelOutcome, SubmitOptions};
use comfy_engine::Events;
use comfy_engine::{
    Auth, ConnectionState, Engine, Event, EventKind, Fidelity, InstanceSpec, JobOrigin, JobState,
    Secret,
};
use fake_comfyui::{FakeAuth, FakeComfy, FakeConfig, HttpFault, ServerVersion, SocketMode};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::task::JoinHandle;
use tokio::time::Instant;

fn status_of(e: &Event) -> Option<&comfy_engine::ConnectionStatus> {
    match &e.kind {
        EventKind::Connection(c) => Some(c),
        _ => None,
    }
}

/// Reads every event until the engine stops, so a paused clock can run on for minutes while
/// the supervisor publishes freely; returns the connection events with when they came.
fn drain(mut rx: Events) -> JoinHandle<Vec<(Instant, comfy_engine::ConnectionStatus)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(e) = rx.recv().await {
            if let Some(c) = status_of(&e) {
                seen.push((Instant::now(), c.clone()));
            }
        }
        seen
    })
}

async fn fake_with(config: FakeConfig) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        step_delay: Duration::from_millis(5),
        ..config
    })
    .await
    .expect("fake server starts")
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy on loopback for link faults.

/// What the proxy does to the bytes it forwards.
#[derive(Clone, Copy, Default)]
struct Link {
    /// Server-to-client bytes: at most this many per period (a slow link).
    throttle: Option<(usize, Duration)>,
    /// Connections with no byte either way for this long are cut (a NAT or proxy idle timeout).
    idle_cut: Option<Duration>,
}

#[derive(Default)]
struct ProxyCounts {
    open: AtomicUsize,
    max_open: AtomicUsize,
    accepted: AtomicUsize,
    cut_idle: AtomicUsize,
    /// Connections numbered below this stop forwarding (half-open).
    stall_below: AtomicU64,
}

/// Sits between the engine and a server: forwards bytes both ways as its [`Link`] says, can
/// stop forwarding on the connections it has (a half-open link), and counts connections.
struct Proxy {
    addr: SocketAddr,
    counts: Arc<ProxyCounts>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr, link: Link) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(ProxyCounts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let mut next = 0u64;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        next += 1;
                        conns.spawn(forward(client, upstream, link, next, shared.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Proxy { addr, counts, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every connection open now stops forwarding for good, both ways, and stays open; new
    /// connections go through.
    fn stall_open_connections(&self) {
        let accepted = self.counts.accepted.load(Ordering::SeqCst) as u64;
        self.counts
            .stall_below
            .store(accepted + 1, Ordering::SeqCst);
    }

    fn max_open(&self) -> usize {
        self.counts.max_open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    link: Link,
    number: u64,
    counts: Arc<ProxyCounts>,
) {
    counts.accepted.fetch_add(1, Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
    counts.max_open.fetch_max(open, Ordering::SeqCst);
    let last = Arc::new(Mutex::new(Instant::now()));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let stalled = {
        let counts = counts.clone();
        move || number < counts.stall_below.load(Ordering::SeqCst)
    };
    let up = pump(cr, sw, None, last.clone(), stalled.clone());
    let down = pump(sr, cw, link.throttle, last.clone(), stalled);
    let idle = async {
        match link.idle_cut {
            Some(cut) => loop {
                let due = *last.lock().unwrap() + cut;
                if Instant::now() >= due {
                    counts.cut_idle.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep_until(due).await;
            },
            None => std::future::pending().await,
        }
    };
    // Whichever ends first ends the connection: both sockets are dropped (closed) together.
    tokio::select! {
        () = up => {}
        () = down => {}
        () = idle => {}
    }
    counts.open.fetch_sub(1, Ordering::SeqCst);
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    throttle: Option<(usize, Duration)>,
    last: Arc<Mutex<Instant>>,
    stalled: impl Fn() -> bool,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let limit = throttle.map_or(buf.len(), |(n, _)| n.min(buf.len()));
        let n = match from.read(&mut buf[..limit]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled() {
            // Half-open: nothing more goes through, and nothing is closed.
            return std::future::pending().await;
        }
        *last.lock().unwrap() = Instant::now();
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some((_, every)) = throttle {
            tokio::time::sleep(every).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A server for faults in the bytes of a frame.

/// A minimal ComfyUI: fixed HTTP answers (a 0.3.64 without the jobs API, an empty queue and
/// history) and a socket whose frames the test writes byte by byte. Each upgraded socket is
/// handed to the test, which answers pings behind the scenes.
struct RawServer {
    addr: SocketAddr,
    sockets: UnboundedReceiver<RawSocket>,
    task: JoinHandle<()>,
}

/// How the raw server answers.
#[derive(Clone, Copy, Default)]
struct RawOptions {
    /// Answers are written one byte per this (a slow-loris server)...
    trickle: Option<Duration>,
    /// ...only the upgrade's, HTTP answering at once.
    trickle_upgrade_only: bool,
}

impl RawServer {
    async fn start(options: RawOptions) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, sockets) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        conns.spawn(raw_connection(stream, options, tx.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        RawServer {
            addr,
            sockets,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn socket(&mut self) -> RawSocket {
        tokio::time::timeout(GUARD, self.sockets.recv())
            .await
            .expect("a socket upgrade")
            .expect("the server runs")
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_connection(
    mut stream: TcpStream,
    options: RawOptions,
    sockets: mpsc::UnboundedSender<RawSocket>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let route = path
        .trim_start_matches("/api")
        .split('?')
        .next()
        .unwrap_or("");
    let answer = if route == "/ws" {
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
    } else {
        let (status, body) = match route {
            "/system_stats" => (
                "200 OK",
                r#"{"system":{"os":"posix","comfyui_version":"0.3.64"},"devices":[]}"#,
            ),
            "/queue" => ("200 OK", r#"{"queue_running":[],"queue_pending":[]}"#),
            "/history" => ("200 OK", "{}"),
            _ => ("404 Not Found", ""),
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let trickle = options
        .trickle
        .filter(|_| route == "/ws" || !options.trickle_upgrade_only);
    match trickle {
        Some(every) => {
            for b in answer.as_bytes() {
                if stream.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
        None => {
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
    if route == "/ws" {
        let _ = sockets.send(RawSocket::new(stream));
    }
}

/// An upgraded socket on the server side: the test writes raw frames; pings are answered (when
/// no frame is being written: control frames cannot cut into one).
struct RawSocket {
    write: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    reader: JoinHandle<()>,
}

impl RawSocket {
    fn new(stream: TcpStream) -> RawSocket {
        let (read, write) = stream.into_split();
        let write = Arc::new(tokio::sync::Mutex::new(write));
        let reader = tokio::spawn(answer_pings(read, write.clone()));
        RawSocket { write, reader }
    }

    fn header(opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![0x80 | opcode];
        if len < 126 {
            h.push(len as u8);
        } else if len <= u64::from(u16::MAX) {
            h.push(126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h
    }

    async fn frame(&self, opcode: u8, payload: &[u8]) {
        let mut bytes = Self::header(opcode, payload.len() as u64);
        bytes.extend_from_slice(payload);
        self.raw(&bytes).await;
    }

    async fn text(&self, text: &str) {
        self.frame(0x1, text.as_bytes()).await;
    }

    async fn raw(&self, bytes: &[u8]) {
        let _ = self.write.lock().await.write_all(bytes).await;
    }

    /// One frame of `len` bytes, `prefix` then `fill` repeated then `suffix`, streamed from one
    /// small buffer: the test never holds the frame either.
    async fn streamed(&self, opcode: u8, len: u64, prefix: &[u8], fill: u8, suffix: &[u8]) {
        let mut w = self.write.lock().await;
        let chunk = vec![fill; 64 << 10];
        let mut middle = len - prefix.len() as u64 - suffix.len() as u64;
        let _ = w.write_all(&Self::header(opcode, len)).await;
        let _ = w.write_all(prefix).await;
        while middle > 0 {
            let n = middle.min(chunk.len() as u64) as usize;
            if w.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            middle -= n as u64;
        }
        let _ = w.write_all(suffix).await;
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads the client's (masked) frames and answers each ping with a pong.
async fn answer_pings(mut read: OwnedReadHalf, write: Arc<tokio::sync::Mutex<OwnedWriteHalf>>) {
    loop {
        let mut head = [0u8; 2];
        if read.read_exact(&mut head).await.is_err() {
            return;
        }
        let opcode = head[0] & 0x0F;
        let len = match head[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                if read.read_exact(&mut b).await.is_err() {
                    return;
                }
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                if read.read_exact(&mut b).await.is_err() {
                    return;
                }
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut mask = [0u8; 4];
        if head[1] & 0x80 != 0 && read.read_exact(&mut mask).await.is_err() {
            return;
        }
        let mut payload = vec![0u8; len as usize];
        if read.read_exact(&mut payload).await.is_err() {
            return;
        }
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        if opcode == 0x9 {
            let mut pong = RawSocket::header(0xA, payload.len() as u64);
            pong.extend_from_slice(&payload);
            let _ = write.lock().await.write_all(&pong).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes: this test binary, run again as the fake server or as the engine alone.

const CHILD_ROLE: &str = "COMFY_IT_CHILD";
const CHILD_ARG: &str = "COMFY_IT_CHILD_ARG";

/// Not a test on its own: the body of the processes some tests start by running this test
/// binary again (`CHILD_ROLE` says which). A real process is needed to kill a server with
/// SIGKILL, and to measure the engine's memory apart from everything else this binary runs.
///
/// Why not the `fake-comfyui` binary: this package (comfy-cli) cannot name another package's
/// binary (`CARGO_BIN_EXE_*` is per package), `cargo test -p comfy-cli` does not build it, and
/// building it from a test would wait on the build lock cargo holds while tests run. The binary
/// running the test always exists and links the same fake library the binary is a thin host of.
#[test]
#[ignore = "runs only as a child process of the tests in this module"]
fn child_process() {
    let arg = std::env::var(CHILD_ARG).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("fake") => runtime.block_on(child_fake(arg.parse().unwrap_or(0))),
        Ok("engine") => runtime.block_on(child_engine(&arg)),
        _ => {}
    }
}

/// The fake ComfyUI on `port` (0: any), until killed.
async fn child_fake(port: u16) {
    let fake = FakeComfy::start(FakeConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        step_delay: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts");
    println!("@@ready {}", fake.base_url());
    std::future::pending::<()>().await;
}

/// An engine watching `url`, printing every event as JSON, until stdin closes.
async fn child_engine(url: &str) {
    let (engine, mut rx) = Engine::new(1024);
    engine
        .add_instance(InstanceSpec::new("child", url).unwrap())
        .unwrap();
    let mut stdin_closed = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    });
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Some(e) => println!("@@event {}", serde_json::to_string(&e).unwrap()),
                None => return,
            },
            _ = &mut stdin_closed => return,
        }
    }
}

/// A child process and the lines it marked with `@@`.
struct Child {
    process: std::process::Child,
    lines: UnboundedReceiver<String>,
}

impl Child {
    fn spawn(role: &str, arg: &str) -> Child {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "faults::child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ROLE, role)
            .env(CHILD_ARG, arg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the test binary runs again");
        let out = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // The harness may print "test … " on the same line first.
                if let Some(at) = line.find("@@") {
                    let _ = tx.send(line[at + 2..].to_owned());
                }
            }
        });
        Child { process, lines }
    }

    async fn line(&mut self, what: &str) -> String {
        match tokio::time::timeout(GUARD, self.lines.recv()).await {
            Ok(Some(line)) => line,
            _ => panic!("the child process never said {what}"),
        }
    }

    /// SIGKILL on Unix: no cleanup, sockets cut by the kernel.
    fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Server and process faults.

#[tokio::test]
async fn a_server_killed_with_sigkill_mid_job_is_unreachable_then_the_job_is_lost() {
    let mut server = Child::spawn("fake", "0");
    let ready = server.line("ready").await;
    let url = ready.strip_prefix("ready ").unwrap().to_owned();
    let port = url.rsplit(':').next().unwrap().to_owned();
    let mut s = InstanceSpec::new("killed", &url).unwrap();
    s.client_id = "cm-killed".into();
    let (engine, mut rx) = Engine::new(4096);
    let id = engine.add_instance(s).unwrap();
    connected(&mut rx).await;
    let ours = engine
        .submit(id, sampler(10_000, 10, "long"), SubmitOptions::default())
        .await
        .unwrap()
        .prompt_id;
    until(&mut rx, "our job running", |e| {
        job(e).is_some_and(|j| j.prompt_id == ours && j.node_value.unwrap_or(0.0) >= 2.0)
    })
    .await;

    server.kill();
    // The server is gone (HTTP too): unreachable, retried, and the job is not concluded while
    // nothing can be known about it.
    let (down, seen) = until(&mut rx, "unreachable", |e| {
        connection(e) == Some(ConnectionState::Unreachable)
    })
    .await;
    let down = status_of(&down).unwrap().clone();
    assert!(down.detail.starts_with("server down"), "{down:?}");
    assert!(down.retry_in_ms.unwrap() <= 1_000, "a restart is expected");
    assert!(seen.iter().filter_map(job).all(|j| !j.state.is_terminal()));

    // Back on the same port, as a restarted server: our job is lost, and said why.
    let mut again = Child::spawn("fake", &port);
    again.line("ready").await;
    let (j, seen) = terminal(&mut rx, ours.as_str()).await;
    assert_eq!(j.state, JobState::Lost);
    assert_eq!(j.detail.as_deref(), Some("server restarted"));
    assert!(seen
        .iter()
        .any(|e| connection(e) == Some(ConnectionState::Connected)));
}

#[tokio::test(start_paused = true)]
async fn a_half_open_tcp_link_is_detected_within_ten_seconds_and_replaced() {
    let server = fake(ServerVersion::V0_26).await;
    let proxy = Proxy::start(server.addr(), Link::default()).await;
    let mut s = InstanceSpec::new("proxied", &proxy.url()).unwrap();
    s.client_id = "cm-half-open".into();
    let (_engine, mut rx) = engine(s);
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-half-open")).await;
    // The path dies without a word: no FIN, no RST, nothing goes through either way.
    proxy.stall_open_connections();
    let stalled_at = Instant::now();
    until(&mut rx, "link declared dead", |e| {
        connection(e).is_some_and(|s| s != ConnectionState::Connected)
    })
    .await;
    let took = stalled_at.elapsed();
    assert!(took <= Duration::from_secs(10), "took {took:?}");
    connected(&mut rx).await;
    // Registered again through a fresh connection: our jobs are live once more.
    let id = server.submit(sampler(2, 10, "after"), Some("cm-half-open"));
    let (j, _) = terminal(&mut rx, &id).await;
    assert_eq!(j.fidelity, Fidelity::Live);
}

#[tokio::test(start_paused = true)]
async fn a_proxy_that_cuts_idle_connections_never_sees_the_socket_idle() {
    let server = fake(ServerVersion::V0_26).await;
    // A typical idle timeout is a minute or more; pings every 3 s beat even a short one.
    let proxy = Proxy::start(
        server.addr(),
        Link {
            idle_cut: Some(Duration::from_secs(5)),
            ..Link::default()
        },
    )
    .await;
    let (_engine, mut rx) = engine(spec_at(&proxy.url(), "cm-idle"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-idle")).await;
    let consumer = drain(rx);
    tokio::time::sleep(Duration::from_secs(300)).await;
    drop(_engine);
    let changes = consumer.await.unwrap();
    assert!(
        changes.is_empty(),
        "five idle minutes, no reconnect: {changes:?}"
    );
    // Only idle HTTP connections (reqwest's pool) were ever cut, never the socket.
    assert!(server
        .connected_clients()
        .iter()
        .any(|c| c.starts_with("cm-idle")));
}

fn spec_at(url: &str, client_id: &str) -> InstanceSpec {
    let mut s = InstanceSpec::new("fake", url).unwrap();
    s.client_id = client_id.into();
    s
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_403_or_a_302_to_login_are_auth_failed_without_a_request_storm() {
    for (auth, ours, says) in [
        (
            FakeAuth::Header {
                name: "X-Api-Key".into(),
                value: "right".into(),
            },
            Auth::Headers(vec![("X-Api-Key".into(), Secret::new("wrong"))]),
            "403",
        ),
        (
            FakeAuth::QueryToken("right".into()),
            Auth::QueryToken(Secret::new("wrong")),
            "redirect to /login",
        ),
    ] {
        let server = fake_with(FakeConfig {
            auth: Some(auth),
            ..FakeConfig::default()
        })
        .await;
        let mut s = spec(&server, "cm-refused");
        s.auth = ours;
        let (engine, mut rx) = engine(s);
        let (e, _) = until(&mut rx, "auth failed", |e| {
            connection(e) == Some(ConnectionState::AuthFailed)
        })
        .await;
        let c = status_of(&e).unwrap();
        assert!(c.detail.contains(says), "{c:?}");
        server.clear_request_log();
        let consumer = drain(rx);
        tokio::time::sleep(Duration::from_secs(600)).await;
        let log = server.request_log();
        assert!(
            (4..=8).contains(&log.len()),
            "{says}: {} requests in ten minutes",
            log.len()
        );
        assert!(log.iter().all(|r| !r.path.starts_with("/ws")), "{says}");
        drop(engine);
        assert!(consumer
            .await
            .unwrap()
            .iter()
            .all(|(_, c)| c.state == ConnectionState::AuthFailed));
    }
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_refused_with_401_403_or_a_302_runs_on_http_only_without_a_request_storm() {
    for refusal in [401, 403, 302] {
        let server = fake_with(FakeConfig {
            socket: SocketMode::Refuse(refusal),
            ..FakeConfig::default()
        })
        .await;
        let (engine, mut rx) = engine(spec(&server, "cm-ws-refused"));
        let (e, _) = until(&mut rx, "HTTP only", |e| {
            connection(e) == Some(ConnectionState::HttpOnly)
        })
        .await;
        let c = status_of(&e).unwrap();
        assert!(
            c.detail
                .starts_with("HTTP only: no live progress or previews"),
            "{c:?}"
        );
        // HTTP works with the same credentials: the upgrade was refused, the credentials were not.
        assert!(
            c.detail
                .contains(&format!("(socket: upgrade refused: {refusal}")),
            "{c:?}"
        );
        // A refusal that looks deliberate is retried slowly.
        assert!(c.retry_in_ms.unwrap() >= 20_000, "{c:?}");
        server.clear_request_log();
        let consumer = drain(rx);
        tokio::time::sleep(Duration::from_secs(600)).await;
        let log = server.request_log();
        let upgrades = log.iter().filter(|r| r.path.starts_with("/ws")).count();
        assert!(
            (2..=8).contains(&upgrades),
            "{refusal}: {upgrades} upgrades"
        );
        // The queue is polled at a steady rate (two reads every 2 s), no more.
        assert!(
            log.len() - upgrades <= 620,
            "{refusal}: {} requests in ten minutes",
            log.len()
        );
        drop(engine);
        let changes = consumer.await.unwrap();
        assert!(
            changes
                .iter()
                .all(|(_, c)| c.state == ConnectionState::HttpOnly),
            "{changes:?}"
        );
    }
}

/// Finding 3: a proxy that never answers the upgrade left the instance "connecting" forever.
#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_the_upgrade_runs_on_http_only_after_ten_seconds() {
    let server = fake_with(FakeConfig {
        socket: SocketMode::Hang,
        ..FakeConfig::default()
    })
    .await;
    let s = spec(&server, "cm-hang");
    let started = Instant::now();
    let (engine, mut rx) = engine(s.clone());
    let (e, _) = until(&mut rx, "HTTP only", |e| {
        connection(e) == Some(ConnectionState::HttpOnly)
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
    let c = status_of(&e).unwrap();
    assert!(c.detail.contains("no answer within 10 s"), "{c:?}");

    // Test connection ends too, with the socket step failed and why.
    let started = Instant::now();
    let check = comfy_engine::probe::check_connection(&s).await;
    assert!(started.elapsed() < Duration::from_secs(11));
    let steps = check.steps();
    assert!(steps[0].ok);
    assert!(!steps[1].ok);
    assert!(
        steps[1].detail.contains("no answer within 10 s") && steps[1].detail.contains("HTTP only"),
        "{:?}",
        steps[1]
    );

    // The proxy starts passing the socket: live, without being asked.
    server.set_socket_mode(SocketMode::Accept);
    connected(&mut rx).await;
    drop(engine);
}

#[tokio::test(start_paused = true)]
async fn a_slow_loris_server_times_out_and_is_retried_instead_of_hanging() {
    // Every answer trickles in at one byte a second.
    let server = RawServer::start(RawOptions {
        trickle: Some(Duration::from_secs(1)),
        ..RawOptions::default()
    })
    .await;
    let started = Instant::now();
    let (first, mut rx) = engine(spec_at(&server.url(), "cm-loris"));
    let (e, _) = until(&mut rx, "unreachable", |e| {
        connection(e) == Some(ConnectionState::Unreachable)
    })
    .await;
    // An HTTP request gives up after 15 s, whatever trickles meanwhile...
    assert!(started.elapsed() <= Duration::from_secs(16));
    let c = status_of(&e).unwrap();
    assert!(c.detail.contains("timed out"), "{c:?}");
    assert!(c.retry_in_ms.is_some());
    // ...and it is tried again, and given up again.
    until(&mut rx, "unreachable again", |e| {
        connection(e) == Some(ConnectionState::Unreachable)
    })
    .await;
    drop(first);

    // HTTP answers at once, the upgrade's answer trickles: the socket gives up after 10 s in
    // all (no single read waits long) and the instance runs on HTTP alone.
    let server = RawServer::start(RawOptions {
        trickle: Some(Duration::from_secs(1)),
        trickle_upgrade_only: true,
    })
    .await;
    let started = Instant::now();
    let (engine, mut rx) = engine(spec_at(&server.url(), "cm-loris-ws"));
    let (e, _) = until(&mut rx, "HTTP only", |e| {
        connection(e) == Some(ConnectionState::HttpOnly)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(11));
    let c = status_of(&e).unwrap();
    assert!(c.detail.contains("no answer within 10 s"), "{c:?}");
    drop(engine);
}

// ---------------------------------------------------------------------------------------------
// Frames.

#[cfg(target_os = "linux")]
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Finding 1: a text frame is parsed into a JSON tree several times its size, so a large one
/// could take the process down. Over the limit it is now dropped as it arrives. The engine runs
/// as a process of its own so its memory is its own.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn frames_over_their_limit_are_dropped_unread_and_the_process_does_not_grow() {
    let mut server = RawServer::start(RawOptions::default()).await;
    let mut child = Child::spawn("engine", &server.url());
    let pid = child.process.id();
    let mut events = Vec::new();
    loop {
        let line = child.line("connected").await;
        let e: serde_json::Value =
            serde_json::from_str(line.strip_prefix("event ").unwrap()).unwrap();
        let up = e["event"] == "connection" && e["state"] == "connected";
        events.push(e);
        if up {
            break;
        }
    }
    let socket = server.socket().await;
    let base = proc_status_kib(pid, "VmRSS:");
    // The high-water mark from here on ("5" resets it to the current size).
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();

    let text = comfy_engine::ws::MAX_TEXT_FRAME as u64 * 8; // 64 MiB
    socket
        .streamed(0x1, text, br#"{"type":"x","data":""#, b'a', br#""}"#)
        .await;
    let binary = comfy_engine::ws::MAX_BINARY_FRAME as u64 + (1 << 20); // 65 MiB
    socket
        .streamed(0x2, binary, &[0, 0, 0, 1, 0, 0, 0, 1], 0, &[])
        .await;
    socket.text(r#"{"type":"after","data":{}}"#).await;
    loop {
        let line = child.line("the frame after").await;
        let e: serde_json::Value =
            serde_json::from_str(line.strip_prefix("event ").unwrap()).unwrap();
        let after = e["event"] == "server_event" && e["type"] == "after";
        events.push(e);
        if after {
            break;
        }
    }
    let peak = proc_status_kib(pid, "VmHWM:");
    let grew_mib = peak.saturating_sub(base) as f64 / 1024.0;
    eprintln!(
        "engine process: {base} KiB before, peak {peak} KiB after 129 MiB of refused frames \
         (high-water mark reset: {reset}): grew {grew_mib:.1} MiB"
    );
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "protocol_error")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(
        refused,
        [
            "text frame of 64 MiB refused: over the 8 MiB limit",
            "binary frame of 65 MiB refused: over the 64 MiB limit"
        ]
    );
    // The connection stayed up: connected once, never dropped.
    let links: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "connection")
        .map(|e| &e["state"])
        .collect();
    assert_eq!(
        links.last().copied(),
        Some(&json!("connected")),
        "{links:?}"
    );
    assert_eq!(links.iter().filter(|s| **s == "connected").count(), 1);
    // Nothing like the frames' size: they were never held.
    if reset {
        assert!(grew_mib < 24.0, "grew {grew_mib:.1} MiB");
    }
}

#[tokio::test(start_paused = true)]
async fn a_truncated_or_malformed_frame_ends_that_connection_and_the_engine_reconnects() {
    let mut server = RawServer::start(RawOptions::default()).await;
    let (_engine, mut rx) = engine(spec_at(&server.url(), "cm-truncated"));
    connected(&mut rx).await;
    // A header announcing 1000 bytes, ten of them, then the server goes away.
    let socket = server.socket().await;
    let mut truncated = RawSocket::header(0x1, 1000);
    truncated.extend_from_slice(b"{\"type\":\"x");
    socket.raw(&truncated).await;
    drop(socket);
    let (e, _) = until(&mut rx, "dropped", |e| {
        connection(e) == Some(ConnectionState::Reconnecting)
    })
    .await;
    assert!(status_of(&e).unwrap().detail.contains("connection lost"));
    connected(&mut rx).await;
    // A reserved opcode is a protocol violation: that connection ends too.
    let socket = server.socket().await;
    socket.frame(0x3, b"?").await;
    until(&mut rx, "dropped again", |e| {
        connection(e) == Some(ConnectionState::Reconnecting)
    })
    .await;
    connected(&mut rx).await;
    // Undecodable JSON in a well-formed frame is only a protocol error.
    let socket = server.socket().await;
    socket.text("{\"type\":\"progress\",\"data\":").await;
    socket.text(r#"{"type":"after","data":{}}"#).await;
    let (_, seen) = until(
        &mut rx,
        "after",
        |e| matches!(&e.kind, EventKind::ServerEvent { kind, .. } if kind == "after"),
    )
    .await;
    assert!(seen
        .iter()
        .any(|e| matches!(e.kind, EventKind::ProtocolError { .. })));
    assert!(seen.iter().all(|e| connection(e).is_none()));
}

/// Finding 6: liveness counted whole messages only, so a large frame on a slow link killed the
/// session mid-frame, again and again.
#[tokio::test(start_paused = true)]
async fn a_large_frame_on_a_slow_link_keeps_the_session() {
    let server = fake(ServerVersion::V0_26).await;
    // 160 KiB/s: a 2 MiB preview takes about 13 s, longer than the 8 s liveness limit.
    let proxy = Proxy::start(
        server.addr(),
        Link {
            throttle: Some((16 << 10, Duration::from_millis(100))),
            ..Link::default()
        },
    )
    .await;
    let (_engine, mut rx) = engine(spec_at(&proxy.url(), "cm-slow"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-slow")).await;
    let image = 2 << 20;
    // A JPEG's start and frame header (512×512), then filler: its size is readable, as a
    // preview's must be to be shown.
    let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 1];
    frame.extend_from_slice(&[
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x02, 0x00, 0x02, 0x00,
    ]);
    frame.resize(8 + image, 0xAB);
    let sent = Instant::now();
    server.send_raw_binary(frame);
    let (e, seen) = until(&mut rx, "the preview", |e| {
        matches!(e.kind, EventKind::Preview(_))
    })
    .await;
    let took = sent.elapsed();
    assert!(took > Duration::from_secs(10), "the link is slow: {took:?}");
    match &e.kind {
        EventKind::Preview(p) => assert_eq!(p.bytes, image),
        _ => unreachable!(),
    }
    assert!(
        seen.iter().all(|e| connection(e).is_none()),
        "no reconnect while the frame arrived"
    );
}

// ---------------------------------------------------------------------------------------------
// Load and backpressure.

/// Finding 15: a host that stops reading for longer than the liveness limit made the session
/// drop the link as half-open once it read again.
#[tokio::test(start_paused = true)]
async fn a_host_that_stops_reading_for_half_a_minute_does_not_drop_the_link() {
    let server = fake(ServerVersion::V0_26).await;
    let (engine, mut rx) = Engine::new(4);
    engine.add_instance(spec(&server, "cm-stuck-host")).unwrap();
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-stuck-host")).await;
    for round in 0..3 {
        // Events that are never dropped: the fifth waits for room.
        for i in 0..5 {
            server.broadcast_json(&format!("stuck.{round}.{i}"), json!({}));
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (_, seen) = until(&mut rx, "the last one", |e| {
            matches!(&e.kind, EventKind::ServerEvent { kind, .. } if *kind == format!("stuck.{round}.4"))
        })
        .await;
        let kinds: Vec<&str> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ServerEvent { kind, .. } => Some(kind.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(kinds.len(), 4, "round {round}: {kinds:?}");
        assert!(
            seen.iter().all(|e| connection(e).is_none()),
            "round {round}: {seen:#?}"
        );
    }
    server.broadcast_json("after", json!({}));
    let (_, seen) = until(
        &mut rx,
        "after",
        |e| matches!(&e.kind, EventKind::ServerEvent { kind, .. } if kind == "after"),
    )
    .await;
    assert!(seen.iter().all(|e| connection(e).is_none()), "{seen:#?}");
}

#[cfg(target_os = "linux")]
fn rss_kib() -> u64 {
    proc_status_kib(std::process::id(), "VmRSS:")
}

#[cfg(not(target_os = "linux"))]
fn rss_kib() -> u64 {
    0
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_ten_thousand_messages_a_second_of_new_types_is_delivered_whole() {
    let server = fake(ServerVersion::V0_26).await;
    let (engine, mut rx) = Engine::new(256);
    engine
        .add_instance(spec(&server, "cm-flood-types"))
        .unwrap();
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-flood-types")).await;
    // Our own job stepping fast meanwhile: its progress and previews may be shed.
    let ours = server.submit(sampler(10_000, 10, "busy"), Some("cm-flood-types"));
    until(&mut rx, "running", |e| {
        job(e).is_some_and(|j| j.prompt_id.as_str() == ours && j.node_value.is_some())
    })
    .await;
    let before = rss_kib();
    let count = 20_000;
    server.flood_custom_events(count, 10_000.0);
    let mut next = 1;
    let mut stalled = false;
    let mut links = Vec::new();
    let deadline = Instant::now() + GUARD;
    while next <= count {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the flood arrives")
            .expect("the engine runs");
        match &e.kind {
            EventKind::ServerEvent { kind, data } if kind.starts_with("fake.flood.") => {
                // Every one, in order: none of them may be dropped.
                assert_eq!(*kind, format!("fake.flood.{next}"));
                assert_eq!(data["i"], json!(next));
                next += 1;
                if next == 1_000 && !stalled {
                    // The host stops reading for longer than the liveness limit.
                    stalled = true;
                    tokio::time::sleep(Duration::from_secs(20)).await;
                }
            }
            EventKind::Connection(c) => links.push(c.clone()),
            _ => {}
        }
    }
    let after = rss_kib();
    eprintln!(
        "{count} custom events of new types at 10,000/s: RSS {before} KiB before, {after} KiB \
         after (whole test process, other tests included); {} superseded events dropped",
        engine.dropped_events()
    );
    assert!(links.is_empty(), "{links:?}");
    // The engine holds no backlog of its own: the channel is bounded, and while the host read
    // nothing the socket was not read either (the server's writes waited). Our job goes on and
    // its end arrives once.
    post(&server, "interrupt", json!({"prompt_id": ours})).await;
    let (j, seen) = terminal(&mut rx, &ours).await;
    assert_eq!(j.state, JobState::Interrupted);
    assert!(seen.iter().filter_map(job).all(|v| !v.state.is_terminal()));
}

/// Finding 7: every vanished job got its own lookup at once, so N jobs gone in a restart made
/// N requests and N sockets against a server that had just come back.
#[tokio::test(start_paused = true)]
async fn outcome_lookups_after_a_restart_go_a_few_at_a_time() {
    let server = fake(ServerVersion::V0_26).await;
    let proxy = Proxy::start(server.addr(), Link::default()).await;
    let (_engine, mut rx) = engine(spec_at(&proxy.url(), "cm-lookups"));
    connected(&mut rx).await;
    server.wait_for_client(Some("cm-lookups")).await;
    server.hold_queue(true);
    let ids: Vec<String> = (0..40)
        .map(|i| server.submit(sampler(1, 1, &format!("q{i}")), Some("browser")))
        .collect();
    until(
        &mut rx,
        "all forty queued",
        |e| matches!(&e.kind, EventKind::Queue { pending, .. } if pending.len() == 40),
    )
    .await;
    let before = proxy.max_open();
    server.restart().await;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let ended = crate::live::terminals(&mut rx, &refs).await;
    assert!(ended.values().all(|j| j.state == JobState::Lost));
    let most = proxy.max_open();
    let accepted = proxy.counts.accepted.load(Ordering::SeqCst);
    eprintln!(
        "lookups: at most {most} connections at once ({before} before the restart), {accepted} in all"
    );
    // The socket, a poll and four lookups at most; before, one connection per job (42).
    assert!(most <= 8, "{most} connections at once");
}

/// Finding 24: a server that accepts the socket and closes it at once was retried every second
/// forever (each short session started the restart window again).
#[tokio::test(start_paused = true)]
async fn a_server_that_accepts_the_socket_then_closes_it_backs_off() {
    let server = fake_with(FakeConfig {
        socket: SocketMode::AcceptThenClose,
        ..FakeConfig::default()
    })
    .await;
    let (engine, rx) = engine(spec(&server, "cm-flapping"));
    let consumer = drain(rx);
    // Within the restart window (two minutes) retries stay close together, as for a restart...
    tokio::time::sleep(Duration::from_secs(300)).await;
    server.clear_request_log();
    // ...after it, 15 to 30 s apart.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let upgrades = server
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/ws") && r.status == 101)
        .count();
    drop(engine);
    let changes = consumer.await.unwrap();
    assert!(
        (10..=21).contains(&upgrades),
        "{upgrades} upgrades in five minutes"
    );
    let last_retry = changes
        .iter()
        .rev()
        .find_map(|(_, c)| c.retry_in_ms)
        .unwrap();
    assert!(last_retry >= 15_000, "{last_retry} ms");
}

// ---------------------------------------------------------------------------------------------
// HTTP-only mode.

/// Behind a proxy that refuses the socket: the queue and outcomes by polling, a job submitted
/// and another cancelled, then live again once the socket opens.
async fn runs_on_http_only_then_goes_live(version: ServerVersion, refusal: u16) {
    let server = fake_with(FakeConfig {
        version,
        socket: SocketMode::Refuse(refusal),
        ..FakeConfig::default()
    })
    .await;
    let (engine, mut rx) = Engine::new(4096);
    let id = engine.add_instance(spec(&server, "cm-http-only")).unwrap();
    let (e, _) = until(&mut rx, "HTTP only", |e| {
        connection(e) == Some(ConnectionState::HttpOnly)
    })
    .await;
    let c = status_of(&e).unwrap();
    assert!(
        c.detail
            .starts_with("HTTP only: no live progress or previews")
            && c.detail.contains(&refusal.to_string()),
        "{version}: {c:?}"
    );
    assert!(c.retry_in_ms.is_some());

    // The queue: another client's job, held, is listed.
    server.hold_queue(true);
    let theirs = server.submit(sampler(3, 5, "theirs"), Some("browser"));
    until(&mut rx, "their job queued", |e| {
        matches!(&e.kind, EventKind::Queue { pending, .. } if pending.iter().any(|p| p.as_str() == theirs))
    })
    .await;
    server.hold_queue(false);
    let (j, _) = terminal(&mut rx, &theirs).await;
    assert_eq!(j.state, JobState::Success, "{version}");
    assert!(!j.outputs.is_empty(), "{version}: outcomes are read");

    // Our own job: accepted, followed by polling like anyone's, and said so.
    let ours = engine
        .submit(id, sampler(3, 5, "ours"), SubmitOptions::default())
        .await
        .unwrap()
        .prompt_id;
    let (j, seen) = terminal(&mut rx, ours.as_str()).await;
    assert_eq!(j.state, JobState::Success, "{version}");
    assert_eq!(j.origin, JobOrigin::SelfApp);
    assert_eq!(j.fidelity, Fidelity::Observed, "{version}");
    assert!(seen.iter().filter_map(job).all(|v| v.percent.is_none()));
    assert!(!seen.iter().any(|e| matches!(e.kind, EventKind::Preview(_))));

    // Another, cancelled while it waits.
    server.hold_queue(true);
    let doomed = engine
        .submit(id, sampler(3, 5, "doomed"), SubmitOptions::default())
        .await
        .unwrap()
        .prompt_id;
    assert_eq!(
        engine.cancel(id, &doomed).await.unwrap(),
        CancelOutcome::Removed
    );
    let (j, _) = terminal(&mut rx, doomed.as_str()).await;
    assert_eq!(j.state, JobState::Deleted, "{version}");
    server.hold_queue(false);

    // The proxy lets the socket through: live again on its own (after a refusal that looked
    // deliberate the socket is tried every few minutes at most), our jobs followed live.
    server.set_socket_mode(SocketMode::Accept);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("live again within ten minutes")
            .expect("the engine runs");
        if connection(&e) == Some(ConnectionState::Connected) {
            break;
        }
    }
    let live = engine
        .submit(id, sampler(3, 5, "live"), SubmitOptions::default())
        .await
        .unwrap()
        .prompt_id;
    let (j, _) = terminal(&mut rx, live.as_str()).await;
    assert_eq!(j.fidelity, Fidelity::Live, "{version}");
    assert_eq!(j.percent, Some(100.0));
}

/// On HTTP alone the polls are the only sign of the server: a proxy that starts answering 502
/// (the server behind it gone) ends the session like no answer would, instead of leaving the
/// instance "HTTP only", counted as up, with its jobs running forever.
#[tokio::test(start_paused = true)]
async fn on_http_only_a_proxy_answering_502_is_the_server_gone() {
    for version in [ServerVersion::V0_26, ServerVersion::V0_3_64] {
        let server = fake_with(FakeConfig {
            version,
            socket: SocketMode::Refuse(403),
            ..FakeConfig::default()
        })
        .await;
        let (_engine, mut rx) = engine(spec(&server, "cm-http-only-502"));
        until(&mut rx, "HTTP only", |e| {
            connection(e) == Some(ConnectionState::HttpOnly)
        })
        .await;
        for route in ["/queue", "/jobs", "/history"] {
            server.set_http_fault(route, Some(HttpFault::Status { status: 502 }));
        }
        let (e, _) = until(
            &mut rx,
            "the session ended",
            |e| matches!(connection(e), Some(s) if s != ConnectionState::HttpOnly),
        )
        .await;
        let c = status_of(&e).unwrap();
        assert!(c.detail.contains("502"), "{version}: {c:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn http_only_through_the_jobs_api_then_live() {
    runs_on_http_only_then_goes_live(ServerVersion::V0_26, 403).await;
}

#[tokio::test(start_paused = true)]
async fn http_only_through_queue_and_history_then_live() {
    runs_on_http_only_then_goes_live(ServerVersion::V0_3_64, 404).await;
}

#[tokio::test(start_paused = true)]
async fn http_only_on_a_legacy_server_then_live() {
    runs_on_http_only_then_goes_live(ServerVersion::Legacy, 400).await;
}
