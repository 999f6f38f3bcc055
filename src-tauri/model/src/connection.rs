//! An instance's link: its connection state, what the server told us about itself, a
//! connection test's steps, and what became of a cancel request.

use serde::{Deserialize, Serialize};

/// The state of one instance's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// The socket dropped but the server answers HTTP; reconnecting soon.
    Reconnecting,
    /// The server does not answer.
    Unreachable,
    /// The server (or a proxy in front of it) rejects our credentials.
    AuthFailed,
    Disabled,
}

/// Connection state plus the reason, for display ("auth failed: 401", "reconnecting in 4 s").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    pub detail: String,
    /// When the next attempt is due, if one is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub retry_in_ms: Option<u64>,
}

/// What the server told us about itself when we connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServerInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub version: Option<String>,
    /// `/api/jobs` exists (≥0.6.0): other clients' jobs are followed through it.
    pub jobs_api: bool,
    /// `/features` exists (≥0.3.45): feature flags, type-4 previews, `progress_state`.
    pub feature_flags: bool,
    /// The client id this app uses on the instance.
    pub client_id: String,
    /// The comfy-monitor companion's version when the server has it and we use it (other
    /// clients' jobs are then relayed to us), else `null`.
    pub companion: Option<String>,
}

/// The steps of a connection test ("Test connection"), in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CheckStep {
    /// `GET /system_stats` with the instance's credentials.
    Http,
    /// The `/ws` upgrade with the same credentials.
    Websocket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StepResult {
    pub step: CheckStep,
    pub ok: bool,
    /// What was found ("ComfyUI 0.3.64"), or why the step failed.
    pub detail: String,
    /// The failure was the server refusing the credentials.
    pub auth: bool,
}

/// Every step that ran, in order: the first failure ends the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConnectionCheck {
    /// Every step passed (made from the steps, never set on its own).
    ok: bool,
    steps: Vec<StepResult>,
}

impl ConnectionCheck {
    pub fn new(steps: Vec<StepResult>) -> Self {
        Self {
            ok: steps.iter().all(|s| s.ok),
            steps,
        }
    }

    pub fn ok(&self) -> bool {
        self.ok
    }

    pub fn steps(&self) -> &[StepResult] {
        &self.steps
    }
}

/// What became of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It was running and was told to stop (its end arrives as `interrupted`).
    Interrupted,
    /// It was pending and was removed from the queue.
    Removed,
    /// It had already finished.
    AlreadyFinished,
    /// The server does not know it.
    NotFound,
}
