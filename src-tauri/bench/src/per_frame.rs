//! Measure 1: CPU time per 1,000 frames, from socket to decoded event at the sink, against the
//! floor of a bare tokio-tungstenite client that receives and drops the same frames.
//!
//! The server runs in its own process; this process reads its own CPU time (all threads) around
//! each burst. A burst ends with a sentinel message, so the window closes when the reader has
//! taken the last frame, not when a timer says so. The engine runs in steady state: connected,
//! following a running job of its own (so it polls HTTP at its busy rate, as it does when
//! previews arrive), warmed up before anything is measured. Engine and bare reader take turns,
//! in alternating order, so drift on a shared machine hits both alike.

use crate::server::{ServerProcess, SENTINEL};
use crate::stats::{median, round};
use crate::sys::CpuTime;
use anyhow::{bail, Context};
use comfy_engine::{Engine, EventKind, InstanceSpec, JobState};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// How long one burst may take to arrive before the measure fails.
const BURST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Config {
    pub repetitions: usize,
    /// Previews per measured burst, pushed in chunks of `preview_chunk` (the fake queues what
    /// it is given in memory, so a chunk is sent only when the last one has arrived).
    pub previews: usize,
    pub preview_chunk: usize,
    pub progress: usize,
    pub progress_chunk: usize,
    pub warmup_previews: usize,
    pub warmup_progress: usize,
}

impl Config {
    pub fn new(smoke: bool) -> Config {
        if smoke {
            Config {
                repetitions: 3,
                previews: 1_000,
                preview_chunk: 500,
                progress: 5_000,
                progress_chunk: 5_000,
                warmup_previews: 200,
                warmup_progress: 1_000,
            }
        } else {
            Config {
                repetitions: 9,
                previews: 10_000,
                preview_chunk: 1_000,
                progress: 50_000,
                progress_chunk: 10_000,
                warmup_previews: 1_000,
                warmup_progress: 10_000,
            }
        }
    }

    /// Room for every event of the largest burst: each frame reaches the sink and is dropped
    /// there, none is dropped inside the engine (which would spare it the channel's work).
    fn event_capacity(&self) -> usize {
        self.preview_chunk.max(self.progress_chunk) * 2 + comfy_engine::DEFAULT_EVENT_CAPACITY
    }
}

/// What one reader did in one burst.
#[derive(Debug, Clone, Copy, Default)]
struct Burst {
    cpu: CpuTime,
    wall: Duration,
    /// Frames the reader saw (events at the engine's sink, or frames off the bare socket).
    received: u64,
    /// Engine events dropped at its full channel during the burst (engine only).
    dropped: u64,
}

impl Burst {
    fn cpu_ms_per_1000(&self, sent: usize) -> f64 {
        self.cpu.total().as_secs_f64() * 1000.0 * 1000.0 / sent.max(1) as f64
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    engine_previews: Burst,
    engine_progress: Burst,
    bare_previews: Burst,
    bare_progress: Burst,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub engine_cpu_ms_per_1000_previews: f64,
    pub bare_cpu_ms_per_1000_previews: f64,
    pub engine_cpu_ms_per_1000_progress: f64,
    pub bare_cpu_ms_per_1000_progress: f64,
    pub engine_first: bool,
}

#[derive(Debug, Serialize)]
pub struct ReaderReport {
    pub cpu_ms_per_1000_previews: f64,
    pub cpu_ms_per_1000_progress: f64,
    /// The same figures split into user mode and kernel (socket reads, wake-ups).
    pub user_ms_per_1000_previews: f64,
    pub sys_ms_per_1000_previews: f64,
    pub user_ms_per_1000_progress: f64,
    pub sys_ms_per_1000_progress: f64,
    pub wall_ms_per_1000_previews: f64,
    pub wall_ms_per_1000_progress: f64,
    pub previews_received: u64,
    pub progress_received: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_dropped: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub repetitions: usize,
    pub preview_px: u32,
    pub preview_frame_bytes: usize,
    pub previews_per_run: usize,
    pub progress_per_run: usize,
    /// The engine's event channel: room for a whole chunk, so no event is dropped.
    pub event_capacity: usize,
    pub previews_sent: u64,
    pub progress_sent: u64,
    /// Medians over the repetitions.
    pub engine: ReaderReport,
    pub bare_reader: ReaderReport,
    /// Median of the per-repetition ratios engine / bare reader (same run).
    pub ratio_previews: f64,
    pub ratio_progress: f64,
    pub target_ratio: f64,
    pub runs: Vec<RunReport>,
}

pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut server = ServerProcess::spawn().await?;
    let result = measure(cfg, &mut server).await;
    server.stop().await;
    result
}

/// Names and ids this measure's two clients use for all repetitions.
struct Clients {
    engine: String,
    bare: String,
    prompt: Option<String>,
    seq: u64,
    frame_bytes: usize,
}

async fn measure(cfg: &Config, server: &mut ServerProcess) -> anyhow::Result<Report> {
    let mut clients = Clients {
        engine: comfy_engine::instance::new_client_id(),
        bare: format!("bench-bare-{}", uuid::Uuid::new_v4().simple()),
        prompt: None,
        seq: 0,
        frame_bytes: 0,
    };
    let mut runs = Vec::new();
    for rep in 0..cfg.repetitions {
        let engine_first = rep % 2 == 0;
        let mut run = Run::default();
        for phase in 0..2 {
            if (phase == 0) == engine_first {
                (run.engine_previews, run.engine_progress) =
                    engine_phase(cfg, server, &mut clients).await?;
            } else {
                (run.bare_previews, run.bare_progress) =
                    bare_phase(cfg, server, &mut clients).await?;
            }
        }
        eprintln!(
            "  per_frame {}/{}: previews engine {:.1} / bare {:.1} ms per 1000, progress engine {:.1} / bare {:.1}",
            rep + 1,
            cfg.repetitions,
            run.engine_previews.cpu_ms_per_1000(cfg.previews),
            run.bare_previews.cpu_ms_per_1000(cfg.previews),
            run.engine_progress.cpu_ms_per_1000(cfg.progress),
            run.bare_progress.cpu_ms_per_1000(cfg.progress),
        );
        runs.push((run, engine_first));
    }
    report(cfg, &clients, &runs)
}

fn report(cfg: &Config, clients: &Clients, runs: &[(Run, bool)]) -> anyhow::Result<Report> {
    let reps = runs.len() as u64;
    let previews_sent = cfg.previews as u64 * reps;
    let progress_sent = cfg.progress as u64 * reps;
    let sum = |f: &dyn Fn(&Run) -> u64| runs.iter().map(|(r, _)| f(r)).sum::<u64>();
    let engine_previews = sum(&|r| r.engine_previews.received);
    let engine_progress = sum(&|r| r.engine_progress.received);
    let engine_dropped = sum(&|r| r.engine_previews.dropped + r.engine_progress.dropped);
    let bare_previews = sum(&|r| r.bare_previews.received);
    let bare_progress = sum(&|r| r.bare_progress.received);
    if engine_previews == 0 || engine_progress == 0 {
        bail!(
            "the engine decoded nothing: {engine_previews} preview and {engine_progress} job events for {previews_sent} previews and {progress_sent} progress messages sent"
        );
    }
    if engine_previews + engine_dropped < previews_sent
        || engine_progress + engine_dropped < progress_sent
    {
        bail!(
            "frames went missing: the engine reported {engine_previews} previews and {engine_progress} job events (+{engine_dropped} dropped at its channel) for {previews_sent} previews and {progress_sent} progress messages sent"
        );
    }
    if bare_previews < previews_sent || bare_progress < progress_sent {
        bail!(
            "the bare reader got {bare_previews}/{previews_sent} previews and {bare_progress}/{progress_sent} progress messages"
        );
    }
    let med = |f: &dyn Fn(&Run) -> f64| {
        median(&runs.iter().map(|(r, _)| f(r)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let per = |b: &Burst, n: usize| b.cpu_ms_per_1000(n);
    let wall = |b: &Burst, n: usize| b.wall.as_secs_f64() * 1e6 / n.max(1) as f64;
    let user = |b: &Burst, n: usize| b.cpu.user.as_secs_f64() * 1e6 / n.max(1) as f64;
    let sys = |b: &Burst, n: usize| b.cpu.system.as_secs_f64() * 1e6 / n.max(1) as f64;
    let reader = |previews: &dyn Fn(&Run) -> Burst,
                  progress: &dyn Fn(&Run) -> Burst,
                  (got_previews, got_progress, dropped): (u64, u64, Option<u64>)| {
        ReaderReport {
            cpu_ms_per_1000_previews: round(med(&|r| per(&previews(r), cfg.previews)), 2),
            cpu_ms_per_1000_progress: round(med(&|r| per(&progress(r), cfg.progress)), 2),
            user_ms_per_1000_previews: round(med(&|r| user(&previews(r), cfg.previews)), 2),
            sys_ms_per_1000_previews: round(med(&|r| sys(&previews(r), cfg.previews)), 2),
            user_ms_per_1000_progress: round(med(&|r| user(&progress(r), cfg.progress)), 2),
            sys_ms_per_1000_progress: round(med(&|r| sys(&progress(r), cfg.progress)), 2),
            wall_ms_per_1000_previews: round(med(&|r| wall(&previews(r), cfg.previews)), 2),
            wall_ms_per_1000_progress: round(med(&|r| wall(&progress(r), cfg.progress)), 2),
            previews_received: got_previews,
            progress_received: got_progress,
            events_dropped: dropped,
        }
    };
    Ok(Report {
        repetitions: runs.len(),
        preview_px: crate::frames::PREVIEW_PX,
        preview_frame_bytes: clients.frame_bytes,
        previews_per_run: cfg.previews,
        progress_per_run: cfg.progress,
        event_capacity: cfg.event_capacity(),
        previews_sent,
        progress_sent,
        engine: reader(
            &|r| r.engine_previews,
            &|r| r.engine_progress,
            (engine_previews, engine_progress, Some(engine_dropped)),
        ),
        bare_reader: reader(
            &|r| r.bare_previews,
            &|r| r.bare_progress,
            (bare_previews, bare_progress, None),
        ),
        ratio_previews: round(
            med(&|r| per(&r.engine_previews, 1) / per(&r.bare_previews, 1)),
            2,
        ),
        ratio_progress: round(
            med(&|r| per(&r.engine_progress, 1) / per(&r.bare_progress, 1)),
            2,
        ),
        target_ratio: 1.5,
        runs: runs
            .iter()
            .map(|(r, engine_first)| RunReport {
                engine_cpu_ms_per_1000_previews: round(per(&r.engine_previews, cfg.previews), 2),
                bare_cpu_ms_per_1000_previews: round(per(&r.bare_previews, cfg.previews), 2),
                engine_cpu_ms_per_1000_progress: round(per(&r.engine_progress, cfg.progress), 2),
                bare_cpu_ms_per_1000_progress: round(per(&r.bare_progress, cfg.progress), 2),
                engine_first: *engine_first,
            })
            .collect(),
    })
}

/// What a reader counts; the sentinel count is a watch so a burst can wait for it.
struct Counters {
    previews: AtomicU64,
    progress: AtomicU64,
    sentinels: watch::Sender<u64>,
}

impl Counters {
    fn new() -> Arc<Counters> {
        Arc::new(Counters {
            previews: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            sentinels: watch::channel(0).0,
        })
    }

    fn sentinel(&self) {
        self.sentinels.send_modify(|n| *n += 1);
    }
}

/// Sends one burst, chunk after chunk, each closed by its sentinel; returns CPU and wall time
/// and how many frames of the counted kind arrived meanwhile. `command(n, seq)` is the server
/// command for a chunk of `n` frames.
async fn burst(
    server: &mut ServerProcess,
    counters: &Counters,
    seq: &mut u64,
    (total, chunk): (usize, usize),
    command: &dyn Fn(usize, u64) -> String,
    counted: &AtomicU64,
    dropped: &dyn Fn() -> u64,
) -> anyhow::Result<Burst> {
    let mut sentinels = counters.sentinels.subscribe();
    let (got0, dropped0) = (counted.load(Ordering::Relaxed), dropped());
    let cpu0 = CpuTime::now()?;
    let t0 = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.max(1));
        left -= n;
        *seq += 1;
        let target = *sentinels.borrow_and_update() + 1;
        let command = command(n, *seq);
        server.call(&command).await?;
        tokio::time::timeout(BURST_TIMEOUT, sentinels.wait_for(|n| *n >= target))
            .await
            .with_context(|| {
                format!("`{command}`: the burst did not arrive within {BURST_TIMEOUT:?}")
            })?
            .context("the reader stopped")?;
    }
    let wall = t0.elapsed();
    let cpu = CpuTime::now()?.since(cpu0);
    Ok(Burst {
        cpu,
        wall,
        received: counted.load(Ordering::Relaxed) - got0,
        dropped: dropped() - dropped0,
    })
}

/// Warm-up then the two measured bursts, for whichever reader `counters` belongs to.
async fn bursts(
    cfg: &Config,
    server: &mut ServerProcess,
    clients: &mut Clients,
    sid: &str,
    counters: &Counters,
    dropped: &dyn Fn() -> u64,
) -> anyhow::Result<(Burst, Burst)> {
    let prompt = clients.prompt.clone().context("no running job")?;
    let mut measured = (Burst::default(), Burst::default());
    for (previews, progress, keep) in [
        (cfg.warmup_previews, cfg.warmup_progress, false),
        (cfg.previews, cfg.progress, true),
    ] {
        let b = burst(
            server,
            counters,
            &mut clients.seq,
            (previews, cfg.preview_chunk),
            &|n, seq| format!("previews {n} {prompt} {seq}"),
            &counters.previews,
            dropped,
        )
        .await?;
        let p = burst(
            server,
            counters,
            &mut clients.seq,
            (progress, cfg.progress_chunk),
            &|n, seq| format!("progress {sid} {prompt} {n} {seq}"),
            &counters.progress,
            dropped,
        )
        .await?;
        if keep {
            measured = (b, p);
        }
    }
    Ok(measured)
}

async fn engine_phase(
    cfg: &Config,
    server: &mut ServerProcess,
    clients: &mut Clients,
) -> anyhow::Result<(Burst, Burst)> {
    let (engine, mut events) = Engine::new(cfg.event_capacity());
    let mut spec = InstanceSpec::new("Bench", &server.base_url())?;
    spec.client_id = clients.engine.clone();
    engine.add_instance(spec)?;
    let counters = Counters::new();
    let sink = counters.clone();
    // The sink: count what matters, drop everything.
    let reader = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match &event.kind {
                EventKind::Preview(_) => {
                    sink.previews.fetch_add(1, Ordering::Relaxed);
                }
                EventKind::Job(job) if job.state == JobState::Running => {
                    sink.progress.fetch_add(1, Ordering::Relaxed);
                }
                EventKind::ServerEvent { kind, .. } if kind == SENTINEL => sink.sentinel(),
                _ => {}
            }
        }
    });
    let sid = clients.engine.clone();
    server.call(&format!("wait-client {sid}")).await?;
    if clients.prompt.is_none() {
        // A job of ours that runs for the whole measure, one step a minute: the frames pushed
        // belong to it, as a sampler's would.
        let answer = server
            .call(&format!("submit {sid} 10000 60000 512"))
            .await?;
        let prompt = answer
            .strip_prefix("prompt ")
            .context("no prompt id from the fake server")?;
        // The same bytes the server pushes, to report their size.
        let jpeg = crate::frames::preview_jpeg(crate::frames::PREVIEW_PX, 1)?;
        clients.frame_bytes =
            crate::frames::preview_frame(&jpeg, crate::server::SAMPLER_NODE, prompt).len();
        clients.prompt = Some(prompt.to_owned());
    }
    let dropped = || engine.dropped_events();
    let result = bursts(cfg, server, clients, &sid, &counters, &dropped).await;
    engine.shutdown().await;
    let _ = reader.await;
    server.call(&format!("wait-gone {sid}")).await?;
    result
}

async fn bare_phase(
    cfg: &Config,
    server: &mut ServerProcess,
    clients: &mut Clients,
) -> anyhow::Result<(Burst, Burst)> {
    let sid = clients.bare.clone();
    let config = WebSocketConfig::default()
        .max_message_size(Some(comfy_engine::ws::MAX_FRAME))
        .max_frame_size(Some(comfy_engine::ws::MAX_FRAME));
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(server.ws_url(&sid), Some(config), true)
            .await
            .context("connecting the bare reader")?;
    let (mut write, mut read) = socket.split();
    write
        .send(Message::text(comfy_protocol::CLIENT_FEATURE_FLAGS))
        .await?;
    let counters = Counters::new();
    let sink = counters.clone();
    // The floor: receive, drop; only a substring test tells the sentinel from the rest.
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = read.next().await {
            match message {
                Message::Binary(_) => {
                    sink.previews.fetch_add(1, Ordering::Relaxed);
                }
                Message::Text(text) => {
                    if text.as_str().contains(SENTINEL) {
                        sink.sentinel();
                    } else {
                        sink.progress.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    server.call(&format!("wait-client {sid}")).await?;
    let result = bursts(cfg, server, clients, &sid, &counters, &|| 0).await;
    let _ = write.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    server.call(&format!("wait-gone {sid}")).await?;
    result
}
