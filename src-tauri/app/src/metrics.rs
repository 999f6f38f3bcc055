//! Prometheus metrics of the monitored instances, for `comfy-monitor serve --metrics`.
//!
//! [`Metrics`] is fed every engine event ([`Metrics::observe`]) and rendered in Prometheus's
//! text format ([`Metrics::render`]). Every series carries an `instance` label, the saved
//! instance's name. Labels are bounded: no prompt ids and no model names; node classes are
//! capped per instance ([`MAX_NODE_CLASSES`], the rest counted under `other`), GPUs at
//! [`MAX_DEVICES`], so a hostile server cannot grow the scrape without end.
//!
//! GPU memory is read from `/system_stats` when Prometheus scrapes ([`gpu_memory`]), as
//! exporters do: nothing is asked of a server between scrapes.

use comfy_engine::{Engine, Event, EventKind};
use comfy_model::{InstanceId, JobState};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Distinct node classes timed per instance; later classes are counted under `other`.
pub const MAX_NODE_CLASSES: usize = 200;
/// GPUs reported per instance.
pub const MAX_DEVICES: usize = 16;
/// How long a scrape waits for an instance's `/system_stats`.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// Buckets (seconds) of how long a job ran.
const JOB_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// Buckets (seconds) of how long a job waited in the queue.
const WAIT_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];
/// Buckets (seconds) of how long one node ran.
const NODE_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The outcomes counted, in the order rendered.
const OUTCOMES: [JobState; 5] = [
    JobState::Success,
    JobState::Error,
    JobState::Interrupted,
    JobState::Deleted,
    JobState::Lost,
];

fn outcome_label(state: JobState) -> &'static str {
    match state {
        JobState::Success => "success",
        JobState::Error => "error",
        JobState::Interrupted => "interrupted",
        JobState::Deleted => "deleted",
        JobState::Lost => "lost",
        JobState::Pending => "pending",
        JobState::Running => "running",
    }
}

/// A Prometheus histogram: cumulative buckets, sum and count.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative (made cumulative when rendered); one more for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, n) in self.counts.iter().enumerate() {
            cumulative += n;
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// One GPU's memory, as `/system_stats` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMemory {
    pub device: String,
    pub used_bytes: f64,
    pub total_bytes: f64,
}

#[derive(Debug, Clone)]
struct InstanceMetrics {
    name: String,
    up: bool,
    ever_up: bool,
    reconnects: u64,
    running: usize,
    pending: usize,
    companion: bool,
    jobs: [u64; OUTCOMES.len()],
    /// By outcome (success, error, interrupted).
    duration: BTreeMap<&'static str, Histogram>,
    wait: Histogram,
    nodes: BTreeMap<String, Histogram>,
    previews: u64,
}

impl InstanceMetrics {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            up: false,
            ever_up: false,
            reconnects: 0,
            running: 0,
            pending: 0,
            companion: false,
            jobs: [0; OUTCOMES.len()],
            duration: BTreeMap::new(),
            wait: Histogram::new(WAIT_BUCKETS),
            nodes: BTreeMap::new(),
            previews: 0,
        }
    }

    fn node(&mut self, class: Option<&str>) -> &mut Histogram {
        let class = class.filter(|c| !c.is_empty()).unwrap_or("unknown");
        let key = if self.nodes.contains_key(class) || self.nodes.len() < MAX_NODE_CLASSES {
            class
        } else {
            "other"
        };
        self.nodes
            .entry(key.to_owned())
            .or_insert_with(|| Histogram::new(NODE_BUCKETS))
    }
}

/// Reads one figure of a `T`.
type Read<T, V> = fn(&T) -> V;
/// A series' name, type, help, and how its value is read.
type Series<T, V> = (&'static str, &'static str, &'static str, Read<T, V>);

/// The metrics of every monitored instance.
#[derive(Debug, Default)]
pub struct Metrics {
    instances: BTreeMap<InstanceId, InstanceMetrics>,
}

/// A label value in Prometheus's text format: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in milliseconds, as seconds.
pub(crate) fn millis(ms: u64) -> f64 {
    Duration::from_millis(ms).as_secs_f64()
}

impl Metrics {
    /// Starts an instance's series (all zero, down) so it is scraped before its first event.
    pub fn add_instance(&mut self, id: InstanceId, name: &str) {
        self.instances
            .entry(id)
            .or_insert_with(|| InstanceMetrics::new(name));
    }

    /// Takes one engine event into the counts.
    pub fn observe(&mut self, event: &Event) {
        let m = self
            .instances
            .entry(event.instance_id)
            .or_insert_with(|| InstanceMetrics::new(&event.instance));
        match &event.kind {
            EventKind::Connection(status) => {
                let up = status.state.is_up();
                if up && !m.up {
                    if m.ever_up {
                        m.reconnects += 1;
                    }
                    m.ever_up = true;
                }
                m.up = up;
                if !up {
                    m.running = 0;
                    m.pending = 0;
                }
            }
            EventKind::Server(info) => m.companion = info.companion.is_some(),
            EventKind::Queue { running, pending } => {
                m.running = running.len();
                m.pending = pending.len();
            }
            EventKind::Job(job) if job.state.is_terminal() => {
                if let Some(i) = OUTCOMES.iter().position(|o| *o == job.state) {
                    m.jobs[i] += 1;
                }
                if let Some(ran) = job.ran_ms().filter(|_| {
                    matches!(
                        job.state,
                        JobState::Success | JobState::Error | JobState::Interrupted
                    )
                }) {
                    m.duration
                        .entry(outcome_label(job.state))
                        .or_insert_with(|| Histogram::new(JOB_BUCKETS))
                        .observe(millis(ran));
                }
                if let Some(waited) = job.waited_ms() {
                    m.wait.observe(millis(waited));
                }
                for node in &job.node_durations {
                    m.node(node.node_type.as_deref()).observe(millis(node.ms));
                }
            }
            EventKind::Preview(_) => m.previews += 1,
            _ => {}
        }
    }

    /// The ids of the instances that are up now (whose GPU memory a scrape reads).
    pub fn up(&self) -> Vec<InstanceId> {
        self.instances
            .iter()
            .filter(|(_, m)| m.up)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every series in Prometheus's text exposition format (version 0.0.4), with the GPU
    /// memory read for this scrape.
    pub fn render(&self, gpus: &BTreeMap<InstanceId, Vec<DeviceMemory>>) -> String {
        let mut out = String::new();
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        // One value per instance.
        let single: [Series<InstanceMetrics, String>; 6] = [
            (
                "comfyui_up",
                "gauge",
                "1 when the instance is connected (live or by polling), else 0.",
                |m| u8::from(m.up).to_string(),
            ),
            (
                "comfyui_queue_pending",
                "gauge",
                "Jobs waiting in the instance's queue.",
                |m| m.pending.to_string(),
            ),
            (
                "comfyui_queue_running",
                "gauge",
                "Jobs running on the instance.",
                |m| m.running.to_string(),
            ),
            (
                "comfyui_previews_total",
                "counter",
                "Preview frames received.",
                |m| m.previews.to_string(),
            ),
            (
                "comfyui_companion",
                "gauge",
                "1 when the server's comfy-monitor companion is in use.",
                |m| u8::from(m.companion).to_string(),
            ),
            (
                "comfyui_reconnects_total",
                "counter",
                "Times the connection came back after it was lost.",
                |m| m.reconnects.to_string(),
            ),
        ];
        for (name, kind, help, value) in single {
            header(&mut out, name, kind, help);
            for m in self.instances.values() {
                let _ = writeln!(
                    out,
                    "{name}{{instance=\"{}\"}} {}",
                    label(&m.name),
                    value(m)
                );
            }
        }
        header(
            &mut out,
            "comfyui_jobs_finished_total",
            "counter",
            "Jobs that ended, by outcome (every client's).",
        );
        for m in self.instances.values() {
            for (outcome, n) in OUTCOMES.iter().zip(m.jobs) {
                let _ = writeln!(
                    out,
                    "comfyui_jobs_finished_total{{instance=\"{}\",outcome=\"{}\"}} {n}",
                    label(&m.name),
                    outcome_label(*outcome),
                );
            }
        }
        let name = "comfyui_job_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "How long jobs ran, queue wait excluded, by outcome.",
        );
        for m in self.instances.values() {
            for (outcome, h) in &m.duration {
                h.render(
                    &mut out,
                    name,
                    &format!("instance=\"{}\",outcome=\"{outcome}\"", label(&m.name)),
                );
            }
        }
        let name = "comfyui_queue_wait_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "How long jobs waited in the queue before they started.",
        );
        for m in self.instances.values() {
            m.wait
                .render(&mut out, name, &format!("instance=\"{}\"", label(&m.name)));
        }
        let name = "comfyui_node_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "How long nodes ran, by class (jobs followed live only).",
        );
        for m in self.instances.values() {
            for (class, h) in &m.nodes {
                let labels = format!(
                    "instance=\"{}\",class_type=\"{}\"",
                    label(&m.name),
                    label(class)
                );
                h.render(&mut out, name, &labels);
            }
        }
        let memory: [(&str, &str, Read<DeviceMemory, f64>); 2] = [
            (
                "comfyui_gpu_memory_used_bytes",
                "Device memory in use, as /system_stats reports it.",
                |d| d.used_bytes,
            ),
            (
                "comfyui_gpu_memory_total_bytes",
                "Device memory in all, as /system_stats reports it.",
                |d| d.total_bytes,
            ),
        ];
        for (name, help, value) in memory {
            header(&mut out, name, "gauge", help);
            for (id, m) in &self.instances {
                for d in gpus.get(id).into_iter().flatten().take(MAX_DEVICES) {
                    let _ = writeln!(
                        out,
                        "{name}{{instance=\"{}\",device=\"{}\"}} {}",
                        label(&m.name),
                        label(&d.device),
                        value(d)
                    );
                }
            }
        }
        out
    }
}

/// The webhook deliveries' counts, in the text format.
pub fn render_webhooks(stats: &crate::webhooks::HookStats) -> String {
    use std::sync::atomic::Ordering;
    let mut out = String::from(
        "# HELP comfy_monitor_webhooks_total Webhook deliveries, by result.\n# TYPE comfy_monitor_webhooks_total counter\n",
    );
    for (result, n) in [
        ("delivered", &stats.delivered),
        ("failed", &stats.failed),
        ("retried", &stats.retried),
        ("dropped", &stats.dropped),
    ] {
        let _ = writeln!(
            out,
            "comfy_monitor_webhooks_total{{result=\"{result}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    out
}

/// The memory of each device in a `/system_stats` answer; devices without figures are left out.
pub fn devices(stats: &comfy_protocol::http::SystemStats) -> Vec<DeviceMemory> {
    stats
        .devices
        .iter()
        .take(MAX_DEVICES)
        .filter_map(|d| {
            let total = d.vram_total.filter(|t| t.is_finite() && *t >= 0.0)?;
            let free = d.vram_free.filter(|f| f.is_finite() && *f >= 0.0)?;
            let device = if d.name.is_empty() {
                d.kind.clone()
            } else {
                d.name.chars().take(200).collect()
            };
            Some(DeviceMemory {
                device,
                used_bytes: (total - free).max(0.0),
                total_bytes: total,
            })
        })
        .collect()
}

/// Reads the GPU memory of `instances` at once, each within [`STATS_TIMEOUT`]; an instance
/// that does not answer in time is left out of this scrape.
pub async fn gpu_memory(
    engine: &Engine,
    instances: &[InstanceId],
) -> BTreeMap<InstanceId, Vec<DeviceMemory>> {
    let mut reads = tokio::task::JoinSet::new();
    for id in instances {
        let (engine, id) = (engine.clone(), *id);
        reads.spawn(async move {
            let stats = tokio::time::timeout(STATS_TIMEOUT, engine.system_stats(id)).await;
            match stats {
                Ok(Ok(stats)) => Some((id, devices(&stats))),
                _ => None,
            }
        });
    }
    let mut out = BTreeMap::new();
    while let Some(read) = reads.join_next().await {
        if let Ok(Some((id, devices))) = read {
            out.insert(id, devices);
        }
    }
    out
}
