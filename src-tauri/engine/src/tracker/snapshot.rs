//! What HTTP tells the tracker: queue snapshots, which reconcile the picture with the server's
//! queue (jobs the socket never mentioned, jobs that left it unseen), and outcome lookups, the
//! server's record of how a job ended.

use super::job::Vanished;
use super::{error_details, Millis, Request, Tracker, Update};
use crate::event::{ErrorDetails, JobOrigin, JobState};
use comfy_protocol::http::{output_files, FinishedJob, Outcome};
use comfy_protocol::{NodeId, PromptId};
use serde_json::Value;
use std::collections::HashSet;

/// One job in a queue snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveJob {
    pub prompt_id: PromptId,
    pub number: Option<f64>,
    /// `Some(None)`: queued without a client id. `None`: this snapshot does not say.
    pub client_id: Option<Option<String>>,
    pub graph: Option<Value>,
    pub outputs_to_execute: Option<Vec<NodeId>>,
    pub create_time: Option<Millis>,
}

/// A job as `/queue` lists it.
impl From<comfy_protocol::http::QueueItem> for ActiveJob {
    fn from(i: comfy_protocol::http::QueueItem) -> Self {
        Self {
            prompt_id: i.prompt_id,
            number: Some(i.number),
            client_id: Some(i.client_id),
            graph: Some(i.prompt),
            outputs_to_execute: Some(i.outputs_to_execute),
            create_time: i.create_time,
        }
    }
}

/// The server's queue at one moment: running jobs, and pending ones in run order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub running: Vec<ActiveJob>,
    pub pending: Vec<ActiveJob>,
    /// Recently finished jobs the server lists (ids only); unknown ones are looked up.
    pub recent_finished: Vec<PromptId>,
    /// When the request for this snapshot was sent, in the tracker's own time (hosts get it
    /// from [`Tracker::snapshot_requested`] as they send the request). Jobs the tracker learnt
    /// of later cannot be expected in it, so their absence means nothing.
    pub requested_at: Millis,
}

/// What an outcome lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Box<FinishedJob>),
    /// The server has no record of the job.
    NotFound,
    /// The lookup could not be made (server unreachable, replay without HTTP).
    Unavailable,
}

impl Tracker {
    /// Applies a queue snapshot from HTTP. Returns outcome lookups for jobs that left the queue.
    pub fn apply_snapshot(&mut self, snap: &Snapshot, now: Millis) -> (Vec<Update>, Vec<Request>) {
        let now = self.clock.read(now);
        let mut out = Vec::new();
        let mut req = Vec::new();
        let after_reconnect = std::mem::take(&mut self.after_reconnect);
        let listed: HashSet<&PromptId> = snap
            .running
            .iter()
            .chain(&snap.pending)
            .map(|j| &j.prompt_id)
            .collect();

        for (running, item) in snap
            .running
            .iter()
            .map(|j| (true, j))
            .chain(snap.pending.iter().map(|j| (false, j)))
        {
            let origin = match &item.client_id {
                Some(Some(c)) if *c == self.client_id => JobOrigin::SelfApp,
                Some(Some(_)) => JobOrigin::Other,
                Some(None) => JobOrigin::Anonymous,
                None => self.origin_hint(&item.prompt_id),
            };
            let known = self.jobs.contains_key(&item.prompt_id);
            let Some(job) = self.job_mut(&item.prompt_id, origin, now) else {
                continue;
            };
            let mut changed = !known;
            if known
                && item.client_id.is_some()
                && job.origin != origin
                && job.origin != JobOrigin::SelfApp
            {
                job.origin = origin;
                changed = true;
            }
            if job.vanished.take().is_some() {
                changed = true;
            }
            if item.number.is_some() && job.number != item.number {
                job.number = item.number;
                changed = true;
            }
            if job.graph.is_none() && item.graph.is_some() {
                job.graph = item.graph.clone();
                job.outputs_to_execute = item.outputs_to_execute.clone();
                job.replan();
                job.recompute_percent();
            }
            if let Some(t) = item.create_time {
                job.first_seen = job.first_seen.min(now.shown(t));
            }
            if running && job.state == JobState::Pending {
                job.mark_running(now);
                changed = true;
            } else if running {
                // Running before we saw it start (restored from the journal without a start):
                // its run is measured from now, not never.
                job.times.local.0.get_or_insert(now.mono);
            }
            if changed {
                self.emit(&item.prompt_id, &mut out);
            }
        }

        // Jobs we tracked that the server no longer lists: finished, deleted, or lost.
        let missing: Vec<PromptId> = self
            .jobs
            .values()
            .filter(|j| !j.state.is_terminal() && j.vanished.is_none())
            .filter(|j| !listed.contains(&j.prompt_id))
            .map(|j| j.prompt_id.clone())
            .collect();
        for id in missing {
            if let Some(job) = self.jobs.get_mut(&id) {
                // The snapshot was requested before we heard of this job, or before the server
                // answered our submission (even if it arrives after that answer): it proves
                // nothing.
                if job.known_since >= snap.requested_at || job.awaiting_ack {
                    continue;
                }
                job.vanished = Some(if after_reconnect {
                    Vanished::AcrossReconnect
                } else if job.state == JobState::Running {
                    Vanished::WhileRunning
                } else {
                    Vanished::WhilePending
                });
                req.push(Request::Outcome(id));
            }
        }

        // Finished jobs we never saw queued (they came and went between two polls).
        for id in &snap.recent_finished {
            if self.baseline_done && !self.jobs.contains_key(id) && !self.remembers_finished(id) {
                req.push(Request::Outcome(id.clone()));
            } else if !self.baseline_done && !self.jobs.contains_key(id) {
                // Old news, unless it is a job we were following (restored from the journal):
                // that one's outcome is looked up like any vanished job's.
                self.remember_finished(id.clone());
            }
        }
        self.baseline_done = true;

        let running: Vec<PromptId> = snap.running.iter().map(|j| j.prompt_id.clone()).collect();
        let pending: Vec<PromptId> = snap
            .pending
            .iter()
            .map(|j| j.prompt_id.clone())
            .filter(|p| !self.remembers_finished(p))
            .collect();
        let running: Vec<PromptId> = running
            .into_iter()
            .filter(|p| !self.remembers_finished(p))
            .collect();
        if running != self.running || pending != self.pending {
            self.running = running;
            self.pending = pending;
            out.push(self.queue_update());
        }
        self.annotate(&mut out, now.mono);
        (out, req)
    }

    /// Applies the result of a [`Request::Outcome`] lookup.
    pub fn apply_outcome(&mut self, id: &PromptId, lookup: Lookup, now: Millis) -> Vec<Update> {
        let now = self.clock.read(now);
        let mut out = Vec::new();
        if self.remembers_finished(id) {
            return out;
        }
        match lookup {
            Lookup::Found(f) => {
                let origin = match &f.client_id {
                    Some(c) if *c == self.client_id => JobOrigin::SelfApp,
                    Some(_) => JobOrigin::Other,
                    None => self.origin_hint(id),
                };
                let Some(job) = self.job_mut(id, origin, now) else {
                    return out;
                };
                // Keyed by the node that wrote them, like `executed`'s `node`.
                for (node, ui) in &f.outputs {
                    for file in output_files(ui) {
                        job.add_output(file, Some(NodeId::from(node.as_str())));
                    }
                }
                if let Some(s) = f.started_ms {
                    job.started = Some(now.shown(s));
                }
                if let Some(e) = f.ended_ms {
                    job.ended = Some(now.shown(e));
                }
                let believed = |t: Option<Millis>| t.and_then(|t| now.believed(t));
                if let (Some(s), Some(e)) = (believed(f.started_ms), believed(f.ended_ms)) {
                    job.times.server = (Some(s), Some(e));
                }
                let state = match &f.outcome {
                    Outcome::Success => JobState::Success,
                    Outcome::Error(e) => {
                        job.error = Some(error_details(e));
                        JobState::Error
                    }
                    Outcome::Interrupted(i) => {
                        job.error.get_or_insert(ErrorDetails {
                            node_id: i.node_id.clone(),
                            node_type: i.node_type.clone(),
                            exception_type: None,
                            message: "interrupted".into(),
                            traceback: Vec::new(),
                        });
                        JobState::Interrupted
                    }
                    Outcome::Failed => {
                        job.error.get_or_insert(ErrorDetails {
                            node_id: None,
                            node_type: None,
                            exception_type: None,
                            message: "failed (the server recorded no details)".into(),
                            traceback: Vec::new(),
                        });
                        JobState::Error
                    }
                };
                self.finish(id, state, now, &mut out);
            }
            Lookup::NotFound => {
                let Some(job) = self.jobs.get_mut(id) else {
                    return out;
                };
                let state = match (job.ending, job.vanished) {
                    // We saw the end on the socket; the history is just not there (yet, or evicted).
                    (Some(s), _) => s,
                    (None, Some(Vanished::WhilePending)) => JobState::Deleted,
                    (None, Some(Vanished::AcrossReconnect)) => {
                        job.detail = Some("server restarted".into());
                        JobState::Lost
                    }
                    (None, _) => {
                        job.detail = Some("gone from the server without a record".into());
                        JobState::Lost
                    }
                };
                self.finish(id, state, now, &mut out);
            }
            Lookup::Unavailable => {
                // Without the server's record, a socket-seen end is still an end.
                if let Some(s) = self.jobs.get(id).and_then(|j| j.ending) {
                    self.finish(id, s, now, &mut out);
                } else if let Some(job) = self.jobs.get_mut(id) {
                    // Look again at the next snapshot.
                    job.vanished = None;
                }
            }
        }
        self.annotate(&mut out, now.mono);
        out
    }
}
