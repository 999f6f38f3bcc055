//! `comfy-bench seed-db`: a real store, as the app would have it after a long use, for start-up
//! measures: N instances and M finished jobs spread over them, written through the engine's
//! [`Journal`] from job pictures like the tracker publishes, so the rows are the app's own.
//!
//! The mix is deterministic for a given `--seed`: mostly this app's own jobs (with their
//! workflow), some of other clients, a few anonymous; mostly successes with outputs and node
//! durations, some errors with a traceback, interrupts, deletions and lost jobs.

use anyhow::{bail, Context};
use comfy_engine::journal::Journal;
use comfy_engine::{ErrorDetails, JobOrigin, JobState, JobView, NodeDuration};
use comfy_protocol::http::OutputFile;
use comfy_protocol::{NodeId, PromptId};
use comfy_store::{InstanceId, NewEvent, NewInstance, Store, DEFAULT_INSTANCE_NAME};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The nodes of the seeded workflow, in the order they run, with their share of a job's time.
const NODES: [(&str, &str, f64); 5] = [
    ("4", "CheckpointLoaderSimple", 0.08),
    ("6", "CLIPTextEncode", 0.02),
    ("3", "KSampler", 0.82),
    ("8", "VAEDecode", 0.06),
    ("9", "SaveImage", 0.02),
];

#[derive(Debug, Clone)]
pub struct Args {
    pub db: PathBuf,
    pub instances: usize,
    pub jobs: usize,
    pub urls: Vec<String>,
    pub seed: u64,
    pub days: i64,
    pub replace: bool,
    pub keep_local: bool,
}

#[derive(Debug, Serialize)]
pub struct SeededInstance {
    pub id: i64,
    pub name: String,
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub db: String,
    pub instances: Vec<SeededInstance>,
    pub jobs: usize,
    pub events: u64,
    pub db_bytes: u64,
    pub ms: u64,
}

/// `http://127.0.0.1:8188` and 3 → `:8188`, `:8189`, `:8190`.
pub fn counted_urls(base: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let url = url::Url::parse(base).with_context(|| format!("`{base}` is not a URL"))?;
    let port = url
        .port_or_known_default()
        .with_context(|| format!("`{base}` has no port"))?;
    (0..n)
        .map(|i| {
            let p = u16::try_from(usize::from(port) + i)
                .with_context(|| format!("port {port} + {i} is past 65535"))?;
            let mut u = url.clone();
            u.set_port(Some(p))
                .map_err(|()| anyhow::anyhow!("`{base}` cannot take a port"))?;
            Ok(u.as_str().trim_end_matches('/').to_owned())
        })
        .collect()
}

/// "Bench 01" … "Bench 20" (two digits at least, so they sort).
pub fn instance_name(i: usize, n: usize) -> String {
    let width = n.to_string().len().max(2);
    format!("Bench {:0width$}", i + 1)
}

/// A small txt2img workflow in API format, as this app would have queued it.
fn workflow(seed: u64, steps: u64) -> serde_json::Value {
    serde_json::json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": steps, "cfg": 7.0,
            "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff at dusk, volumetric light", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, low quality", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}
    })
}

/// One finished job of instance `number`, queued at `queued_at`.
fn finished_job(rng: &mut StdRng, number: u64, queued_at: i64, counter: &mut u64) -> JobView {
    let origin = match rng.random_range(0..100) {
        0..70 => JobOrigin::SelfApp,
        70..90 => JobOrigin::Other,
        _ => JobOrigin::Anonymous,
    };
    let state = match rng.random_range(0..100) {
        0..85 => JobState::Success,
        85..91 => JobState::Error,
        91..95 => JobState::Interrupted,
        95..98 => JobState::Deleted,
        _ => JobState::Lost,
    };
    let prompt_id = PromptId::from(uuid::Uuid::from_u128(rng.random()).to_string().as_str());
    let mut job = JobView::new(prompt_id, origin, state);
    job.number = Some(number as f64);
    job.queued_at_ms = queued_at;
    // Most jobs start at once; some wait behind others.
    let wait = if rng.random_bool(0.7) {
        rng.random_range(5..400)
    } else {
        rng.random_range(1_000..90_000)
    };
    let run: i64 = rng.random_range(4_000..150_000);
    let started = queued_at + wait;
    match state {
        JobState::Success => {
            job.started_at_ms = Some(started);
            job.ended_at_ms = Some(started + run);
            job.percent = Some(100.0);
            let images = rng.random_range(1..=4);
            for _ in 0..images {
                *counter += 1;
                job.outputs.push(OutputFile {
                    filename: format!("ComfyUI_{counter:05}_.png"),
                    subfolder: String::new(),
                    kind: "output".into(),
                });
                job.output_nodes.push(Some(NodeId::from("9")));
            }
            if origin == JobOrigin::SelfApp {
                job.node_durations = NODES
                    .iter()
                    .map(|(id, class, share)| NodeDuration {
                        node: NodeId::from(*id),
                        node_type: Some((*class).into()),
                        ms: (run as f64 * share) as u64,
                        work: None,
                        models: None,
                    })
                    .collect();
            }
        }
        JobState::Error => {
            job.started_at_ms = Some(started);
            job.ended_at_ms = Some(started + run / 3);
            job.error = Some(ErrorDetails {
                node_id: Some(NodeId::from("3")),
                node_type: Some("KSampler".into()),
                exception_type: Some("torch.OutOfMemoryError".into()),
                message: "Allocation on device would exceed allowed memory.".into(),
                traceback: vec![
                    "  File \"ComfyUI/execution.py\", line 496, in execute\n".into(),
                    "  File \"ComfyUI/comfy/samplers.py\", line 1049, in sample\n".into(),
                ],
            });
        }
        JobState::Interrupted => {
            job.started_at_ms = Some(started);
            job.ended_at_ms = Some(started + run / 2);
        }
        JobState::Deleted => {
            job.ended_at_ms = Some(queued_at + wait);
        }
        JobState::Lost => {
            job.started_at_ms = Some(started);
            job.ended_at_ms = Some(started + run / 4);
            job.detail = Some("the server restarted and has no record of this job".into());
        }
        JobState::Pending | JobState::Running => {}
    }
    if let Some(end) = job.ended_at_ms {
        job.elapsed_ms = Some(end.saturating_sub(job.started_at_ms.unwrap_or(end)) as u64);
    }
    job
}

fn remove_db(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {}", PathBuf::from(&p).display()))
            }
        }
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<Summary> {
    let started = Instant::now();
    if args.urls.len() != args.instances {
        bail!(
            "{} instances need {} URLs, got {}",
            args.instances,
            args.instances,
            args.urls.len()
        );
    }
    if args.db.exists() {
        if !args.replace {
            bail!(
                "{} exists; pass --replace to start it afresh",
                args.db.display()
            );
        }
        remove_db(&args.db)?;
    }
    let mut store =
        Store::open(&args.db).with_context(|| format!("creating {}", args.db.display()))?;
    let now = comfy_engine::now_ms();
    if !args.keep_local {
        // A new store seeds "Local"; the measure wants exactly the instances asked for.
        if let Ok(local) = store.instance_by_name(DEFAULT_INSTANCE_NAME) {
            store.delete_instance(local.id)?;
        }
    }
    let mut instances = Vec::new();
    for (i, url) in args.urls.iter().enumerate() {
        let rec = store
            .insert_instance(
                &NewInstance::new(instance_name(i, args.instances), url.as_str()),
                now - args.days * DAY_MS,
            )
            .with_context(|| format!("saving instance {url}"))?;
        instances.push(rec);
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    // Busier and quieter machines: instance i weighs 1 + i % 4.
    let weights: Vec<u32> = (0..instances.len()).map(|i| 1 + (i % 4) as u32).collect();
    let total_weight: u32 = weights.iter().sum();
    let mut journal = Journal::new(store);
    let mut numbers = vec![0u64; instances.len()];
    let mut outputs = 0u64;
    let span = args.days.max(1) * DAY_MS;
    for j in 0..args.jobs {
        let mut pick = rng.random_range(0..total_weight.max(1));
        let i = weights
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        let queued_at =
            now - span + (span * j as i64) / args.jobs.max(1) as i64 + rng.random_range(0..60_000);
        numbers[i] += 1;
        let job = finished_job(&mut rng, numbers[i], queued_at.min(now), &mut outputs);
        let instance = instances[i].id;
        if job.origin == JobOrigin::SelfApp {
            let graph = workflow(rng.random_range(0..u64::from(u32::MAX)), 30);
            journal.record_submitted(instance, &job.prompt_id, &graph, queued_at)?;
        }
        let at = job.ended_at_ms.unwrap_or(queued_at);
        journal.record(instance, &job, at)?;
    }
    let store = journal.store_mut();
    let mut events = 0u64;
    for rec in &instances {
        events += seed_events(store, rec.id, now, span, &mut rng)?;
        store.set_instance_status(rec.id, "connected to ComfyUI 0.26.0", Some(now))?;
    }
    let summary = Summary {
        db: args.db.display().to_string(),
        instances: instances
            .iter()
            .map(|r| SeededInstance {
                id: r.id.0,
                name: r.name.clone(),
                url: r.base_url.clone(),
            })
            .collect(),
        jobs: args.jobs,
        events,
        db_bytes: std::fs::metadata(&args.db).map_or(0, |m| m.len()),
        ms: started.elapsed().as_millis() as u64,
    };
    Ok(summary)
}

/// A few connection changes per instance, as an event log holds them.
fn seed_events(
    store: &mut Store,
    instance: InstanceId,
    now: i64,
    span: i64,
    rng: &mut StdRng,
) -> anyhow::Result<u64> {
    let n = 12u64;
    for k in 0..n {
        let ts = now - span + span * k as i64 / n as i64 + rng.random_range(0..60_000);
        let (kind, detail) = if k % 2 == 0 {
            ("connected", "connected to ComfyUI 0.26.0")
        } else {
            (
                "unreachable",
                "server down (connection closed; error sending request)",
            )
        };
        store.log_event(&NewEvent {
            instance: Some(instance),
            ts: ts.min(now),
            kind: kind.into(),
            detail: Some(detail.into()),
            data_json: None,
        })?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_count_ports_up_from_the_base() {
        assert_eq!(
            counted_urls("http://127.0.0.1:8188", 3).unwrap(),
            [
                "http://127.0.0.1:8188",
                "http://127.0.0.1:8189",
                "http://127.0.0.1:8190"
            ]
        );
        assert!(counted_urls("http://127.0.0.1:65535", 2).is_err());
    }

    #[test]
    fn names_are_numbered_so_they_sort() {
        assert_eq!(instance_name(0, 20), "Bench 01");
        assert_eq!(instance_name(19, 20), "Bench 20");
        assert_eq!(instance_name(4, 150), "Bench 005");
    }

    #[test]
    fn a_seeded_store_holds_the_asked_instances_and_finished_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            db: dir.path().join("seed.db"),
            instances: 3,
            jobs: 60,
            urls: counted_urls("http://127.0.0.1:9000", 3).unwrap(),
            seed: 7,
            days: 30,
            replace: false,
            keep_local: false,
        };
        let summary = run(&args).unwrap();
        assert_eq!(summary.instances.len(), 3);
        let store = Store::open(&args.db).unwrap();
        let names: Vec<String> = store
            .instances()
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let jobs = store.history(None, 1_000, 0).unwrap();
        assert_eq!(jobs.len(), 60);
        assert!(jobs.iter().all(|j| j.state.is_terminal()));
        assert!(jobs.iter().any(|j| j.outputs_json.is_some()));
        assert!(jobs.iter().any(|j| j.has_workflow));
        assert!(run(&args).is_err(), "an existing file needs --replace");
    }
}
