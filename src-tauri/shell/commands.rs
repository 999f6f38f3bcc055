//! The commands the webview may invoke. Each takes its arguments, asks the overview, the journal
//! or the engine, and maps errors to [`CommandError`]; nothing else.

use crate::shell::error::{CommandError, ErrorCode, NodeErrorView};
use crate::shell::view::{HistoryEntry, LogEntry, OutputRef, Snapshot};
use crate::shell::SharedHost;
use comfy_engine::actions::{CancelOutcome, SubmitOptions};
use comfy_protocol::PromptId;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tauri::{AppHandle, Manager, State};
use ts_rs::TS;

/// The current picture of every instance, for a UI that (re)loads.
#[tauri::command]
pub fn get_snapshot(host: State<'_, SharedHost>) -> Snapshot {
    let mut snapshot = host.overview.lock().snapshot();
    snapshot.notices = host.notices();
    snapshot
}

/// Where the webview's acknowledgements of progress batches go (the event task reads them).
pub struct ProgressShown(pub tokio::sync::watch::Sender<u64>);

/// The webview has shown progress batch `batch`: the next one may go.
#[tauri::command]
pub fn progress_shown(shown: State<'_, ProgressShown>, batch: u64) {
    shown.0.send_replace(batch);
}

/// Asks an instance to re-read its queue now.
#[tauri::command]
pub async fn refresh_instance(
    host: State<'_, SharedHost>,
    instance: String,
) -> Result<(), CommandError> {
    let id = host.engine_id(&instance)?;
    host.engine().await?.refresh(id).await?;
    Ok(())
}

/// A job the server accepted.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResult {
    pub prompt_id: String,
    /// Outputs the server dropped because they failed validation; the rest runs.
    pub node_errors: Vec<NodeErrorView>,
}

/// How the server makes this job's preview frames (`extra_data.preview_method`, honoured by
/// ComfyUI 0.5.0 and later; older servers use their own setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum PreviewChoice {
    /// The server's own setting (`--preview-method`); nothing is sent.
    #[default]
    Default,
    Auto,
    Latent2rgb,
    Taesd,
    /// No preview frames for this job.
    None,
}

impl PreviewChoice {
    /// The value sent as `extra_data.preview_method`, if any.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Self::Default => None,
            Self::Auto => Some("auto"),
            Self::Latent2rgb => Some("latent2rgb"),
            Self::Taesd => Some("taesd"),
            Self::None => Some("none"),
        }
    }
}

async fn submit(
    host: &SharedHost,
    instance: &str,
    workflow: serde_json::Value,
    preview: PreviewChoice,
) -> Result<SubmitResult, CommandError> {
    comfy_protocol::http::check_api_workflow(&workflow)?;
    let id = host.engine_id(instance)?;
    let rec = host.record(instance)?;
    let result = host
        .engine()
        .await?
        .submit(
            id,
            workflow.clone(),
            SubmitOptions {
                preview_method: preview.method().map(str::to_owned),
            },
        )
        .await;
    let submission = match result {
        Ok(s) => s,
        Err(e) => {
            let mut error = CommandError::from(e);
            // Name the refused nodes by their titles in this workflow.
            for n in &mut error.node_errors {
                n.title = workflow
                    .get(&n.node_id)
                    .and_then(|node| node.pointer("/_meta/title"))
                    .and_then(|t| t.as_str())
                    .map(str::to_owned);
            }
            return Err(error);
        }
    };
    let recorded = host.with_journal(|j| {
        Ok(j.record_submitted(
            rec.id,
            &submission.prompt_id,
            &workflow,
            comfy_engine::now_ms(),
        )?)
    });
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "the journal could not keep the submitted workflow");
    }
    Ok(SubmitResult {
        prompt_id: submission.prompt_id.to_string(),
        node_errors: submission
            .node_errors
            .iter()
            .map(|n| NodeErrorView::from_validation(n, Some(&workflow)))
            .collect(),
    })
}

/// Queues an API-format workflow (the text of a `.json` file) on an instance, under this app's
/// client id so it is followed live, with the previews it asks for (the server's own setting
/// when not given).
#[tauri::command]
pub async fn submit_workflow(
    host: State<'_, SharedHost>,
    instance: String,
    workflow: String,
    preview: Option<PreviewChoice>,
) -> Result<SubmitResult, CommandError> {
    let workflow: serde_json::Value = serde_json::from_str(&workflow).map_err(|e| {
        CommandError::new(
            ErrorCode::InvalidWorkflow,
            format!(
                "this file is not JSON ({e}); export the workflow with Workflow → Export (API)"
            ),
        )
    })?;
    submit(&host, &instance, workflow, preview.unwrap_or_default()).await
}

/// Queues again a job of this app, from the workflow kept in the journal.
#[tauri::command]
pub async fn resubmit_job(
    host: State<'_, SharedHost>,
    instance: String,
    prompt_id: String,
) -> Result<SubmitResult, CommandError> {
    let rec = host.record(&instance)?;
    let workflow = host.with_journal(|j| {
        let job = j
            .store()
            .job(rec.id, &prompt_id)?
            .ok_or_else(|| CommandError::new(ErrorCode::NotFound, "no such job in the journal"))?;
        j.store().job_workflow(job.id)?.ok_or_else(|| {
            CommandError::new(
                ErrorCode::NotFound,
                "this job's workflow was not kept (it was not queued by this app)",
            )
        })
    })?;
    let workflow = serde_json::from_str(&workflow).map_err(CommandError::internal)?;
    submit(&host, &instance, workflow, PreviewChoice::Default).await
}

/// What became of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CancelResult {
    /// It was running and was told to stop.
    Interrupted,
    /// It was pending and was removed from the queue.
    Removed,
    /// It had already finished.
    AlreadyFinished,
    /// The server does not know it.
    NotFound,
}

/// Cancels one job: removed if pending, interrupted if running; no other job is touched.
#[tauri::command]
pub async fn cancel_job(
    host: State<'_, SharedHost>,
    instance: String,
    prompt_id: String,
) -> Result<CancelResult, CommandError> {
    let id = host.engine_id(&instance)?;
    let prompt_id = PromptId::from(prompt_id.as_str());
    // Told first, so the interruption that follows is not announced as someone else's doing.
    host.monitor
        .control(crate::shell::notify::Control::CancelledByUs {
            instance: instance.clone(),
            prompt_id: prompt_id.clone(),
        });
    let outcome = host.engine().await?.cancel(id, &prompt_id).await?;
    Ok(match outcome {
        CancelOutcome::Interrupted => CancelResult::Interrupted,
        CancelOutcome::Removed => CancelResult::Removed,
        CancelOutcome::AlreadyFinished => CancelResult::AlreadyFinished,
        CancelOutcome::NotFound => CancelResult::NotFound,
    })
}

/// Removes every pending job of an instance (the running one is left alone).
#[tauri::command]
pub async fn clear_queue(
    host: State<'_, SharedHost>,
    instance: String,
) -> Result<(), CommandError> {
    let id = host.engine_id(&instance)?;
    host.engine().await?.clear_pending(id).await?;
    Ok(())
}

/// Jobs of an instance from the journal, newest first.
#[tauri::command]
pub fn get_history(
    host: State<'_, SharedHost>,
    instance: String,
    limit: u32,
    offset: u32,
) -> Result<Vec<HistoryEntry>, CommandError> {
    let rec = host.record(&instance)?;
    let jobs =
        host.with_journal(|j| Ok(j.store().history(Some(rec.id), limit.min(500), offset)?))?;
    Ok(jobs.into_iter().map(HistoryEntry::from).collect())
}

/// The latest lines of an instance's event log, oldest first.
#[tauri::command]
pub fn get_event_log(
    host: State<'_, SharedHost>,
    instance: String,
    limit: u32,
) -> Result<Vec<LogEntry>, CommandError> {
    let rec = host.record(&instance)?;
    let events = host.with_journal(|j| Ok(j.store().events(Some(rec.id), limit.min(1000))?))?;
    let mut entries: Vec<LogEntry> = events.into_iter().map(LogEntry::from).collect();
    entries.sort_by_key(|e| (e.ts, e.id));
    Ok(entries)
}

/// Where a saved output went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
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
#[tauri::command]
pub async fn save_output(
    app: AppHandle,
    host: State<'_, SharedHost>,
    instance: String,
    output: OutputRef,
    prompt_id: Option<String>,
) -> Result<SavedOutput, CommandError> {
    let id = host.engine_id(&instance)?;
    let dir = save_root(&app)?.join(sanitize(&instance));
    let file = comfy_protocol::http::OutputFile::from(&output);
    let path = host.engine().await?.fetch_output(id, &file, &dir).await?;
    if let Some(prompt_id) = prompt_id {
        let rec = host.record(&instance)?;
        let local = path.clone();
        let thumb =
            tokio::task::spawn_blocking(move || comfy_engine::outputs::thumbnail_file(&local).ok())
                .await
                .ok()
                .flatten();
        let recorded = host.with_journal(|j| {
            Ok(j.record_download(
                rec.id,
                &PromptId::from(prompt_id.as_str()),
                &file,
                &path,
                thumb.as_deref(),
            )?)
        });
        if let Err(e) = recorded {
            // The file is saved; only the journal's note of it is missing.
            tracing::warn!(error = %e, "the journal could not record a download");
        }
    }
    let folder = path.parent().unwrap_or(&dir).to_path_buf();
    Ok(SavedOutput {
        path: path.display().to_string(),
        folder: folder.display().to_string(),
    })
}

/// Opens a folder this app saved outputs into, in the desktop's file manager. Other paths are
/// refused: the webview cannot make the app open arbitrary locations.
#[tauri::command]
pub fn open_folder(app: AppHandle, folder: String) -> Result<(), CommandError> {
    let root = save_root(&app)?;
    let folder = Path::new(&folder)
        .canonicalize()
        .map_err(|e| CommandError::new(ErrorCode::NotFound, format!("{folder}: {e}")))?;
    let inside = root
        .canonicalize()
        .is_ok_and(|root| folder.starts_with(root));
    if !inside || !folder.is_dir() {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            "only folders of saved outputs can be opened",
        ));
    }
    open_in_file_manager(&folder)
}

fn open_in_file_manager(folder: &Path) -> Result<(), CommandError> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(program)
        .arg(folder)
        .spawn()
        .map(drop)
        .map_err(|e| CommandError::new(ErrorCode::Io, format!("could not run {program}: {e}")))
}

/// A folder name from an instance name: path separators and control characters replaced.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() || c == ':' {
                '_'
            } else {
                c
            }
        })
        .collect();
    match s.trim() {
        "" | "." | ".." => "instance".to_owned(),
        t => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{sanitize, PreviewChoice};

    #[test]
    fn a_preview_choice_from_the_page_becomes_the_servers_preview_method() {
        let choice = |s: &str| serde_json::from_str::<PreviewChoice>(&format!("{s:?}")).unwrap();
        assert_eq!(
            choice("default").method(),
            None,
            "nothing sent: the server decides"
        );
        assert_eq!(choice("auto").method(), Some("auto"));
        assert_eq!(choice("latent2rgb").method(), Some("latent2rgb"));
        assert_eq!(choice("taesd").method(), Some("taesd"));
        assert_eq!(choice("none").method(), Some("none"));
        assert!(serde_json::from_str::<PreviewChoice>("\"fast\"").is_err());
    }

    #[test]
    fn instance_names_cannot_climb_out_of_the_outputs_folder() {
        assert_eq!(sanitize("../etc"), ".._etc");
        assert_eq!(sanitize(".."), "instance");
        assert_eq!(sanitize("gpu/1"), "gpu_1");
        assert_eq!(sanitize("Local"), "Local");
    }
}
