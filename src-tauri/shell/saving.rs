//! Outputs saved without asking, in the app: the saver (`comfy_app::keeper`) started with the
//! app and told when a job ends, its progress sent to the webview, the gallery, and the folders
//! the user may open.

use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::events::{deliver, Update};
use crate::shell::state::AppState;
use crate::shell::tasks::OwnedTask;
use comfy_app::keeper::{Keeper, KeeperWaker};
use comfy_app::Profile;
use comfy_model::{InstanceId, JobOrigin, JobState, OutputFile, PromptId, SavingStatus};
use comfy_store::KeepState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tauri::{AppHandle, Manager, Runtime, State};
use ts_rs::TS;

/// The saver's handles the commands use.
pub struct Saving {
    waker: KeeperWaker,
    status: tokio::sync::watch::Receiver<SavingStatus>,
}

impl Saving {
    pub fn wake(&self) {
        self.waker.wake();
    }
}

/// Starts the saver on a connection of its own, and a task that sends its progress to the
/// webview; both stop with the app state. Returns what tells it a job ended.
pub fn start<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> Option<KeeperWaker> {
    let journal = match state.profile().ok()?.second_journal() {
        Ok(j) => j,
        Err(error) => {
            tracing::error!(%error, "outputs cannot be saved: the journal did not open");
            return None;
        }
    };
    let engine = state.engine.clone();
    let keeper = tauri::async_runtime::block_on(async move { Keeper::spawn(engine, journal) });
    let waker = keeper.waker();
    let status = keeper.status();
    app.manage(Saving {
        waker: waker.clone(),
        status: status.clone(),
    });
    let handle = app.clone();
    state.own(OwnedTask::spawn(async move {
        let mut status = status;
        // The saver lives as long as this task.
        let _keeper = keeper;
        while status.changed().await.is_ok() {
            let now = status.borrow_and_update().clone();
            deliver(&handle, &Update::SavingChanged(now));
        }
    }));
    Some(waker)
}

/// Where saving outputs stands now.
#[tauri::command]
pub fn saving_status(app: AppHandle) -> SavingStatus {
    app.try_state::<Saving>()
        .map(|s| s.status.borrow().clone())
        .unwrap_or_default()
}

/// The folder the settings suggest for an instance's outputs: `~/Pictures/ComfyUI/<name>`.
#[tauri::command]
pub fn default_output_folder(name: String) -> Option<String> {
    comfy_app::jobs::default_output_folder(&name).map(|p| p.display().to_string())
}

/// What a gallery file is, for how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Other,
}

impl MediaKind {
    pub fn of(filename: &str) -> Self {
        let ext = filename
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "png" | "jpg" | "jpeg" | "webp" | "gif" | "bmp" | "avif" => Self::Image,
            "mp4" | "webm" | "mov" | "mkv" => Self::Video,
            "wav" | "mp3" | "flac" | "ogg" | "opus" | "m4a" => Self::Audio,
            _ => Self::Other,
        }
    }
}

/// Whether a gallery file was saved to the instance's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SaveState {
    /// Not saved (the instance does not save, or not this client's jobs).
    No,
    Waiting,
    Saved,
    Failed,
}

/// One file of the gallery.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct GalleryItem {
    /// The output's row id: a page continues before the last one shown.
    pub id: i64,
    pub instance_id: InstanceId,
    pub prompt_id: PromptId,
    pub file: OutputFile,
    pub media: MediaKind,
    pub state: JobState,
    pub origin: JobOrigin,
    pub finished_at_ms: Option<i64>,
    /// What the job is called, when its graph was known.
    pub label: Option<String>,
    pub save: SaveState,
    /// Where the saved copy is.
    pub saved_to: Option<String>,
    /// Why it could not be saved.
    pub save_error: Option<String>,
}

/// Which files the gallery shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, TS)]
pub struct GalleryQuery {
    #[ts(optional)]
    pub instance_id: Option<InstanceId>,
    /// Jobs that ended in one of these states (all when empty).
    #[serde(default)]
    pub states: Vec<JobState>,
    /// Finished at or after this time (ms since the epoch).
    #[ts(optional)]
    pub since_ms: Option<i64>,
    /// Finished before this time.
    #[ts(optional)]
    pub until_ms: Option<i64>,
    /// Words each found in the job's name, models or prompt, or the file name.
    #[ts(optional)]
    pub text: Option<String>,
    /// Files older than this one (the id of the last one shown).
    #[ts(optional)]
    pub before: Option<i64>,
    pub limit: u32,
}

/// A page of the gallery: every instance's outputs (files in ComfyUI's output folder), newest
/// first.
#[tauri::command]
pub fn gallery(
    state: State<'_, AppState>,
    query: GalleryQuery,
) -> Result<Vec<GalleryItem>, CommandError> {
    let filter = comfy_store::GalleryFilter {
        instance: query.instance_id,
        states: query.states,
        since: query.since_ms,
        until: query.until_ms,
        text: query.text.filter(|t| !t.trim().is_empty()),
        before: query.before.map(comfy_store::OutputId),
        limit: query.limit.clamp(1, comfy_store::MAX_GALLERY_PAGE),
    };
    let rows = state.profile()?.journal().store().gallery(&filter)?;
    Ok(rows.into_iter().map(gallery_item).collect())
}

fn gallery_item(g: comfy_store::GalleryRecord) -> GalleryItem {
    let save = match g.keep {
        Some(KeepState::Pending) => SaveState::Waiting,
        Some(KeepState::Kept) => SaveState::Saved,
        Some(KeepState::Failed) => SaveState::Failed,
        // Saved by hand (Save in the viewer) from an instance that does not save.
        None if g.output.local_path.is_some() => SaveState::Saved,
        None => SaveState::No,
    };
    GalleryItem {
        id: g.output.id.0,
        instance_id: g.instance,
        prompt_id: PromptId::from(g.prompt_id),
        media: MediaKind::of(&g.output.filename),
        file: OutputFile {
            filename: g.output.filename,
            subfolder: g.output.subfolder,
            kind: g.output.kind.as_str().to_owned(),
        },
        state: g.state,
        origin: g.origin,
        finished_at_ms: g.finished_at,
        label: g.label,
        save,
        saved_to: g.output.local_path.map(|p| p.display().to_string()),
        save_error: g.keep_error,
    }
}

/// The folder holding a journalled job's saved outputs (the first one saved that is still
/// there).
pub fn saved_folder(profile: &Profile, job: comfy_store::JobId) -> Option<PathBuf> {
    let outputs = profile.journal().store().outputs(job).ok()?;
    outputs
        .into_iter()
        .filter_map(|o| o.local_path)
        .find_map(|p| p.parent().filter(|d| d.is_dir()).map(Path::to_path_buf))
}

/// The folder holding a job's saved outputs, or the instance's outputs folder when none is
/// saved yet but the instance saves outputs; `None` when neither exists.
pub fn job_folder(profile: &Profile, instance: InstanceId, prompt_id: &str) -> Option<PathBuf> {
    let job = profile
        .journal()
        .store()
        .job(instance, prompt_id)
        .ok()
        .flatten();
    job.and_then(|job| saved_folder(profile, job.id))
        .or_else(|| instance_folder(profile, instance))
}

/// An instance's outputs folder, when it saves outputs and the folder exists.
pub fn instance_folder(profile: &Profile, instance: InstanceId) -> Option<PathBuf> {
    let folder = PathBuf::from(profile.instance(instance).ok()?.saving.folder?);
    folder.is_dir().then_some(folder)
}

/// The folder where a file of a job was saved, for a notification's "Open folder": the kept
/// copy's folder, else the instance's outputs folder.
pub fn file_folder(profile: &Profile, instance: InstanceId, file: &OutputFile) -> Option<PathBuf> {
    let kept = profile
        .journal()
        .store()
        .kept_copy(instance, &file.filename, &file.subfolder, &file.kind)
        .ok()
        .flatten()
        .and_then(|k| k.local_path)
        .and_then(|p| p.parent().filter(|d| d.is_dir()).map(Path::to_path_buf));
    kept.or_else(|| instance_folder(profile, instance))
}

/// Opens the folder of a job's saved outputs in the file manager.
#[tauri::command(rename_all = "snake_case")]
pub fn open_job_folder(
    state: State<'_, AppState>,
    instance_id: InstanceId,
    prompt_id: PromptId,
) -> Result<(), CommandError> {
    let folder =
        job_folder(state.profile()?, instance_id, prompt_id.as_str()).ok_or_else(|| {
            CommandError::new(
            ErrorCode::NotFound,
            "no output of this job was saved (turn on “Save outputs” in the instance's settings)",
        )
        })?;
    crate::shell::commands::open_externally(folder.as_os_str())
}

/// Opens an instance's outputs folder in the file manager (made if it does not exist yet).
#[tauri::command(rename_all = "snake_case")]
pub fn open_instance_folder(
    state: State<'_, AppState>,
    instance_id: InstanceId,
) -> Result<(), CommandError> {
    let folder = state
        .profile()?
        .instance(instance_id)?
        .saving
        .folder
        .ok_or_else(|| {
            CommandError::new(
                ErrorCode::NotFound,
                "this instance does not save its outputs",
            )
        })?;
    std::fs::create_dir_all(&folder)
        .map_err(|e| CommandError::new(ErrorCode::Storage, format!("cannot make {folder}: {e}")))?;
    crate::shell::commands::open_externally(std::ffi::OsStr::new(&folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_their_extension() {
        assert_eq!(MediaKind::of("ComfyUI_00001_.PNG"), MediaKind::Image);
        assert_eq!(MediaKind::of("clip_00001.mp4"), MediaKind::Video);
        assert_eq!(MediaKind::of("voice.flac"), MediaKind::Audio);
        assert_eq!(MediaKind::of("mesh.glb"), MediaKind::Other);
        assert_eq!(MediaKind::of("noextension"), MediaKind::Other);
    }
}
