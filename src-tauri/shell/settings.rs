//! Instance settings as the settings dialog edits them: add, edit, remove, test.
//!
//! Secrets go one way: the dialog may send a new value for a slot, and it learns only whether a
//! slot has a value stored. A secret is never read back into the webview.

use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::events::emit;
use crate::shell::state::AppState;
use comfy_app::check::{self, Candidate};
use comfy_app::Profile;
use comfy_model::{
    CertificateFingerprint, ConnectionCheck, InstanceId, NotificationPrefs, OutputSaving,
};
use comfy_store::{AuthSettings, InstanceRecord, InstanceUpdate, NewInstance};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tauri::{AppHandle, Manager, State};
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    None,
    Bearer,
    Basic,
    Headers,
    QueryToken,
}

/// A saved instance, as the settings dialog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct InstanceSettings {
    pub id: InstanceId,
    pub name: String,
    pub url: String,
    pub auth_kind: AuthKind,
    /// Basic auth's user name.
    pub user: Option<String>,
    /// Custom header names (their values are secrets).
    pub header_names: Vec<String>,
    /// The secret slots that have a value stored (`token`, `password`, `header:<name>`).
    pub secrets_set: Vec<String>,
    /// The server uses its own certificate: only the pinned one is trusted.
    pub accept_invalid_certs: bool,
    /// The pinned certificate, once one was accepted.
    pub certificate_sha256: Option<CertificateFingerprint>,
    pub enabled: bool,
    pub preview_fps_cap: u32,
    pub notifications: NotificationPrefs,
    /// Use the server's comfy-monitor companion (every client's jobs followed live) when it
    /// has one.
    pub use_companion: bool,
    /// Whether and where its outputs are saved without asking.
    pub saving: OutputSaving,
}

/// What the dialog sends to add or edit an instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
pub struct InstanceInput {
    pub name: String,
    pub url: String,
    pub auth_kind: AuthKind,
    pub user: Option<String>,
    pub header_names: Vec<String>,
    /// New secret values by slot. A slot left out keeps its stored value, while the address
    /// stays on the same server (scheme, host and port).
    // A `SecretValues`, whose `Debug` shows the slots only.
    #[ts(as = "BTreeMap<String, String>")]
    pub secrets: comfy_secrets::SecretValues,
    /// The server uses its own certificate: only `certificate_sha256` is trusted.
    pub accept_invalid_certs: bool,
    /// The certificate the user accepted (from a connection test), or none yet.
    pub certificate_sha256: Option<CertificateFingerprint>,
    pub enabled: bool,
    pub preview_fps_cap: u32,
    pub notifications: NotificationPrefs,
    /// Use the server's comfy-monitor companion (every client's jobs followed live) when it
    /// has one.
    pub use_companion: bool,
    /// Whether and where its outputs are saved without asking.
    pub saving: OutputSaving,
}

impl InstanceInput {
    fn auth(&self) -> Result<AuthSettings, CommandError> {
        Ok(match self.auth_kind {
            AuthKind::None => AuthSettings::None,
            AuthKind::Bearer => AuthSettings::Bearer,
            AuthKind::QueryToken => AuthSettings::QueryToken,
            AuthKind::Basic => AuthSettings::Basic {
                user: self
                    .user
                    .clone()
                    .filter(|u| !u.trim().is_empty())
                    .ok_or_else(|| invalid("basic authentication needs a user name"))?,
            },
            AuthKind::Headers => AuthSettings::Headers {
                names: self
                    .header_names
                    .iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
            },
        })
    }

    /// The instance as the store takes it (name trimmed, URL normalised, auth checked).
    fn to_new(&self) -> Result<NewInstance, CommandError> {
        Ok(NewInstance {
            name: self.name.trim().to_owned(),
            base_url: self.url()?,
            auth: self.auth()?,
            accept_invalid_certs: self.accept_invalid_certs,
            certificate_sha256: self.certificate_sha256,
            enabled: self.enabled,
            preview_fps_cap: self.preview_fps_cap,
            notifications: self.notifications,
            use_companion: self.use_companion,
            saving: self.saving.clone(),
        })
    }

    fn url(&self) -> Result<String, CommandError> {
        comfy_engine::instance::parse_base_url(&self.url)
            .map(|u| u.to_string())
            .map_err(|e| invalid(e.to_string()))
    }
}

fn invalid(message: impl Into<String>) -> CommandError {
    CommandError::new(ErrorCode::InvalidInput, message)
}

fn now() -> i64 {
    comfy_engine::now_ms()
}

fn settings(profile: &Profile, rec: &InstanceRecord) -> InstanceSettings {
    let (auth_kind, user, header_names) = match &rec.auth {
        AuthSettings::None => (AuthKind::None, None, Vec::new()),
        AuthSettings::Bearer => (AuthKind::Bearer, None, Vec::new()),
        AuthSettings::QueryToken => (AuthKind::QueryToken, None, Vec::new()),
        AuthSettings::Basic { user } => (AuthKind::Basic, Some(user.clone()), Vec::new()),
        AuthSettings::Headers { names } => (AuthKind::Headers, None, names.clone()),
    };
    InstanceSettings {
        id: rec.id,
        name: rec.name.clone(),
        url: rec.base_url.clone(),
        auth_kind,
        user,
        header_names,
        secrets_set: profile.secrets_set(rec),
        accept_invalid_certs: rec.accept_invalid_certs,
        certificate_sha256: rec.certificate_sha256,
        enabled: rec.enabled,
        preview_fps_cap: rec.preview_fps_cap,
        notifications: rec.notifications,
        use_companion: rec.use_companion,
        saving: rec.saving.clone(),
    }
}

/// Every saved instance.
#[tauri::command(rename_all = "snake_case")]
pub fn list_instances(state: State<'_, AppState>) -> Result<Vec<InstanceSettings>, CommandError> {
    let profile = state.profile()?;
    let records = profile.instances()?;
    Ok(records.iter().map(|r| settings(profile, r)).collect())
}

/// Saves a new instance and starts monitoring it.
#[tauri::command(rename_all = "snake_case")]
pub async fn add_instance(
    app: AppHandle,
    state: State<'_, AppState>,
    input: InstanceInput,
) -> Result<InstanceSettings, CommandError> {
    let profile = state.profile()?;
    let rec = profile.add_instance(&input.to_new()?, &input.secrets, now())?;
    state.start(&rec, &|u| emit(&app, &u)).await;
    Ok(settings(profile, &rec))
}

/// Saves an edited instance and restarts its monitoring with the new settings.
#[tauri::command(rename_all = "snake_case")]
pub async fn update_instance(
    app: AppHandle,
    state: State<'_, AppState>,
    id: InstanceId,
    input: InstanceInput,
) -> Result<InstanceSettings, CommandError> {
    let profile = state.profile()?;
    let new = input.to_new()?;
    // Every field is set: the form always sends the whole instance.
    let update = InstanceUpdate {
        name: Some(new.name),
        base_url: Some(new.base_url),
        auth: Some(new.auth),
        accept_invalid_certs: Some(new.accept_invalid_certs),
        certificate_sha256: Some(new.certificate_sha256),
        enabled: Some(new.enabled),
        preview_fps_cap: Some(new.preview_fps_cap),
        notifications: Some(new.notifications),
        use_companion: Some(new.use_companion),
        saving: Some(new.saving),
    };
    let rec = profile.update_instance(id, &update, &input.secrets, now())?;
    state.start(&rec, &|u| emit(&app, &u)).await;
    // Saving may have been switched on: files that waited are saved now.
    if let Some(saving) = app.try_state::<crate::shell::saving::Saving>() {
        saving.wake();
    }
    Ok(settings(profile, &rec))
}

/// Stops monitoring an instance and forgets it, with its secrets and journal.
#[tauri::command(rename_all = "snake_case")]
pub async fn remove_instance(
    app: AppHandle,
    state: State<'_, AppState>,
    id: InstanceId,
) -> Result<(), CommandError> {
    state.stop(id, &|u| emit(&app, &u)).await;
    state.profile()?.remove_instance(id)?;
    Ok(())
}

/// Tries settings before they are saved: the HTTP API, then the socket, with the same auth.
/// Secrets not given in the form are taken from the saved instance `id`, if any.
#[tauri::command(rename_all = "snake_case")]
pub async fn test_connection(
    state: State<'_, AppState>,
    id: Option<InstanceId>,
    input: InstanceInput,
) -> Result<ConnectionCheck, CommandError> {
    let url = input.url()?;
    let auth = input.auth()?;
    let candidate = Candidate {
        name: &input.name,
        url: &url,
        auth: &auth,
        accept_invalid_certs: input.accept_invalid_certs,
        certificate_sha256: input.certificate_sha256,
        secrets: &input.secrets,
        saved: id,
    };
    Ok(check::test_connection(state.profile().ok(), candidate).await?)
}
