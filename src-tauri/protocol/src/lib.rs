//! The ComfyUI wire protocol, decoded.
//!
//! This crate knows the bytes ComfyUI puts on its WebSocket and the JSON shapes of the HTTP
//! endpoints a monitor reads, and the prompt ComfyUI embeds in the files it saves ([`embedded`]),
//! and nothing else: it does no I/O, owns no clock and spawns nothing.
//! The entry points are [`decode_text`] and [`decode_binary`]; both return a closed enum or a
//! typed [`DecodeError`], never panic, and map message types they do not know to a variant that
//! keeps the raw value, because custom nodes broadcast whatever they like.
//!
//! The reference for every shape here is `comfyui-protocol.md` (read from ComfyUI's source) and
//! the recorded traces the tests replay.

mod binary;
pub mod embedded;
mod error;
pub mod http;
mod lenient;
mod message;
pub mod summary;

pub use binary::{
    decode_binary, image_size, BinaryFrame, ImageFormat, PreviewMetadata, ServerFeatures,
};
pub use comfy_model::{NodeId, PromptId};
pub use error::DecodeError;
pub use message::{
    decode_text, ExecutionError, ExecutionInterrupted, NodeProgress, NodeRunState, ServerMessage,
    EXECUTION_BLOCKED,
};

/// The first text frame a client sends: it asks for binary type-4 previews, which carry the
/// prompt and node ids that type-1 previews lack. Servers older than 0.3.45 ignore it.
pub const CLIENT_FEATURE_FLAGS: &str =
    r#"{"type":"feature_flags","data":{"supports_preview_metadata":true}}"#;

/// [`CLIENT_FEATURE_FLAGS`] plus the opt-in to the comfy-monitor companion's relay of every
/// client's execution traffic (`docs/companion-protocol.md`, revision 1).
pub const CLIENT_FEATURE_FLAGS_WITH_RELAY: &str =
    r#"{"type":"feature_flags","data":{"supports_preview_metadata":true,"comfy_monitor_relay":1}}"#;
