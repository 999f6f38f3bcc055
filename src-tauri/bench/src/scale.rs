//! Measure 4, engine side: what the engine alone costs with many instances connected and idle
//! (status messages, keep-alive pings and idle queue polls only), in this process, so the app's
//! figure can be split into the engine's share and the GTK/WebKit share.
//!
//! Every instance is a separate engine instance with its own socket, client id and polling, all
//! against one fake server in a process of its own (a server's cost is not counted). The memory
//! figure is the growth of this process's resident set from before the instances were added, so
//! what earlier measures left in the heap does not count; CPU is the median over a few windows.

use crate::server::ServerProcess;
use crate::stats::{median, round};
use crate::sys::{rss_kib, CpuTime};
use anyhow::{bail, Context};
use comfy_engine::{ConnectionState, Engine, EventKind, InstanceSpec, DEFAULT_EVENT_CAPACITY};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Config {
    pub instances: usize,
    /// After all are connected, before measuring (first polls and stats settle).
    pub settle: Duration,
    pub windows: usize,
    pub window: Duration,
}

impl Config {
    pub fn new(smoke: bool) -> Config {
        Config {
            instances: if smoke { 10 } else { 100 },
            settle: Duration::from_secs(if smoke { 1 } else { 10 }),
            windows: 3,
            window: Duration::from_secs(if smoke { 1 } else { 10 }),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub instances: usize,
    pub all_connected_ms: f64,
    /// Share of one core, median of the windows.
    pub idle_core_percent: f64,
    pub windows: usize,
    pub window_s: f64,
    /// This process's resident set before the instances were added, and while they idle.
    pub rss_before_mib: f64,
    pub rss_idle_mib: f64,
    /// The engine's own cost of the instances.
    pub rss_growth_mib: f64,
    pub rss_growth_per_instance_kib: f64,
    pub events_seen: u64,
}

pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let server = ServerProcess::spawn().await?;
    let result = measure(cfg, &server).await;
    server.stop().await;
    result
}

fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

async fn measure(cfg: &Config, server: &ServerProcess) -> anyhow::Result<Report> {
    let rss_before = rss_kib(None)?;
    let (engine, mut events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    let (tx, mut connected) = mpsc::unbounded_channel();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    let reader = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let EventKind::Connection(status) = &event.kind {
                if status.state == ConnectionState::Connected {
                    let _ = tx.send(event.instance.clone());
                }
            }
        }
    });
    let started = Instant::now();
    for i in 0..cfg.instances {
        engine.add_instance(InstanceSpec::new(format!("gpu{i:03}"), &server.base_url())?)?;
    }
    let mut up = HashSet::new();
    let limit = Duration::from_secs(120);
    while up.len() < cfg.instances {
        let name = tokio::time::timeout_at((started + limit).into(), connected.recv())
            .await
            .with_context(|| {
                format!(
                    "only {} of {} instances connected within {limit:?}",
                    up.len(),
                    cfg.instances
                )
            })?
            .context("the engine stopped")?;
        up.insert(name);
    }
    let all_connected = started.elapsed();
    tokio::time::sleep(cfg.settle).await;

    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..cfg.windows {
        let (t0, c0) = (Instant::now(), CpuTime::now()?);
        tokio::time::sleep(cfg.window).await;
        let used = CpuTime::now()?.since(c0).total();
        cpu.push(100.0 * used.as_secs_f64() / t0.elapsed().as_secs_f64());
        rss.push(rss_kib(None)? as f64);
    }
    engine.shutdown().await;
    let _ = reader.await;

    let (Some(core), Some(rss_idle)) = (median(&cpu), median(&rss)) else {
        bail!("no measuring window");
    };
    let growth = (rss_idle as u64).saturating_sub(rss_before);
    Ok(Report {
        instances: cfg.instances,
        all_connected_ms: round(all_connected.as_secs_f64() * 1000.0, 0),
        idle_core_percent: round(core, 2),
        windows: cfg.windows,
        window_s: cfg.window.as_secs_f64(),
        rss_before_mib: mib(rss_before),
        rss_idle_mib: mib(rss_idle as u64),
        rss_growth_mib: mib(growth),
        rss_growth_per_instance_kib: round(growth as f64 / cfg.instances.max(1) as f64, 0),
        events_seen: seen.load(std::sync::atomic::Ordering::Relaxed),
    })
}
