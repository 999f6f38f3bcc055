//! Coalesces running-job progress to display rate, per instance.
//!
//! A sampler can report progress hundreds of times a second; the webview only needs what it can
//! paint. Progress of a running job is held back until the instance's window has passed, and
//! only the newest picture of each job is kept. Every other update, and above all a job's final
//! state, goes out at once, and drops any held progress of that job so nothing stale follows it.
//! Time is passed in, so tests need no clock.

use crate::shell::events::{JobUpdated, Update};
use crate::shell::view::JobStateView;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many progress emissions per instance per second.
pub const PROGRESS_PER_SECOND: u32 = 30;
/// ...and about this many for all instances together: each emission costs the webview a render,
/// and at 100 busy instances per-instance windows alone let through thousands a second, which
/// froze the page in the benchmarks. With many instances active each one's window widens.
pub const PROGRESS_PER_SECOND_TOTAL: u32 = 400;

pub fn progress_interval() -> Duration {
    Duration::from_secs(1) / PROGRESS_PER_SECOND
}

#[derive(Debug, Default)]
struct Lane {
    last_sent: Option<Instant>,
    /// Held progress, newest per job, in first-held order.
    held: Vec<JobUpdated>,
}

#[derive(Debug)]
pub struct ProgressThrottle {
    interval: Duration,
    /// The share of the total budget one active instance gets.
    share: Duration,
    lanes: HashMap<String, Lane>,
}

impl ProgressThrottle {
    pub fn new(interval: Duration) -> Self {
        Self::with_total(interval, PROGRESS_PER_SECOND_TOTAL)
    }

    /// `total`: emissions per second for all instances together.
    pub fn with_total(interval: Duration, total: u32) -> Self {
        Self {
            interval,
            share: Duration::from_secs(1) / total.max(1),
            lanes: HashMap::new(),
        }
    }

    /// Each instance's window now: the per-instance interval, widened when so many instances
    /// are sending progress (sent in the last second, or holding some) that together they would
    /// exceed the total budget.
    fn window(&self, now: Instant) -> Duration {
        let active = self
            .lanes
            .values()
            .filter(|l| {
                !l.held.is_empty()
                    || l.last_sent
                        .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            })
            .count();
        let active = u32::try_from(active).unwrap_or(u32::MAX);
        self.interval.max(self.share.saturating_mul(active))
    }

    /// Takes an update; returns what to send now, in order.
    pub fn offer(&mut self, update: Update, now: Instant) -> Vec<Update> {
        let Update::JobUpdated(job) = update else {
            return vec![update];
        };
        let window = self.window(now);
        let lane = self.lanes.entry(job.instance.clone()).or_default();
        if job.job.state != JobStateView::Running {
            lane.held.retain(|h| h.job.prompt_id != job.job.prompt_id);
            return vec![Update::JobUpdated(job)];
        }
        let window_open = lane
            .last_sent
            .is_none_or(|last| now.duration_since(last) >= window);
        if window_open && lane.held.is_empty() {
            lane.last_sent = Some(now);
            return vec![Update::JobUpdated(job)];
        }
        match lane
            .held
            .iter_mut()
            .find(|h| h.job.prompt_id == job.job.prompt_id)
        {
            Some(held) => *held = *job,
            None => lane.held.push(*job),
        }
        Vec::new()
    }

    /// When held progress is next due, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        let window = self.window(Instant::now());
        self.lanes
            .values()
            .filter(|lane| !lane.held.is_empty())
            .map(|lane| lane.last_sent.map_or(Instant::now(), |t| t + window))
            .min()
    }

    /// Releases held progress whose window has passed.
    pub fn take_due(&mut self, now: Instant) -> Vec<Update> {
        let window = self.window(now);
        let mut out = Vec::new();
        for lane in self.lanes.values_mut() {
            if lane.held.is_empty() {
                continue;
            }
            let due = lane
                .last_sent
                .is_none_or(|last| now.duration_since(last) >= window);
            if due {
                lane.last_sent = Some(now);
                out.extend(lane.held.drain(..).map(|j| Update::JobUpdated(Box::new(j))));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::events::QueueChanged;
    use crate::shell::view::{FidelityView, JobOriginView, JobSummary, QueueCounts};

    const MS: Duration = Duration::from_millis(1);

    fn job(instance: &str, id: &str, state: JobStateView, percent: f64) -> Update {
        Update::JobUpdated(Box::new(JobUpdated {
            revision: 0,
            instance: instance.into(),
            job: JobSummary {
                prompt_id: id.into(),
                state,
                origin: JobOriginView::SelfApp,
                fidelity: FidelityView::Live,
                number: None,
                percent: Some(percent),
                node: None,
                node_type: None,
                node_title: None,
                node_value: None,
                node_max: None,
                nodes_done: None,
                nodes_total: None,
                eta_ms: None,
                steps_per_s: None,
                queued_at_ms: 0,
                started_at_ms: None,
                ended_at_ms: None,
                elapsed_ms: None,
                error: None,
                detail: None,
                warnings: Vec::new(),
                outputs: Vec::new(),
                preview: None,
                node_text: Vec::new(),
            },
        }))
    }

    fn percents(updates: &[Update]) -> Vec<f64> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::JobUpdated(j) => j.job.percent,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_progress_goes_out_at_once() {
        let mut t = ProgressThrottle::new(30 * MS);
        let out = t.offer(job("a", "p", JobStateView::Running, 1.0), Instant::now());
        assert_eq!(percents(&out), [1.0]);
        assert!(t.next_due().is_none());
    }

    #[test]
    fn progress_within_the_window_is_held_and_only_the_newest_is_sent() {
        let mut t = ProgressThrottle::new(30 * MS);
        let t0 = Instant::now();
        t.offer(job("a", "p", JobStateView::Running, 1.0), t0);
        assert!(t
            .offer(job("a", "p", JobStateView::Running, 2.0), t0 + 5 * MS)
            .is_empty());
        assert!(t
            .offer(job("a", "p", JobStateView::Running, 3.0), t0 + 10 * MS)
            .is_empty());
        assert_eq!(t.next_due(), Some(t0 + 30 * MS));
        assert!(t.take_due(t0 + 29 * MS).is_empty());
        assert_eq!(percents(&t.take_due(t0 + 30 * MS)), [3.0]);
        assert!(t.next_due().is_none());
    }

    #[test]
    fn a_burst_of_progress_is_sent_at_most_once_per_window() {
        let mut t = ProgressThrottle::new(30 * MS);
        let t0 = Instant::now();
        let mut sent = 0;
        for i in 0..1000u32 {
            let now = t0 + i * MS;
            sent += t
                .offer(job("a", "p", JobStateView::Running, f64::from(i)), now)
                .len();
            sent += t.take_due(now).len();
        }
        // 1000 ms at one per 30 ms.
        assert!(sent <= 34, "sent {sent}");
        assert!(sent >= 30, "sent {sent}");
    }

    #[test]
    fn many_busy_instances_share_the_total_budget() {
        // 100 instances, each reporting every 5 ms for a second; at most 30/s each would let
        // 3,000 through, the total budget of 400/s about a tenth of that.
        let mut t = ProgressThrottle::with_total(30 * MS, 400);
        let t0 = Instant::now();
        let mut sent = 0;
        for i in 0..200u32 {
            let now = t0 + i * 5 * MS;
            for n in 0..100 {
                let instance = format!("gpu{n}");
                sent += t
                    .offer(
                        job(&instance, "p", JobStateView::Running, f64::from(i)),
                        now,
                    )
                    .len();
            }
            sent += t.take_due(now).len();
        }
        assert!(sent <= 520, "sent {sent}");
        // Every instance still shows progress.
        assert!(sent >= 300, "sent {sent}");
        // A single instance keeps its own 30/s (see a_burst_of_progress_...).
    }

    #[test]
    fn final_state_is_never_held_and_drops_held_progress_of_that_job() {
        let mut t = ProgressThrottle::new(30 * MS);
        let t0 = Instant::now();
        t.offer(job("a", "p", JobStateView::Running, 1.0), t0);
        t.offer(job("a", "p", JobStateView::Running, 50.0), t0 + MS);
        let out = t.offer(job("a", "p", JobStateView::Success, 100.0), t0 + 2 * MS);
        assert_eq!(percents(&out), [100.0]);
        assert!(t.take_due(t0 + 100 * MS).is_empty());
    }

    #[test]
    fn instances_are_throttled_independently() {
        let mut t = ProgressThrottle::new(30 * MS);
        let t0 = Instant::now();
        assert_eq!(
            t.offer(job("a", "p", JobStateView::Running, 1.0), t0).len(),
            1
        );
        assert_eq!(
            t.offer(job("b", "q", JobStateView::Running, 1.0), t0).len(),
            1
        );
    }

    #[test]
    fn other_updates_pass_straight_through() {
        let mut t = ProgressThrottle::new(30 * MS);
        let q = Update::QueueChanged(QueueChanged {
            revision: 1,
            instance: "a".into(),
            queue: QueueCounts::default(),
        });
        let now = Instant::now();
        assert_eq!(t.offer(q.clone(), now), vec![q.clone()]);
        assert_eq!(t.offer(q.clone(), now), vec![q]);
    }
}
