//! Estimates learned from the instance's past jobs ([`comfy_timing`]): every unfinished job's
//! estimated percent and ETA, each pending job's start from the estimates of the jobs ahead of
//! it (never from a measured ETA), and when a published estimate has moved enough to publish
//! it again.

use super::job::{view, Job};
use super::{Millis, Tracker, Update};
use comfy_model::{Estimate, JobState};
use comfy_protocol::PromptId;
use comfy_timing::{Run, TimingModel};

/// A published estimate is published again when its end moves by more than this…
const DRIFT_MS: i64 = 2_000;
/// …or by more than this share of what remains.
const DRIFT_SHARE: f64 = 0.05;

impl Tracker {
    /// Takes the timing learned from the journal (replacing what this tracker learned so far).
    pub fn set_timings(&mut self, timings: TimingModel) {
        self.timings = timings;
        for job in self.jobs.values_mut() {
            job.expected = None;
        }
    }

    pub fn timings(&self) -> &TimingModel {
        &self.timings
    }

    /// Learns from a job that ended (only a success says how long its workflow takes, and only
    /// when it really ran: [`Run::ran`]).
    pub(super) fn learn(&mut self, id: &PromptId) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        if job.state != JobState::Success {
            return;
        }
        let v = view(job);
        self.timings.learn(&Run {
            fingerprint: v.fingerprint.as_deref(),
            run_ms: v.run_ms,
            nodes: job.fidelity.is_followed().then_some(&v.node_durations[..]),
        });
    }

    /// Works out every unfinished job's estimate as of `now`: running jobs first, then pending
    /// ones in run order, each starting when the ones ahead of it are expected to end.
    fn refresh_estimates(&mut self, now: Millis) {
        let mut ahead: Option<f64> = Some(0.0);
        // The workflow each job runs after: what ran last, then each job ahead in turn.
        let mut previous: Option<String> = self.timings.last().map(str::to_owned);
        let running = self.running.clone();
        for id in &running {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            if job.state.is_terminal() {
                continue;
            }
            let e = running_estimate(&self.timings, job, now);
            previous = job.shape.as_ref().map(|s| s.fingerprint.clone());
            // What is left of it, by its estimate only: a measured ETA counts the sampler's
            // steps, not the nodes after it, and a job past its usual time has no end to place
            // the ones behind it by.
            let left = e.as_ref().and_then(|e| e.eta_ms).map(|ms| ms as f64);
            ahead = ahead.zip(left).map(|(a, l)| a.max(l));
            job.estimate = e;
        }
        let pending = self.pending.clone();
        for id in &pending {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            if job.state != JobState::Pending {
                continue;
            }
            let expected = expectation(&self.timings, job, previous.as_deref());
            let estimate = expected.map(|e| comfy_timing::pending(e, ahead));
            let total = expected.map(|e| e.total_ms);
            job.estimate = estimate;
            ahead = ahead.zip(total).map(|(a, t)| a + t);
            previous = job.shape.as_ref().map(|s| s.fingerprint.clone());
        }
        // Unfinished jobs outside the queue view (a submission not yet listed, a job seen
        // running on the socket before any snapshot): their own estimate, without a place.
        for job in self.jobs.values_mut() {
            if job.state.is_terminal()
                || running.contains(&job.prompt_id)
                || pending.contains(&job.prompt_id)
            {
                continue;
            }
            job.estimate = match job.state {
                JobState::Running => running_estimate(&self.timings, job, now),
                _ => expectation(&self.timings, job, None).map(|e| comfy_timing::pending(e, None)),
            };
        }
    }

    /// Puts the current estimates into the job pictures of `out`, and notes them as published.
    pub(super) fn annotate(&mut self, out: &mut [Update], now: Millis) {
        if !out.iter().any(|u| matches!(u, Update::Job(_))) {
            return;
        }
        self.refresh_estimates(now);
        for u in out.iter_mut() {
            let Update::Job(v) = u else { continue };
            let Some(job) = self.jobs.get_mut(&v.prompt_id) else {
                continue;
            };
            if v.state.is_terminal() {
                v.estimate = None;
                continue;
            }
            v.estimate = job.estimate.clone();
            job.published = job.estimate.clone().map(|e| (e, now));
        }
    }

    /// The jobs whose estimate moved enough since it was last published (a whole percent, its
    /// end or start by over [`DRIFT_MS`] and [`DRIFT_SHARE`] of what remains, a change of
    /// basis): the host calls this about once a second while anything is queued, since an
    /// estimate moves with the clock and no message says so.
    pub fn tick(&mut self, now: Millis) -> Vec<Update> {
        if !self.busy() {
            return Vec::new();
        }
        // The tracker measures in its own time (see the module docs on time).
        let now = self.clock.read(now).mono;
        self.refresh_estimates(now);
        let mut out = Vec::new();
        for job in self.jobs.values_mut() {
            if job.state.is_terminal() || !moved(job.published.as_ref(), job.estimate.as_ref(), now)
            {
                continue;
            }
            job.published = job.estimate.clone().map(|e| (e, now));
            // Its elapsed time is as of this picture too.
            job.seen_at = job.seen_at.max(now);
            out.push(Update::Job(Box::new(view(job))));
        }
        out
    }
}

/// What the job is expected to take when it runs after a job of fingerprint `after`, worked
/// out once per version of the model and place in the queue.
fn expectation<'j>(
    timings: &TimingModel,
    job: &'j mut Job,
    after: Option<&str>,
) -> Option<&'j comfy_timing::Expectation> {
    let key = (
        timings.version(),
        job.shape.as_ref().map(|s| s.fingerprint.as_str()) == after,
    );
    if job.expected.as_ref().is_none_or(|(k, _)| *k != key) {
        let e = job.shape.as_ref().and_then(|s| timings.expect(s, after));
        job.expected = Some((key, e));
    }
    job.expected.as_ref().and_then(|(_, e)| e.as_ref())
}

/// A running job's estimate, its percent never going down while its basis stays.
fn running_estimate(timings: &TimingModel, job: &mut Job, now: Millis) -> Option<Estimate> {
    // It runs after the last job that ended (its own end is not learned yet).
    let expected = expectation(timings, job, timings.last())?.clone();
    let progress = job.fidelity.is_followed().then(|| job.progress(now));
    let mut e = comfy_timing::running(&expected, job.running_for(now), progress.as_ref());
    if let (Some(p), Some(prev)) = (e.percent.as_mut(), job.estimate.as_ref()) {
        if prev.basis == e.basis {
            *p = p.max(prev.percent.unwrap_or(0.0));
        }
    }
    Some(e)
}

fn moved(
    published: Option<&(Estimate, Millis)>,
    now_estimate: Option<&Estimate>,
    now: Millis,
) -> bool {
    let (p, at, n) = match (published, now_estimate) {
        (None, None) => return false,
        (Some((p, at)), Some(n)) => (p, *at, n),
        _ => return true,
    };
    let drifted = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => {
            // Saturating: times and spans may be anything a clock or a server says.
            let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let end_before = at.saturating_add(ms(b));
            let end_now = now.saturating_add(ms(a));
            let allowed = DRIFT_MS.max((a as f64 * DRIFT_SHARE) as i64);
            end_before.saturating_sub(end_now).saturating_abs() > allowed
        }
        (None, None) => false,
        _ => true,
    };
    p.basis != n.basis
        || p.samples != n.samples
        || p.longer_than_usual != n.longer_than_usual
        || p.percent.map(f64::floor) != n.percent.map(f64::floor)
        || drifted(p.eta_ms, n.eta_ms)
        || drifted(p.starts_in_ms, n.starts_in_ms)
}
