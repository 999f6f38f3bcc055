//! Measure 3: an accelerated soak of one instance, engine and journal together. Jobs queued
//! with the instance's own client id run back to back on the fake (each sampler step sends
//! `progress_state`, a 512 px JPEG preview and `progress`), and every event goes where the
//! desktop app's event task sends it: jobs to the [`Journal`], connection changes and custom
//! server events to the event log, the latest preview kept in memory. The process's resident
//! memory is sampled after a warm-up and to the end; the SQLite files are measured at the end.

use crate::server::ServerProcess;
use crate::stats::round;
use crate::sys::rss_kib;
use anyhow::{bail, Context};
use comfy_engine::journal::{EventLogRule, Journal, LogLine};
use comfy_engine::{
    ConnectionState, Engine, Event, EventKind, InstanceSpec, DEFAULT_EVENT_CAPACITY,
};
use comfy_store::{EventRetention, InstanceId, NewEvent, NewInstance, Store};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Past this many jobs every bounded memory of the engine is full: its tracker remembers the
/// last 2,048 finished jobs (so late frames cannot resurrect them). Growth from here on is
/// growth without a bound.
const STEADY_AFTER_JOBS: u64 = 2_500;

#[derive(Debug, Clone)]
pub struct Config {
    pub jobs: u64,
    pub steps_per_job: u64,
    /// Jobs queued at once; the next batch waits for the queue to drain.
    pub batch: u64,
    pub warmup_jobs: u64,
    pub preview_px: u32,
    pub rss_samples: u64,
    /// Keep the database here instead of a temporary directory.
    pub db: Option<PathBuf>,
}

impl Config {
    pub fn new(smoke: bool) -> Config {
        if smoke {
            Config {
                jobs: 200,
                steps_per_job: 25,
                batch: 10,
                warmup_jobs: 40,
                preview_px: crate::frames::PREVIEW_PX,
                rss_samples: 4,
                db: None,
            }
        } else {
            Config {
                jobs: 10_000,
                steps_per_job: 100,
                batch: 10,
                warmup_jobs: 200,
                preview_px: crate::frames::PREVIEW_PX,
                rss_samples: 20,
                db: None,
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Retention {
    pub event_log_max_rows: u32,
    pub event_log_max_age_days: i64,
    pub jobs: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub jobs: u64,
    pub warmup_jobs: u64,
    pub steps_per_job: u64,
    pub preview_px: u32,
    pub previews_expected: u64,
    pub preview_events: u64,
    pub events_dropped: u64,
    pub job_events: u64,
    pub terminal_states_written: u64,
    pub journal_job_rows: u64,
    pub event_log_rows: u64,
    pub journal_errors: u64,
    pub wall_s: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_max_kib: u64,
    pub rss_growth_mib: f64,
    /// Once the engine's bounded memories are full (`rss_steady_at_jobs` jobs done).
    pub rss_steady_at_jobs: Option<u64>,
    pub rss_steady_kib: Option<u64>,
    pub rss_growth_from_steady_mib: Option<f64>,
    pub target_rss_growth_mib: f64,
    /// (jobs done, RSS KiB) from the end of the warm-up on.
    pub rss_samples_kib: Vec<(u64, u64)>,
    pub server_rss_end_kib: Option<u64>,
    pub db_bytes: u64,
    pub wal_bytes: u64,
    pub shm_bytes: u64,
    pub db_total_bytes: u64,
    /// Database, WAL and shared-memory files once the last connection closed (checkpointed).
    pub db_bytes_after_close: u64,
    pub db_bytes_per_job: f64,
    pub retention: Retention,
}

/// What the event task counts while it records.
#[derive(Default)]
struct Counts {
    previews: AtomicU64,
    jobs: AtomicU64,
    terminal_written: AtomicU64,
    errors: AtomicU64,
}

/// The app's event recording (its `forward.rs`) without the Tauri parts: journal, event log,
/// latest preview.
struct Recorder {
    journal: Journal,
    instance: InstanceId,
    rule: EventLogRule,
    latest_preview: Option<bytes::Bytes>,
    counts: Arc<Counts>,
}

impl Recorder {
    fn record(&mut self, event: &Event) {
        let ts = comfy_engine::now_ms();
        match &event.kind {
            EventKind::Preview(p) => {
                self.latest_preview = Some(p.image.clone());
                self.counts.previews.fetch_add(1, Ordering::Relaxed);
                return;
            }
            EventKind::Job(job) => {
                self.counts.jobs.fetch_add(1, Ordering::Relaxed);
                match self.journal.record(self.instance, job, ts) {
                    Ok(true) => {
                        self.counts.terminal_written.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.counts.errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "  soak: the journal could not record {}: {e}",
                            job.prompt_id
                        );
                    }
                }
                return;
            }
            EventKind::Connection(status) => {
                let connected = status.state == ConnectionState::Connected;
                if let Err(e) = self.journal.store_mut().set_instance_status(
                    self.instance,
                    &status.detail,
                    connected.then_some(ts),
                ) {
                    self.counts.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("  soak: could not save the connection status: {e}");
                }
            }
            _ => {}
        }
        let Some(LogLine { kind, detail, data }) =
            self.rule.line(event, tokio::time::Instant::now())
        else {
            return;
        };
        let new = NewEvent {
            instance: Some(self.instance),
            ts,
            kind,
            detail,
            data_json: data,
        };
        if let Err(e) = self.journal.store_mut().log_event(&new) {
            self.counts.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("  soak: could not log an event: {e}");
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Sizes of the database, its WAL and its shared-memory file.
fn db_sizes(db: &Path) -> (u64, u64, u64) {
    (
        file_len(db),
        file_len(&with_suffix(db, "-wal")),
        file_len(&with_suffix(db, "-shm")),
    )
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let db = cfg.db.clone().unwrap_or_else(|| dir.path().join("soak.db"));
    let mut server = ServerProcess::spawn().await?;
    let result = measure(cfg, &mut server, &db).await;
    server.stop().await;
    result
}

async fn measure(cfg: &Config, server: &mut ServerProcess, db: &Path) -> anyhow::Result<Report> {
    let mut store = Store::open(db).with_context(|| format!("opening {}", db.display()))?;
    let rec = store
        .insert_instance(
            &NewInstance::new("Bench soak", server.base_url()),
            comfy_engine::now_ms(),
        )
        .context("saving the instance")?;
    let journal = Journal::new(store);
    let mut spec = InstanceSpec::new(rec.name.clone(), &rec.base_url)?;
    spec.client_id = rec.client_id.clone();
    let restored = journal.restore(rec.id, &rec.client_id)?;
    let (engine, mut events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    engine.add_instance_with(spec, restored)?;
    let counts = Arc::new(Counts::default());
    let mut recorder = Recorder {
        journal,
        instance: rec.id,
        rule: EventLogRule::default(),
        latest_preview: None,
        counts: counts.clone(),
    };
    let task = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            recorder.record(&event);
        }
        recorder.journal
    });

    let started = Instant::now();
    let sid = rec.client_id.clone();
    server.call(&format!("wait-client {sid}")).await?;
    let mut submitted = 0u64;
    while submitted < cfg.warmup_jobs {
        let n = cfg.batch.min(cfg.warmup_jobs - submitted);
        submit(cfg, server, &sid, n).await?;
        submitted += n;
    }
    settle(&counts, submitted).await?;
    let rss_start = rss_kib(None)?;
    let mut samples = vec![(submitted, rss_start)];
    let every = (cfg.jobs / cfg.rss_samples.max(1)).max(cfg.batch);
    let mut next_sample = submitted + every;
    let mut steady = None;
    while submitted < cfg.jobs {
        let n = cfg.batch.min(cfg.jobs - submitted);
        submit(cfg, server, &sid, n).await?;
        submitted += n;
        if steady.is_none() && submitted >= STEADY_AFTER_JOBS {
            steady = Some((submitted, rss_kib(None)?));
        }
        if submitted >= next_sample {
            samples.push((submitted, rss_kib(None)?));
            next_sample += every;
            eprintln!(
                "  soak: {submitted}/{} jobs, {} previews, RSS {} KiB, {:.0} s",
                cfg.jobs,
                counts.previews.load(Ordering::Relaxed),
                samples.last().map_or(0, |s| s.1),
                started.elapsed().as_secs_f64()
            );
        }
    }
    settle(&counts, submitted).await?;
    // A job's end can reach the journal through a queue poll while its last frames are still
    // on their way through a busy socket: let those land before they are counted.
    previews_settle(&counts, &engine, cfg.jobs * cfg.steps_per_job).await;
    let rss_end = rss_kib(None)?;
    samples.push((submitted, rss_end));
    let wall = started.elapsed();
    let server_rss = server
        .call("rss")
        .await
        .ok()
        .and_then(|r| r.strip_prefix("rss ").and_then(|n| n.parse().ok()));
    // The files as the running app leaves them: the WAL holds what is not checkpointed yet.
    let open_sizes = db_sizes(db);
    let dropped = engine.dropped_events();
    engine.shutdown().await;
    let journal = task.await.context("the event task failed")?;
    let store = journal.store();
    let job_rows = store.history(Some(rec.id), u32::MAX, 0)?.len() as u64;
    let event_rows = store.event_count()?;
    drop(journal);

    let previews_expected = cfg.jobs * cfg.steps_per_job;
    let preview_events = counts.previews.load(Ordering::Relaxed);
    let terminal = counts.terminal_written.load(Ordering::Relaxed);
    if terminal < cfg.jobs {
        bail!(
            "only {terminal} of {} jobs reached the journal as finished",
            cfg.jobs
        );
    }
    if preview_events + dropped < previews_expected {
        bail!(
            "previews went missing: {preview_events} arrived and {dropped} events were dropped for {previews_expected} sent"
        );
    }
    let closed = db_sizes(db);
    let retention = EventRetention::default();
    Ok(Report {
        jobs: cfg.jobs,
        warmup_jobs: cfg.warmup_jobs,
        steps_per_job: cfg.steps_per_job,
        preview_px: cfg.preview_px,
        previews_expected,
        preview_events,
        events_dropped: dropped,
        job_events: counts.jobs.load(Ordering::Relaxed),
        terminal_states_written: terminal,
        journal_job_rows: job_rows,
        event_log_rows: event_rows,
        journal_errors: counts.errors.load(Ordering::Relaxed),
        wall_s: round(wall.as_secs_f64(), 1),
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        rss_max_kib: samples.iter().map(|s| s.1).max().unwrap_or(rss_end),
        rss_growth_mib: round((rss_end as f64 - rss_start as f64) / 1024.0, 2),
        rss_steady_at_jobs: steady.map(|s| s.0),
        rss_steady_kib: steady.map(|s| s.1),
        rss_growth_from_steady_mib: steady.map(|s| round((rss_end as f64 - s.1 as f64) / 1024.0, 2)),
        target_rss_growth_mib: 10.0,
        rss_samples_kib: samples,
        server_rss_end_kib: server_rss,
        db_bytes: open_sizes.0,
        wal_bytes: open_sizes.1,
        shm_bytes: open_sizes.2,
        db_total_bytes: open_sizes.0 + open_sizes.1 + open_sizes.2,
        db_bytes_after_close: closed.0 + closed.1 + closed.2,
        db_bytes_per_job: round(closed.0 as f64 / cfg.jobs.max(1) as f64, 1),
        retention: Retention {
            event_log_max_rows: retention.max_rows,
            event_log_max_age_days: retention.max_age_ms / (24 * 60 * 60 * 1000),
            jobs: "no retention: one journal row per job (plus its output rows), kept until its instance is deleted",
        },
    })
}

/// Queues `n` jobs with this instance's client id and waits until the fake's queue is empty.
async fn submit(cfg: &Config, server: &mut ServerProcess, sid: &str, n: u64) -> anyhow::Result<()> {
    server
        .call(&format!(
            "jobs {sid} {n} {} {}",
            cfg.steps_per_job, cfg.preview_px
        ))
        .await?;
    Ok(())
}

/// Waits until every preview sent is counted as arrived or dropped, or none has arrived for a
/// second (the check after it then reports what is missing).
async fn previews_settle(counts: &Counts, engine: &Engine, expected: u64) {
    let quiet = Duration::from_secs(1);
    let mut last = (counts.previews.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = counts.previews.load(Ordering::Relaxed);
        if now + engine.dropped_events() >= expected {
            return;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every submitted job's end is in the journal (the socket may trail the queue).
async fn settle(counts: &Counts, submitted: u64) -> anyhow::Result<()> {
    let limit = Instant::now() + Duration::from_secs(60);
    while counts.terminal_written.load(Ordering::Relaxed) < submitted {
        if Instant::now() > limit {
            bail!(
                "{} of {submitted} jobs reached the journal as finished after 60 s",
                counts.terminal_written.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
