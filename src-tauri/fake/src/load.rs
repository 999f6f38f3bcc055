//! A configurable benchmark load: jobs submitted on behalf of the connected monitor, so it
//! receives the full-fidelity stream (executing, progress, `progress_state`, previews, node
//! text, custom events, executed, `execution_success`) exactly as if it had submitted them.
//!
//! The task only submits, through the same path as `POST /prompt`, with `client_id` = the sid
//! of the most recently connected socket that has sent its first message (its feature flags);
//! with no such socket it waits. Each job is a `FakeLoadSampler` feeding a `SaveImage`, so it
//! ends in history like a real job; the worker runs the sampler's streams on their own clocks
//! ([`Cadence`]). This module must not send frames itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::images::{self, ImageFormat};
use crate::json::J;
use crate::obj;
use crate::state::{Reply, Shared, State};

/// One catch-up wake never sends more than this many events of one stream; further behind, the
/// stream skips ahead instead of bursting.
const MAX_BURST: u64 = 64;

/// What the load generator sends. Rates are per second; 0 turns a stream off.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// Jobs submitted per minute (0 = none). When jobs take longer than the interval they queue
    /// up like on a real server, at most [`Load::MAX_PENDING`] of them.
    pub jobs_per_minute: f64,
    /// Sampler steps per job: one `progress` (and `progress_state`) message per step.
    pub steps: u32,
    /// Steps (progress messages) per second; 0 = as fast as the server can go.
    pub progress_per_sec: f64,
    /// Preview frames per second, independent of the progress rate (0 = none): type 4 with
    /// metadata to a client that negotiated it, type 1 otherwise and on legacy servers.
    pub preview_fps: f64,
    /// Preview side in px (ComfyUI's default preview is a 512 px JPEG). Frames come from a
    /// ring of a few JPEGs encoded once per size.
    pub preview_size: u32,
    /// Binary type-3 node text frames per second while a job runs.
    pub node_text_per_sec: f64,
    /// `monitor.custom` events per second while a job runs.
    pub custom_events_per_sec: f64,
}

impl Default for Load {
    /// No jobs; when `jobs_per_minute` is set: 20 steps at 20 per second, no previews, no
    /// node text, no custom events.
    fn default() -> Load {
        Load {
            jobs_per_minute: 0.0,
            steps: 20,
            progress_per_sec: 20.0,
            preview_fps: 0.0,
            preview_size: 512,
            node_text_per_sec: 0.0,
            custom_events_per_sec: 0.0,
        }
    }
}

fn rate(r: f64) -> f64 {
    if r.is_finite() && r > 0.0 {
        r
    } else {
        0.0
    }
}

impl Load {
    /// At most this many of the load's own jobs wait in the queue; a tick that finds them all
    /// still pending submits nothing, so a long run against slow jobs never grows the queue.
    pub const MAX_PENDING: usize = 2;

    /// Whether this load submits anything at all.
    pub fn is_active(&self) -> bool {
        rate(self.jobs_per_minute) > 0.0
    }

    fn interval(&self) -> Option<Duration> {
        let per_minute = rate(self.jobs_per_minute);
        (per_minute > 0.0).then(|| Duration::from_secs_f64(60.0 / per_minute))
    }

    fn previews(&self) -> bool {
        rate(self.preview_fps) > 0.0 && self.preview_size > 0
    }

    /// The API-format workflow of one job; `seed` makes every job's signature new, so nothing
    /// is served from the execution cache.
    fn workflow(&self, seed: u64) -> J {
        obj! {
            "1" => obj! {
                "class_type" => "FakeLoadSampler",
                "inputs" => obj! {
                    "steps" => self.steps.max(1),
                    "seed" => seed,
                    "progress_per_sec" => J::float(rate(self.progress_per_sec)),
                    "preview_fps" => J::float(rate(self.preview_fps)),
                    "preview_size" => self.preview_size.min(2048),
                    "node_text_per_sec" => J::float(rate(self.node_text_per_sec)),
                    "custom_events_per_sec" => J::float(rate(self.custom_events_per_sec)),
                },
            },
            "2" => obj! {
                "class_type" => "SaveImage",
                "inputs" => obj! {
                    "images" => J::Arr(vec![J::from("1"), J::from(0i64)]),
                    "filename_prefix" => "load",
                },
            },
        }
    }
}

/// The sid the load submits for: the most recently connected registered socket whose first
/// message was processed.
fn newest_client(s: &State) -> Option<String> {
    s.conns
        .iter()
        .filter(|(id, c)| c.first_frame_done && s.routes.get(&c.sid) == Some(*id))
        .max_by_key(|(id, _)| **id)
        .map(|(_, c)| c.sid.clone())
}

async fn wait_for_client(shared: &Shared) -> String {
    let mut changes = shared.lock().signals.clients.subscribe();
    loop {
        if let Some(sid) = newest_client(&shared.lock()) {
            return sid;
        }
        if changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Submits the load's jobs until aborted.
pub async fn run(shared: Arc<Shared>, load: Load) {
    let Some(interval) = load.interval() else {
        return;
    };
    if load.previews() {
        // Encode the preview ring before the first job, off the async threads.
        let size = load.preview_size;
        let _ = tokio::task::spawn_blocking(move || images::preview_ring(ImageFormat::Jpeg, size))
            .await;
    }
    let mut ours: VecDeque<String> = VecDeque::new();
    let mut seed: u64 = 0;
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let sid = wait_for_client(&shared).await;
        {
            let mut s = shared.lock();
            ours.retain(|id| s.pending.iter().any(|i| &i.prompt_id == id));
            if ours.len() < Load::MAX_PENDING {
                seed += 1;
                let body = obj! { "prompt" => load.workflow(seed), "client_id" => sid.as_str() };
                match s.post_prompt(body.to_py_string().as_bytes()) {
                    Reply::Json(200, ok) => {
                        if let Some(id) = ok.get("prompt_id").and_then(J::as_str) {
                            ours.push_back(id.to_string());
                        }
                    }
                    other => tracing::warn!("the load's job was refused: {other:?}"),
                }
            }
        }
        // Late (a wait for a client): start counting again from now instead of bursting.
        let now = Instant::now();
        next = if next + interval < now {
            now + interval
        } else {
            next + interval
        };
    }
}

/// A steady clock for one stream of events at `rate` per second, the first one period after
/// the start. Pure: the caller passes the time.
#[derive(Debug)]
pub struct Cadence {
    period: Duration,
    next: Option<Instant>,
}

impl Cadence {
    /// A rate of 0 (or not a finite positive number) never fires.
    pub fn new(per_sec: f64, start: Instant) -> Cadence {
        let per_sec = rate(per_sec);
        if per_sec == 0.0 {
            return Cadence {
                period: Duration::ZERO,
                next: None,
            };
        }
        let period = Duration::from_secs_f64(1.0 / per_sec).max(Duration::from_nanos(1));
        Cadence {
            period,
            next: Some(start + period),
        }
    }

    /// When the next event is due; `None` for a stream that is off.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// How many events are due at `now` (at most `MAX_BURST`), moving the clock past them.
    /// Several are due at once when the rate is above what the timer resolves (about 1 ms).
    pub fn due(&mut self, now: Instant) -> u64 {
        let Some(next) = self.next.filter(|n| *n <= now) else {
            return 0;
        };
        let behind = (now - next).as_nanos() / self.period.as_nanos();
        let count = u64::try_from(behind).unwrap_or(u64::MAX).saturating_add(1);
        if count > MAX_BURST {
            self.next = Some(now + self.period);
            return MAX_BURST;
        }
        // `count` ≤ MAX_BURST, so it fits a u32.
        self.next = Some(next + self.period * count as u32);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cadence_fires_at_its_rate_and_catches_up_in_bursts() {
        let start = Instant::now();
        let mut c = Cadence::new(1000.0, start);
        assert_eq!(c.due(start), 0);
        assert_eq!(c.due(start + Duration::from_micros(999)), 0);
        assert_eq!(c.due(start + Duration::from_millis(1)), 1);
        assert_eq!(c.due(start + Duration::from_millis(1)), 0);
        // Thousands a second with a 1 ms timer: several per wake, none lost.
        assert_eq!(c.due(start + Duration::from_millis(4)), 3);
        assert_eq!(c.next(), Some(start + Duration::from_millis(5)));
        // Far behind (a stall): a bounded burst, then on from now.
        let late = start + Duration::from_secs(10);
        assert_eq!(c.due(late), MAX_BURST);
        assert_eq!(c.next(), Some(late + Duration::from_millis(1)));
    }

    #[test]
    fn a_zero_or_invalid_rate_never_fires() {
        let start = Instant::now();
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut c = Cadence::new(r, start);
            assert_eq!(c.next(), None);
            assert_eq!(c.due(start + Duration::from_secs(100)), 0);
        }
    }

    #[test]
    fn the_workflow_passes_validation_and_changes_with_the_seed() {
        let load = Load {
            jobs_per_minute: 60.0,
            preview_fps: 10.0,
            ..Load::default()
        };
        let a = load.workflow(1);
        assert!(matches!(
            crate::graph::validate(&a, crate::ServerVersion::V0_26, None),
            crate::graph::Validation::Valid { .. }
        ));
        assert_ne!(a.to_py_string(), load.workflow(2).to_py_string());
        assert_eq!(load.interval(), Some(Duration::from_secs(1)));
        assert!(!Load::default().is_active());
    }
}
