//! Instance settings as the settings dialog edits them: add, edit, remove, test.
//!
//! Secrets go one way: the dialog may send a new value for a slot, and it learns only whether a
//! slot has a value stored. A secret is never read back into the webview.

use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::host::Host;
use crate::shell::SharedHost;
use comfy_engine::probe::{check_connection, CheckStep};
use comfy_store::{
    secret_ref, AuthSettings, InstanceRecord, InstanceUpdate, NewInstance, NotificationPrefs,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tauri::{AppHandle, State};
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

/// Which events notify, per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSettings {
    pub job_done: bool,
    pub job_failed: bool,
    pub job_interrupted_by_other: bool,
    pub queue_drained: bool,
    pub disconnected: bool,
    pub auth_rejected: bool,
    /// Also notify for jobs queued by other clients.
    pub other_clients_jobs: bool,
}

impl From<NotificationPrefs> for NotificationSettings {
    fn from(p: NotificationPrefs) -> Self {
        Self {
            job_done: p.job_done,
            job_failed: p.job_failed,
            job_interrupted_by_other: p.job_interrupted_by_other,
            queue_drained: p.queue_drained,
            disconnected: p.disconnected,
            auth_rejected: p.auth_rejected,
            other_clients_jobs: p.other_clients_jobs,
        }
    }
}

impl From<NotificationSettings> for NotificationPrefs {
    fn from(p: NotificationSettings) -> Self {
        Self {
            job_done: p.job_done,
            job_failed: p.job_failed,
            job_interrupted_by_other: p.job_interrupted_by_other,
            queue_drained: p.queue_drained,
            disconnected: p.disconnected,
            auth_rejected: p.auth_rejected,
            other_clients_jobs: p.other_clients_jobs,
        }
    }
}

/// A saved instance, as the settings dialog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSettings {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub auth_kind: AuthKind,
    /// Basic auth's user name.
    pub user: Option<String>,
    /// Custom header names (their values are secrets).
    pub header_names: Vec<String>,
    /// The secret slots that have a value stored (`token`, `password`, `header:<name>`).
    pub secrets_set: Vec<String>,
    pub accept_invalid_certs: bool,
    pub enabled: bool,
    pub preview_fps_cap: u32,
    pub notifications: NotificationSettings,
}

/// What the dialog sends to add or edit an instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInput {
    pub name: String,
    pub url: String,
    pub auth_kind: AuthKind,
    pub user: Option<String>,
    pub header_names: Vec<String>,
    /// New secret values by slot. A slot left out keeps its stored value.
    pub secrets: BTreeMap<String, String>,
    pub accept_invalid_certs: bool,
    pub enabled: bool,
    pub preview_fps_cap: u32,
    pub notifications: NotificationSettings,
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
            enabled: self.enabled,
            preview_fps_cap: self.preview_fps_cap,
            notifications: self.notifications.into(),
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

fn settings(host: &Host, rec: &InstanceRecord) -> InstanceSettings {
    let secrets_set = if rec.secret_slots.is_empty() {
        Vec::new()
    } else {
        host.with_secrets(|s| {
            Ok(rec
                .secret_slots
                .iter()
                .filter(|slot| matches!(s.get(&slot.secret_ref), Ok(Some(_))))
                .map(|slot| slot.slot.clone())
                .collect())
        })
        .unwrap_or_default()
    };
    let (auth_kind, user, header_names) = match &rec.auth {
        AuthSettings::None => (AuthKind::None, None, Vec::new()),
        AuthSettings::Bearer => (AuthKind::Bearer, None, Vec::new()),
        AuthSettings::QueryToken => (AuthKind::QueryToken, None, Vec::new()),
        AuthSettings::Basic { user } => (AuthKind::Basic, Some(user.clone()), Vec::new()),
        AuthSettings::Headers { names } => (AuthKind::Headers, None, names.clone()),
    };
    InstanceSettings {
        id: rec.id.0,
        name: rec.name.clone(),
        url: rec.base_url.clone(),
        auth_kind,
        user,
        header_names,
        secrets_set,
        accept_invalid_certs: rec.accept_invalid_certs,
        enabled: rec.enabled,
        preview_fps_cap: rec.preview_fps_cap,
        notifications: rec.notifications.into(),
    }
}

/// Checks that every slot the auth needs has a value, given or stored.
fn require_secrets(
    host: &Host,
    rec: &InstanceRecord,
    given: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    for slot in &rec.secret_slots {
        if given.get(&slot.slot).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let stored = host.with_secrets(|s| Ok(s.get(&slot.secret_ref)?.is_some()))?;
        if !stored {
            return Err(invalid(format!(
                "the {} is required",
                slot_label(&slot.slot)
            )));
        }
    }
    Ok(())
}

fn slot_label(slot: &str) -> String {
    match slot.strip_prefix("header:") {
        Some(h) => format!("value of header {h}"),
        None => slot.to_owned(),
    }
}

/// Writes the given secrets of the record's slots; values for slots it does not have are
/// ignored.
fn write_secrets(
    host: &Host,
    rec: &InstanceRecord,
    given: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let wanted: Vec<_> = rec
        .secret_slots
        .iter()
        .filter_map(|slot| {
            given
                .get(&slot.slot)
                .filter(|v| !v.is_empty())
                .map(|v| (slot.secret_ref.clone(), v.clone()))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    host.with_secrets(|s| {
        for (r, v) in &wanted {
            s.set(r, v)?;
        }
        Ok(())
    })
}

fn delete_secrets(host: &Host, refs: &[String]) -> Result<(), CommandError> {
    if refs.is_empty() {
        return Ok(());
    }
    host.with_secrets(|s| {
        for r in refs {
            s.delete(r)?;
        }
        Ok(())
    })
}

/// Every saved instance.
#[tauri::command]
pub fn list_instances(host: State<'_, SharedHost>) -> Result<Vec<InstanceSettings>, CommandError> {
    let records = host.with_journal(|j| Ok(j.store().instances()?))?;
    Ok(records.iter().map(|r| settings(&host, r)).collect())
}

/// Saves a new instance and starts monitoring it.
#[tauri::command]
pub async fn add_instance(
    app: AppHandle,
    host: State<'_, SharedHost>,
    input: InstanceInput,
) -> Result<InstanceSettings, CommandError> {
    let new = input.to_new()?;
    // Secrets are checked before anything is saved, so a refused form leaves nothing behind.
    let missing = new
        .auth
        .secret_slots()
        .into_iter()
        .find(|slot| input.secrets.get(slot).is_none_or(|v| v.is_empty()));
    if let Some(slot) = missing {
        return Err(invalid(format!("the {} is required", slot_label(&slot))));
    }
    let rec = host.with_journal(|j| Ok(j.store_mut().insert_instance(&new, now())?))?;
    if let Err(e) = write_secrets(&host, &rec, &input.secrets) {
        // Without its secrets the instance is useless: take it back out.
        let _ = host.with_journal(|j| Ok(j.store_mut().delete_instance(rec.id)?));
        return Err(e);
    }
    host.start(&rec, &|u| crate::shell::emit(&app, &u)).await;
    Ok(settings(&host, &rec))
}

/// Saves an edited instance and restarts its monitoring with the new settings.
#[tauri::command]
pub async fn update_instance(
    app: AppHandle,
    host: State<'_, SharedHost>,
    id: i64,
    input: InstanceInput,
) -> Result<InstanceSettings, CommandError> {
    let id = comfy_store::InstanceId(id);
    let old = host.with_journal(|j| Ok(j.store().instance(id)?))?;
    let new = input.to_new()?;
    // What the new auth will need, checked against the old record's stored secrets.
    let mut preview = old.clone();
    preview.secret_slots = new
        .auth
        .secret_slots()
        .into_iter()
        .map(|slot| comfy_store::SecretSlot {
            secret_ref: secret_ref(id, &slot),
            slot,
        })
        .collect();
    // Every field is set: the form always sends the whole instance.
    let update = InstanceUpdate {
        name: Some(new.name),
        base_url: Some(new.base_url),
        auth: Some(new.auth),
        accept_invalid_certs: Some(new.accept_invalid_certs),
        enabled: Some(new.enabled),
        preview_fps_cap: Some(new.preview_fps_cap),
        notifications: Some(new.notifications),
    };
    require_secrets(&host, &preview, &input.secrets)?;
    let rec = host.with_journal(|j| Ok(j.store_mut().update_instance(id, &update, now())?))?;
    write_secrets(&host, &rec, &input.secrets)?;
    let gone: Vec<_> = old
        .secret_slots
        .iter()
        .filter(|s| !rec.secret_slots.iter().any(|n| n.slot == s.slot))
        .map(|s| s.secret_ref.clone())
        .collect();
    delete_secrets(&host, &gone)?;
    host.start(&rec, &|u| crate::shell::emit(&app, &u)).await;
    Ok(settings(&host, &rec))
}

/// Stops monitoring an instance and forgets it, with its secrets and journal.
#[tauri::command]
pub async fn remove_instance(
    app: AppHandle,
    host: State<'_, SharedHost>,
    id: i64,
) -> Result<(), CommandError> {
    host.stop(id, &|u| crate::shell::emit(&app, &u)).await;
    let removed =
        host.with_journal(|j| Ok(j.store_mut().delete_instance(comfy_store::InstanceId(id))?))?;
    let refs: Vec<_> = removed
        .secret_slots
        .iter()
        .map(|s| s.secret_ref.clone())
        .collect();
    delete_secrets(&host, &refs)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CheckStepView {
    Http,
    Websocket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CheckStepResult {
    pub step: CheckStepView,
    pub ok: bool,
    pub detail: String,
    /// The server refused the credentials.
    pub auth: bool,
}

/// The steps of a connection test, in order; the first failure ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTest {
    pub ok: bool,
    pub steps: Vec<CheckStepResult>,
}

/// Tries settings before they are saved: the HTTP API, then the socket, with the same auth.
/// Secrets not given in the form are taken from the saved instance `id`, if any.
#[tauri::command]
pub async fn test_connection(
    host: State<'_, SharedHost>,
    id: Option<i64>,
    input: InstanceInput,
) -> Result<ConnectionTest, CommandError> {
    let url = input.url()?;
    let auth = input.auth()?;
    let rec = match id {
        Some(id) => {
            host.with_journal(|j| Ok(j.store().instance(comfy_store::InstanceId(id))?))?
        }
        None => InstanceRecord {
            id: comfy_store::InstanceId(0),
            name: String::new(),
            base_url: String::new(),
            auth: AuthSettings::None,
            secret_slots: Vec::new(),
            accept_invalid_certs: false,
            enabled: true,
            client_id: String::new(),
            preview_fps_cap: 0,
            notifications: NotificationPrefs::default(),
            created_at: 0,
            updated_at: 0,
            last_status: None,
            last_connected: None,
        },
    };
    let name = if input.name.trim().is_empty() {
        "test".to_owned()
    } else {
        input.name.trim().to_owned()
    };
    let mut spec =
        comfy_engine::InstanceSpec::new(name, &url).map_err(|e| invalid(e.to_string()))?;
    spec.accept_invalid_certs = input.accept_invalid_certs;
    // Typed secrets first, then the saved instance's; a slot with neither is an input error.
    let secret = |slot: &str| -> anyhow::Result<comfy_engine::Secret> {
        if let Some(v) = input.secrets.get(slot).filter(|v| !v.is_empty()) {
            return Ok(comfy_engine::Secret::new(v.clone()));
        }
        let stored = if rec.id.0 > 0 {
            host.with_secrets(|s| Ok(s.get(&secret_ref(rec.id, slot))?))?
        } else {
            None
        };
        stored
            .map(comfy_engine::Secret::new)
            .ok_or_else(|| anyhow::anyhow!("the {} is required", slot_label(slot)))
    };
    spec.auth = comfy_cli::profile::auth_from(&auth, secret).map_err(|e| {
        // A keyring failure keeps its own code; a missing value is the form's to fix.
        e.downcast::<CommandError>()
            .unwrap_or_else(|e| invalid(e.to_string()))
    })?;
    let check = check_connection(&spec).await;
    Ok(ConnectionTest {
        ok: check.ok(),
        steps: check
            .steps
            .into_iter()
            .map(|s| CheckStepResult {
                step: match s.step {
                    CheckStep::Http => CheckStepView::Http,
                    CheckStep::Websocket => CheckStepView::Websocket,
                },
                ok: s.ok,
                detail: s.detail,
                auth: s.auth,
            })
            .collect(),
    })
}
