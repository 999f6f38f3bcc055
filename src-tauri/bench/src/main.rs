//! `comfy-bench`: the engine-level benchmark figures of comfy-monitor, written as JSON.
//!
//! `comfy-bench engine [--smoke] --out PATH` runs four measures against the fake ComfyUI in a
//! separate process: the cost of many idle instances, the CPU cost per frame against a bare
//! socket reader, the reconnect latency after server restarts, and a soak of engine and journal;
//! and a fifth in virtual time, the accuracy of the estimates learned from past runs (beside the
//! step-rate ETA) on a scripted series of repeated workflows. Hidden subcommands: `serve-fake`
//! (the server side of those measures) and `seed-db` (a store with many instances and jobs for
//! app-level start-up measures). Figures are medians and percentiles over repeated runs;
//! nothing here asserts on time: the numbers are reported, the targets stand beside them.

mod accuracy;
mod frames;
mod per_frame;
mod reconnect;
mod scale;
mod seed;
mod server;
mod soak;
mod stats;
mod sys;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "comfy-bench",
    about = "Engine-level benchmarks of comfy-monitor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Measure {
    PerFrame,
    Reconnect,
    Soak,
    Scale,
    Accuracy,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the engine measures and writes their figures as JSON.
    Engine {
        /// A few seconds per measure, small counts: checks that every measure runs.
        #[arg(long)]
        smoke: bool,
        /// Where to write the JSON report.
        #[arg(long)]
        out: PathBuf,
        /// Run only these measures (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Measure>,
        /// Repetitions of the per-frame measure.
        #[arg(long)]
        repetitions: Option<usize>,
        /// Server restarts of the reconnect measure.
        #[arg(long)]
        restarts: Option<usize>,
        /// Jobs of the soak.
        #[arg(long)]
        soak_jobs: Option<u64>,
        /// Sampler steps (one preview each) per soak job.
        #[arg(long)]
        soak_steps: Option<u64>,
        /// Keep the soak's database at this path (else a temporary file).
        #[arg(long)]
        soak_db: Option<PathBuf>,
        /// Sessions (independent seeded series) of the accuracy measure.
        #[arg(long)]
        accuracy_sessions: Option<u64>,
        /// Write every reading of the accuracy measure to this file (JSON lines).
        #[arg(long)]
        accuracy_readings: Option<PathBuf>,
    },
    /// Hosts the fake ComfyUI for the measures (commands on stdin, answers on stdout).
    #[command(hide = true)]
    ServeFake {
        #[arg(long, default_value = "0.26")]
        server_version: fake_comfyui::ServerVersion,
    },
    /// Creates a store with many instances and finished jobs, and prints a one-line JSON summary.
    #[command(hide = true)]
    SeedDb {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 20)]
        instances: usize,
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        /// The first instance's URL; the others count its port up.
        #[arg(long, default_value = "http://127.0.0.1:8188")]
        url_base: String,
        /// Explicit instance URLs (comma-separated), instead of --url-base.
        #[arg(long, value_delimiter = ',')]
        urls: Vec<String>,
        /// Seed of the job mix (same seed, same rows apart from ids' clock).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Jobs are spread over this many days up to now.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Delete an existing database at --db first.
        #[arg(long)]
        replace: bool,
        /// Keep the "Local" instance a new store starts with.
        #[arg(long)]
        keep_local: bool,
    },
}

#[derive(Serialize, Default)]
struct Measures {
    #[serde(skip_serializing_if = "Option::is_none")]
    per_frame: Option<per_frame::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reconnect: Option<reconnect::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    soak: Option<soak::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<scale::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<accuracy::Report>,
}

#[derive(Serialize)]
struct Report {
    mode: &'static str,
    machine: sys::Machine,
    measures: Measures,
    /// Measures that could not run, with why.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    errors: std::collections::BTreeMap<&'static str, String>,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("comfy-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::ServeFake { server_version } => server::serve(server_version),
        Command::SeedDb {
            db,
            instances,
            jobs,
            url_base,
            urls,
            seed,
            days,
            replace,
            keep_local,
        } => {
            let urls = if urls.is_empty() {
                seed::counted_urls(&url_base, instances)?
            } else {
                urls
            };
            let summary = seed::run(&seed::Args {
                db,
                instances,
                jobs,
                urls,
                seed,
                days,
                replace,
                keep_local,
            })?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Engine {
            smoke,
            out,
            only,
            repetitions,
            restarts,
            soak_jobs,
            soak_steps,
            soak_db,
            accuracy_sessions,
            accuracy_readings,
        } => {
            let wants = |m: Measure| only.is_empty() || only.contains(&m);
            let mut frame_cfg = per_frame::Config::new(smoke);
            if let Some(r) = repetitions {
                frame_cfg.repetitions = r.max(1);
            }
            let mut reconnect_cfg = reconnect::Config::new(smoke);
            if let Some(r) = restarts {
                reconnect_cfg.restarts = r.max(1);
            }
            let mut soak_cfg = soak::Config::new(smoke);
            if let Some(j) = soak_jobs {
                soak_cfg.jobs = j.max(1);
                soak_cfg.warmup_jobs = soak_cfg.warmup_jobs.min(soak_cfg.jobs / 4);
            }
            if let Some(s) = soak_steps {
                soak_cfg.steps_per_job = s.max(1);
            }
            soak_cfg.db = soak_db;
            let mut accuracy_cfg = accuracy::Config::new(smoke);
            if let Some(s) = accuracy_sessions {
                accuracy_cfg.sessions = s.max(1);
            }
            accuracy_cfg.readings = accuracy_readings;

            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let mut report = Report {
                mode: if smoke { "smoke" } else { "full" },
                machine: sys::Machine::describe(),
                measures: Measures::default(),
                errors: Default::default(),
            };
            let scale_cfg = scale::Config::new(smoke);
            rt.block_on(async {
                // Scale first: its memory growth is read against a heap nothing ran in yet.
                if wants(Measure::Scale) {
                    eprintln!("scale: {} idle instances", scale_cfg.instances);
                    match scale::run(&scale_cfg).await {
                        Ok(r) => report.measures.scale = Some(r),
                        Err(e) => {
                            report.errors.insert("scale", format!("{e:#}"));
                        }
                    }
                }
                // Then the soak: its growth figures start from a heap little else used.
                if wants(Measure::Soak) {
                    eprintln!(
                        "soak: {} jobs × {} previews",
                        soak_cfg.jobs, soak_cfg.steps_per_job
                    );
                    match soak::run(&soak_cfg).await {
                        Ok(r) => report.measures.soak = Some(r),
                        Err(e) => {
                            report.errors.insert("soak", format!("{e:#}"));
                        }
                    }
                }
                if wants(Measure::PerFrame) {
                    eprintln!("per_frame: {} repetitions", frame_cfg.repetitions);
                    match per_frame::run(&frame_cfg).await {
                        Ok(r) => report.measures.per_frame = Some(r),
                        Err(e) => {
                            report.errors.insert("per_frame", format!("{e:#}"));
                        }
                    }
                }
                if wants(Measure::Reconnect) {
                    eprintln!("reconnect: {} restarts", reconnect_cfg.restarts);
                    match reconnect::run(&reconnect_cfg).await {
                        Ok(r) => report.measures.reconnect = Some(r),
                        Err(e) => {
                            report.errors.insert("reconnect", format!("{e:#}"));
                        }
                    }
                }
            });
            // Last: no server, no sockets, virtual time; it only costs CPU for a few seconds.
            if wants(Measure::Accuracy) {
                eprintln!(
                    "accuracy: {} sessions × {} runs of each workflow, virtual time",
                    accuracy_cfg.sessions, accuracy_cfg.runs_per_workflow
                );
                match accuracy::run(&accuracy_cfg) {
                    Ok(r) => report.measures.accuracy = Some(r),
                    Err(e) => {
                        report.errors.insert("accuracy", format!("{e:#}"));
                    }
                }
            }
            let json = serde_json::to_string_pretty(&report)?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&out, json + "\n")
                .with_context(|| format!("writing {}", out.display()))?;
            summary(&report);
            eprintln!("wrote {}", out.display());
            if !report.errors.is_empty() {
                let failed: Vec<String> = report
                    .errors
                    .iter()
                    .map(|(m, e)| format!("{m}: {e}"))
                    .collect();
                bail!("measures failed:\n  {}", failed.join("\n  "));
            }
            Ok(())
        }
    }
}

/// The short human summary on stderr.
fn summary(report: &Report) {
    eprintln!("\ncomfy-bench engine ({}):", report.mode);
    if let Some(p) = &report.measures.per_frame {
        eprintln!(
            "  per frame (CPU ms per 1000, median of {}): previews engine {} / bare {} = {}x, progress engine {} / bare {} = {}x (target ≤ {}x); {} of {} previews decoded, {} dropped",
            p.repetitions,
            p.engine.cpu_ms_per_1000_previews,
            p.bare_reader.cpu_ms_per_1000_previews,
            p.ratio_previews,
            p.engine.cpu_ms_per_1000_progress,
            p.bare_reader.cpu_ms_per_1000_progress,
            p.ratio_progress,
            p.target_ratio,
            p.engine.previews_received,
            p.previews_sent,
            p.engine.events_dropped.unwrap_or(0),
        );
    }
    if let Some(r) = &report.measures.reconnect {
        eprintln!(
            "  reconnect ({} restarts, outages {}–{} ms): p50 {} ms, p99 {} ms (target ≤ {} ms); p99 dominated by {} (backoff p99 {} ms, handshake p99 {} ms)",
            r.restarts,
            r.outage_min_ms,
            r.outage_max_ms,
            r.p50_ms,
            r.p99_ms,
            r.target_p99_ms,
            r.p99_dominated_by,
            r.backoff_wait_p99_ms,
            r.handshake_p99_ms,
        );
    }
    if let Some(s) = &report.measures.soak {
        let steady = match (s.rss_growth_from_steady_mib, s.rss_steady_at_jobs) {
            (Some(g), Some(at)) => format!(", {g:+} MiB from job {at} on"),
            _ => String::new(),
        };
        eprintln!(
            "  soak ({} jobs, {} previews, {} s): RSS {} → {} KiB ({:+} MiB{}; target ≤ {} MiB), SQLite {} bytes + WAL {} bytes while open, {} bytes closed ({} per job), {} event log rows, {} events dropped",
            s.jobs,
            s.preview_events,
            s.wall_s,
            s.rss_start_kib,
            s.rss_end_kib,
            s.rss_growth_mib,
            steady,
            s.target_rss_growth_mib,
            s.db_bytes,
            s.wal_bytes,
            s.db_bytes_after_close,
            s.db_bytes_per_job,
            s.event_log_rows,
            s.events_dropped,
        );
    }
    if let Some(s) = &report.measures.scale {
        eprintln!(
            "  scale ({} idle instances): all connected in {} ms; {} % of a core; RSS {} → {} MiB (+{} MiB, {} KiB each)",
            s.instances,
            s.all_connected_ms,
            s.idle_core_percent,
            s.rss_before_mib,
            s.rss_idle_mib,
            s.rss_growth_mib,
            s.rss_growth_per_instance_kib,
        );
    }
    if let Some(a) = &report.measures.accuracy {
        let cell = |e: &accuracy::Errors| {
            e.mean_error_percent
                .map_or_else(|| "—".to_owned(), |m| format!("{m} %"))
        };
        eprintln!(
            "  accuracy ({} sessions × {} jobs, {} workflows; mean |ETA error| / run at 25/50/75 %):",
            a.sessions,
            a.jobs,
            a.workflows.len()
        );
        for row in &a.live {
            let est: Vec<String> = row.at.iter().map(|p| cell(&p.estimate)).collect();
            let step: Vec<String> = row
                .at
                .iter()
                .map(|p| p.step_rate.as_ref().map_or_else(|| "—".to_owned(), cell))
                .collect();
            eprintln!(
                "    after {:>2} runs: estimate {} | step rate {}",
                row.earlier_runs,
                est.join(" / "),
                step.join(" / ")
            );
        }
        for row in &a.observed {
            let est: Vec<String> = row.at.iter().map(|p| cell(&p.estimate)).collect();
            eprintln!(
                "    observed, after {:>2} runs: estimate {}",
                row.earlier_runs,
                est.join(" / ")
            );
        }
        let t = &a.targets;
        eprintln!(
            "    half-way after 3 runs: {} (target ≤ {} %); better than the step rate at {} of {} points",
            t.half_way_after_3_percent
                .map_or_else(|| "—".to_owned(), |m| format!("{m} %")),
            t.half_way_after_3_max_percent,
            t.step_rate_points_beaten,
            t.step_rate_points,
        );
    }
    for (m, e) in &report.errors {
        eprintln!("  {m}: FAILED: {e}");
    }
}
