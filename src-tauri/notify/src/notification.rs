//! What the policy decides to show: plain data, with no idea how it gets on screen.

use comfy_protocol::http::OutputFile;
use comfy_protocol::PromptId;
use serde::Serialize;

/// Which rule produced a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// One job finished, or several in a burst (see [`Notification::jobs`]).
    JobDone,
    /// One job failed, or several in a burst.
    JobFailed,
    /// A job was stopped, and not by this app.
    JobInterrupted,
    /// Every instance went idle after a batch.
    QueueDrained,
    /// An instance stayed down past the grace period.
    Disconnected,
    /// An instance we announced as down (or rejecting us) has been up for a while.
    BackOnline,
    /// An instance rejects our credentials.
    AuthFailed,
}

/// An output image to show in the notification. The policy only names it: the host downloads it
/// and makes the thumbnail (the engine's `outputs` module), then hands the pixels to
/// [`Deliver`](crate::Deliver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    pub instance: String,
    pub file: OutputFile,
}

/// A button on a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Opens the dashboard: at that job, at that instance, or (both `None`) at the overview.
    Show {
        instance: Option<String>,
        prompt_id: Option<PromptId>,
    },
    /// Opens the folder of a downloaded output. The host drops this action when it has no local
    /// copy of the file.
    OpenFolder { instance: String, file: OutputFile },
}

impl Action {
    /// The action key sent over D-Bus.
    pub fn id(&self) -> &'static str {
        match self {
            Self::Show { .. } => "show",
            Self::OpenFolder { .. } => "open-folder",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Show {
                prompt_id: Some(_), ..
            } => "Show job",
            Self::Show { .. } => "Show",
            Self::OpenFolder { .. } => "Open folder",
        }
    }
}

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Notifications with the same key replace each other on screen: a burst's running count
    /// replaces its first job, "back online" replaces "disconnected".
    pub key: String,
    pub kind: NotificationKind,
    /// The instance it is about; `None` for the queue-drained summary.
    pub instance: Option<String>,
    pub summary: String,
    /// Plain text; the deliverer escapes it for servers that read markup.
    pub body: String,
    pub image: Option<ImageRef>,
    pub actions: Vec<Action>,
    /// How many jobs it stands for (0 for connection notices).
    pub jobs: usize,
    /// Whether the desktop's notification sound goes with it (the instance's switch for its
    /// kind: [`crate::Policy::wants_sound`]); otherwise the server is asked for silence.
    pub sound: bool,
}
pub use comfy_model::clock;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(clock(Duration::from_millis(999)), "0:00");
        assert_eq!(clock(Duration::from_secs(80)), "1:20");
        assert_eq!(clock(Duration::from_secs(3600 + 62)), "1:01:02");
    }
}
