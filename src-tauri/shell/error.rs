//! Errors as the webview sees them: `{code, message}` with a closed set of codes to branch on.

use comfy_engine::EngineError;
use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No instance has the given name.
    UnknownInstance,
    /// The app is quitting; the engine is gone.
    ShuttingDown,
    /// Anything else; the message says what.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn unknown_instance(name: &str) -> Self {
        Self::new(
            ErrorCode::UnknownInstance,
            format!("no instance named `{name}`"),
        )
    }
}

impl From<EngineError> for CommandError {
    fn from(error: EngineError) -> Self {
        let code = match error {
            EngineError::UnknownInstance(_) => ErrorCode::UnknownInstance,
            #[allow(unreachable_patterns)]
            _ => ErrorCode::Internal,
        };
        Self::new(code, error.to_string())
    }
}
