//! comfy-monitor's domain types, each defined once.
//!
//! A job's state, whose job it is, how much of it we can see, how it failed, what a connection
//! is doing, what a cancel did, which notifications an instance raises: every crate and every
//! host (the desktop shell, the CLI) uses these very types, the store persists them, the NDJSON
//! contract and the webview's TypeScript (generated, behind the `ts` feature) are made from
//! them. A copy "for layering" drifts; that is why this crate exists.
//!
//! This crate is plain data: no I/O, no clock, no async, nothing that knows ComfyUI's wire
//! format beyond the names it shares with it.
//!
//! # Casing on the wire
//!
//! Decided once for every format: field names and enum values are `snake_case`, in the NDJSON
//! of `comfy-monitor watch --json`, in the journal's JSON columns and in the webview's IPC
//! (ComfyUI speaks `snake_case` too: `prompt_id`, `node_errors`). Optional fields that are
//! absent on the wire are optional (`field?: T`) in TypeScript.

mod connection;
mod display;
mod ids;
mod job;
mod prefs;
mod summary;

pub use connection::{
    BadFingerprint, CancelOutcome, CertificateFingerprint, CertificateRefusal, CheckStep,
    ConnectionCheck, ConnectionState, ConnectionStatus, ServerInfo, StepResult,
};
pub use display::clock;
pub use ids::{InstanceId, NodeId, PromptId};
pub use job::{
    ErrorDetails, Estimate, EstimateBasis, Fidelity, JobOrigin, JobOutcome, JobState, JobView,
    NodeDuration, OutputFile, PreviewMethod,
};
pub use prefs::{NotificationPrefs, OutputSaving, SavingStatus};
pub use summary::{GraphNode, LoraUse, WorkflowSummary};
