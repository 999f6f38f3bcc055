//! Errors as the webview sees them: `{code, message}` with a closed set of codes to branch on,
//! plus the per-node validation errors when the server refused a workflow.

use comfy_app::AppError;
use comfy_engine::actions::ActionError;
use comfy_engine::api::ApiError;
use comfy_engine::outputs::OutputError;
use comfy_engine::EngineError;
use comfy_protocol::http::{NodeValidationError, WorkflowError};
use comfy_store::StoreError;
use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No instance has the given name or id.
    UnknownInstance,
    /// The instance is not connected right now; the message says why.
    NotConnected,
    /// The server could not be reached, or answered something unexpected.
    Unreachable,
    /// The server refused our credentials.
    AuthFailed,
    /// The file is not an API-format workflow (not JSON, not an object of nodes).
    InvalidWorkflow,
    /// A workflow saved from the editor ("nodes" and "links"): export the API format.
    UiFormatWorkflow,
    /// The server refused the workflow; `node_errors` says which nodes.
    Rejected,
    /// A settings value is not acceptable (name taken, bad URL, ...).
    InvalidInput,
    /// No such job, file or record.
    NotFound,
    /// The database could not be read or written (locked, read-only, full, corrupt).
    Storage,
    /// The keyring or the secrets file failed.
    Secrets,
    /// A file could not be written (disk full, permissions).
    Io,
    /// Anything else; the message says what.
    Internal,
}

/// One node's validation problems, as the submit dialog lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NodeErrorView {
    pub node_id: String,
    pub class_type: Option<String>,
    /// The node's `_meta.title`, when the workflow has one.
    pub title: Option<String>,
    /// One line per problem: "Value not in list: ckpt_name: 'x' not in [...]".
    pub messages: Vec<String>,
}

impl NodeErrorView {
    pub fn from_validation(e: &NodeValidationError, workflow: Option<&serde_json::Value>) -> Self {
        let title = workflow.and_then(|w| title_in(w, &e.node_id));
        Self {
            node_id: e.node_id.clone(),
            class_type: e.class_type.clone(),
            title,
            messages: e
                .errors
                .iter()
                .map(|p| {
                    if p.details.is_empty() {
                        p.message.clone()
                    } else {
                        format!("{}: {}", p.message, p.details)
                    }
                })
                .collect(),
        }
    }
}

/// A node's title in an API-format workflow (`_meta.title`), if it has one.
fn title_in(workflow: &serde_json::Value, node_id: &str) -> Option<String> {
    workflow
        .get(node_id)
        .and_then(|node| node.pointer("/_meta/title"))
        .and_then(|t| t.as_str())
        .map(str::to_owned)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
    /// Filled for `rejected` (and for a workflow the server accepted only in part).
    pub node_errors: Vec<NodeErrorView>,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            node_errors: Vec::new(),
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, error.to_string())
    }

    /// Names the refused nodes by their titles in this workflow.
    pub fn titled_by(mut self, workflow: &serde_json::Value) -> Self {
        for n in &mut self.node_errors {
            n.title = title_in(workflow, &n.node_id);
        }
        self
    }
}

impl From<ApiError> for CommandError {
    fn from(error: ApiError) -> Self {
        let code = if error.is_auth() {
            ErrorCode::AuthFailed
        } else {
            ErrorCode::Unreachable
        };
        Self::new(code, error.to_string())
    }
}

impl From<WorkflowError> for CommandError {
    fn from(error: WorkflowError) -> Self {
        let code = match error {
            WorkflowError::UiFormat => ErrorCode::UiFormatWorkflow,
            _ => ErrorCode::InvalidWorkflow,
        };
        Self::new(code, error.to_string())
    }
}

impl From<comfy_protocol::embedded::EmbeddedError> for CommandError {
    fn from(error: comfy_protocol::embedded::EmbeddedError) -> Self {
        let code = match error {
            comfy_protocol::embedded::EmbeddedError::OnlyUiWorkflow(_) => {
                ErrorCode::UiFormatWorkflow
            }
            _ => ErrorCode::InvalidWorkflow,
        };
        Self::new(code, error.to_string())
    }
}

impl From<ActionError> for CommandError {
    fn from(error: ActionError) -> Self {
        match error {
            ActionError::Workflow(e) => e.into(),
            ActionError::Api(e) => e.into(),
            ActionError::Rejected(ref r) => {
                let node_errors = r
                    .node_errors
                    .iter()
                    .map(|n| NodeErrorView::from_validation(n, None))
                    .collect();
                // The node errors travel as a list; the message says only what they add up to.
                Self {
                    code: ErrorCode::Rejected,
                    message: format!(
                        "the server refused the workflow: {}",
                        comfy_engine::actions::rejection_summary(r)
                    ),
                    node_errors,
                }
            }
        }
    }
}

impl From<EngineError> for CommandError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::UnknownInstance(_) | EngineError::DuplicateInstance(_) => {
                Self::new(ErrorCode::UnknownInstance, error.to_string())
            }
            EngineError::ShutDown => Self::new(ErrorCode::NotConnected, error.to_string()),
            EngineError::NotConnected { .. } => {
                Self::new(ErrorCode::NotConnected, error.to_string())
            }
            EngineError::Api(e) => e.into(),
            EngineError::Action(e) => e.into(),
        }
    }
}

impl From<OutputError> for CommandError {
    fn from(error: OutputError) -> Self {
        match error {
            OutputError::Api(e) => e.into(),
            OutputError::Missing { .. } => Self::new(ErrorCode::NotFound, error.to_string()),
            OutputError::Write { .. } => Self::new(ErrorCode::Io, error.to_string()),
            OutputError::BadName(_) | OutputError::Thumbnail(_) => {
                Self::new(ErrorCode::Internal, error.to_string())
            }
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        let code = match error {
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            StoreError::Invalid(_) | StoreError::Duplicate { .. } => ErrorCode::InvalidInput,
            _ => ErrorCode::Storage,
        };
        Self::new(code, error.to_string())
    }
}

impl From<AppError> for CommandError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Store(e) => e.into(),
            AppError::Secrets(e) => e.into(),
            AppError::Engine(e) => e.into(),
            AppError::Output(e) => e.into(),
            AppError::Workflow(e) => e.into(),
            AppError::PromptFile { error, .. } => error.into(),
            AppError::UnknownInstance(_) | AppError::UnknownInstanceName { .. } => {
                Self::new(ErrorCode::UnknownInstance, error.to_string())
            }
            AppError::NotFound(_) => Self::new(ErrorCode::NotFound, error.to_string()),
            AppError::MissingSecret { .. } => Self::new(ErrorCode::Secrets, error.to_string()),
            AppError::NoInstanceChosen(_)
            | AppError::SecretRequired { .. }
            | AppError::InvalidInput(_)
            | AppError::Spec(_) => Self::new(ErrorCode::InvalidInput, error.to_string()),
        }
    }
}

impl From<comfy_secrets::SecretsError> for CommandError {
    fn from(error: comfy_secrets::SecretsError) -> Self {
        Self::new(ErrorCode::Secrets, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_workflow_lists_its_node_errors_once_not_again_in_the_message() {
        let body = br#"{"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": ""},
            "node_errors": {"4": {"class_type": "CheckpointLoaderSimple", "dependent_outputs": ["9"],
                "errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "ckpt_name: 'missing.safetensors'"}]}}}"#;
        let Err(rejected) = comfy_protocol::http::parse_prompt_response(400, body) else {
            panic!("a 400 with node errors is a rejection");
        };
        let e = CommandError::from(ActionError::Rejected(Box::new(rejected)));
        assert_eq!(e.code, ErrorCode::Rejected);
        assert_eq!(
            e.message,
            "the server refused the workflow: Prompt outputs failed validation (prompt_outputs_failed_validation)"
        );
        assert_eq!(e.node_errors.len(), 1);
        assert_eq!(e.node_errors[0].node_id, "4");
    }
}
