//! Batches every change of the webview's picture into at most one event per display frame.
//!
//! Each webview event costs a script evaluation and a render whatever it carries, so the
//! webview's cost follows the number of events, not their size. Every change of what it paints
//! (connection states, server versions, queue counts, machine stats, job pictures) is held here
//! and goes out in one `view-changed` event per display frame, for all instances together:
//! a hundred busy instances with growing queues cost the webview about as many renders as one.
//!
//! - **Newest wins.** A held change is replaced by a newer one of the same thing: the newest
//!   connection state, server, queue and stats per instance, the newest picture per job. A job's
//!   pictures keep the order they were made in, and an update that carries a new order of an
//!   instance's jobs keeps its place after the pictures made before it.
//! - **Running progress at display rate.** A running job's progress picture is held at most
//!   [`PROGRESS_PER_SECOND`] per instance (a sampler can report hundreds a second); it goes after
//!   the other job pictures of its batch, and any later picture of that job (its final state
//!   above all) drops it, so nothing stale follows.
//! - **Paced by the webview.** The webview says when it has shown a batch (`batch_shown`, from
//!   its next animation frame); until then no further batch is sent, so a webview slower than
//!   the stream gets fewer, fuller batches instead of a queue of stale ones (latest wins, as for
//!   previews). A batch that is never acknowledged (a page still loading, or reloading) holds
//!   the next one back at most [`ACK_TIMEOUT`].
//!
//! What is not paint (log lines, requests to act, a changed list of instances) passes through at
//! once. Time is passed in, so tests need no clock.

use crate::shell::events::{JobUpdated, Update, ViewChanged};
use comfy_model::{InstanceId, JobState};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many progress pictures per instance per second.
pub const PROGRESS_PER_SECOND: u32 = 30;
/// At most this many batches per second, for all instances together: one per frame of a 60 Hz
/// display.
pub const BATCHES_PER_SECOND: u32 = 60;
/// How long an unacknowledged batch holds the next one back.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(250);

/// Running progress of one instance, held until its display-rate window passes.
#[derive(Debug, Default)]
struct Lane {
    last_sent: Option<Instant>,
    /// Newest per job, in first-held order.
    held: Vec<JobUpdated>,
}

/// Replaces the held change of the same instance, or holds it as the first of its instance.
fn newest_per_instance<T>(held: &mut Vec<T>, change: T, instance: impl Fn(&T) -> InstanceId) {
    let id = instance(&change);
    match held.iter_mut().find(|h| instance(h) == id) {
        Some(old) => *old = change,
        None => held.push(change),
    }
}

fn same_job(a: &JobUpdated, b: &JobUpdated) -> bool {
    a.instance_id == b.instance_id && a.job.prompt_id == b.job.prompt_id
}

#[derive(Debug)]
pub struct ViewBatcher {
    /// Between two progress pictures of one instance.
    interval: Duration,
    /// Between two batches.
    frame: Duration,
    last_batch: Option<Instant>,
    /// The number of the last batch sent.
    batch: u64,
    /// Whether the webview has not yet said it showed the last batch.
    unacked: bool,
    /// Every change held for the next batch but running progress: newest per instance, and
    /// every job picture but running progress in the order made, newest per job.
    held: ViewChanged,
    lanes: HashMap<InstanceId, Lane>,
}

impl Default for ViewBatcher {
    fn default() -> Self {
        Self::new(
            Duration::from_secs(1) / PROGRESS_PER_SECOND,
            Duration::from_secs(1) / BATCHES_PER_SECOND,
        )
    }
}

impl ViewBatcher {
    pub fn new(interval: Duration, frame: Duration) -> Self {
        Self {
            interval,
            frame,
            last_batch: None,
            batch: 0,
            unacked: false,
            held: ViewChanged::empty(0),
            lanes: HashMap::new(),
        }
    }

    /// Takes an update: a change of the picture is held for the next batch (due at once when
    /// nothing was sent lately); anything else is returned, to send now.
    pub fn offer(&mut self, update: Update) -> Option<Update> {
        match update {
            Update::InstanceStatusChanged(c) => {
                newest_per_instance(&mut self.held.statuses, c, |c| c.instance_id);
            }
            Update::ServerInfoChanged(c) => {
                newest_per_instance(&mut self.held.servers, c, |c| c.instance_id);
            }
            Update::QueueChanged(c) => {
                newest_per_instance(&mut self.held.queues, c, |c| c.instance_id);
            }
            Update::StatsChanged(c) => {
                newest_per_instance(&mut self.held.stats, c, |c| c.instance_id);
            }
            Update::JobUpdated(job) => self.hold_job(*job),
            other => return Some(other),
        }
        None
    }

    fn hold_job(&mut self, job: JobUpdated) {
        let lane = self.lanes.entry(job.instance_id).or_default();
        if job.job.state == JobState::Running && job.order.is_none() {
            match lane.held.iter_mut().find(|h| same_job(h, &job)) {
                Some(held) => *held = job,
                None => lane.held.push(job),
            }
            return;
        }
        // Any other picture is newer than the job's held progress.
        lane.held.retain(|h| !same_job(h, &job));
        let jobs = &mut self.held.jobs;
        let held = jobs.iter().position(|h| same_job(h, &job));
        match (held, job.order.is_some()) {
            // A new order goes after every picture made before it; the held picture's own
            // order, if it had one, is older than this one of the same instance.
            (Some(at), true) => {
                jobs.remove(at);
                jobs.push(job);
            }
            // The newest picture in the place of the older one, which keeps its order.
            (Some(at), false) => {
                let order = jobs[at].order.take();
                jobs[at] = JobUpdated { order, ..job };
            }
            (None, _) => jobs.push(job),
        }
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

    /// When the next batch is due, if anything is held: at once for a change other than running
    /// progress, else when the earliest instance window passes; never before the batch rule
    /// allows (see [`Self::batch_due`]). At or before `now` when a batch may go at once.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let progress_due = self
            .lanes
            .values()
            .filter(|lane| !lane.held.is_empty())
            .map(|lane| lane.last_sent.map_or(now, |t| t + self.interval))
            .min();
        let due = if !self.held.is_empty() {
            Some(now)
        } else {
            progress_due
        }?;
        Some(due.max(self.batch_due(now)))
    }

    /// The batch of every held change, and of the running progress whose instance windows have
    /// passed, if one may go now.
    pub fn take_due(&mut self, now: Instant) -> Option<Update> {
        if self.batch_due(now) > now {
            return None;
        }
        let mut batch = std::mem::replace(&mut self.held, ViewChanged::empty(0));
        for lane in self.lanes.values_mut() {
            let open = lane
                .last_sent
                .is_none_or(|last| now.duration_since(last) >= self.interval);
            if open && !lane.held.is_empty() {
                lane.last_sent = Some(now);
                batch.jobs.append(&mut lane.held);
            }
        }
        batch.batch = self.batch + 1;
        if batch.is_empty() {
            return None;
        }
        self.last_batch = Some(now);
        self.batch = batch.batch;
        self.unacked = true;
        Some(Update::ViewChanged(batch))
    }

    /// Forgets everything held: the webview is off screen and will load a fresh picture.
    pub fn clear(&mut self) {
        self.held = ViewChanged::empty(0);
        self.lanes.values_mut().for_each(|lane| lane.held.clear());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::events::{EventLogged, QueueChanged, ShowRequested};
    use crate::shell::view::{JobSummary, LogEntry, QueueCounts};
    use comfy_model::{JobOrigin, JobView, PromptId};

    /// A distinct id per instance name, so the tests read with names.
    fn id(name: &str) -> InstanceId {
        InstanceId(name.bytes().fold(0, |h, b| h * 131 + i64::from(b)))
    }

    const MS: Duration = Duration::from_millis(1);

    fn picture(instance: &str, prompt: &str, state: JobState, percent: f64) -> JobUpdated {
        JobUpdated {
            revision: 0,
            instance_id: id(instance),
            job: JobSummary::new(JobView {
                percent: Some(percent),
                ..JobView::new(prompt.into(), JobOrigin::SelfApp, state)
            }),
            order: None,
        }
    }

    fn job(instance: &str, prompt: &str, state: JobState, percent: f64) -> Update {
        Update::JobUpdated(Box::new(picture(instance, prompt, state, percent)))
    }

    fn ordered(instance: &str, prompt: &str, state: JobState, order: &[&str]) -> Update {
        Update::JobUpdated(Box::new(JobUpdated {
            order: Some(order.iter().map(|&p| PromptId::from(p)).collect()),
            ..picture(instance, prompt, state, 0.0)
        }))
    }

    fn queue(instance: &str, revision: u64, pending: usize) -> Update {
        Update::QueueChanged(QueueChanged {
            revision,
            instance_id: id(instance),
            queue: QueueCounts {
                running: 1,
                pending,
            },
        })
    }

    fn batches(updates: &[Update]) -> Vec<&ViewChanged> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::ViewChanged(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn percents(updates: &[Update]) -> Vec<f64> {
        batches(updates)
            .into_iter()
            .flat_map(|b| b.jobs.iter().filter_map(|j| j.job.percent))
            .collect()
    }

    /// (prompt, state, whether it carries an order) of every job picture, in order.
    fn pictures(updates: &[Update]) -> Vec<(String, JobState, bool)> {
        batches(updates)
            .into_iter()
            .flat_map(|b| {
                b.jobs
                    .iter()
                    .map(|j| (j.job.prompt_id.to_string(), j.job.state, j.order.is_some()))
            })
            .collect()
    }

    /// Offers an update and, as the event task does, sends a batch when one is due; a webview
    /// that keeps up shows each batch at once.
    fn step(t: &mut ViewBatcher, update: Update, now: Instant) -> Vec<Update> {
        let out = offer_unshown(t, update, now);
        for b in batches(&out) {
            t.shown(b.batch);
        }
        out
    }

    /// As `step`, with a webview that does not say it showed anything.
    fn offer_unshown(t: &mut ViewBatcher, update: Update, now: Instant) -> Vec<Update> {
        let mut out: Vec<Update> = t.offer(update).into_iter().collect();
        if t.next_due(now).is_some_and(|due| due <= now) {
            out.extend(t.take_due(now));
        }
        out
    }

    fn batcher() -> ViewBatcher {
        ViewBatcher::new(30 * MS, 16 * MS)
    }

    #[test]
    fn first_change_is_due_at_once() {
        let mut t = batcher();
        let now = Instant::now();
        let out = step(&mut t, job("a", "p", JobState::Running, 1.0), now);
        assert_eq!(percents(&out), [1.0]);
        assert!(matches!(out.as_slice(), [Update::ViewChanged(_)]));
        assert!(t.next_due(now).is_none());
    }

    #[test]
    fn progress_within_the_window_is_held_and_only_the_newest_is_sent() {
        let mut t = batcher();
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
        let mut t = batcher();
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
        let mut t = batcher();
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
                for b in batches(&out) {
                    shown.extend(b.jobs.iter().map(|j| j.instance_id));
                }
            }
        }
        assert!(events <= 1000 / 16 + 1, "{events} events");
        assert!(pictures >= 100 * 20, "{pictures} pictures");
        assert!(pictures <= 100 * 34, "{pictures} pictures");
        assert_eq!(shown.len(), 100);
    }

    #[test]
    fn growing_queues_on_many_instances_still_cost_one_event_per_frame() {
        // 100 instances for a second, each every 10 ms: a queue count, and a new estimate for
        // each of its 20 pending jobs. Every change reaches the webview, newest first, in at
        // most one event per frame.
        let mut t = batcher();
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..100u32 {
            let now = t0 + i * 10 * MS;
            for n in 0..100 {
                let name = format!("gpu{n}");
                out.extend(step(&mut t, queue(&name, u64::from(i), i as usize), now));
                for p in 0..20 {
                    let update = job(&name, &format!("p{p}"), JobState::Pending, f64::from(i));
                    out.extend(step(&mut t, update, now));
                }
            }
        }
        out.extend(t.take_due(t0 + 2000 * MS));
        assert!(out.len() <= 1000 / 16 + 2, "{} events", out.len());
        // The webview's picture, built from the batches in order, is the newest of everything.
        let mut queues = HashMap::new();
        let mut jobs = HashMap::new();
        for b in batches(&out) {
            for q in &b.queues {
                queues.insert(q.instance_id, q.queue.pending);
            }
            for j in &b.jobs {
                jobs.insert((j.instance_id, j.job.prompt_id.clone()), j.job.percent);
            }
        }
        assert_eq!(queues.len(), 100);
        assert!(queues.values().all(|&pending| pending == 99));
        assert_eq!(jobs.len(), 100 * 20);
        assert!(jobs.values().all(|&percent| percent == Some(99.0)));
        // Newest per job within a batch: none carries two pictures of one job.
        for b in batches(&out) {
            let distinct: std::collections::HashSet<_> = b
                .jobs
                .iter()
                .map(|j| (j.instance_id, &j.job.prompt_id))
                .collect();
            assert_eq!(distinct.len(), b.jobs.len());
        }
    }

    #[test]
    fn newest_queue_status_and_stats_per_instance_win() {
        let mut t = batcher();
        let t0 = Instant::now();
        step(&mut t, queue("a", 1, 1), t0);
        for (revision, pending) in [(2, 2), (3, 3)] {
            assert!(step(&mut t, queue("a", revision, pending), t0 + MS).is_empty());
        }
        step(&mut t, queue("b", 4, 7), t0 + 2 * MS);
        let out = Vec::from_iter(t.take_due(t0 + 16 * MS));
        let [batch] = batches(&out)[..] else {
            panic!("one batch: {out:?}");
        };
        let counts: Vec<_> = batch
            .queues
            .iter()
            .map(|q| (q.instance_id, q.revision, q.queue.pending))
            .collect();
        assert_eq!(counts, [(id("a"), 3, 3), (id("b"), 4, 7)]);
    }

    #[test]
    fn a_batch_waits_for_the_frame_but_not_longer() {
        let mut t = batcher();
        let t0 = Instant::now();
        assert_eq!(
            step(&mut t, job("a", "p", JobState::Running, 1.0), t0).len(),
            1
        );
        // Another instance, 4 ms later: its own window is open, the frame is not.
        assert!(step(&mut t, job("b", "q", JobState::Running, 1.0), t0 + 4 * MS).is_empty());
        assert_eq!(t.next_due(t0 + 4 * MS), Some(t0 + 16 * MS));
        // So does a final state.
        assert!(step(&mut t, job("a", "r", JobState::Success, 100.0), t0 + 5 * MS).is_empty());
        assert_eq!(t.next_due(t0 + 5 * MS), Some(t0 + 16 * MS));
        assert_eq!(
            percents(&Vec::from_iter(t.take_due(t0 + 16 * MS))),
            [100.0, 1.0]
        );
    }

    #[test]
    fn a_webview_that_has_not_shown_the_last_batch_gets_the_next_one_later_and_fuller() {
        let mut t = batcher();
        let t0 = Instant::now();
        let first = offer_unshown(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        let [first] = batches(&first)[..] else {
            panic!("no first batch");
        };
        // 100 ms of changes from two instances while the webview is busy: nothing goes.
        for i in 1..=100u32 {
            let now = t0 + i * MS;
            assert!(
                offer_unshown(&mut t, job("a", "p", JobState::Running, f64::from(i)), now)
                    .is_empty()
            );
            assert!(
                offer_unshown(&mut t, job("b", "q", JobState::Pending, f64::from(i)), now)
                    .is_empty()
            );
        }
        // Shown: the next batch goes at once with the newest picture of each.
        t.shown(first.batch);
        assert!(t
            .next_due(t0 + 100 * MS)
            .is_some_and(|due| due <= t0 + 100 * MS));
        let out = Vec::from_iter(t.take_due(t0 + 100 * MS));
        assert_eq!(percents(&out), [100.0, 100.0]);
    }

    #[test]
    fn a_batch_never_shown_holds_the_next_one_back_only_for_the_timeout() {
        let mut t = batcher();
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
    fn a_final_state_drops_held_progress_of_that_job() {
        let mut t = batcher();
        let t0 = Instant::now();
        step(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        step(&mut t, job("a", "p", JobState::Running, 50.0), t0 + MS);
        step(&mut t, job("a", "p", JobState::Success, 100.0), t0 + 2 * MS);
        let out = Vec::from_iter(t.take_due(t0 + 16 * MS));
        assert_eq!(percents(&out), [100.0]);
        assert!(t.next_due(t0 + 100 * MS).is_none());
    }

    #[test]
    fn pictures_keep_their_order_and_orders_come_after_what_came_before_them() {
        let mut t = batcher();
        let t0 = Instant::now();
        step(&mut t, job("x", "warm", JobState::Running, 1.0), t0);
        // Within one frame: a job is queued (a new order), another's estimate moves, the first
        // job's estimate moves, then the running job ends and the order changes again.
        for update in [
            ordered("a", "q1", JobState::Pending, &["r", "q1"]),
            job("a", "q2", JobState::Pending, 5.0),
            job("a", "q1", JobState::Pending, 6.0),
            job("a", "r", JobState::Running, 90.0),
            ordered("a", "r", JobState::Success, &["q1"]),
            job("a", "q2", JobState::Pending, 7.0),
        ] {
            assert!(step(&mut t, update, t0 + MS).is_empty());
        }
        let out = Vec::from_iter(t.take_due(t0 + 16 * MS));
        let jobs = pictures(&out);
        let expected = [
            // q1's newest picture in its place, with its order.
            ("q1", JobState::Pending, true),
            ("q2", JobState::Pending, false),
            // The end, with the order made after the pictures above; no progress after it.
            ("r", JobState::Success, true),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(p, s, o)| (p.to_owned(), s, o))
            .collect();
        assert_eq!(jobs, expected);
        assert_eq!(percents(&out), [6.0, 7.0, 0.0]);
    }

    #[test]
    fn instances_are_throttled_independently() {
        let mut t = batcher();
        let t0 = Instant::now();
        step(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        // "a" sent at t0 and is inside its window at 20 ms; "b" has never sent.
        t.offer(job("a", "p", JobState::Running, 2.0));
        t.offer(job("b", "q", JobState::Running, 1.0));
        let out = Vec::from_iter(t.take_due(t0 + 20 * MS));
        let [batch] = batches(&out)[..] else {
            panic!("no batch: {out:?}");
        };
        let instances: Vec<_> = batch.jobs.iter().map(|j| j.instance_id).collect();
        assert_eq!(instances, [id("b")]);
        t.shown(batch.batch);
        assert_eq!(t.next_due(t0 + 20 * MS), Some(t0 + 36 * MS));
    }

    #[test]
    fn what_is_not_paint_passes_straight_through() {
        let mut t = batcher();
        let log = Update::EventLogged(EventLogged {
            instance_id: id("a"),
            entry: LogEntry {
                id: 1,
                ts: 0,
                kind: "connected".into(),
                detail: None,
                data: None,
            },
        });
        let show = Update::ShowRequested(ShowRequested {
            instance_id: Some(id("a")),
            prompt_id: None,
        });
        assert_eq!(t.offer(log.clone()), Some(log));
        assert_eq!(t.offer(show.clone()), Some(show));
        assert!(t.next_due(Instant::now()).is_none());
    }

    #[test]
    fn cleared_it_holds_nothing() {
        let mut t = batcher();
        let t0 = Instant::now();
        step(&mut t, job("a", "p", JobState::Running, 1.0), t0);
        t.offer(job("a", "p", JobState::Running, 2.0));
        t.offer(queue("a", 2, 1));
        t.clear();
        assert!(t.next_due(t0 + MS).is_none());
        assert!(t.take_due(t0 + 100 * MS).is_none());
    }
}
