//! What can go wrong in a use case, typed so each host can say it its own way (an IPC code, an
//! exit status) without parsing messages.

use comfy_engine::outputs::OutputError;
use comfy_engine::{EngineError, SpecError};
use comfy_model::InstanceId;
use comfy_protocol::embedded::EmbeddedError;
use comfy_protocol::http::WorkflowError;
use comfy_secrets::SecretsError;
use comfy_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The profile's database, or a read or write of it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keyring, or the fallback secrets file.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("no instance named {name:?}; configured: {known}")]
    UnknownInstanceName { name: String, known: String },
    #[error("no instance with id {0}")]
    UnknownInstance(InstanceId),
    /// The command line named no instance and the profile has no single one to choose.
    #[error("{0}")]
    NoInstanceChosen(String),
    /// A saved instance's secret slot has no value in the keyring.
    #[error("the {slot} of {instance} is missing from the keyring; set it again in the instance settings or with `comfy-monitor instances edit {instance}`")]
    MissingSecret { instance: String, slot: String },
    /// A form or a command line left out a secret the auth needs.
    #[error("the {} is required", crate::slot_label(slot))]
    SecretRequired { slot: String },
    /// Something the user typed cannot be used as it is.
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Not an API-format workflow (or not JSON at all).
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// A file that holds no prompt to queue (see [`comfy_protocol::embedded`]).
    #[error("{}: {error}", .path.display())]
    PromptFile {
        path: std::path::PathBuf,
        error: EmbeddedError,
    },
    #[error("{0}")]
    NotFound(String),
    /// Reaching the server, or what it answered (a refused workflow, rejected credentials).
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Output(#[from] OutputError),
}
