//! One handler per kind of socket message, each saying what that message means for the job it
//! is about. [`Tracker::apply_message`] dispatches to them; like the match arms they came from,
//! they add what to publish to `out` and the HTTP reads to make to `req`.

use super::job::apply_step;
use super::{error_details, Millis, Now, Request, Tracker, Update, TEXT_MEMORY};
use crate::event::{ErrorDetails, JobOrigin, JobState};
use comfy_protocol::http::output_files;
use comfy_protocol::{ExecutionError, ExecutionInterrupted, NodeId, NodeProgress, PromptId};
use serde_json::Value;
use std::collections::BTreeMap;

impl Tracker {
    /// The queue changed (or this is the connection's hello): re-read it.
    pub(super) fn on_status(&self, req: &mut Vec<Request>) {
        req.push(Request::Snapshot);
    }

    pub(super) fn on_execution_start(
        &mut self,
        prompt_id: &PromptId,
        timestamp: Option<Millis>,
        now: Now,
        out: &mut Vec<Update>,
        req: &mut Vec<Request>,
    ) {
        if let Some(job) = self.followed_mut(prompt_id, now) {
            if let Some(ts) = timestamp {
                // The server's time of the start is shown; ours measures the run (and the
                // server's too, when its clock is believable).
                job.started.get_or_insert(now.shown(ts));
                if let Some(ts) = now.believed(ts) {
                    job.times.server.0.get_or_insert(ts);
                }
            }
            job.mark_running(now);
            self.emit(prompt_id, out);
            if self.queue_mark_running(prompt_id) {
                out.push(self.queue_update());
            }
            if self.jobs.get(prompt_id).is_some_and(|j| j.graph.is_none()) {
                req.push(Request::Snapshot);
            }
        }
    }

    pub(super) fn on_execution_cached(
        &mut self,
        prompt_id: &PromptId,
        nodes: &[NodeId],
        now: Now,
        out: &mut Vec<Update>,
    ) {
        if let Some(job) = self.followed_mut(prompt_id, now) {
            job.mark_running(now);
            job.add_cached(nodes);
            if job.graph.is_some() {
                job.replan();
            } else {
                for n in nodes {
                    job.ensure_planned(n);
                }
            }
            job.recompute_percent();
            self.emit(prompt_id, out);
        }
    }

    /// A node started, or (`node: None`) our job ended.
    pub(super) fn on_executing(
        &mut self,
        prompt_id: Option<&PromptId>,
        node: Option<&NodeId>,
        display: &Option<NodeId>,
        now: Now,
        out: &mut Vec<Update>,
        req: &mut Vec<Request>,
    ) {
        // The reconnect replay `{node}` has no prompt id: it is about the job running for us.
        let id = prompt_id.cloned().or_else(|| {
            self.running
                .iter()
                .find(|r| {
                    self.jobs
                        .get(*r)
                        .is_some_and(|j| j.origin == JobOrigin::SelfApp)
                })
                .cloned()
        });
        let Some(id) = id else { return };
        match node {
            Some(node) => self.on_node_start(&id, node, display, now, out),
            None => self.on_job_end(id, now, req),
        }
    }

    fn on_node_start(
        &mut self,
        id: &PromptId,
        node: &NodeId,
        display: &Option<NodeId>,
        now: Now,
        out: &mut Vec<Update>,
    ) {
        if let Some(job) = self.followed_mut(id, now) {
            job.mark_running(now);
            let shown = display.clone().unwrap_or_else(|| node.clone());
            job.start_node(&shown, display.clone(), now.mono);
            job.recompute_percent();
            self.emit(id, out);
            if self.queue_mark_running(id) {
                out.push(self.queue_update());
            }
        }
    }

    /// The end of our job. Reconcile with the server's record before the terminal state is
    /// published, so it carries the authoritative outputs.
    fn on_job_end(&mut self, id: PromptId, now: Now, req: &mut Vec<Request>) {
        if let Some(job) = self.followed_mut(&id, now) {
            if job.ending.is_none() {
                // Servers before July 2024 send no execution_success: the nodes still running
                // were the last ones, and they are done.
                job.ending = Some(JobState::Success);
                for n in job.current.clone() {
                    job.finish_node(&n, now.mono);
                }
            }
            job.ended.get_or_insert(now.wall);
            job.times.local.1.get_or_insert(now.mono);
            req.push(Request::Outcome(id));
        }
    }

    pub(super) fn on_executed(
        &mut self,
        prompt_id: Option<&PromptId>,
        node: &NodeId,
        display_node: Option<&NodeId>,
        output: &Value,
        now: Now,
        out: &mut Vec<Update>,
    ) {
        let id = prompt_id.cloned().or_else(|| self.running.first().cloned());
        if let Some(id) = id {
            if let Some(job) = self.followed_mut(&id, now) {
                job.mark_running(now);
                for f in output_files(output) {
                    job.add_output(f, Some(node.clone()));
                }
                let shown = display_node.cloned().unwrap_or_else(|| node.clone());
                job.ensure_planned(&shown);
                self.emit(&id, out);
            }
        }
    }

    pub(super) fn on_progress(
        &mut self,
        prompt_id: Option<&PromptId>,
        node: Option<&NodeId>,
        value: f64,
        max: f64,
        now: Now,
        out: &mut Vec<Update>,
    ) {
        self.last_progress = Some((prompt_id.cloned(), node.cloned()));
        let id = prompt_id.cloned().or_else(|| self.running.first().cloned());
        if let Some(id) = id {
            if let Some(job) = self.broadcast_mut(&id, now) {
                job.mark_running(now);
                let node = node.cloned().or_else(|| job.current.last().cloned());
                if let Some(node) = node {
                    apply_step(job, &node, value, max, now.mono);
                }
                job.recompute_percent();
                self.emit(&id, out);
                if self.queue_mark_running(&id) {
                    out.push(self.queue_update());
                }
            }
        }
    }

    pub(super) fn on_progress_state(
        &mut self,
        prompt_id: &PromptId,
        nodes: &BTreeMap<NodeId, NodeProgress>,
        now: Now,
        out: &mut Vec<Update>,
    ) {
        if let Some(job) = self.broadcast_mut(prompt_id, now) {
            job.mark_running(now);
            job.apply_progress_state(nodes, now.mono);
            job.recompute_percent();
            self.emit(prompt_id, out);
            if self.queue_mark_running(prompt_id) {
                out.push(self.queue_update());
            }
        }
    }

    /// Noted, not published: the job ends on the `executing null` that follows, once the
    /// server's record is read (see [`Tracker::on_executing`]).
    pub(super) fn on_execution_success(
        &mut self,
        prompt_id: &PromptId,
        timestamp: Option<Millis>,
        now: Now,
    ) {
        if let Some(job) = self.followed_mut(prompt_id, now) {
            job.ending = Some(JobState::Success);
            job.ended = Some(timestamp.map_or(now.wall, |t| now.shown(t)));
            job.times.local.1 = Some(now.mono);
            job.times.server.1 = timestamp.and_then(|t| now.believed(t));
            for n in job.current.clone() {
                job.finish_node(&n, now.mono);
            }
        }
    }

    /// A terminal error is noted like a success; a non-terminal one (`ExecutionBlocked`) is a
    /// warning and the job goes on.
    pub(super) fn on_execution_error(
        &mut self,
        e: &ExecutionError,
        now: Now,
        out: &mut Vec<Update>,
    ) {
        if let Some(job) = self.broadcast_mut(&e.prompt_id, now) {
            if e.is_terminal() {
                job.ending = Some(JobState::Error);
                job.ended = Some(e.timestamp.map_or(now.wall, |t| now.shown(t)));
                job.error = Some(error_details(e));
            } else {
                job.add_warning(e.exception_message.trim_end().to_owned());
                self.emit(&e.prompt_id, out);
            }
        }
    }

    pub(super) fn on_execution_interrupted(
        &mut self,
        i: &ExecutionInterrupted,
        now: Now,
        req: &mut Vec<Request>,
    ) {
        let origin = self.origin_hint(&i.prompt_id);
        let anonymous = origin != JobOrigin::SelfApp;
        if let Some(job) = self.job_mut(&i.prompt_id, origin, now) {
            job.ending = Some(JobState::Interrupted);
            job.ended = Some(i.timestamp.map_or(now.wall, |t| now.shown(t)));
            job.error = Some(ErrorDetails {
                node_id: i.node_id.clone(),
                node_type: i.node_type.clone(),
                exception_type: None,
                message: "interrupted".into(),
                traceback: Vec::new(),
            });
            if anonymous {
                // Broadcast for jobs queued without a client id: no `executing null` follows.
                req.push(Request::Outcome(i.prompt_id.clone()));
            }
        }
    }

    /// Node text, from a JSON `progress_text` or a binary text frame.
    pub(super) fn on_text(
        &mut self,
        prompt_id: Option<PromptId>,
        node: NodeId,
        text: &str,
        out: &mut Vec<Update>,
    ) {
        // Core sends node text to everyone without a prompt id: attribute it to the running job
        // when that job has the node.
        let id = prompt_id.or_else(|| {
            self.running
                .iter()
                .find(|r| {
                    self.jobs
                        .get(*r)
                        .is_some_and(|j| j.nodes.contains_key(&node) || j.plan.contains_key(&node))
                })
                .cloned()
        });
        if let Some(job) = id.as_ref().and_then(|i| self.jobs.get_mut(i)) {
            job.texts.push_back((node.clone(), text.to_owned()));
            while job.texts.len() > TEXT_MEMORY {
                job.texts.pop_front();
            }
        }
        out.push(Update::Text {
            prompt_id: id,
            node,
            text: text.to_owned(),
        });
    }
}
