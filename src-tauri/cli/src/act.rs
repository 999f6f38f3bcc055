//! `comfy-monitor submit` and `cancel`: acting on one server, with an exit status that says
//! how it went, so scripts can rely on it.

use crate::output::{approx, runs, Format, Printer};
use crate::secrets::announce;
use crate::watch::{resolve, Saved};
use crate::{CancelArgs, FetchArgs, SubmitArgs};
use anyhow::{anyhow, Context};
use comfy_app::{jobs, AppError, Profile};
use comfy_engine::actions::{ActionError, CancelOutcome, SubmitOptions};
use comfy_engine::tracker::Lookup;
use comfy_engine::Events;
use comfy_engine::{
    ConnectionState, Engine, EngineError, EventKind, InstanceId, InstanceSpec, JobState, JobView,
};
use comfy_protocol::http::OutputFile;
use comfy_protocol::PromptId;
use comfy_signal::shutdown_signal;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Exit statuses of `submit` (0 is success), documented in the README.
pub mod exit {
    /// Bad input, unreachable server, rejected credentials.
    pub const FAILED: u8 = 1;
    /// The server refused the workflow (validation).
    pub const REJECTED: u8 = 3;
    /// A node raised.
    pub const EXECUTION_ERROR: u8 = 4;
    /// Interrupted or removed from the queue.
    pub const INTERRUPTED: u8 = 5;
    /// Lost in a server restart.
    pub const LOST: u8 = 6;
}

/// The runtime every subcommand that talks to a server runs on.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Starts an engine on one instance and waits until it is connected, or says why not. A saved
/// instance runs under its store id (`saved`), so the journal and the engine name it alike; one
/// from `--url` gets an id of its own.
async fn connect(
    spec: InstanceSpec,
    saved: Option<(&Profile, InstanceId)>,
) -> anyhow::Result<(Engine, InstanceId, Events)> {
    let url = spec.base_url.clone();
    let (engine, mut rx) = Engine::new(comfy_engine::DEFAULT_EVENT_CAPACITY);
    let id = match saved {
        Some((profile, id)) => {
            // Timing learned from the journal, for estimates from the first moment; the
            // instance's other unfinished jobs are the monitor's business, not this command's.
            let timings = profile.journal().timings(id).unwrap_or_else(|e| {
                eprintln!("comfy-monitor: no estimates from the journal: {e}");
                Default::default()
            });
            let restore = comfy_engine::journal::Restore {
                jobs: Vec::new(),
                timings,
            };
            engine.add_saved(id, spec, restore)?;
            id
        }
        None => engine.add_instance(spec)?,
    };
    while let Some(e) = rx.recv().await {
        if let EventKind::Connection(c) = &e.kind {
            match c.state {
                // On HTTP alone too: submit, cancel and downloads are HTTP.
                ConnectionState::Connected | ConnectionState::HttpOnly => {
                    return Ok((engine, id, rx))
                }
                ConnectionState::Unreachable => {
                    return Err(anyhow!("cannot reach {url}: {}", c.detail))
                }
                ConnectionState::AuthFailed => {
                    return Err(anyhow!("{url} rejects the credentials: {}", c.detail))
                }
                _ => {}
            }
        }
    }
    Err(anyhow!("the engine stopped before connecting to {url}"))
}

/// The instance (and its journal, when saved) and a runtime to reach it, or the exit status
/// saying why not.
fn prepare(
    server: &crate::ServerArgs,
    db: Option<&Path>,
    job: Option<&str>,
) -> Result<(InstanceSpec, Option<Saved>, tokio::runtime::Runtime), ExitCode> {
    let (spec, saved) = resolve(server, db, job).map_err(|e| fail(e, exit::FAILED))?;
    let rt = runtime().map_err(|e| fail(e, exit::FAILED))?;
    Ok((spec, saved, rt))
}

/// The profile whose journal gets one job's events, and the instance's id (the store's, which
/// the engine uses too), when the instance is a saved one.
type JobJournal<'a> = Option<(&'a Profile, InstanceId)>;

fn record(journal: &mut JobJournal<'_>, job: &JobView) {
    if let Some((profile, instance)) = journal {
        let recorded = profile
            .journal()
            .record(*instance, job, comfy_engine::now_ms());
        if let Err(e) = recorded {
            eprintln!(
                "comfy-monitor: the journal could not record {}: {e}",
                job.prompt_id
            );
        }
    }
}

fn fail(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("comfy-monitor: {e:#}");
    ExitCode::from(code)
}

pub fn submit(args: SubmitArgs, db: Option<&Path>) -> ExitCode {
    let workflow = match jobs::prompt_from_file(&args.workflow) {
        Ok(w) => w,
        Err(e) => return fail(e, exit::FAILED),
    };
    let workflows = match jobs::copies(&workflow, args.count, args.new_seed) {
        Ok(w) => w,
        Err(e) => return fail(e, exit::FAILED),
    };
    if args.count > 1 && !args.new_seed {
        eprintln!(
            "comfy-monitor: note: the {} copies have the same seeds; ComfyUI answers repeats from its cache (add --new-seed to run each)",
            args.count
        );
    }
    let (spec, saved, rt) = match prepare(&args.server, db, None) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let journal = saved.as_ref().map(|s| (&s.profile, s.instance));
    let wait = args.wait || args.out.is_some();
    let name = args
        .workflow
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    rt.block_on(submit_and_follow(
        spec,
        ToQueue { workflows, name },
        journal,
        args.preview_method.clone(),
        wait,
        args.out.clone(),
        args.json,
    ))
}

/// Workflows to queue, and the name of the file they came from (their jobs' name).
struct ToQueue {
    workflows: Vec<serde_json::Value>,
    name: Option<String>,
}

async fn submit_and_follow(
    spec: InstanceSpec,
    ToQueue { workflows, name }: ToQueue,
    mut journal: JobJournal<'_>,
    preview_method: Option<String>,
    wait: bool,
    out: Option<std::path::PathBuf>,
    json: bool,
) -> ExitCode {
    let (engine, id, mut rx) = match connect(spec, journal).await {
        Ok(c) => c,
        Err(e) => return fail(e, exit::FAILED),
    };
    let profile = journal.map(|(p, _)| p);
    let mut queued = Vec::new();
    for workflow in workflows {
        let options = SubmitOptions {
            preview_method: preview_method.clone(),
        };
        let (submission, unrecorded) =
            match jobs::submit(&engine, profile, id, workflow, options, name.as_deref()).await {
                Ok(s) => (s.submission, s.unrecorded),
                Err(AppError::Engine(EngineError::Action(ActionError::Rejected(r)))) => {
                    engine.shutdown().await;
                    return fail(ActionError::Rejected(r), exit::REJECTED);
                }
                Err(e) => {
                    engine.shutdown().await;
                    return fail(e, exit::FAILED);
                }
            };
        for n in &submission.node_errors {
            for e in &n.errors {
                eprintln!(
                    "comfy-monitor: warning: node {} {} was dropped by the server: {}{} (its outputs will not be made)",
                    n.node_id,
                    n.class_type.as_deref().unwrap_or("?"),
                    e.message,
                    if e.details.is_empty() { String::new() } else { format!(" — {}", e.details) }
                );
            }
        }
        if let Some(e) = unrecorded {
            eprintln!("comfy-monitor: the journal could not record the submission: {e}");
        }
        if json {
            println!(
                "{}",
                serde_json::json!({"event": "submitted", "prompt_id": submission.prompt_id, "number": submission.number, "node_errors": submission.node_errors})
            );
        } else {
            println!("queued {}", submission.prompt_id);
        }
        queued.push(submission.prompt_id);
    }
    if !wait {
        engine.shutdown().await;
        return ExitCode::SUCCESS;
    }
    // The jobs run one after another: each is followed to its end in turn, and the exit
    // status is the first that is not a success.
    let mut code = ExitCode::SUCCESS;
    for prompt_id in &queued {
        let end = follow(&mut rx, prompt_id, json, &mut journal).await;
        // Interrupted or out of reach: the jobs after this one are not followed either.
        let (this, stop) = match end {
            Followed::Stopped => (fail(
                "interrupted before the job ended (it keeps running on the server)",
                exit::FAILED,
            ), true),
            Followed::ServerGone(why) => (fail(
                format!(
                    "gave up on {prompt_id}: the server has been out of reach for {} s ({why}); its outcome is unknown{}",
                    GIVE_UP_AFTER.as_secs(),
                    if journal.is_some() {
                        " until the instance is monitored again (`comfy-monitor history`)"
                    } else {
                        ""
                    }
                ),
                exit::LOST,
            ), true),
            Followed::Ended(j) => (finish(&engine, id, &j, out.as_deref(), &mut journal).await, false),
        };
        if code == ExitCode::SUCCESS {
            code = this;
        }
        if stop {
            break;
        }
    }
    engine.shutdown().await;
    code
}

/// How long `submit --wait` waits for a server it lost contact with before giving up: as long
/// as the engine keeps retrying a server that was just connected (a restart).
pub const GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// How following a job ended.
#[derive(Debug)]
enum Followed {
    /// The job reached its terminal state.
    Ended(Box<JobView>),
    /// Ctrl-C.
    Stopped,
    /// The server stayed out of reach for [`GIVE_UP_AFTER`]; the last reason why.
    ServerGone(String),
}

/// Follows one job to its end: a progress bar on a terminal, NDJSON with `--json`, readable
/// lines otherwise.
async fn follow(
    rx: &mut Events,
    id: &PromptId,
    json: bool,
    journal: &mut JobJournal<'_>,
) -> Followed {
    let tty = !json && std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template("{bar:32.green/dim} {percent:>3}%  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut printer = (!tty).then(|| {
        Printer::new(
            std::io::stdout(),
            if json { Format::Json } else { Format::Human },
        )
    });
    let stop = shutdown_signal();
    tokio::pin!(stop);
    // Since when, and why, the server has been out of reach.
    let mut down: Option<(tokio::time::Instant, String)> = None;
    loop {
        let give_up = down.as_ref().map(|(since, _)| *since + GIVE_UP_AFTER);
        let e = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => return Followed::Stopped,
            },
            _ = &mut stop => return Followed::Stopped,
            () = tokio::time::sleep_until(give_up.unwrap_or_else(tokio::time::Instant::now)), if give_up.is_some() => {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                return Followed::ServerGone(down.map(|(_, why)| why).unwrap_or_default());
            }
        };
        if let EventKind::Connection(c) = &e.kind {
            down = (!c.state.is_up()).then(|| {
                let since = down
                    .as_ref()
                    .map_or_else(tokio::time::Instant::now, |(t, _)| *t);
                (since, c.detail.clone())
            });
        }
        let mine = match &e.kind {
            EventKind::Job(j) => j.prompt_id == *id,
            EventKind::Preview(p) => p.prompt_id.as_ref() == Some(id),
            EventKind::Text { prompt_id, .. } => prompt_id.as_ref() == Some(id),
            EventKind::Connection(_) => true,
            _ => false,
        };
        if !mine {
            continue;
        }
        if let Some(p) = printer.as_mut() {
            let _ = p.print(&e);
        }
        if let (Some(bar), EventKind::Job(j)) = (&bar, &e.kind) {
            bar.set_position((j.percent.unwrap_or(0.0) * 10.0) as u64);
            bar.set_message(bar_message(j));
        }
        if let (Some(bar), EventKind::Connection(c)) = (&bar, &e.kind) {
            if c.state != ConnectionState::Connected {
                bar.set_message(format!("{:?}: {}", c.state, c.detail));
            }
        }
        if let EventKind::Job(j) = &e.kind {
            record(journal, j);
            if j.state.is_terminal() {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                return Followed::Ended(j.clone());
            }
        }
    }
}

/// The progress bar's message: the current node and its steps, and the time left: learned
/// from the server's past runs of the workflow when the engine has an estimate ("≈", from the
/// moment the job is queued), else as measured while a node steps.
fn bar_message(j: &JobView) -> String {
    let node = match j.state {
        JobState::Pending => "queued",
        _ => j
            .node_title
            .as_deref()
            .or(j.node_type.as_deref())
            .unwrap_or(""),
    };
    let steps = match (j.node_value, j.node_max) {
        (Some(v), Some(m)) if m > 1.0 => format!(" {v:.0}/{m:.0}"),
        _ => String::new(),
    };
    let from = runs(j).unwrap_or_default();
    let learned = j.estimate.as_ref().and_then(|e| {
        if e.longer_than_usual {
            Some(format!(
                "  longer than usual (typically {})",
                approx(e.typical_ms)
            ))
        } else {
            e.eta_ms
                .map(|ms| format!("  ETA ≈ {} (from {from})", approx(ms)))
        }
    });
    let eta = learned
        .or_else(|| j.eta_ms.map(|ms| format!("  ETA {}s", ms.div_ceil(1000))))
        .or_else(|| {
            j.estimate
                .as_ref()
                .map(|e| format!("  ≈ {} run (from {from})", approx(e.typical_ms)))
        })
        .unwrap_or_default();
    format!("{node}{steps}{eta}").trim_start().to_owned()
}

/// Downloads `files` into `dir`, printing where each went; with a journal, each is journalled
/// with a thumbnail (a failure there costs the record, never the download). A failed file (a
/// full disk, say) is named with the reason and how to get it later; the rest are still
/// downloaded.
async fn download(
    engine: &Engine,
    id: InstanceId,
    job: &PromptId,
    files: &[OutputFile],
    dir: &Path,
    journal: &mut JobJournal<'_>,
) -> ExitCode {
    let profile = journal.map(|(p, _)| p);
    let mut failed = 0;
    for file in files {
        match jobs::download(engine, profile, id, Some(job), file, dir).await {
            Ok(done) => {
                println!("{}", done.path.display());
                if let Some(e) = done.unrecorded {
                    eprintln!(
                        "comfy-monitor: the journal could not record where {} went: {e}",
                        file.filename
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("comfy-monitor: {}: {e:#}", file.filename);
            }
        }
    }
    if failed == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "comfy-monitor: {failed} of {} outputs not downloaded; they are still on the server: \
         `comfy-monitor fetch {job} --out DIR` downloads them again",
        files.len()
    );
    ExitCode::from(exit::FAILED)
}

async fn finish(
    engine: &Engine,
    id: InstanceId,
    j: &JobView,
    out: Option<&Path>,
    journal: &mut JobJournal<'_>,
) -> ExitCode {
    let secs = j
        .elapsed_ms
        .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
        .unwrap_or_default();
    match j.state {
        JobState::Success => {
            eprintln!("comfy-monitor: {} succeeded{secs}", j.prompt_id);
            let Some(dir) = out else {
                for o in &j.outputs {
                    println!("{}", o.filename);
                }
                return ExitCode::SUCCESS;
            };
            download(engine, id, &j.prompt_id, &j.outputs, dir, journal).await
        }
        JobState::Error => {
            let e = j.error.as_ref();
            fail(
                format!(
                    "{} failed{secs} at node {} {}: {}{}",
                    j.prompt_id,
                    e.and_then(|e| e.node_id.as_ref())
                        .map(|n| n.as_str())
                        .unwrap_or("?"),
                    e.and_then(|e| e.node_type.as_deref()).unwrap_or("?"),
                    e.and_then(|e| e.exception_type.as_deref())
                        .map(|t| format!("{t}: "))
                        .unwrap_or_default(),
                    e.map(|e| e.message.as_str()).unwrap_or(""),
                ),
                exit::EXECUTION_ERROR,
            )
        }
        JobState::Interrupted => fail(
            format!("{} was interrupted{secs}", j.prompt_id),
            exit::INTERRUPTED,
        ),
        JobState::Deleted => fail(
            format!("{} was removed from the queue", j.prompt_id),
            exit::INTERRUPTED,
        ),
        JobState::Lost => fail(
            format!(
                "{} was lost ({}); the workflow can be submitted again",
                j.prompt_id,
                j.detail
                    .as_deref()
                    .unwrap_or("the server has no record of it")
            ),
            exit::LOST,
        ),
        JobState::Pending | JobState::Running => ExitCode::from(exit::FAILED),
    }
}

pub fn cancel(args: CancelArgs, db: Option<&Path>) -> ExitCode {
    let (spec, saved, rt) = match prepare(&args.server, db, Some(args.prompt_id.trim())) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let id = PromptId::from(args.prompt_id.trim());
    rt.block_on(async move {
        let (engine, instance, _rx) =
            match connect(spec, saved.as_ref().map(|s| (&s.profile, s.instance))).await {
                Ok(c) => c,
                Err(e) => return fail(e, exit::FAILED),
            };
        let result = jobs::cancel(&engine, instance, &id).await;
        engine.shutdown().await;
        match result {
            Ok(CancelOutcome::Interrupted) => {
                println!("{id}: was running; interrupted");
                ExitCode::SUCCESS
            }
            Ok(CancelOutcome::Removed) => {
                println!("{id}: was pending; removed from the queue");
                ExitCode::SUCCESS
            }
            Ok(CancelOutcome::AlreadyFinished) => {
                println!("{id}: had already finished; nothing to cancel");
                ExitCode::SUCCESS
            }
            Ok(CancelOutcome::NotFound) => fail(
                format!("{id}: the server does not know this job"),
                exit::FAILED,
            ),
            Err(e) => fail(e, exit::FAILED),
        }
    })
}

/// `comfy-monitor fetch`: a finished job's outputs, as the server lists them (or, when the
/// server no longer has the job in its history, as the journal recorded them).
pub fn fetch(args: FetchArgs, db: Option<&Path>) -> ExitCode {
    let prompt = args.prompt_id.trim();
    let (spec, saved, rt) = match prepare(&args.server, db, Some(prompt)) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let id = PromptId::from(prompt);
    // Journalled files, and a journal to record the downloads in, when the job is in it.
    let journalled = match &saved {
        Some(s) => match jobs::journalled_outputs(&s.profile, s.instance, prompt) {
            Ok(files) => files,
            Err(e) => return fail(e, exit::FAILED),
        },
        None => None,
    };
    let saved_id = saved.as_ref().map(|s| (&s.profile, s.instance));
    let mut journal = saved
        .as_ref()
        .filter(|_| journalled.is_some())
        .map(|s| (&s.profile, s.instance));
    rt.block_on(async move {
        let (engine, instance, _rx) = match connect(spec, saved_id).await {
            Ok(c) => c,
            Err(e) => return fail(e, exit::FAILED),
        };
        let files = match engine.lookup_job(instance, &id).await {
            Ok(Lookup::Found(f)) => Ok(f.files()),
            Ok(Lookup::Unavailable) => Err(format!(
                "{id} has not finished yet; `comfy-monitor submit --wait --out` or a later \
                 `fetch` gets its outputs"
            )),
            Ok(Lookup::NotFound) => journalled.ok_or_else(|| {
                format!("{id}: neither the server's history nor the journal has this job")
            }),
            Err(e) => Err(e.to_string()),
        };
        let code = match files {
            Ok(files) if files.is_empty() => {
                eprintln!("comfy-monitor: {id} has no output files");
                ExitCode::SUCCESS
            }
            Ok(files) => download(&engine, instance, &id, &files, &args.out, &mut journal).await,
            Err(e) => fail(e, exit::FAILED),
        };
        engine.shutdown().await;
        code
    })
}

/// `comfy-monitor resubmit`: queue again one of this app's lost jobs, from the journal.
pub fn resubmit(prompt_id: &str, wait: bool, db: Option<&Path>) -> ExitCode {
    let found = (|| -> anyhow::Result<_> {
        let profile = Profile::open(db)?;
        let lost = profile.journal().store().lost_own_jobs(None)?;
        let Some(job) = lost
            .into_iter()
            .find(|l| l.job.prompt_id == prompt_id.trim())
        else {
            anyhow::bail!(
                "{prompt_id} is not a lost job of this app (see `comfy-monitor history`)"
            );
        };
        let workflow: serde_json::Value = serde_json::from_str(&job.workflow_json)
            .context("the journalled workflow is not JSON")?;
        let rec = profile.journal().store().instance(job.job.instance)?;
        let spec = profile.spec(&rec);
        announce(&profile);
        Ok((spec?, workflow, profile, rec.id, job.job.label))
    })();
    let (spec, workflow, profile, instance, label) = match found {
        Ok(f) => f,
        Err(e) => return fail(e, exit::FAILED),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e, exit::FAILED),
    };
    rt.block_on(submit_and_follow(
        spec,
        ToQueue {
            workflows: vec![workflow],
            name: label,
        },
        Some((&profile, instance)),
        None,
        wait,
        None,
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::ConnectionStatus;
    use std::time::Duration;
    use tokio::time::{sleep, Instant};

    fn connection(state: ConnectionState, detail: &str) -> comfy_engine::Event {
        comfy_engine::Event {
            ts: time::OffsetDateTime::now_utc(),
            instance_id: comfy_engine::InstanceId(1),
            instance: "gpu".into(),
            kind: EventKind::Connection(ConnectionStatus {
                state,
                detail: detail.into(),
                retry_in_ms: Some(1000),
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_gives_up_once_the_server_stays_out_of_reach_and_a_reconnect_starts_the_count_again(
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut rx = Events::from(rx);
        let started = Instant::now();
        let script = tokio::spawn(async move {
            tx.send(connection(
                ConnectionState::Reconnecting,
                "connection reset",
            ))
            .await
            .expect("open");
            sleep(Duration::from_secs(100)).await;
            tx.send(connection(ConnectionState::Connected, "connected"))
                .await
                .expect("open");
            sleep(Duration::from_secs(10)).await;
            tx.send(connection(
                ConnectionState::Unreachable,
                "connection refused",
            ))
            .await
            .expect("open");
            sleep(Duration::from_secs(60)).await;
            tx.send(connection(ConnectionState::Unreachable, "timed out"))
                .await
                .expect("open");
            // Keeps the channel open: the end must come from giving up, not from a closed channel.
            sleep(Duration::from_secs(3600)).await;
        });
        let mut journal = None;
        let end = follow(&mut rx, &PromptId::from("p"), true, &mut journal).await;
        script.abort();
        let Followed::ServerGone(why) = end else {
            panic!("expected to give up, got {end:?}");
        };
        assert_eq!(why, "timed out", "the latest reason is reported");
        // Out of reach from 110 s on (the first outage ended at 100 s): given up at 230 s.
        assert_eq!(started.elapsed(), Duration::from_secs(110) + GIVE_UP_AFTER);
    }

    fn own(state: JobState, estimate: serde_json::Value) -> JobView {
        let mut j = JobView::new("p".into(), comfy_engine::JobOrigin::SelfApp, state);
        j.estimate = serde_json::from_value(estimate).expect("an estimate");
        j
    }

    #[test]
    fn the_bar_shows_the_learned_eta_from_the_moment_the_job_is_queued() {
        let pending = own(
            JobState::Pending,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 80_000,
                               "starts_in_ms": 0, "eta_ms": 80_000}),
        );
        assert_eq!(bar_message(&pending), "queued  ETA ≈ 1m20s (from 3 runs)");
        let started = own(
            JobState::Running,
            serde_json::json!({"basis": "workflow", "samples": 3, "typical_ms": 80_000,
                               "percent": 1.0, "eta_ms": 79_000}),
        );
        assert_eq!(bar_message(&started), "ETA ≈ 1m19s (from 3 runs)");
        let unplaced = own(
            JobState::Pending,
            serde_json::json!({"basis": "nodes", "samples": 2, "typical_ms": 80_000}),
        );
        assert_eq!(
            bar_message(&unplaced),
            "queued  ≈ 1m20s run (from 2 runs of its nodes)"
        );
    }

    #[test]
    fn while_sampling_the_bar_prefers_the_learned_eta_and_falls_back_to_the_measured_one() {
        let mut j = own(
            JobState::Running,
            serde_json::json!({"basis": "workflow", "samples": 4, "typical_ms": 80_000,
                               "percent": 50.0, "eta_ms": 40_000}),
        );
        j.node = Some("3".into());
        j.node_type = Some("KSampler".into());
        j.node_value = Some(8.0);
        j.node_max = Some(20.0);
        j.eta_ms = Some(4_200);
        assert_eq!(bar_message(&j), "KSampler 8/20  ETA ≈ 40s (from 4 runs)");
        j.estimate = serde_json::from_value(serde_json::json!(
            {"basis": "workflow", "samples": 4, "typical_ms": 80_000, "longer_than_usual": true}
        ))
        .expect("an estimate");
        assert_eq!(
            bar_message(&j),
            "KSampler 8/20  longer than usual (typically 1m20s)"
        );
        j.estimate = None;
        assert_eq!(bar_message(&j), "KSampler 8/20  ETA 5s", "as before");
    }
}
