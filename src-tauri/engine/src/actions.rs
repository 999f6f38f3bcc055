//! Acting on an instance: submit a workflow, cancel a job, clear the queue.
//!
//! Each action reports what actually happened on the server, because a queue moves while a user
//! clicks: the job may have finished, or started, between the click and the request. Nothing
//! here may stop a job other than the one asked for.

use crate::api::{Api, ApiError};
use comfy_protocol::http::{
    check_api_workflow, parse_prompt_response, JobStatus, PromptAccepted, PromptRejected,
    WorkflowError,
};
use comfy_protocol::PromptId;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("the server refused the workflow: {}", describe_rejection(.0))]
    Rejected(Box<PromptRejected>),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What the server said of a refused workflow as a whole, without the per-node lines: for hosts
/// that list the node errors themselves.
pub fn rejection_summary(r: &PromptRejected) -> String {
    let mut s = if r.message.is_empty() {
        r.error_type.clone()
    } else {
        format!("{} ({})", r.message, r.error_type)
    };
    if r.node_errors.is_empty() && !r.details.is_empty() {
        s.push_str(&format!(": {}", r.details));
    }
    s
}

fn describe_rejection(r: &PromptRejected) -> String {
    let mut s = rejection_summary(r);
    for n in &r.node_errors {
        for e in &n.errors {
            s.push_str(&format!(
                "\n  node {} {}: {}{}",
                n.node_id,
                n.class_type.as_deref().unwrap_or("?"),
                e.message,
                if e.details.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", e.details)
                }
            ));
        }
    }
    s
}

/// Options for one submission.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// `extra_data.preview_method` (`auto`, `latent2rgb`, `taesd`, `none`); honoured by
    /// servers since 0.5.0, ignored by older ones.
    pub preview_method: Option<String>,
}

/// A new canonical lower-case UUID, the only form servers since 0.25 accept as a prompt id.
pub fn new_prompt_id() -> PromptId {
    PromptId::from(uuid::Uuid::new_v4().hyphenated().to_string())
}

pub use comfy_model::CancelOutcome;

/// What `POST /api/jobs/{id}/cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobsCancel {
    /// The job was removed or told to stop.
    Done,
    /// The server had nothing of it to cancel: it was neither pending nor running.
    Nothing,
    /// No such endpoint (or an answer it does not understand): use the older requests.
    Unsupported,
}

/// Where a job stands right now, as far as the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Pending,
    Running,
    Finished,
    Unknown,
}

impl Api {
    /// Queues a workflow under `client_id` with a client-chosen `prompt_id` (servers older than
    /// 0.3.45 mint their own: the answer's id is the one that counts).
    pub async fn submit(
        &self,
        workflow: &Value,
        client_id: &str,
        prompt_id: &PromptId,
        options: &SubmitOptions,
    ) -> Result<PromptAccepted, ActionError> {
        check_api_workflow(workflow)?;
        let mut body = json!({
            "prompt": workflow,
            "client_id": client_id,
            "prompt_id": prompt_id.as_str(),
        });
        if let Some(m) = &options.preview_method {
            body["extra_data"] = json!({ "preview_method": m });
        }
        let (status, bytes) = self.post_json(&self.route_of("prompt"), &body).await?;
        parse_prompt_response(status.as_u16(), &bytes)
            .map_err(|r| ActionError::Rejected(Box::new(r)))
    }

    async fn standing(&self, id: &PromptId, jobs_api: bool) -> Result<Standing, ApiError> {
        if jobs_api {
            let (status, body) = self.get_raw(&format!("api/jobs/{}", enc(id))).await?;
            if status.as_u16() == 404 {
                return Ok(Standing::Unknown);
            }
            let job = comfy_protocol::http::parse_job(&body).map_err(|source| ApiError::Body {
                path: "api/jobs/{id}".into(),
                source,
            })?;
            return Ok(match job.status {
                JobStatus::Pending => Standing::Pending,
                JobStatus::InProgress => Standing::Running,
                JobStatus::Unknown => Standing::Unknown,
                _ => Standing::Finished,
            });
        }
        let q = self.queue().await?;
        if q.running.iter().any(|i| &i.prompt_id == id) {
            return Ok(Standing::Running);
        }
        if q.pending.iter().any(|i| &i.prompt_id == id) {
            return Ok(Standing::Pending);
        }
        Ok(match self.outcome(id, false).await? {
            crate::tracker::Lookup::Found(_) => Standing::Finished,
            _ => Standing::Unknown,
        })
    }

    /// Cancels one job and nothing else: a pending job is removed from the queue, a running
    /// one interrupted. `targeted_interrupt` says the server honours `/interrupt {prompt_id}`
    /// (0.3.57+); older servers interrupt whatever runs, so they are asked only after checking
    /// that the job is the running one (a race the server leaves open).
    pub async fn cancel(
        &self,
        id: &PromptId,
        jobs_api: bool,
        targeted_interrupt: bool,
    ) -> Result<CancelOutcome, ActionError> {
        // Two rounds: a pending job may start between our look and our request.
        for _ in 0..2 {
            match self.standing(id, jobs_api).await? {
                Standing::Unknown => return Ok(CancelOutcome::NotFound),
                Standing::Finished => return Ok(CancelOutcome::AlreadyFinished),
                Standing::Pending => {
                    match self.jobs_cancel(id, jobs_api).await? {
                        // Atomic under the server's queue lock: it removed the job if it was
                        // still pending, or interrupted it if it had started meanwhile. Only a
                        // removed job is unknown afterwards; asking again would interrupt twice.
                        JobsCancel::Done => {
                            return Ok(match self.standing(id, jobs_api).await? {
                                Standing::Unknown => CancelOutcome::Removed,
                                _ => CancelOutcome::Interrupted,
                            })
                        }
                        // It ended between our look and the request: look again.
                        JobsCancel::Nothing => continue,
                        JobsCancel::Unsupported => {}
                    }
                    self.post_empty(&self.route_of("queue"), &json!({ "delete": [id.as_str()] }))
                        .await?;
                    match self.standing(id, jobs_api).await? {
                        Standing::Unknown => return Ok(CancelOutcome::Removed),
                        Standing::Finished => return Ok(CancelOutcome::AlreadyFinished),
                        // It started before the delete reached the queue: interrupt it.
                        _ => continue,
                    }
                }
                Standing::Running => {
                    match self.jobs_cancel(id, jobs_api).await? {
                        JobsCancel::Done => return Ok(CancelOutcome::Interrupted),
                        // It ended between our look and the request: look again.
                        JobsCancel::Nothing => continue,
                        JobsCancel::Unsupported => {}
                    }
                    if !targeted_interrupt
                        && self.standing(id, jobs_api).await? != Standing::Running
                    {
                        continue;
                    }
                    self.post_empty(
                        &self.route_of("interrupt"),
                        &json!({ "prompt_id": id.as_str() }),
                    )
                    .await?;
                    // A targeted interrupt that arrives after its job ended is ignored by the
                    // server; the job's own end is then what happened. Otherwise the interrupt
                    // lands at the job's next step (a job that ends first still reports its own
                    // outcome as usual), and nothing else is touched.
                    if targeted_interrupt && self.ended_on_its_own(id, jobs_api).await {
                        return Ok(CancelOutcome::AlreadyFinished);
                    }
                    return Ok(CancelOutcome::Interrupted);
                }
            }
        }
        Ok(CancelOutcome::AlreadyFinished)
    }

    /// Whether the server already recorded an end of the job that was not an interrupt. Asked
    /// right after an interrupt went out; a failed lookup says no.
    async fn ended_on_its_own(&self, id: &PromptId, jobs_api: bool) -> bool {
        match self.outcome(id, jobs_api).await {
            Ok(crate::tracker::Lookup::Found(job)) => {
                !matches!(job.outcome, comfy_protocol::http::Outcome::Interrupted(_))
            }
            _ => false,
        }
    }

    /// `POST /api/jobs/{id}/cancel` (0.26+: atomic under the queue lock), where the server has
    /// the jobs API.
    async fn jobs_cancel(&self, id: &PromptId, jobs_api: bool) -> Result<JobsCancel, ApiError> {
        if !jobs_api {
            return Ok(JobsCancel::Unsupported);
        }
        let (status, body) = self
            .post_json(&format!("api/jobs/{}/cancel", enc(id)), &json!({}))
            .await?;
        if !status.is_success() {
            return Ok(JobsCancel::Unsupported);
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // Local servers answer a bool; the Cloud contract answers the list of ids.
        let done = match v.get("cancelled") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Array(a)) => !a.is_empty(),
            _ => return Ok(JobsCancel::Unsupported),
        };
        Ok(if done {
            JobsCancel::Done
        } else {
            JobsCancel::Nothing
        })
    }

    /// Removes every pending job (the running one is left alone).
    pub async fn clear_pending(&self) -> Result<(), ActionError> {
        self.post_empty(&self.route_of("queue"), &json!({ "clear": true }))
            .await?;
        Ok(())
    }
}

fn enc(id: &PromptId) -> String {
    url::form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect()
}
