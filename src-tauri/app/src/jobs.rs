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
    /// What the job is called (the file it came from, or its model and the first words of its
    /// prompt), for its notifications.
    pub label: Option<String>,
    /// Why the journal does not have it, when it could not be recorded.
    pub unrecorded: Option<AppError>,
}

/// What a job was, in words: its name, and the text a gallery search looks through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `name` when given (the file the job came from), else the checkpoint and the first words
    /// of the prompt, when the graph has them.
    pub label: Option<String>,
    /// The name, the models and LoRAs, and the positive prompt text.
    pub search_text: String,
}

/// Describes a job from its API-format graph.
pub fn describe(workflow: &serde_json::Value, name: Option<&str>) -> Description {
    let summary = comfy_protocol::summary::summarize(workflow);
    let label = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| comfy_protocol::summary::label(&summary));
    let search_text = label
        .iter()
        .chain(&summary.models)
        .chain(summary.loras.iter().map(|l| &l.name))
        .chain(&summary.positive)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    Description { label, search_text }
}

/// Queues an API-format workflow under this app's client id (followed live from its first
/// frame) and, for a saved instance, journals it with its workflow and what it is
/// ([`describe`]; `name` is the file it came from, if any).
pub async fn submit(
    engine: &Engine,
    profile: Option<&Profile>,
    instance: InstanceId,
    workflow: serde_json::Value,
    options: SubmitOptions,
    name: Option<&str>,
) -> Result<Submitted, AppError> {
    comfy_protocol::http::check_api_workflow(&workflow)?;
    let submission = engine.submit(instance, workflow.clone(), options).await?;
    let description = describe(&workflow, name);
    let unrecorded = profile.and_then(|p| {
        let mut journal = p.journal();
        journal
            .record_submitted(
                instance,
                &submission.prompt_id,
                &workflow,
                comfy_engine::now_ms(),
            )
            .and_then(|job| {
                journal.store_mut().describe_job(
                    job,
                    description.label.as_deref(),
                    &description.search_text,
                )
            })
            .err()
            .map(AppError::from)
    });
    Ok(Submitted {
        submission,
        label: description.label,
        unrecorded,
    })
}

/// Where an instance's outputs are saved unless the user picks another folder: the platform's
/// pictures folder (`~/Pictures`), `ComfyUI`, then the instance's [`folder_name`]. `None` when
/// the platform names no home.
pub fn default_output_folder(instance_name: &str) -> Option<PathBuf> {
    let dirs = directories::UserDirs::new()?;
    let pictures = dirs
        .picture_dir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.home_dir().join("Pictures"));
    Some(pictures.join("ComfyUI").join(folder_name(instance_name)))
}

/// An instance's name as one folder name: separators, characters Windows refuses and control
/// characters become `_`, and a name that would climb out (`..`) or is empty becomes `instance`.
pub fn folder_name(instance_name: &str) -> String {
    let safe: String = instance_name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    match safe.trim() {
        "" | "." | ".." => "instance".to_owned(),
        t => t.to_owned(),
    }
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

/// The most copies of a job queued at once (`submit --count`, Queue again).
pub const MAX_COPIES: u32 = 100;

/// The workflow with every seed input drawn anew ([`comfy_protocol::http::reseed`]): queued
/// again with the same seeds, ComfyUI answers from its cache instead of running it.
pub fn with_new_seeds(workflow: &serde_json::Value) -> Result<serde_json::Value, AppError> {
    let mut copy = workflow.clone();
    let draw = || rand::random_range(0..=comfy_protocol::http::MAX_DRAWN_SEED);
    if comfy_protocol::http::reseed(&mut copy, draw) == 0 {
        return Err(AppError::InvalidInput(format!(
            "the workflow has no seed input holding a number ({}) to draw anew",
            comfy_protocol::http::SEED_INPUTS.join(", ")
        )));
    }
    Ok(copy)
}

/// `count` copies of a workflow to queue (at least one, at most [`MAX_COPIES`]); with
/// `new_seed`, each with its own seeds ([`with_new_seeds`]).
pub fn copies(
    workflow: &serde_json::Value,
    count: u32,
    new_seed: bool,
) -> Result<Vec<serde_json::Value>, AppError> {
    (0..count.clamp(1, MAX_COPIES))
        .map(|_| {
            if new_seed {
                with_new_seeds(workflow)
            } else {
                Ok(workflow.clone())
            }
        })
        .collect()
}

/// The largest file read whole for its prompt (an MP4 is read box by box instead, whatever its
/// size: only its `moov` box is read).
pub const MAX_PROMPT_FILE_BYTES: u64 = 256 << 20;

/// The API-format prompt a file holds: a workflow saved as JSON, or the one ComfyUI embedded
/// in an output it saved (PNG, WebP, FLAC, MP4; [`comfy_protocol::embedded`]).
pub fn prompt_from_file(path: &Path) -> Result<serde_json::Value, AppError> {
    let unreadable =
        |e: std::io::Error| AppError::InvalidInput(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let bytes = read_for_prompt(&mut file).map_err(unreadable)?;
    comfy_protocol::embedded::embedded_prompt(&bytes).map_err(|error| AppError::PromptFile {
        path: path.to_owned(),
        error,
    })
}

/// What of a file the prompt is read from: an MP4's `ftyp` and `moov` boxes (its frames may be
/// gigabytes), or any other file whole, up to [`MAX_PROMPT_FILE_BYTES`].
fn read_for_prompt(file: &mut (impl std::io::Read + std::io::Seek)) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, SeekFrom};
    let too_large = || {
        std::io::Error::other(format!(
            "larger than the {} MiB read for a prompt",
            MAX_PROMPT_FILE_BYTES >> 20
        ))
    };
    let end = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    if n < 8 || &head[4..8] != b"ftyp" {
        if end > MAX_PROMPT_FILE_BYTES {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(MAX_PROMPT_FILE_BYTES).read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    let mut kept = Vec::new();
    let mut at = 0u64;
    while at + 8 <= end {
        file.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8])?;
        let mut size = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        if size == 1 {
            file.read_exact(&mut header[8..])?;
            size = u64::from_be_bytes(header[8..16].try_into().unwrap_or_default());
        } else if size == 0 {
            size = end - at;
        }
        if size < 8 {
            break;
        }
        if matches!(&header[4..8], b"ftyp" | b"moov") {
            if kept.len() as u64 + size > MAX_PROMPT_FILE_BYTES {
                return Err(too_large());
            }
            file.seek(SeekFrom::Start(at))?;
            let before = kept.len();
            file.by_ref().take(size).read_to_end(&mut kept)?;
            if (kept.len() - before) as u64 != size {
                break; // cut short: what was read is passed on, and the parser says so
            }
        }
        at = at.saturating_add(size);
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn instance_names_cannot_climb_out_of_the_outputs_folder() {
        assert_eq!(folder_name("../etc"), ".._etc");
        assert_eq!(folder_name(".."), "instance");
        assert_eq!(folder_name("gpu/1"), "gpu_1");
        assert_eq!(folder_name("Local"), "Local");
        assert_eq!(folder_name(" a:b*c?\"<>|\n "), "a_b_c______");
        assert_eq!(folder_name("  "), "instance");
    }

    fn saved(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/saved")
            .join(name)
    }

    /// The real MP4 with its frames grown past what is read whole: only `ftyp` and `moov` are
    /// read, so the prompt is found at once (the file is sparse: nothing is written in between).
    #[test]
    fn a_video_is_read_box_by_box_whatever_its_size() {
        let real = std::fs::read(saved("save-video.mp4")).expect("fixture");
        let moov_at = real.windows(4).position(|w| w == b"moov").expect("moov") - 4;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.mp4");
        let mut file = std::fs::File::create(&path).expect("create");
        let mdat = MAX_PROMPT_FILE_BYTES + (1 << 20);
        file.write_all(&real[..32]).expect("ftyp");
        file.write_all(&u32::try_from(mdat).expect("fits").to_be_bytes())
            .expect("mdat size");
        file.write_all(b"mdat").expect("mdat");
        file.seek(SeekFrom::Start(32 + mdat))
            .expect("past the frames");
        file.write_all(&real[moov_at..]).expect("moov");
        drop(file);
        let prompt = prompt_from_file(&path).expect("the prompt");
        assert_eq!(prompt["1"]["inputs"]["seed"], 7);

        // Any other file that large is refused, not read.
        let png = dir.path().join("big.png");
        let file = std::fs::File::create(&png).expect("create");
        file.set_len(MAX_PROMPT_FILE_BYTES + 1).expect("sparse");
        let e = prompt_from_file(&png).expect_err("too large");
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn what_holds_no_prompt_says_so_with_its_path() {
        let e = prompt_from_file(Path::new("/nonexistent/x.png")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/x.png"), "{e}");
        let prompt = prompt_from_file(&saved("save-audio.flac")).expect("the prompt");
        assert_eq!(prompt["8"]["class_type"], "SaveAudio");
    }
}
