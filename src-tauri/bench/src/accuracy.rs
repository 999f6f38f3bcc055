//! Measure 5: how far the estimates learned from past runs are from the truth, beside the
//! step-rate ETA, on a scripted series of repeated workflows.
//!
//! It runs in virtual time. A seeded script plays a ComfyUI server (0.26, the order of protocol
//! reference §5.1, like `fake-comfyui`'s worker): each job's `execution_start`,
//! `execution_cached`, then per node `progress_state` → `executing` → steps (`progress_state` +
//! `progress`) → `executed` → `progress_state`, `execution_success`, `status`,
//! `executing null`. Those text frames go through the real [`Processor`] with the time each was
//! sent; its requests are answered from the script at once (a queue snapshot from the server's
//! queue at that moment, an outcome from its history). Nothing sleeps: a job of a minute costs
//! the time to decode its frames, so hundreds of jobs of realistic length take seconds, where
//! the fake server over sockets in real time would take hours.
//!
//! The series: a few workflows in API format (SD 1.5 text-to-image, the same with a 4× upscale
//! model, SDXL with a second "hires" pass, a Wan text-to-video), each at two step counts and two
//! sizes, run in a random order that often repeats the previous workflow, each the same number
//! of times. What a node takes is set here, not by the estimator's model of work: loaders take
//! several seconds the first time a file is read, less when it is read again, nothing when the
//! previous job left their output cached (ComfyUI's classic cache keeps the previous prompt's
//! outputs); a sampler moves its model to the GPU first when the previous job used another one,
//! then steps at a rate proportional to megapixels (× frames for the video); decode, upscale
//! and save take time proportional to the pixels they handle. Every duration is jittered
//! uniformly by ±10 % (the sampler's rate once per run, then each step again).
//!
//! At 25, 50 and 75 % of each job's true run (`execution_start` to `execution_success`) the
//! job's picture is read (after [`Processor::tick`] at that moment, as the host does once a
//! second): the error of `estimate.eta_ms` against the true time left, as a share of the job's
//! true run, and the same for the step-rate `eta_ms` when it has one. A "longer than usual"
//! estimate counts as 0 ms left. Errors are grouped by the number of earlier runs of the same
//! workflow (0, 1, 3, 10). The same series is run a second time as another client's jobs, which
//! the app only observes (queue snapshots and the outcome, no execution messages).

use crate::stats::{percentile, round};
use anyhow::Context;
use comfy_engine::processor::Processor;
use comfy_engine::tracker::{ActiveJob, Lookup, Request, Snapshot};
use comfy_engine::JobView;
use comfy_protocol::http::{FinishedJob, Outcome};
use comfy_protocol::{NodeId, PromptId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

/// This app's client id; the observed series is queued by [`OTHER`].
const ME: &str = "comfy-monitor-bench";
const OTHER: &str = "browser-tab";
/// Where in each job's run its picture is read.
const POINTS: [f64; 3] = [0.25, 0.50, 0.75];
/// The earlier runs of the same workflow the errors are reported after.
const EARLIER: [usize; 4] = [0, 1, 3, 10];
/// Every duration is multiplied by a uniform factor in 1 ± this.
const JITTER: f64 = 0.10;
/// The targets (reported beside the figures, never asserted).
const TARGET_HALF_WAY_AFTER_3: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct Config {
    /// Independent sessions (a fresh tracker and server each), seeds `seed..seed + sessions`.
    pub sessions: u64,
    pub seed: u64,
    /// Runs of each workflow per session.
    pub runs_per_workflow: usize,
    /// Every variant of every shape, or one variant of each (smoke).
    pub all_variants: bool,
    /// Write every reading here, one JSON object a line.
    pub readings: Option<std::path::PathBuf>,
}

impl Config {
    pub fn new(smoke: bool) -> Config {
        Config {
            sessions: if smoke { 1 } else { 8 },
            seed: 1,
            runs_per_workflow: if smoke { 11 } else { 12 },
            all_variants: !smoke,
            readings: None,
        }
    }
}

// ---- report -------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Report {
    pub sessions: u64,
    pub workflows: Vec<String>,
    pub runs_per_workflow: usize,
    /// Jobs per series (live, and the same again observed).
    pub jobs: usize,
    pub jitter_percent: f64,
    /// True run time of the jobs: median and range, seconds.
    pub run_s_p50: f64,
    pub run_s_min: f64,
    pub run_s_max: f64,
    /// Our jobs, followed through their execution messages.
    pub live: Vec<Row>,
    /// Another client's jobs, seen only through queue snapshots and their outcome.
    pub observed: Vec<Row>,
    pub targets: Targets,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub earlier_runs: usize,
    pub jobs: usize,
    pub at: Vec<Point>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    /// Share of the job's run, percent.
    pub percent: u32,
    pub estimate: Errors,
    /// Absent for observed jobs (they have no step rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_rate: Option<Errors>,
    /// The estimate's error on just the readings where the step rate answered too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_where_step_rate: Option<Errors>,
    /// On the same readings, the ETA the app shows: the estimate, else (nothing learned yet)
    /// the step rate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown_where_step_rate: Option<Errors>,
    /// Readings by the basis of the estimate: `workflow`, `nodes`, or `none`.
    pub basis: BTreeMap<String, usize>,
}

/// Absolute errors as a percentage of the job's true run.
#[derive(Debug, Serialize)]
pub struct Errors {
    /// Readings that had an answer, of all readings.
    pub answered: usize,
    pub of: usize,
    pub mean_error_percent: Option<f64>,
    pub p50_error_percent: Option<f64>,
    pub p90_error_percent: Option<f64>,
    /// How many answers said less time was left than there was.
    pub too_early: usize,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub half_way_after_3_max_percent: f64,
    pub half_way_after_3_percent: Option<f64>,
    pub half_way_after_3_met: bool,
    /// Points (earlier runs × share of the run) of live jobs where the step rate answered.
    pub step_rate_points: usize,
    /// Of those, where the estimate's mean error was lower on the same readings.
    pub step_rate_points_beaten: usize,
    pub beats_step_rate_everywhere: bool,
}

// ---- measuring ----------------------------------------------------------------------------

/// One reading of one job at one point of its run.
#[derive(Debug, Clone, Serialize)]
struct Reading {
    /// Share of the run, percent.
    at_percent: u32,
    total_ms: f64,
    left_ms: f64,
    /// The estimate's time left (0 for "longer than usual"), when it has one.
    estimate_ms: Option<f64>,
    step_rate_ms: Option<f64>,
    basis: String,
    /// The node the job's picture showed running, and its progress.
    node_type: Option<String>,
    node_value: Option<f64>,
    node_max: Option<f64>,
}

/// A line of `--accuracy-readings`.
#[derive(Serialize)]
struct ReadingLine<'a> {
    session: u64,
    series: &'static str,
    workflow: &'a str,
    earlier_runs: usize,
    #[serde(flatten)]
    reading: &'a Reading,
}

#[derive(Default)]
struct Tally {
    /// (earlier runs, point index) → readings.
    readings: HashMap<(usize, usize), Vec<Reading>>,
    jobs: HashMap<usize, usize>,
}

pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let workflows = Workflow::all(cfg.all_variants);
    let names: Vec<String> = workflows.iter().map(Workflow::name).collect();
    let mut readings_out = match &cfg.readings {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut live = Tally::default();
    let mut observed = Tally::default();
    let mut runs_ms = Vec::new();
    let mut jobs = 0;
    for s in 0..cfg.sessions {
        let scripts = Series::new(&workflows, cfg, cfg.seed + s).scripts();
        jobs = scripts.len();
        runs_ms.extend(scripts.iter().map(|j| (j.ended - j.started) as f64));
        for (who, tally) in [(ME, &mut live), (OTHER, &mut observed)] {
            let mut driver = Driver::new(who == ME);
            for job in &scripts {
                let readings = driver.run(job);
                if let Some(out) = readings_out.as_mut() {
                    for r in &readings {
                        let line = ReadingLine {
                            session: cfg.seed + s,
                            series: if who == ME { "live" } else { "observed" },
                            workflow: &names[job.workflow],
                            earlier_runs: job.earlier,
                            reading: r,
                        };
                        serde_json::to_writer(&mut *out, &line)?;
                        out.write_all(b"\n")?;
                    }
                }
                if EARLIER.contains(&job.earlier) {
                    *tally.jobs.entry(job.earlier).or_default() += 1;
                    for (i, r) in readings.into_iter().enumerate() {
                        tally.readings.entry((job.earlier, i)).or_default().push(r);
                    }
                }
            }
        }
    }
    if let Some(mut out) = readings_out {
        out.flush()?;
    }
    let live_rows = rows(&live, true);
    let observed_rows = rows(&observed, false);
    let targets = targets(&live_rows);
    Ok(Report {
        sessions: cfg.sessions,
        workflows: names,
        runs_per_workflow: cfg.runs_per_workflow,
        jobs,
        jitter_percent: JITTER * 100.0,
        run_s_p50: round(percentile(&runs_ms, 50.0).unwrap_or(0.0) / 1000.0, 1),
        run_s_min: round(percentile(&runs_ms, 0.0).unwrap_or(0.0) / 1000.0, 1),
        run_s_max: round(percentile(&runs_ms, 100.0).unwrap_or(0.0) / 1000.0, 1),
        live: live_rows,
        observed: observed_rows,
        targets,
    })
}

fn rows(t: &Tally, live: bool) -> Vec<Row> {
    EARLIER
        .iter()
        .map(|&k| Row {
            earlier_runs: k,
            jobs: t.jobs.get(&k).copied().unwrap_or(0),
            at: POINTS
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let rs = t.readings.get(&(k, i)).map_or(&[][..], Vec::as_slice);
                    let mut basis = BTreeMap::new();
                    for r in rs {
                        *basis.entry(r.basis.clone()).or_default() += 1;
                    }
                    let paired: Vec<Reading> = rs
                        .iter()
                        .filter(|r| r.step_rate_ms.is_some())
                        .cloned()
                        .collect();
                    Point {
                        percent: (p * 100.0).round() as u32,
                        estimate: errors(rs, |r| r.estimate_ms),
                        step_rate: live.then(|| errors(rs, |r| r.step_rate_ms)),
                        estimate_where_step_rate: live.then(|| errors(&paired, |r| r.estimate_ms)),
                        shown_where_step_rate: live
                            .then(|| errors(&paired, |r| r.estimate_ms.or(r.step_rate_ms))),
                        basis,
                    }
                })
                .collect(),
        })
        .collect()
}

fn errors(rs: &[Reading], answer: impl Fn(&Reading) -> Option<f64>) -> Errors {
    let mut errs = Vec::new();
    let mut too_early = 0;
    for r in rs {
        if let Some(a) = answer(r) {
            errs.push(100.0 * (a - r.left_ms).abs() / r.total_ms);
            if a < r.left_ms {
                too_early += 1;
            }
        }
    }
    let mean = (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64);
    Errors {
        answered: errs.len(),
        of: rs.len(),
        mean_error_percent: mean.map(|m| round(m, 1)),
        p50_error_percent: percentile(&errs, 50.0).map(|m| round(m, 1)),
        p90_error_percent: percentile(&errs, 90.0).map(|m| round(m, 1)),
        too_early,
    }
}

fn targets(live: &[Row]) -> Targets {
    let half_way_after_3 = live
        .iter()
        .find(|r| r.earlier_runs == 3)
        .and_then(|r| r.at.iter().find(|p| p.percent == 50))
        .and_then(|p| p.estimate.mean_error_percent);
    let mut points = 0;
    let mut beaten = 0;
    for p in live.iter().flat_map(|r| &r.at) {
        let step = p.step_rate.as_ref().and_then(|s| s.mean_error_percent);
        // Compared on the same readings, as the app shows them: where nothing was learned yet
        // (the first job on an instance) it shows the step rate's ETA, so it is no worse there.
        let shown = p
            .shown_where_step_rate
            .as_ref()
            .and_then(|s| s.mean_error_percent);
        if let Some(step) = step {
            points += 1;
            if shown.is_some_and(|e| e < step) {
                beaten += 1;
            }
        }
    }
    Targets {
        half_way_after_3_max_percent: TARGET_HALF_WAY_AFTER_3,
        half_way_after_3_percent: half_way_after_3,
        half_way_after_3_met: half_way_after_3.is_some_and(|e| e <= TARGET_HALF_WAY_AFTER_3),
        step_rate_points: points,
        step_rate_points_beaten: beaten,
        beats_step_rate_everywhere: points > 0 && beaten == points,
    }
}

// ---- the tracker's side --------------------------------------------------------------------

/// Where the scripted job is in the server's queue, for the snapshots the tracker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Done,
}

/// The app's side of one session: one processor, fed each job's frames in order.
struct Driver {
    processor: Processor,
    ours: bool,
    phase: Phase,
}

impl Driver {
    fn new(ours: bool) -> Driver {
        Driver {
            processor: Processor::new(ME),
            ours,
            phase: Phase::Done,
        }
    }

    fn item(&self, job: &Script) -> ActiveJob {
        ActiveJob {
            prompt_id: job.id.clone(),
            number: Some(job.number as f64),
            client_id: Some(Some(if self.ours { ME } else { OTHER }.to_owned())),
            graph: Some(job.graph.clone()),
            outputs_to_execute: Some(job.outputs.clone()),
            create_time: Some(job.queued),
        }
    }

    /// Plays one job and returns its readings at [`POINTS`].
    fn run(&mut self, job: &Script) -> Vec<Reading> {
        if self.ours {
            // The app submits it: followed from the first frame, with its graph.
            let item = self.item(job);
            self.processor.expect(&item, job.queued);
            self.processor
                .settle(&job.id, Some(&job.id), job.queued + 3);
        }
        let total = job.ended - job.started;
        let at: Vec<i64> = POINTS
            .iter()
            .map(|p| job.started + (total as f64 * p).round() as i64)
            .collect();
        let mut readings = Vec::new();
        for (t, step) in &job.items {
            while readings.len() < at.len() && at[readings.len()] < *t {
                let i = readings.len();
                readings.push(self.read(job, at[i], POINTS[i]));
            }
            match step {
                Step::Phase(p) => self.phase = *p,
                Step::Frame { text, to_all } => {
                    if self.ours || *to_all {
                        let (_, requests) = self.processor.text(text, *t);
                        self.answer(job, requests, *t);
                    }
                }
            }
        }
        while readings.len() < at.len() {
            let i = readings.len();
            readings.push(self.read(job, at[i], POINTS[i]));
        }
        let view = self.processor.tracker().job(&job.id);
        debug_assert!(
            view.as_ref()
                .is_some_and(|v| v.state == comfy_engine::JobState::Success),
            "{view:?}"
        );
        readings
    }

    /// Answers the tracker's HTTP reads at once, from the server's state at `t`.
    fn answer(&mut self, job: &Script, mut requests: Vec<Request>, t: i64) {
        while let Some(r) = requests.pop() {
            match r {
                Request::Snapshot => {
                    let item = self.item(job);
                    let snap = Snapshot {
                        running: if self.phase == Phase::Running {
                            vec![item.clone()]
                        } else {
                            Vec::new()
                        },
                        pending: if self.phase == Phase::Queued {
                            vec![item]
                        } else {
                            Vec::new()
                        },
                        recent_finished: Vec::new(),
                        requested_at: t,
                    };
                    let (_, more) = self.processor.snapshot(&snap, t);
                    requests.extend(more);
                }
                Request::Outcome(id) if id == job.id && self.phase == Phase::Done => {
                    let found = FinishedJob {
                        prompt_id: id.clone(),
                        outcome: Outcome::Success,
                        outputs: Map::new(),
                        client_id: Some(if self.ours { ME } else { OTHER }.to_owned()),
                        started_ms: Some(job.started),
                        ended_ms: Some(job.ended),
                    };
                    self.processor
                        .outcome(&id, Lookup::Found(Box::new(found)), t);
                }
                Request::Outcome(_) => {}
            }
        }
    }

    fn read(&mut self, job: &Script, at: i64, point: f64) -> Reading {
        self.processor.tick(at);
        let view: Option<JobView> = self.processor.tracker().job(&job.id);
        let estimate = view.as_ref().and_then(|v| v.estimate.as_ref());
        Reading {
            at_percent: (point * 100.0).round() as u32,
            total_ms: (job.ended - job.started) as f64,
            left_ms: (job.ended - at) as f64,
            estimate_ms: estimate.and_then(|e| {
                e.eta_ms
                    .map(|ms| ms as f64)
                    .or(e.longer_than_usual.then_some(0.0))
            }),
            step_rate_ms: view.as_ref().and_then(|v| v.eta_ms).map(|ms| ms as f64),
            node_type: view.as_ref().and_then(|v| v.node_type.clone()),
            node_value: view.as_ref().and_then(|v| v.node_value),
            node_max: view.as_ref().and_then(|v| v.node_max),
            basis: estimate.map_or_else(
                || "none".to_owned(),
                |e| {
                    serde_json::to_value(e.basis)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{:?}", e.basis))
                },
            ),
        }
    }
}

// ---- the server's side: workflows and their costs ------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// SD 1.5 text to image.
    Txt2Img,
    /// The same, then a 4× upscale model and a ½ lanczos scale.
    Upscale,
    /// SDXL, then a second sampler on the latent scaled 1.5×, at half the steps.
    Hires,
    /// Wan 2.1 1.3B text to video, 33 frames, saved as animated WebP.
    Video,
}

#[derive(Debug, Clone, Copy)]
struct Workflow {
    kind: Kind,
    steps: u32,
    width: u32,
    height: u32,
}

/// What running a node costs.
#[derive(Debug, Clone)]
enum Cost {
    /// Reads a model file: `(cold, warm)` ms for the first read of the file in the session and
    /// for a later one.
    Load(&'static str, f64, f64),
    Fixed(f64),
    /// `(model, setup ms, model-to-GPU ms, steps, ms per step)`.
    Sampler(&'static str, f64, f64, u32, f64),
    /// A node that reports progress per tile: `(setup ms, tiles, ms per tile)`.
    Tiles(f64, u32, f64),
}

struct NodeSpec {
    id: &'static str,
    class: &'static str,
    inputs: Value,
    cost: Cost,
    /// Writes a file (`executed` with UI output).
    output: bool,
}

const SD15: &str = "v1-5-pruned-emaonly.safetensors";
const SDXL: &str = "sd_xl_base_1.0.safetensors";
const UPSCALER: &str = "4x-UltraSharp.pth";
const WAN: &str = "wan2.1_t2v_1.3B_fp16.safetensors";
const UMT5: &str = "umt5_xxl_fp8_e4m3fn_scaled.safetensors";
const WAN_VAE: &str = "wan_2.1_vae.safetensors";
const NEGATIVE: &str = "blurry, low quality, watermark, text";
const PROMPTS: [&str; 6] = [
    "a lighthouse on a cliff at dusk, oil painting",
    "portrait of an old fisherman, dramatic light",
    "a red fox in fresh snow, telephoto",
    "isometric city block, clean vector style",
    "a bowl of ramen, studio photograph",
    "mountain lake at sunrise, mist, wide angle",
];

impl Workflow {
    fn all(every_variant: bool) -> Vec<Workflow> {
        let kinds = [
            (Kind::Txt2Img, [(512, 512), (768, 768)]),
            (Kind::Upscale, [(512, 512), (768, 768)]),
            (Kind::Hires, [(768, 768), (1024, 1024)]),
            (Kind::Video, [(480, 320), (640, 384)]),
        ];
        let mut out = Vec::new();
        for (i, (kind, sizes)) in kinds.into_iter().enumerate() {
            for (j, steps) in [20, 30].into_iter().enumerate() {
                for (k, (width, height)) in sizes.into_iter().enumerate() {
                    // Smoke: one variant of each shape, not all the same one.
                    if every_variant || (j == i % 2 && k == (i / 2) % 2) {
                        out.push(Workflow {
                            kind,
                            steps,
                            width,
                            height,
                        });
                    }
                }
            }
        }
        out
    }

    fn name(&self) -> String {
        let kind = match self.kind {
            Kind::Txt2Img => "SD 1.5 text to image",
            Kind::Upscale => "SD 1.5 + 4× upscale model",
            Kind::Hires => "SDXL + hires pass",
            Kind::Video => "Wan 2.1 video, 33 frames",
        };
        format!(
            "{kind}, {}×{}, {} steps",
            self.width, self.height, self.steps
        )
    }

    fn mp(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }

    /// The nodes in the order they run, with what each costs (before jitter).
    fn nodes(&self, seed: u64, prompt: &str) -> Vec<NodeSpec> {
        let (w, h, steps, mp) = (self.width, self.height, self.steps, self.mp());
        let node = |id, class, inputs: Value, cost| NodeSpec {
            id,
            class,
            inputs,
            cost,
            output: false,
        };
        let save = |id, images: Value, ms: f64| NodeSpec {
            id,
            class: "SaveImage",
            inputs: json!({"filename_prefix": "ComfyUI", "images": images}),
            cost: Cost::Fixed(ms),
            output: true,
        };
        let sampler = |id, model: Value, latent: Value, steps: u32, denoise: f64, cost| {
            node(
                id,
                "KSampler",
                json!({"seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
                       "scheduler": "normal", "denoise": denoise, "model": model,
                       "positive": ["6", 0], "negative": ["7", 0], "latent_image": latent}),
                cost,
            )
        };
        let sd_front = |ckpt: &'static str, cold: f64, warm: f64, clip_ms: f64| {
            vec![
                node(
                    "4",
                    "CheckpointLoaderSimple",
                    json!({"ckpt_name": ckpt}),
                    Cost::Load(ckpt, cold, warm),
                ),
                node(
                    "5",
                    "EmptyLatentImage",
                    json!({"width": w, "height": h, "batch_size": 1}),
                    Cost::Fixed(3.0),
                ),
                node(
                    "6",
                    "CLIPTextEncode",
                    json!({"text": prompt, "clip": ["4", 1]}),
                    Cost::Fixed(clip_ms),
                ),
                node(
                    "7",
                    "CLIPTextEncode",
                    json!({"text": NEGATIVE, "clip": ["4", 1]}),
                    Cost::Fixed(clip_ms),
                ),
            ]
        };
        let decode = |samples: &str, ms: f64| {
            node(
                "8",
                "VAEDecode",
                json!({"samples": [samples, 0], "vae": ["4", 2]}),
                Cost::Fixed(ms),
            )
        };
        match self.kind {
            Kind::Txt2Img | Kind::Upscale => {
                let mut v = sd_front(SD15, 5_000.0, 1_600.0, 45.0);
                v.push(sampler(
                    "3",
                    json!(["4", 0]),
                    json!(["5", 0]),
                    steps,
                    1.0,
                    Cost::Sampler(SD15, 200.0, 1_100.0, steps, 230.0 * mp),
                ));
                v.push(decode("3", 1_200.0 * mp));
                if self.kind == Kind::Txt2Img {
                    v.push(save("9", json!(["8", 0]), 60.0 + 180.0 * mp));
                } else {
                    // ComfyUI's tiled upscale: 512 px tiles overlapping by 32.
                    let tiles = w.div_ceil(480) * h.div_ceil(480);
                    v.push(node(
                        "10",
                        "UpscaleModelLoader",
                        json!({"model_name": UPSCALER}),
                        Cost::Load(UPSCALER, 900.0, 250.0),
                    ));
                    v.push(node(
                        "11",
                        "ImageUpscaleWithModel",
                        json!({"upscale_model": ["10", 0], "image": ["8", 0]}),
                        Cost::Tiles(150.0, tiles, 7_500.0 * mp / f64::from(tiles)),
                    ));
                    v.push(node(
                        "12",
                        "ImageScaleBy",
                        json!({"upscale_method": "lanczos", "scale_by": 0.5, "image": ["11", 0]}),
                        Cost::Fixed(80.0 * 16.0 * mp),
                    ));
                    v.push(save("9", json!(["12", 0]), 60.0 + 180.0 * 4.0 * mp));
                }
                v
            }
            Kind::Hires => {
                let second = steps / 2;
                let mut v = sd_front(SDXL, 9_000.0, 3_200.0, 110.0);
                v.push(sampler(
                    "3",
                    json!(["4", 0]),
                    json!(["5", 0]),
                    steps,
                    1.0,
                    Cost::Sampler(SDXL, 200.0, 2_400.0, steps, 290.0 * mp),
                ));
                v.push(node(
                    "10",
                    "LatentUpscaleBy",
                    json!({"upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["3", 0]}),
                    Cost::Fixed(15.0),
                ));
                v.push(sampler(
                    "11",
                    json!(["4", 0]),
                    json!(["10", 0]),
                    second,
                    0.5,
                    Cost::Sampler(SDXL, 200.0, 0.0, second, 290.0 * 2.25 * mp),
                ));
                v.push(decode("11", 1_200.0 * 2.25 * mp));
                v.push(save("9", json!(["8", 0]), 60.0 + 180.0 * 2.25 * mp));
                v
            }
            Kind::Video => {
                let frames = 33;
                let work = mp * f64::from(frames);
                vec![
                    node(
                        "37",
                        "UNETLoader",
                        json!({"unet_name": WAN, "weight_dtype": "default"}),
                        Cost::Load(WAN, 6_000.0, 2_200.0),
                    ),
                    node(
                        "38",
                        "CLIPLoader",
                        json!({"clip_name": UMT5, "type": "wan", "device": "default"}),
                        Cost::Load(UMT5, 7_000.0, 2_800.0),
                    ),
                    node(
                        "39",
                        "VAELoader",
                        json!({"vae_name": WAN_VAE}),
                        Cost::Load(WAN_VAE, 600.0, 200.0),
                    ),
                    node(
                        "48",
                        "ModelSamplingSD3",
                        json!({"shift": 8.0, "model": ["37", 0]}),
                        Cost::Fixed(2.0),
                    ),
                    node(
                        "6",
                        "CLIPTextEncode",
                        json!({"text": prompt, "clip": ["38", 0]}),
                        Cost::Fixed(300.0),
                    ),
                    node(
                        "7",
                        "CLIPTextEncode",
                        json!({"text": NEGATIVE, "clip": ["38", 0]}),
                        Cost::Fixed(300.0),
                    ),
                    node(
                        "40",
                        "EmptyHunyuanLatentVideo",
                        json!({"width": w, "height": h, "length": frames, "batch_size": 1}),
                        Cost::Fixed(3.0),
                    ),
                    sampler(
                        "3",
                        json!(["48", 0]),
                        json!(["40", 0]),
                        steps,
                        1.0,
                        Cost::Sampler(WAN, 200.0, 3_000.0, steps, 62.0 * work),
                    ),
                    node(
                        "8",
                        "VAEDecode",
                        json!({"samples": ["3", 0], "vae": ["39", 0]}),
                        Cost::Fixed(330.0 * work),
                    ),
                    NodeSpec {
                        id: "28",
                        class: "SaveAnimatedWEBP",
                        inputs: json!({"images": ["8", 0], "filename_prefix": "ComfyUI", "fps": 16.0,
                                       "lossless": false, "quality": 90, "method": "default"}),
                        cost: Cost::Fixed(110.0 * work),
                        output: true,
                    },
                ]
            }
        }
    }
}

/// One scripted job: what the server sends, when, and where the job is in its queue.
struct Script {
    id: PromptId,
    number: u64,
    graph: Value,
    outputs: Vec<NodeId>,
    /// Earlier runs of the same workflow in this session.
    earlier: usize,
    /// Index of the workflow in the series.
    workflow: usize,
    queued: i64,
    started: i64,
    ended: i64,
    items: Vec<(i64, Step)>,
}

enum Step {
    Phase(Phase),
    /// A text frame; `to_all` for broadcasts (`status`), else for the submitter only.
    Frame {
        text: String,
        to_all: bool,
    },
}

/// One session's series of jobs, and the server state that decides what each one costs.
struct Series<'a> {
    workflows: &'a [Workflow],
    runs: usize,
    rng: StdRng,
    /// Node signatures of the previous job (ComfyUI's classic cache keeps only its outputs).
    cached: HashSet<String>,
    /// Model files read at least once in this session.
    read: HashSet<&'static str>,
    /// The model on the GPU, from the previous job's sampler.
    on_gpu: Option<&'static str>,
    clock: i64,
    number: u64,
}

impl<'a> Series<'a> {
    fn new(workflows: &'a [Workflow], cfg: &Config, seed: u64) -> Series<'a> {
        Series {
            workflows,
            runs: cfg.runs_per_workflow,
            rng: StdRng::seed_from_u64(seed),
            cached: HashSet::new(),
            read: HashSet::new(),
            on_gpu: None,
            // 2026-12-01 00:00 UTC: a plausible epoch time, so nothing looks like zero.
            clock: 1_796_083_200_000,
            number: 0,
        }
    }

    /// The session's jobs: every workflow `runs` times, in a random order where a workflow is
    /// often run again right after itself (a user trying seeds), else another is picked.
    fn scripts(mut self) -> Vec<Script> {
        let mut left = vec![self.runs; self.workflows.len()];
        let mut done = vec![0usize; self.workflows.len()];
        let mut previous: Option<usize> = None;
        let mut out = Vec::new();
        while left.iter().any(|l| *l > 0) {
            let pick = match previous {
                Some(p) if left[p] > 0 && self.rng.random_bool(0.5) => p,
                _ => {
                    let total: usize = left.iter().sum();
                    let mut n = self.rng.random_range(0..total);
                    let mut chosen = 0;
                    for (i, l) in left.iter().enumerate() {
                        if n < *l {
                            chosen = i;
                            break;
                        }
                        n -= l;
                    }
                    chosen
                }
            };
            left[pick] -= 1;
            let earlier = done[pick];
            done[pick] += 1;
            previous = Some(pick);
            let wf = self.workflows[pick];
            let mut job = self.job(&wf, earlier);
            job.workflow = pick;
            out.push(job);
        }
        out
    }

    fn jitter(&mut self, ms: f64) -> f64 {
        ms * self.rng.random_range(1.0 - JITTER..=1.0 + JITTER)
    }

    fn job(&mut self, wf: &Workflow, earlier: usize) -> Script {
        self.number += 1;
        let id = PromptId::from(format!("00000000-0000-4000-8000-{:012x}", self.number).as_str());
        let seed = self.rng.random::<u32>();
        let prompt = format!(
            "{}, variation {}",
            PROMPTS[self.rng.random_range(0..PROMPTS.len())],
            self.rng.random_range(0..1000)
        );
        let nodes = wf.nodes(u64::from(seed), &prompt);
        let graph: Value = Value::Object(
            nodes
                .iter()
                .map(|n| {
                    (
                        n.id.to_owned(),
                        json!({"class_type": n.class, "inputs": n.inputs.clone()}),
                    )
                })
                .collect(),
        );
        let sigs = signatures(&graph);
        let output = nodes.iter().rev().find(|n| n.output).map_or("9", |n| n.id);

        // An idle gap since the previous job, then queued; the worker takes it at once.
        self.clock += self.rng.random_range(1_000..60_000);
        let queued = self.clock;
        let mut s = Frames {
            id: id.clone(),
            t: queued,
            items: Vec::new(),
            states: Vec::new(),
        };
        s.phase(Phase::Queued);
        s.status(1);
        s.t += 15;
        let started = s.t;
        s.phase(Phase::Running);
        s.status(1);
        s.send(
            "execution_start",
            json!({"prompt_id": id.as_str(), "timestamp": s.t}),
        );
        // The nodes of the graph with a cached output, in graph key order.
        let mut keys: Vec<&str> = nodes.iter().map(|n| n.id).collect();
        keys.sort_unstable();
        let cached: Vec<&str> = keys
            .into_iter()
            .filter(|k| sigs.get(*k).is_some_and(|sig| self.cached.contains(sig)))
            .collect();
        s.t += 1;
        s.send(
            "execution_cached",
            json!({"nodes": cached, "prompt_id": id.as_str(), "timestamp": s.t}),
        );
        for n in &nodes {
            if cached.contains(&n.id) {
                continue;
            }
            s.t += 2;
            s.node_start(n.id);
            match &n.cost {
                Cost::Load(file, cold, warm) => {
                    let ms = if self.read.insert(*file) {
                        *cold
                    } else {
                        *warm
                    };
                    s.t += self.jitter(ms).round() as i64;
                }
                Cost::Fixed(ms) => s.t += self.jitter(*ms).round().max(1.0) as i64,
                Cost::Sampler(model, setup, to_gpu, steps, per_step) => {
                    let mut before = self.jitter(*setup);
                    if self.on_gpu != Some(*model) {
                        before += self.jitter(*to_gpu);
                        self.on_gpu = Some(*model);
                    }
                    s.t += before.round() as i64;
                    let rate = self.jitter(*per_step);
                    for i in 1..=*steps {
                        s.t += self.jitter(rate).round() as i64;
                        s.node_step(n.id, i, *steps);
                    }
                    s.t += 5;
                }
                Cost::Tiles(setup, tiles, per_tile) => {
                    s.t += self.jitter(*setup).round() as i64;
                    for i in 1..=*tiles {
                        s.t += self.jitter(*per_tile).round() as i64;
                        s.node_step(n.id, i, *tiles);
                    }
                }
            }
            s.node_end(n.id, n.output);
        }
        s.t += 3;
        let ended = s.t;
        s.send(
            "execution_success",
            json!({"prompt_id": id.as_str(), "timestamp": s.t}),
        );
        s.phase(Phase::Done);
        s.status(0);
        s.send("executing", json!({"node": null, "prompt_id": id.as_str()}));
        self.cached = sigs.into_values().collect();
        self.clock = s.t;
        Script {
            id,
            number: self.number,
            graph,
            outputs: vec![NodeId::from(output)],
            earlier,
            workflow: 0,
            queued,
            started,
            ended,
            items: s.items,
        }
    }
}

/// Builds one job's frames in the order a 0.26 server sends them.
struct Frames {
    id: PromptId,
    t: i64,
    items: Vec<(i64, Step)>,
    /// `progress_state`'s nodes: (id, value, max, finished), in the order they started.
    states: Vec<(String, u32, u32, bool)>,
}

impl Frames {
    fn phase(&mut self, p: Phase) {
        self.items.push((self.t, Step::Phase(p)));
    }

    fn frame(&mut self, kind: &str, data: Value, to_all: bool) {
        let text = json!({"type": kind, "data": data}).to_string();
        self.items.push((self.t, Step::Frame { text, to_all }));
    }

    fn send(&mut self, kind: &str, data: Value) {
        self.frame(kind, data, false);
    }

    fn status(&mut self, remaining: u32) {
        self.frame(
            "status",
            json!({"status": {"exec_info": {"queue_remaining": remaining}}}),
            true,
        );
    }

    fn progress_state(&mut self) {
        let id = self.id.as_str();
        let nodes: Map<String, Value> = self
            .states
            .iter()
            .map(|(n, value, max, finished)| {
                (
                    n.clone(),
                    json!({"value": value, "max": max,
                           "state": if *finished { "finished" } else { "running" },
                           "node_id": n, "prompt_id": id, "display_node_id": n,
                           "parent_node_id": null, "real_node_id": n}),
                )
            })
            .collect();
        self.send("progress_state", json!({"prompt_id": id, "nodes": nodes}));
    }

    fn set_state(&mut self, node: &str, value: u32, max: u32, finished: bool) {
        match self.states.iter_mut().find(|s| s.0 == node) {
            Some(s) => *s = (node.to_owned(), value, max, finished),
            None => self.states.push((node.to_owned(), value, max, finished)),
        }
        self.progress_state();
    }

    fn node_start(&mut self, node: &str) {
        self.set_state(node, 0, 1, false);
        let id = self.id.as_str().to_owned();
        self.send(
            "executing",
            json!({"node": node, "display_node": node, "prompt_id": id}),
        );
    }

    fn node_step(&mut self, node: &str, value: u32, max: u32) {
        self.set_state(node, value, max, false);
        let id = self.id.as_str().to_owned();
        self.send(
            "progress",
            json!({"value": value, "max": max, "prompt_id": id, "node": node}),
        );
    }

    fn node_end(&mut self, node: &str, output: bool) {
        if output {
            let id = self.id.as_str().to_owned();
            let file = format!("ComfyUI_{:05}_.png", self.t % 100_000);
            self.send(
                "executed",
                json!({"node": node, "display_node": node, "prompt_id": id,
                       "output": {"images": [{"filename": file, "subfolder": "", "type": "output"}]}}),
            );
        }
        let max = self.states.iter().find(|s| s.0 == node).map_or(1, |s| s.2);
        self.set_state(node, max, max, true);
    }
}

/// Each node's cache key like ComfyUI's: its class, its own inputs and its inputs' keys, so a
/// node is cached only when it and everything upstream are unchanged.
fn signatures(graph: &Value) -> HashMap<String, String> {
    fn sig(graph: &Value, id: &str, memo: &mut HashMap<String, String>) -> String {
        if let Some(s) = memo.get(id) {
            return s.clone();
        }
        let node = &graph[id];
        let mut s = node["class_type"].as_str().unwrap_or_default().to_owned();
        if let Some(inputs) = node["inputs"].as_object() {
            let mut names: Vec<&String> = inputs.keys().collect();
            names.sort();
            for name in names {
                let v = &inputs[name.as_str()];
                let linked = v
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .and_then(|a| Some((a[0].as_str()?, a[1].as_u64()?)));
                s.push('|');
                s.push_str(name);
                s.push('=');
                match linked {
                    Some((src, slot)) => {
                        s.push_str(&format!("({}):{slot}", sig(graph, src, memo)));
                    }
                    None => s.push_str(&v.to_string()),
                }
            }
        }
        memo.insert(id.to_owned(), s.clone());
        s
    }
    let mut memo = HashMap::new();
    let ids: Vec<String> = graph
        .as_object()
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default();
    ids.into_iter()
        .map(|id| {
            let s = sig(graph, &id, &mut memo);
            (id, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_the_same_for_the_same_seed_and_every_workflow_runs_its_count() {
        let cfg = Config::new(true);
        let wfs = Workflow::all(false);
        assert_eq!(wfs.len(), 4, "one variant of each shape");
        let a = Series::new(&wfs, &cfg, 7).scripts();
        let b = Series::new(&wfs, &cfg, 7).scripts();
        assert_eq!(a.len(), 4 * cfg.runs_per_workflow);
        let ends = |s: &[Script]| s.iter().map(|j| j.ended).collect::<Vec<_>>();
        assert_eq!(ends(&a), ends(&b));
        assert_eq!(a.iter().filter(|j| j.earlier == 10).count(), 4);
    }

    #[test]
    fn loaders_are_cached_only_after_a_job_that_used_them() {
        let cfg = Config::new(true);
        let wfs = [Workflow::all(true)[0]];
        let jobs = Series::new(&wfs, &cfg, 1).scripts();
        let cached = |j: &Script| {
            j.items.iter().find_map(|(_, s)| match s {
                Step::Frame { text, .. } if text.contains("execution_cached") => Some(text.clone()),
                _ => None,
            })
        };
        assert!(cached(&jobs[0]).is_some_and(|t| t.contains("\"nodes\":[]")));
        let second = cached(&jobs[1]).unwrap_or_default();
        assert!(
            second.contains("\"4\"") && second.contains("\"7\""),
            "{second}"
        );
        assert!(
            !second.contains("\"3\""),
            "a new seed runs the sampler again"
        );
        assert!(jobs[0].ended - jobs[0].started > jobs[1].ended - jobs[1].started);
    }

    #[test]
    fn the_tracker_follows_a_scripted_job_to_its_success() {
        let cfg = Config::new(true);
        let wfs = Workflow::all(false);
        let jobs = Series::new(&wfs, &cfg, 3).scripts();
        let mut d = Driver::new(true);
        for j in jobs.iter().take(6) {
            let r = d.run(j);
            assert_eq!(r.len(), 3);
            let v = d.processor.tracker().job(&j.id).unwrap();
            assert_eq!(v.state, comfy_engine::JobState::Success);
            assert_eq!(v.run_ms, Some((j.ended - j.started) as u64));
        }
        let mut o = Driver::new(false);
        for j in jobs.iter().take(3) {
            o.run(j);
            let v = o.processor.tracker().job(&j.id).unwrap();
            assert_eq!(v.state, comfy_engine::JobState::Success);
            assert_eq!(v.fidelity, comfy_engine::Fidelity::Observed);
        }
    }
}
