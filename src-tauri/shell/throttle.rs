//! Coalesces running-job progress to display rate and batches it per display frame.
//!
//! A sampler can report progress hundreds of times a second; the webview only needs what it can
//! paint. Progress of a running job is held, newest picture per job, and goes out in one
//! `jobs-progressed` event per display frame carrying every instance whose own window (30/s)
//! has passed. Each webview event costs a script evaluation and a render whatever it carries, so
//! a hundred busy instances cost the webview about as many renders as one.
//!
//! The webview says when it has shown a batch (`progress_shown`, from its next animation frame);
//! until then no further batch is sent, so a webview slower than the stream gets fewer, fuller
//! batches instead of a queue of stale ones (latest wins, as for previews). A batch that is never
//! acknowledged (a page still loading, or reloading) holds the next one back at most
//! [`ACK_TIMEOUT`]. Every other update,
//! and above all a job's final state, goes out at once and drops any held progress of that job,
//! so nothing stale follows it. Time is passed in, so tests need no clock.

use crate::shell::events::{JobUpdated, JobsProgressed, Update};
use comfy_model::{InstanceId, JobState};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many progress pictures per instance per second.
pub const PROGRESS_PER_SECOND: u32 = 30;
/// At most this many progress batches per second, for all instances together: one per frame of
/// a 60 Hz display.
pub const BATCHES_PER_SECOND: u32 = 60;
/// How long an unacknowledged batch holds the next one back.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Lane {
    last_sent: Option<Instant>,
    /// Held progress, newest per job, in first-held order.
    held: Vec<JobUpdated>,
}

#[derive(Debug)]
pub struct ProgressThrottle {
    /// Between two progress pictures of one instance.
    interval: Duration,
    /// Between two batches.
    frame: Duration,
    last_batch: Option<Instant>,
    /// The number of the last batch sent.
    batch: u64,
    /// Whether the webview has not yet said it showed the last batch.
    unacked: bool,
    lanes: HashMap<InstanceId, Lane>,
}

impl Default for ProgressThrottle {
    fn default() -> Self {
        Self::new(
            Duration::from_secs(1) / PROGRESS_PER_SECOND,
            Duration::from_secs(1) / BATCHES_PER_SECOND,
        )
    }
}

impl ProgressThrottle {
    pub fn new(interval: Duration, frame: Duration) -> Self {
        Self {
            interval,
            frame,
            last_batch: None,
            batch: 0,
            unacked: false,
            lanes: HashMap::new(),
        }
    }

    /// Takes an update; returns what to send now, in order. Progress of a running job is held
    /// for the next batch (which is due at once when nothing was sent lately).
    pub fn offer(&mut self, update: Update) -> Option<Update> {
        let Update::JobUpdated(job) = update else {
            return Some(update);
        };
        let lane = self.lanes.entry(job.instance_id).or_default();
        // A new order goes at once, so orders reach the webview in the order they were made.
        if job.job.state != JobState::Running || job.order.is_some() {
            lane.held.retain(|h| h.job.prompt_id != job.job.prompt_id);
            return Some(Update::JobUpdated(job));
        }
        match lane
            .held
            .iter_mut()
            .find(|h| h.job.prompt_id == job.job.prompt_id)
        {
            Some(held) => *held = *job,
            None => lane.held.push(*job),
        }
        None
    }

    /// The webview has shown batch `batch` (and so every earlier one).
    pub fn shown(&mut self, batch: u64) {
        if batch >= self.batch {
            self.unacked = false;
        }
    }

    /// The earliest the next batch may go: a frame after the last one, or, while the webview
    /// has not shown the last one, [`ACK_TIMEOUT`] after it.
    fn batch_due(&self, now: Instant) -> Instant {
        let wait = if self.unacked {
            ACK_TIMEOUT.max(self.frame)
        } else {
            self.frame
        };
        self.last_batch.map_or(now, |t| t + wait)
    }

    /// When the next batch is due, if any progress is held: the earliest instance window to
    /// pass, but not before the batch rule allows (see [`Self::batch_due`]). At or before `now`
    /// when a batch may go at once.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let lane_due = self
            .lanes
            .values()
            .filter(|lane| !lane.held.is_empty())
            .map(|lane| lane.last_sent.map_or(now, |t| t + self.interval))
            .min()?;
        Some(lane_due.max(self.batch_due(now)))
    }

    /// The batch of held progress whose instance windows have passed, if one may go now.
    pub fn take_due(&mut self, now: Instant) -> Option<Update> {
        if self.batch_due(now) > now {
            return None;
        }
        let mut updates = Vec::new();
        for lane in self.lanes.values_mut() {
            let open = lane
                .last_sent
                .is_none_or(|last| now.duration_since(last) >= self.interval);
            if open && !lane.held.is_empty() {
                lane.last_sent = Some(now);
                updates.append(&mut lane.held);
            }
        }
        if updates.is_empty() {
            return None;
        }
        self.last_batch = Some(now);
        self.batch += 1;
        self.unacked = true;
        Some(Update::JobsProgressed(JobsProgressed {
            batch: self.batch,
            updates,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::events::QueueChanged;
    use crate::shell::view::{JobSummary, QueueCounts};
    use comfy_model::{JobOrigin, JobView};

    /// A distinct id per instance name, so the tests read with names.
    fn id(name: &str) -> InstanceId {
        InstanceId(name.bytes().fold(0, |h, b| h * 131 + i64::from(b)))
    }

    const MS: Duration = Duration::from_millis(1);

    fn job(instance: &str, prompt: &str, state: JobState, percent: f64) -> Update {
        Update::JobUpdated(Box::new(JobUpdated {
            revision: 0,
            instance_id: id(instance),
            job: JobSummary::new(JobView {
                percent: Some(percent),
                ..JobView::new(prompt.into(), JobOrigin::SelfApp, state)
            }),
            order: None,
        }))
    }

    fn percents(updates: &[Update]) -> Vec<f64> {
        updates
            .iter()
            .flat_map(|u| match u {
                Update::JobUpdated(j) => vec![j.job.percent],
                Update::JobsProgressed(b) => b.updates.iter().map(|j| j.job.percent).collect(),
                _ => Vec::new(),
            })
            .flatten()
            .collect()
    }

    /// Offers an update and, as the event task does, sends a batch when one is due; a webview
    /// that keeps up shows each batch at once.
    fn step(t: &mut ProgressThrottle, update: Update, now: Instant) -> Vec<Update> {
        let out = offer_unshown(t, update, now);
        for u in &out {
            if let Update::JobsProgressed(b) = u {
                t.shown(b.batch);
            }
        }
        out
    }

    /// As `step`, with a webview that does not say it showed anything.
    fn offer_unshown(t: &mut ProgressThrottle, update: Update, now: Instant) -> Vec<Update> {
        let mut out: Vec<Update> = t.offer(update).into_iter().collect();
        if t.next_due(now).is_some_and(|due| due <= now) {
            out.extend(t.take_due(now));
        }
        out
    }

    fn throttle() -> ProgressThrottle {
        ProgressThrottle::new(30 * MS, 16 * MS)
    }

    #[test]
    fn first_progress_is_due_at_once() {
        let mut t = throttle();
        let now = Instant::now();
        let out = step(&mut t, job("a", "p", JobState::Running, 1.0), now);
        assert_eq!(percents(&out), [1.0]);
        assert!(matches!(out.as_slice(), [Update::JobsProgressed(_)]));
        assert!(t.next_due(now).is_none());
    }

    #[test]
    fn progress_within_the_window_is_held_and_only_the_newest_is_sent() {
        let mut t = throttle();
        let t0 = Instant::now();
        step(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        assert!(step(&mut t, job("a", "p", JobState::Running, 2.0), t0 + 5 * MS).is_empty());
        assert!(step(&mut t, job("a", "p", JobState::Running, 3.0), t0 + 10 * MS).is_empty());
        assert_eq!(t.next_due(t0 + 10 * MS), Some(t0 + 30 * MS));
        assert!(t.take_due(t0 + 29 * MS).is_none());
        assert_eq!(percents(&Vec::from_iter(t.take_due(t0 + 30 * MS))), [3.0]);
        assert!(t.next_due(t0 + 30 * MS).is_none());
    }

    #[test]
    fn a_burst_of_progress_is_sent_at_most_once_per_window() {
        let mut t = throttle();
        let t0 = Instant::now();
        let mut sent = 0;
        for i in 0..1000u32 {
            let now = t0 + i * MS;
            sent += percents(&step(
                &mut t,
                job("a", "p", JobState::Running, f64::from(i)),
                now,
            ))
            .len();
        }
        // 1000 ms at one per 30 ms.
        assert!((30..=34).contains(&sent), "sent {sent}");
    }

    #[test]
    fn many_busy_instances_share_one_batch_per_frame() {
        // 100 instances, each reporting every 5 ms for a second: every instance still gets
        // its 30 pictures a second, in at most one event per 16 ms frame.
        let mut t = throttle();
        let t0 = Instant::now();
        let (mut events, mut pictures) = (0, 0);
        let mut shown = std::collections::HashSet::new();
        for i in 0..200u32 {
            let now = t0 + i * 5 * MS;
            for n in 0..100 {
                let out = step(
                    &mut t,
                    job(&format!("gpu{n}"), "p", JobState::Running, f64::from(i)),
                    now,
                );
                events += out.len();
                pictures += percents(&out).len();
                for u in &out {
                    if let Update::JobsProgressed(b) = u {
                        shown.extend(b.updates.iter().map(|j| j.instance_id));
                    }
                }
            }
        }
        assert!(events <= 1000 / 16 + 1, "{events} events");
        assert!(pictures >= 100 * 20, "{pictures} pictures");
        assert!(pictures <= 100 * 34, "{pictures} pictures");
        assert_eq!(shown.len(), 100);
    }

    #[test]
    fn a_batch_waits_for_the_frame_but_not_longer() {
        let mut t = throttle();
        let t0 = Instant::now();
        assert_eq!(
            step(&mut t, job("a", "p", JobState::Running, 1.0), t0).len(),
            1
        );
        // Another instance, 4 ms later: its own window is open, the frame is not.
        assert!(step(&mut t, job("b", "q", JobState::Running, 1.0), t0 + 4 * MS).is_empty());
        assert_eq!(t.next_due(t0 + 4 * MS), Some(t0 + 16 * MS));
        assert_eq!(percents(&Vec::from_iter(t.take_due(t0 + 16 * MS))), [1.0]);
    }

    #[test]
    fn a_webview_that_has_not_shown_the_last_batch_gets_the_next_one_later_and_fuller() {
        let mut t = throttle();
        let t0 = Instant::now();
        let first = offer_unshown(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        let Some(Update::JobsProgressed(first)) = first.first() else {
            panic!("no first batch");
        };
        // 100 ms of progress from two instances while the webview is busy: nothing goes.
        for i in 1..=100u32 {
            let now = t0 + i * MS;
            assert!(
                offer_unshown(&mut t, job("a", "p", JobState::Running, f64::from(i)), now)
                    .is_empty()
            );
            assert!(
                offer_unshown(&mut t, job("b", "q", JobState::Running, f64::from(i)), now)
                    .is_empty()
            );
        }
        // Shown: the next batch goes at the next frame with the newest picture of each.
        t.shown(first.batch);
        assert!(t
            .next_due(t0 + 100 * MS)
            .is_some_and(|due| due <= t0 + 100 * MS));
        let out = Vec::from_iter(t.take_due(t0 + 100 * MS));
        assert_eq!(percents(&out), [100.0, 100.0]);
    }

    #[test]
    fn a_batch_never_shown_holds_the_next_one_back_only_for_the_timeout() {
        let mut t = throttle();
        let t0 = Instant::now();
        offer_unshown(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        t.offer(job("a", "p", JobState::Running, 2.0));
        assert_eq!(t.next_due(t0 + MS), Some(t0 + ACK_TIMEOUT));
        assert!(t.take_due(t0 + ACK_TIMEOUT - MS).is_none());
        assert_eq!(
            percents(&Vec::from_iter(t.take_due(t0 + ACK_TIMEOUT))),
            [2.0]
        );
        // An acknowledgement of an older batch does not release a newer one.
        t.offer(job("a", "p", JobState::Running, 3.0));
        t.shown(1);
        assert_eq!(t.next_due(t0 + ACK_TIMEOUT), Some(t0 + 2 * ACK_TIMEOUT));
    }

    #[test]
    fn final_state_is_never_held_and_drops_held_progress_of_that_job() {
        let mut t = throttle();
        let t0 = Instant::now();
        step(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        step(&mut t, job("a", "p", JobState::Running, 50.0), t0 + MS);
        let out = step(&mut t, job("a", "p", JobState::Success, 100.0), t0 + 2 * MS);
        assert_eq!(percents(&out), [100.0]);
        assert!(matches!(out.as_slice(), [Update::JobUpdated(_)]));
        assert!(t.take_due(t0 + 100 * MS).is_none());
    }

    #[test]
    fn instances_are_throttled_independently() {
        let mut t = throttle();
        let t0 = Instant::now();
        step(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        // "a" sent at t0 and is inside its window at 20 ms; "b" has never sent.
        t.offer(job("a", "p", JobState::Running, 2.0));
        t.offer(job("b", "q", JobState::Running, 1.0));
        let out = Vec::from_iter(t.take_due(t0 + 20 * MS));
        let Some(Update::JobsProgressed(batch)) = out.first() else {
            panic!("no batch: {out:?}");
        };
        let instances: Vec<_> = batch.updates.iter().map(|j| j.instance_id).collect();
        assert_eq!(instances, [id("b")]);
        t.shown(batch.batch);
        assert_eq!(t.next_due(t0 + 20 * MS), Some(t0 + 36 * MS));
    }

    #[test]
    fn other_updates_pass_straight_through() {
        let mut t = throttle();
        let q = Update::QueueChanged(QueueChanged {
            revision: 1,
            instance_id: id("a"),
            queue: QueueCounts::default(),
        });
        assert_eq!(t.offer(q.clone()), Some(q.clone()));
        assert_eq!(t.offer(q.clone()), Some(q));
    }
}
