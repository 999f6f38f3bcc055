//! The job use cases, each with its journal entry: submit (the workflow kept for a resubmit),
//! download (where the copy went, with a thumbnail), cancel and clear (what really happened on
//! the server), and what the journal knows of jobs (history, a job's workflow and outputs).
//!
//! A journal that cannot be written costs the record, never the action: the server already
//! accepted the job, the file is already on disk. Such a failure comes back beside the result
//! (`unrecorded`) for the host to mention.

use crate::{AppError, Profile};
use comfy_engine::actions::SubmitOptions;
use comfy_engine::{Engine, Submission};
use comfy_model::{CancelOutcome, InstanceId, JobOrigin, JobState, OutputFile, PromptId};
use comfy_store::JobRecord;
use std::path::{Path, PathBuf};

/// A job the server accepted.
#[derive(Debug)]
pub struct Submitted {
    pub submission: Submission,
    /// Why the journal does not have it, when it could not be recorded.
    pub unrecorded: Option<AppError>,
}

/// Queues an API-format workflow under this app's client id (followed live from its first
/// frame) and, for a saved instance, journals it with its workflow.
pub async fn submit(
    engine: &Engine,
    profile: Option<&Profile>,
    instance: InstanceId,
    workflow: serde_json::Value,
    options: SubmitOptions,
) -> Result<Submitted, AppError> {
    comfy_protocol::http::check_api_workflow(&workflow)?;
    let submission = engine.submit(instance, workflow.clone(), options).await?;
    let unrecorded = profile.and_then(|p| {
        p.journal()
            .record_submitted(
                instance,
                &submission.prompt_id,
                &workflow,
                comfy_engine::now_ms(),
            )
            .err()
            .map(AppError::from)
    });
    Ok(Submitted {
        submission,
        unrecorded,
    })
}

/// A file downloaded.
#[derive(Debug)]
pub struct Downloaded {
    pub path: PathBuf,
    /// Why the journal does not say where it went, when that could not be recorded.
    pub unrecorded: Option<AppError>,
}

/// Downloads one output of a job into `dir` (never overwriting: `name (1).png`) and, for a
/// saved instance whose journal has the job, records where it went and a thumbnail of it.
pub async fn download(
    engine: &Engine,
    profile: Option<&Profile>,
    instance: InstanceId,
    prompt_id: Option<&PromptId>,
    file: &OutputFile,
    dir: &Path,
) -> Result<Downloaded, AppError> {
    let path = engine.fetch_output(instance, file, dir).await?;
    let (Some(profile), Some(prompt_id)) = (profile, prompt_id) else {
        return Ok(Downloaded {
            path,
            unrecorded: None,
        });
    };
    let thumbnail = comfy_engine::outputs::thumbnail_off_thread(
        comfy_engine::outputs::ThumbnailOf::File(path.clone()),
    )
    .await
    .ok();
    let unrecorded = profile
        .journal()
        .record_download(instance, prompt_id, file, &path, thumbnail.as_deref())
        .err()
        .map(AppError::from);
    Ok(Downloaded { path, unrecorded })
}

/// Cancels one job: removed if it is pending, interrupted if it runs; no other job is touched.
/// The answer says what really happened (it may have finished meanwhile).
pub async fn cancel(
    engine: &Engine,
    instance: InstanceId,
    prompt_id: &PromptId,
) -> Result<CancelOutcome, AppError> {
    Ok(engine.cancel(instance, prompt_id).await?)
}

/// Removes every pending job of an instance; the running one is left alone.
pub async fn clear_queue(engine: &Engine, instance: InstanceId) -> Result<(), AppError> {
    Ok(engine.clear_pending(instance).await?)
}

/// Journalled jobs, newest first: of one instance, or of all.
pub fn history(
    profile: &Profile,
    instance: Option<InstanceId>,
    limit: u32,
    offset: u32,
) -> Result<Vec<JobRecord>, AppError> {
    Ok(profile.journal().store().history(instance, limit, offset)?)
}

/// The workflow this app submitted for a job, from the journal, to queue it again.
pub fn journalled_workflow(
    profile: &Profile,
    instance: InstanceId,
    prompt_id: &str,
) -> Result<serde_json::Value, AppError> {
    let journal = profile.journal();
    let job = journal
        .store()
        .job(instance, prompt_id)?
        .ok_or_else(|| AppError::NotFound("no such job in the journal".into()))?;
    let text = journal.store().job_workflow(job.id)?.ok_or_else(|| {
        AppError::NotFound(
            "this job's workflow was not kept (it was not queued by this app)".into(),
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| AppError::InvalidInput(format!("the journalled workflow is not JSON: {e}")))
}

/// Whether a journalled job can be queued again: this app queued it, kept its workflow, and it
/// has ended.
pub fn can_resubmit(origin: JobOrigin, has_workflow: bool, state: JobState) -> bool {
    has_workflow && origin == JobOrigin::SelfApp && state.is_terminal()
}

/// The output files the journal recorded for a job (for a download after the server forgot
/// it), or `None` when the journal does not have the job.
pub fn journalled_outputs(
    profile: &Profile,
    instance: InstanceId,
    prompt_id: &str,
) -> Result<Option<Vec<OutputFile>>, AppError> {
    let journal = profile.journal();
    let Some(rec) = journal.store().job(instance, prompt_id)? else {
        return Ok(None);
    };
    Ok(Some(
        journal
            .store()
            .outputs(rec.id)?
            .into_iter()
            .map(|o| OutputFile {
                filename: o.filename,
                subfolder: o.subfolder,
                kind: o.kind.as_str().to_owned(),
            })
            .collect(),
    ))
}
