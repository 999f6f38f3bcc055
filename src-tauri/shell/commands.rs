//! The commands the webview may invoke. Each takes its arguments, calls the application layer
//! (`comfy-app`), the engine handle or the overview, and maps errors to [`CommandError`];
//! nothing else. Arguments and results are `snake_case`, like every wire format of this app.

use crate::shell::bus::Control;
use crate::shell::error::{CommandError, ErrorCode, NodeErrorView};
use crate::shell::state::AppState;
use crate::shell::view::{HistoryEntry, LogEntry, Snapshot};
use comfy_app::jobs;
use comfy_engine::actions::SubmitOptions;
use comfy_model::{CancelOutcome, InstanceId, OutputFile, PreviewMethod, PromptId};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tauri::{AppHandle, Manager, State};
use ts_rs::TS;

/// The current picture of every instance, for a UI that (re)loads.
#[tauri::command(rename_all = "snake_case")]
pub fn get_snapshot(state: State<'_, AppState>) -> Snapshot {
    let mut snapshot = state.overview.lock().snapshot();
    snapshot.notices = state.notices();
    snapshot
}

/// Where the webview's acknowledgements of batches go (the event task reads them).
pub struct BatchShown(pub tokio::sync::watch::Sender<u64>);

/// The webview has shown batch `batch` of changes: the next one may go.
#[tauri::command(rename_all = "snake_case")]
pub fn batch_shown(shown: State<'_, BatchShown>, batch: u64) {
    shown.0.send_replace(batch);
}

/// Asks an instance to re-read its queue now.
#[tauri::command(rename_all = "snake_case")]
pub async fn refresh_instance(
    state: State<'_, AppState>,
    instance_id: InstanceId,
) -> Result<(), CommandError> {
    Ok(state.engine.refresh(instance_id).await?)
}

/// A job the server accepted.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct SubmitResult {
    pub prompt_id: PromptId,
    /// Outputs the server dropped because they failed validation; the rest runs.
    pub node_errors: Vec<NodeErrorView>,
}

/// Queues a workflow and names the job for its notifications: `file` (the name of the file it
/// came from) or, without one, its model and the first words of its prompt.
async fn submit(
    state: &AppState,
    instance_id: InstanceId,
    workflow: serde_json::Value,
    preview: PreviewMethod,
    file: Option<String>,
) -> Result<SubmitResult, CommandError> {
    let options = SubmitOptions {
        preview_method: preview.method().map(str::to_owned),
    };
    let submitted = jobs::submit(
        &state.engine,
        Some(state.profile()?),
        instance_id,
        workflow.clone(),
        options,
        file.as_deref(),
    )
    .await
    .map_err(|e| CommandError::from(e).titled_by(&workflow))?;
    if let Some(e) = submitted.unrecorded {
        tracing::warn!(error = %e, "the journal could not keep the submitted workflow");
    }
    if let Some(label) = submitted.label {
        state.bus.control(Control::JobLabel {
            instance: instance_id,
            prompt_id: submitted.submission.prompt_id.clone(),
            label,
        });
    }
    Ok(SubmitResult {
        prompt_id: submitted.submission.prompt_id,
        node_errors: submitted
            .submission
            .node_errors
            .iter()
            .map(|n| NodeErrorView::from_validation(n, Some(&workflow)))
            .collect(),
    })
}

/// Queues an API-format workflow (the text of a `.json` file) on an instance, under this app's
/// client id so it is followed live, with the previews it asks for (the server's own setting
/// when not given).
#[tauri::command(rename_all = "snake_case")]
pub async fn submit_workflow(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    workflow: String,
    preview: Option<PreviewMethod>,
    new_seed: Option<bool>,
    file_name: Option<String>,
) -> Result<SubmitResult, CommandError> {
    let mut workflow: serde_json::Value = serde_json::from_str(&workflow).map_err(|e| {
        CommandError::new(
            ErrorCode::InvalidWorkflow,
            format!(
                "this file is not JSON ({e}); export the workflow with Workflow → Export (API)"
            ),
        )
    })?;
    if new_seed == Some(true) {
        workflow = jobs::with_new_seeds(&workflow)?;
    }
    submit(
        &state,
        instance_id,
        workflow,
        preview.unwrap_or_default(),
        file_name,
    )
    .await
}

/// What a job was, from its graph: models, LoRAs, sampler settings, size, prompt text and every
/// node. This app's jobs are read from the workflow the journal kept; other clients' from the
/// server, while it still has them (the jobs API, or the history).
#[tauri::command(rename_all = "snake_case")]
pub async fn get_job_summary(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    prompt_id: PromptId,
) -> Result<comfy_model::WorkflowSummary, CommandError> {
    let kept = jobs::journalled_workflow(state.profile()?, instance_id, prompt_id.as_str());
    let graph = match kept {
        Ok(workflow) => workflow,
        Err(comfy_app::AppError::NotFound(_)) => state
            .engine
            .job_graph(instance_id, &prompt_id)
            .await?
            .ok_or_else(|| {
                CommandError::new(
                    ErrorCode::NotFound,
                    "the server no longer has this job's graph, and it was not queued by this app",
                )
            })?,
        Err(e) => return Err(e.into()),
    };
    Ok(comfy_protocol::summary::summarize(&graph))
}

/// The prompt a file holds, as JSON text for the submit dialog: a file ComfyUI saved (PNG,
/// WebP, FLAC, MP4: the prompt it embeds) or a workflow as JSON. The file's bytes are the
/// request's body, as they are (not JSON).
#[tauri::command]
pub fn read_prompt(request: tauri::ipc::Request<'_>) -> Result<String, CommandError> {
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            "read_prompt takes the file's bytes as they are",
        ));
    };
    let prompt = comfy_protocol::embedded::embedded_prompt(bytes)?;
    serde_json::to_string_pretty(&prompt)
        .map_err(|e| CommandError::new(ErrorCode::InvalidWorkflow, e.to_string()))
}

/// Queues again a job of this app, from the workflow kept in the journal: `count` copies (one
/// by default), each with every seed drawn anew when `new_seed` (the same seeds are answered from
/// ComfyUI's cache). Stops at the first copy the server refuses.
#[tauri::command(rename_all = "snake_case")]
pub async fn resubmit_job(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    prompt_id: PromptId,
    new_seed: Option<bool>,
    count: Option<u32>,
) -> Result<Vec<SubmitResult>, CommandError> {
    let workflow = jobs::journalled_workflow(state.profile()?, instance_id, prompt_id.as_str())?;
    let copies = jobs::copies(&workflow, count.unwrap_or(1), new_seed == Some(true))?;
    let mut queued = Vec::new();
    for copy in copies {
        queued.push(submit(&state, instance_id, copy, PreviewMethod::Default, None).await?);
    }
    Ok(queued)
}

/// Cancels one job: removed if pending, interrupted if running; no other job is touched.
#[tauri::command(rename_all = "snake_case")]
pub async fn cancel_job(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    prompt_id: PromptId,
) -> Result<CancelOutcome, CommandError> {
    // Told first, so the interruption that follows is not announced as someone else's doing.
    state.bus.control(Control::CancelledByUs {
        instance: instance_id,
        prompt_id: prompt_id.clone(),
    });
    Ok(jobs::cancel(&state.engine, instance_id, &prompt_id).await?)
}

/// Removes every pending job of an instance (the running one is left alone).
#[tauri::command(rename_all = "snake_case")]
pub async fn clear_queue(
    state: State<'_, AppState>,
    instance_id: InstanceId,
) -> Result<(), CommandError> {
    Ok(jobs::clear_queue(&state.engine, instance_id).await?)
}

/// Jobs of an instance from the journal, newest first.
#[tauri::command(rename_all = "snake_case")]
pub fn get_history(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    limit: u32,
    offset: u32,
) -> Result<Vec<HistoryEntry>, CommandError> {
    let profile = state.profile()?;
    let jobs = profile
        .journal()
        .store()
        .history(Some(instance_id), limit.min(500), offset)?;
    Ok(jobs
        .into_iter()
        .map(|job| {
            let saved = job
                .outputs_json
                .is_some()
                .then(|| crate::shell::saving::saved_folder(profile, job.id));
            HistoryEntry {
                saved_folder: saved.flatten().map(|f| f.display().to_string()),
                ..HistoryEntry::from(job)
            }
        })
        .collect())
}

/// The latest lines of an instance's event log, oldest first.
#[tauri::command(rename_all = "snake_case")]
pub fn get_event_log(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    limit: u32,
) -> Result<Vec<LogEntry>, CommandError> {
    let events = state
        .profile()?
        .journal()
        .store()
        .events(Some(instance_id), limit.min(1000))?;
    let mut entries: Vec<LogEntry> = events.into_iter().map(LogEntry::from).collect();
    entries.sort_by_key(|e| (e.ts, e.id));
    Ok(entries)
}

/// Where a saved output went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SavedOutput {
    pub path: String,
    pub folder: String,
}

/// Where outputs are saved: `<Downloads>/comfy-monitor/<instance>`.
fn save_root(app: &AppHandle) -> Result<PathBuf, CommandError> {
    let base = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(CommandError::internal)?;
    Ok(base.join("comfy-monitor"))
}

/// Downloads one output of an instance to the outputs folder. With the job's prompt id, the
/// journal keeps where the copy went and a thumbnail of it.
#[tauri::command(rename_all = "snake_case")]
pub async fn save_output(
    app: AppHandle,
    state: State<'_, AppState>,
    instance_id: InstanceId,
    output: OutputFile,
    prompt_id: Option<PromptId>,
) -> Result<SavedOutput, CommandError> {
    let profile = state.profile()?;
    let rec = profile.instance(instance_id)?;
    // The instance's outputs folder when it has one; else the downloads folder.
    let dir = match rec.saving.folder {
        Some(folder) => PathBuf::from(folder),
        None => save_root(&app)?.join(jobs::folder_name(&rec.name)),
    };
    let downloaded = jobs::download(
        &state.engine,
        Some(profile),
        instance_id,
        prompt_id.as_ref(),
        &output,
        &dir,
    )
    .await?;
    if let Some(e) = downloaded.unrecorded {
        // The file is saved; only the journal's note of it is missing.
        tracing::warn!(error = %e, "the journal could not record a download");
    }
    let path = downloaded.path;
    let folder = path.parent().unwrap_or(&dir).to_path_buf();
    Ok(SavedOutput {
        path: path.display().to_string(),
        folder: folder.display().to_string(),
    })
}

/// Opens a folder this app saved outputs into, in the desktop's file manager. Other paths are
/// refused: the webview cannot make the app open arbitrary locations.
#[tauri::command(rename_all = "snake_case")]
pub fn open_folder(
    app: AppHandle,
    state: State<'_, AppState>,
    folder: String,
) -> Result<(), CommandError> {
    let mut roots = vec![save_root(&app)?];
    if let Ok(instances) = state.profile().and_then(|p| Ok(p.instances()?)) {
        roots.extend(
            instances
                .into_iter()
                .filter_map(|i| i.saving.folder.map(PathBuf::from)),
        );
    }
    let folder = Path::new(&folder)
        .canonicalize()
        .map_err(|e| CommandError::new(ErrorCode::NotFound, format!("{folder}: {e}")))?;
    let inside = roots
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .any(|root| folder.starts_with(root));
    if !inside || !folder.is_dir() {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            "only folders of saved outputs can be opened",
        ));
    }
    open_externally(folder.as_os_str())
}

/// Opens an instance's ComfyUI web page in the default browser.
#[tauri::command(rename_all = "snake_case")]
pub fn open_in_comfyui(
    state: State<'_, AppState>,
    instance_id: InstanceId,
) -> Result<(), CommandError> {
    let url = state
        .overview
        .lock()
        .instance(instance_id)
        .map(|i| i.url.clone())
        .ok_or_else(|| {
            CommandError::new(
                ErrorCode::UnknownInstance,
                format!("no instance with id {instance_id}"),
            )
        })?;
    let parsed = url::Url::parse(&url)
        .map_err(|e| CommandError::new(ErrorCode::InvalidInput, format!("{url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            format!("{url} is not a web address"),
        ));
    }
    open_externally(std::ffi::OsStr::new(parsed.as_str()))
}

/// Hands a folder or a web address to the desktop (the file manager, the default browser).
pub(crate) fn open_externally(target: &std::ffi::OsStr) -> Result<(), CommandError> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(program)
        .arg(target)
        .spawn()
        .map(drop)
        .map_err(|e| CommandError::new(ErrorCode::Io, format!("could not run {program}: {e}")))
}
