//! Which events raise a desktop notification, per instance: one name and one default for each
//! switch, kept by the store, applied by the notification policy, edited in the webview.

use serde::{Deserialize, Serialize};

/// Which events notify for one instance. Missing keys (an older database row, a partial form)
/// take the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct NotificationPrefs {
    /// A job finished.
    pub job_done: bool,
    /// A job failed.
    pub job_failed: bool,
    /// A job was stopped by someone else (never the ones this app cancelled).
    pub job_interrupted_by_other: bool,
    /// This instance's jobs count towards "all queues drained".
    pub queue_drained: bool,
    /// The instance has been down for a while (and is back).
    pub disconnected: bool,
    /// The server (or a proxy) rejects the credentials.
    pub auth_rejected: bool,
    /// Jobs queued by other clients (a browser, a script) notify too.
    pub other_clients_jobs: bool,
    /// The desktop's notification sound plays when a job finishes…
    pub sound_job_done: bool,
    /// …when a job fails, is lost or is stopped from outside…
    pub sound_job_failed: bool,
    /// …and when the instance goes down or rejects the credentials.
    pub sound_disconnected: bool,
}

impl Default for NotificationPrefs {
    /// Done, failed, queue drained and disconnected are on; so is a credentials rejection, an
    /// outage that never heals by itself. Interruptions by others and other clients' jobs are
    /// opt-in, and so are sounds.
    fn default() -> Self {
        Self {
            job_done: true,
            job_failed: true,
            job_interrupted_by_other: false,
            queue_drained: true,
            disconnected: true,
            auth_rejected: true,
            other_clients_jobs: false,
            sound_job_done: false,
            sound_job_failed: false,
            sound_disconnected: false,
        }
    }
}

/// Whether an instance's outputs are saved without asking, and where: every file a job wrote to
/// ComfyUI's output folder is downloaded into `folder` (under the subfolder it has on the
/// server) as soon as the job ends, never over an existing file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct OutputSaving {
    /// The folder (an absolute path), or none: outputs stay on the server.
    pub folder: Option<String>,
    /// Other clients' jobs (a browser, a script) are saved too, not only this app's.
    pub others: bool,
}

/// Where saving outputs stands, across every instance: shown as a progress indicator, with the
/// last failure in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SavingStatus {
    /// Files waiting to be saved, those being saved included.
    pub waiting: u32,
    /// Files being downloaded now.
    pub saving: u32,
    /// Files that could not be saved (given up).
    pub failed: u32,
    /// Why the last attempt that failed did, while files still wait or until one is saved.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::NotificationPrefs;

    #[test]
    fn a_missing_switch_takes_its_default_and_an_unknown_one_is_ignored() {
        let p: NotificationPrefs =
            serde_json::from_str(r#"{"job_done": false, "other_clients": true}"#).unwrap();
        assert_eq!(
            p,
            NotificationPrefs {
                job_done: false,
                ..NotificationPrefs::default()
            }
        );
    }
}
