//! The application layer every host calls: the desktop shell and the CLI (and any later host)
//! do the same things through these functions, so each use case is written once.
//!
//! - [`Profile`]: the user's saved instances (SQLite) with their secrets (the OS keyring or
//!   the owner-only fallback file) and the job journal; add, edit and remove an instance with
//!   its secrets; the engine's view of an instance ([`Profile::spec`]).
//! - [`jobs`]: submit with its journal entry, download with its journal entry, the lost job's
//!   workflow for a resubmit.
//! - [`keeper`]: outputs saved without asking, in the background.
//! - [`check`]: "Test connection" with typed secrets or the saved ones.
//! - [`recorder`]: what the engine reports, written to the journal and the event log.
//! - [`metrics`] and [`webhooks`]: what `comfy-monitor serve` offers a studio's own tools.
//!
//! Errors are typed ([`AppError`]); each host maps them to its own surface (an IPC error code,
//! an exit status). Nothing here knows tauri, a terminal or a webview; no host depends on
//! another host.

pub mod check;
mod error;
pub mod jobs;
pub mod keeper;
pub mod metrics;
mod profile;
pub mod recorder;
pub mod webhooks;

pub use error::AppError;
pub use profile::{auth_from, slot_label, Profile};
