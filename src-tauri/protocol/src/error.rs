//! Decode errors: every way a frame can be malformed, as data the caller can log and count.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("binary frame too short: {what} needs {needed} bytes, frame has {got}")]
    ShortFrame {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("binary frame declares {what} of {declared} bytes but only {available} remain")]
    LengthPastEnd {
        what: &'static str,
        declared: usize,
        available: usize,
    },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        what: &'static str,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("frame is not valid JSON")]
    InvalidJson(#[source] serde_json::Error),
    #[error("frame is JSON but not a {{\"type\", \"data\"}} message")]
    NotAMessage(#[source] serde_json::Error),
    #[error("`{kind}` message has an unexpected shape")]
    BadMessage {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("preview metadata has an unexpected shape")]
    BadPreviewMetadata(#[source] serde_json::Error),
    #[error("preview metadata of {0} bytes refused: over the {limit} KiB limit", limit = crate::binary::MAX_PREVIEW_METADATA >> 10)]
    PreviewMetadataTooLarge(usize),
}
