//! Configured ComfyUI instances: address, non-secret auth settings, preferences, last status.
//!
//! Secret values (tokens, passwords, header values) live in the OS keyring. This module stores
//! only the keyring reference of each secret slot and has no parameter through which a secret
//! could reach the database; keep it that way.

use crate::error::StoreError;
use crate::store::Store;
use comfy_model::{CertificateFingerprint, InstanceId, NotificationPrefs, OutputSaving};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How requests to an instance authenticate, minus the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthSettings {
    #[default]
    None,
    /// `Authorization: Bearer <secret "token">`.
    Bearer,
    /// `Authorization: Basic`, with the password in secret slot `password`.
    Basic { user: String },
    /// Arbitrary headers, each value in secret slot `header:<lowercase name>`.
    Headers { names: Vec<String> },
    /// `?token=<secret "token">` on every URL.
    QueryToken,
}

impl AuthSettings {
    /// The `auth_kind` column value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::Basic { .. } => "basic",
            Self::Headers { .. } => "headers",
            Self::QueryToken => "query_token",
        }
    }

    /// The secret slots this setting needs, in a stable order. Bearer and query tokens share
    /// the slot `token`, so switching between them keeps the stored token.
    pub fn secret_slots(&self) -> Vec<String> {
        match self {
            Self::None => vec![],
            Self::Bearer | Self::QueryToken => vec!["token".to_owned()],
            Self::Basic { .. } => vec!["password".to_owned()],
            Self::Headers { names } => names
                .iter()
                .map(|n| format!("header:{}", n.to_ascii_lowercase()))
                .collect(),
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        match self {
            Self::Basic { user } => {
                if user.contains(':') || user.chars().any(char::is_control) {
                    return Err(StoreError::Invalid(
                        "a basic-auth user name cannot contain `:` or control characters".into(),
                    ));
                }
            }
            Self::Headers { names } => {
                if names.is_empty() {
                    return Err(StoreError::Invalid(
                        "header authentication needs at least one header name".into(),
                    ));
                }
                let mut seen = std::collections::BTreeSet::new();
                for n in names {
                    if n.is_empty() || !n.bytes().all(is_header_name_byte) {
                        return Err(StoreError::Invalid(format!(
                            "`{n}` is not a valid HTTP header name"
                        )));
                    }
                    if !seen.insert(n.to_ascii_lowercase()) {
                        return Err(StoreError::Invalid(format!("header `{n}` is listed twice")));
                    }
                }
            }
            Self::None | Self::Bearer | Self::QueryToken => {}
        }
        Ok(())
    }
}

/// RFC 9110 token characters.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Where the secret of one slot is kept: the keyring entry name, derived from the instance id
/// and the slot (`instance/<id>/<slot>`). The keyring code must use exactly this string.
pub fn secret_ref(instance: InstanceId, slot: &str) -> String {
    format!("instance/{instance}/{slot}")
}

/// One secret slot of an instance and the keyring entry that holds its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSlot {
    pub slot: String,
    pub secret_ref: String,
}

/// The default for [`NewInstance::preview_fps_cap`].
pub const DEFAULT_PREVIEW_FPS_CAP: u32 = 15;
/// The highest preview rate the store accepts; 0 turns previews off.
pub const MAX_PREVIEW_FPS_CAP: u32 = 120;

/// An instance to add. The store generates the id and the client id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    pub name: String,
    /// An `http://` or `https://` URL without credentials, query or fragment.
    pub base_url: String,
    pub auth: AuthSettings,
    /// The server uses its own (self-signed) certificate: trust exactly the one pinned in
    /// `certificate_sha256`, instead of the OS trust store.
    pub accept_invalid_certs: bool,
    /// The pinned certificate (meaningful with `accept_invalid_certs`).
    pub certificate_sha256: Option<CertificateFingerprint>,
    pub enabled: bool,
    pub preview_fps_cap: u32,
    pub notifications: NotificationPrefs,
    /// Use the server's comfy-monitor companion (every client's jobs relayed live) when the
    /// server has it.
    pub use_companion: bool,
    /// Whether and where its outputs are saved without asking (off by default).
    pub saving: OutputSaving,
}

impl NewInstance {
    /// An enabled instance without authentication and with default preferences.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            auth: AuthSettings::None,
            accept_invalid_certs: false,
            certificate_sha256: None,
            enabled: true,
            preview_fps_cap: DEFAULT_PREVIEW_FPS_CAP,
            notifications: NotificationPrefs::default(),
            use_companion: true,
            saving: OutputSaving::default(),
        }
    }
}

/// A partial edit: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceUpdate {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub auth: Option<AuthSettings>,
    pub accept_invalid_certs: Option<bool>,
    /// `Some(None)` forgets the pinned certificate.
    pub certificate_sha256: Option<Option<CertificateFingerprint>>,
    pub enabled: Option<bool>,
    pub preview_fps_cap: Option<u32>,
    pub notifications: Option<NotificationPrefs>,
    pub use_companion: Option<bool>,
    pub saving: Option<OutputSaving>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub name: String,
    pub base_url: String,
    pub auth: AuthSettings,
    /// One entry per slot of `auth`: where the keyring keeps each secret.
    pub secret_slots: Vec<SecretSlot>,
    /// The server uses its own certificate: only the pinned one is trusted.
    pub accept_invalid_certs: bool,
    /// The pinned certificate, once the user accepted one.
    pub certificate_sha256: Option<CertificateFingerprint>,
    pub enabled: bool,
    /// `comfy-monitor-` and 32 hex digits, generated once when the instance is added.
    pub client_id: String,
    pub preview_fps_cap: u32,
    pub notifications: NotificationPrefs,
    /// Use the server's comfy-monitor companion when it has one (on by default).
    pub use_companion: bool,
    /// Whether and where its outputs are saved without asking.
    pub saving: OutputSaving,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_status: Option<String>,
    pub last_connected: Option<i64>,
}

/// The JSON kept in `auth_json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secret_refs: BTreeMap<String, String>,
}

fn auth_json(id: InstanceId, auth: &AuthSettings) -> Result<String, StoreError> {
    let mut stored = StoredAuth::default();
    match auth {
        AuthSettings::Basic { user } => stored.user = Some(user.clone()),
        AuthSettings::Headers { names } => stored.headers = names.clone(),
        AuthSettings::None | AuthSettings::Bearer | AuthSettings::QueryToken => {}
    }
    for slot in auth.secret_slots() {
        let r = secret_ref(id, &slot);
        stored.secret_refs.insert(slot, r);
    }
    serde_json::to_string(&stored)
        .map_err(|e| StoreError::Invalid(format!("auth settings cannot be encoded: {e}")))
}

fn parse_auth(
    id: InstanceId,
    kind: &str,
    json: &str,
) -> Result<(AuthSettings, Vec<SecretSlot>), StoreError> {
    let bad = |why: String| StoreError::BadRecord(format!("instance {id}: auth settings: {why}"));
    let stored: StoredAuth = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let auth = match kind {
        "none" => AuthSettings::None,
        "bearer" => AuthSettings::Bearer,
        "basic" => AuthSettings::Basic {
            user: stored.user.unwrap_or_default(),
        },
        "headers" => AuthSettings::Headers {
            names: stored.headers,
        },
        "query_token" => AuthSettings::QueryToken,
        other => return Err(bad(format!("unknown kind `{other}`"))),
    };
    let slots = auth
        .secret_slots()
        .into_iter()
        .map(|slot| {
            // A reference written by an older scheme stays valid; a missing one is derived.
            let secret_ref = stored
                .secret_refs
                .get(&slot)
                .cloned()
                .unwrap_or_else(|| secret_ref(id, &slot));
            SecretSlot { slot, secret_ref }
        })
        .collect();
    Ok((auth, slots))
}

fn validate_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StoreError::Invalid("an instance needs a name".into()));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "an instance name has at most 100 characters and no control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Checks the address and returns it with a trailing `/`. Credentials, queries and fragments
/// are refused because they could carry secrets into the database.
fn validate_url(input: &str) -> Result<String, StoreError> {
    let trimmed = input.trim();
    let mut url = url::Url::parse(trimmed)
        .map_err(|e| StoreError::Invalid(format!("`{trimmed}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(StoreError::Invalid(format!(
            "`{trimmed}` must be an http:// or https:// URL with a host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(StoreError::Invalid(
            "put credentials in the instance's authentication settings, not in its URL".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(StoreError::Invalid(
            "an instance URL has no query or fragment; use query-token authentication for `?token=`"
                .into(),
        ));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url.into())
}

fn validate_fps(cap: u32) -> Result<i64, StoreError> {
    if cap > MAX_PREVIEW_FPS_CAP {
        return Err(StoreError::Invalid(format!(
            "the preview rate cap is at most {MAX_PREVIEW_FPS_CAP} frames per second (0 turns previews off)"
        )));
    }
    Ok(i64::from(cap))
}

/// The saving setting as it is stored: the folder trimmed, and refused unless it is an absolute
/// path (a relative one would depend on where the app was started). An empty folder is off.
fn validate_saving(saving: &OutputSaving) -> Result<OutputSaving, StoreError> {
    let folder = saving
        .folder
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty());
    if let Some(f) = folder {
        if f.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "the folder to save outputs to cannot contain control characters".into(),
            ));
        }
        if !std::path::Path::new(f).is_absolute() {
            return Err(StoreError::Invalid(format!(
                "the folder to save outputs to must be an absolute path, not `{f}`"
            )));
        }
    }
    Ok(OutputSaving {
        folder: folder.map(str::to_owned),
        others: saving.others,
    })
}

fn notify_json(prefs: &NotificationPrefs) -> Result<String, StoreError> {
    serde_json::to_string(prefs)
        .map_err(|e| StoreError::Invalid(format!("preferences cannot be encoded: {e}")))
}

/// Turns a unique-name violation into [`StoreError::Duplicate`].
fn duplicate_name(e: rusqlite::Error, name: &str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e {
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            && msg.contains("instances.name")
        {
            return StoreError::Duplicate {
                name: name.to_owned(),
            };
        }
    }
    StoreError::Sqlite(e)
}

const COLUMNS: &str = "id, name, base_url, auth_kind, auth_json, accept_invalid_certs, enabled, \
     client_id, preview_fps_cap, notify_json, created_at, updated_at, last_status, last_connected, \
     use_companion, certificate_sha256, save_dir, save_others";

/// A row as SQLite returns it, before the JSON columns are read.
struct RawInstance {
    id: i64,
    name: String,
    base_url: String,
    auth_kind: String,
    auth_json: String,
    accept_invalid_certs: bool,
    enabled: bool,
    client_id: String,
    preview_fps_cap: i64,
    notify_json: String,
    created_at: i64,
    updated_at: i64,
    last_status: Option<String>,
    last_connected: Option<i64>,
    use_companion: bool,
    certificate_sha256: Option<String>,
    save_dir: Option<String>,
    save_others: bool,
}

impl RawInstance {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            base_url: r.get(2)?,
            auth_kind: r.get(3)?,
            auth_json: r.get(4)?,
            accept_invalid_certs: r.get(5)?,
            enabled: r.get(6)?,
            client_id: r.get(7)?,
            preview_fps_cap: r.get(8)?,
            notify_json: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            last_status: r.get(12)?,
            last_connected: r.get(13)?,
            use_companion: r.get(14)?,
            certificate_sha256: r.get(15)?,
            save_dir: r.get(16)?,
            save_others: r.get(17)?,
        })
    }

    fn into_record(self) -> Result<InstanceRecord, StoreError> {
        let id = InstanceId(self.id);
        let (auth, secret_slots) = parse_auth(id, &self.auth_kind, &self.auth_json)?;
        let notifications = serde_json::from_str(&self.notify_json).map_err(|e| {
            StoreError::BadRecord(format!("instance {id}: notification preferences: {e}"))
        })?;
        let certificate_sha256 = self
            .certificate_sha256
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| {
                StoreError::BadRecord(format!("instance {id}: pinned certificate: {e}"))
            })?;
        Ok(InstanceRecord {
            id,
            name: self.name,
            base_url: self.base_url,
            auth,
            secret_slots,
            accept_invalid_certs: self.accept_invalid_certs,
            certificate_sha256,
            enabled: self.enabled,
            client_id: self.client_id,
            preview_fps_cap: u32::try_from(self.preview_fps_cap).unwrap_or(0),
            notifications,
            use_companion: self.use_companion,
            saving: OutputSaving {
                folder: self.save_dir,
                others: self.save_others,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_status: self.last_status,
            last_connected: self.last_connected,
        })
    }
}

fn find(conn: &Connection, id: InstanceId) -> Result<InstanceRecord, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
        [id.0],
        RawInstance::from_row,
    )
    .optional()?
    .ok_or_else(|| not_found(id))?
    .into_record()
}

pub(crate) fn not_found(id: InstanceId) -> StoreError {
    StoreError::NotFound {
        what: format!("instance {id}"),
    }
}

/// Inserts an instance; shared by [`Store::insert_instance`] and the first-run seed.
/// The `meta` key that keeps the highest instance id ever given.
const LAST_INSTANCE_ID_KEY: &str = "last_instance_id";

pub(crate) fn insert(
    conn: &Connection,
    new: &NewInstance,
    now: i64,
) -> Result<InstanceRecord, StoreError> {
    let name = validate_name(&new.name)?;
    let base_url = validate_url(&new.base_url)?;
    let fps = validate_fps(new.preview_fps_cap)?;
    let saving = validate_saving(&new.saving)?;
    new.auth.validate()?;
    // An id is never given twice, even after the newest instance was removed: it names the
    // instance everywhere (the engine, the journal, the webview, keyring references), so a
    // reused one could show one instance's leftovers under another. The highest id ever given
    // is kept in `meta`.
    let next: i64 = conn.query_row(
        "SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1), 0), \
                    COALESCE((SELECT MAX(id) FROM instances), 0)) + 1",
        [LAST_INSTANCE_ID_KEY],
        |r| r.get(0),
    )?;
    let id: i64 = conn
        .query_row(
            "INSERT INTO instances (id, name, base_url, auth_kind, accept_invalid_certs, enabled, \
                 preview_fps_cap, notify_json, use_companion, created_at, updated_at, \
                 certificate_sha256, save_dir, save_others) \
             VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?11, ?12, ?13) RETURNING id",
            params![
                name,
                base_url,
                new.auth.kind(),
                new.accept_invalid_certs,
                new.enabled,
                fps,
                notify_json(&new.notifications)?,
                new.use_companion,
                now,
                next,
                new.certificate_sha256.map(|c| c.to_string()),
                saving.folder,
                saving.others
            ],
            |r| r.get(0),
        )
        .map_err(|e| duplicate_name(e, &name))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![LAST_INSTANCE_ID_KEY, id.to_string()],
    )?;
    let id = InstanceId(id);
    // The secret references embed the id, which exists only now.
    conn.execute(
        "UPDATE instances SET auth_json = ?1 WHERE id = ?2",
        params![auth_json(id, &new.auth)?, id.0],
    )?;
    find(conn, id)
}

impl Store {
    /// Adds an instance, generating its client id. The caller then writes the secret of every
    /// [`InstanceRecord::secret_slots`] entry to the keyring under its `secret_ref`.
    pub fn insert_instance(
        &mut self,
        new: &NewInstance,
        now: i64,
    ) -> Result<InstanceRecord, StoreError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            let rec = insert(&tx, new, now)?;
            tx.commit()?;
            Ok(rec)
        })();
        self.check(r)
    }

    /// Every instance, in the order they were added.
    pub fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        let r = (|| {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT {COLUMNS} FROM instances ORDER BY id"))?;
            let raws = stmt
                .query_map([], RawInstance::from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawInstance::into_record).collect()
        })();
        self.check(r)
    }

    pub fn instance(&self, id: InstanceId) -> Result<InstanceRecord, StoreError> {
        self.check(find(&self.conn, id))
    }

    /// Looks an instance up by name, ignoring ASCII case (names are unique that way).
    pub fn instance_by_name(&self, name: &str) -> Result<InstanceRecord, StoreError> {
        let r = (|| {
            self.conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM instances WHERE name = ?1"),
                    [name.trim()],
                    RawInstance::from_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("instance `{name}`"),
                })?
                .into_record()
        })();
        self.check(r)
    }

    /// Applies the fields that are `Some` and bumps `updated_at`. Secret references follow the
    /// new auth settings; entries for slots that disappeared are the caller's to remove from
    /// the keyring (compare the old record's slots with the new one's).
    pub fn update_instance(
        &mut self,
        id: InstanceId,
        update: &InstanceUpdate,
        now: i64,
    ) -> Result<InstanceRecord, StoreError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            let old = find(&tx, id)?;
            let name = match &update.name {
                Some(n) => validate_name(n)?,
                None => old.name.clone(),
            };
            let base_url = match &update.base_url {
                Some(u) => validate_url(u)?,
                None => old.base_url.clone(),
            };
            let auth = update.auth.clone().unwrap_or(old.auth);
            auth.validate()?;
            let fps = validate_fps(update.preview_fps_cap.unwrap_or(old.preview_fps_cap))?;
            let notifications = update.notifications.unwrap_or(old.notifications);
            let saving = validate_saving(update.saving.as_ref().unwrap_or(&old.saving))?;
            tx.execute(
                "UPDATE instances SET name = ?1, base_url = ?2, auth_kind = ?3, auth_json = ?4, \
                     accept_invalid_certs = ?5, enabled = ?6, preview_fps_cap = ?7, \
                     notify_json = ?8, use_companion = ?9, updated_at = ?10, \
                     certificate_sha256 = ?12, save_dir = ?13, save_others = ?14 \
                 WHERE id = ?11",
                params![
                    name,
                    base_url,
                    auth.kind(),
                    auth_json(id, &auth)?,
                    update
                        .accept_invalid_certs
                        .unwrap_or(old.accept_invalid_certs),
                    update.enabled.unwrap_or(old.enabled),
                    fps,
                    notify_json(&notifications)?,
                    update.use_companion.unwrap_or(old.use_companion),
                    now,
                    id.0,
                    update
                        .certificate_sha256
                        .unwrap_or(old.certificate_sha256)
                        .map(|c| c.to_string()),
                    saving.folder,
                    saving.others
                ],
            )
            .map_err(|e| duplicate_name(e, &name))?;
            let rec = find(&tx, id)?;
            tx.commit()?;
            Ok(rec)
        })();
        self.check(r)
    }

    /// Removes an instance with its jobs and outputs (its events stay, unattributed). Returns
    /// the removed record so the caller can delete its secrets from the keyring.
    pub fn delete_instance(&mut self, id: InstanceId) -> Result<InstanceRecord, StoreError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            let old = find(&tx, id)?;
            tx.execute("DELETE FROM instances WHERE id = ?1", [id.0])?;
            tx.commit()?;
            Ok(old)
        })();
        self.check(r)
    }

    /// Sets (or, with `None`, removes) the instance's webhook target (see `comfy_app::webhooks`).
    pub fn set_instance_webhook(
        &mut self,
        id: InstanceId,
        target: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = (|| {
            let exists: bool = self.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM instances WHERE id = ?1)",
                params![id.0],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(not_found(id));
            }
            match target {
                Some(t) => self.conn.execute(
                    "INSERT INTO instance_webhooks (instance_id, target) VALUES (?1, ?2) \
                         ON CONFLICT (instance_id) DO UPDATE SET target = excluded.target",
                    params![id.0, t],
                )?,
                None => self.conn.execute(
                    "DELETE FROM instance_webhooks WHERE instance_id = ?1",
                    params![id.0],
                )?,
            };
            Ok(())
        })();
        self.check(r)
    }

    /// Every instance's webhook target, by instance id.
    pub fn instance_webhooks(&self) -> Result<Vec<(InstanceId, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT instance_id, target FROM instance_webhooks ORDER BY instance_id")?;
        let rows = stmt.query_map([], |r| Ok((InstanceId(r.get(0)?), r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the latest connection status text; `connected_at` is set when the instance has
    /// just connected. Does not count as an edit (`updated_at` stays).
    pub fn set_instance_status(
        &mut self,
        id: InstanceId,
        status: &str,
        connected_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let r = (|| {
            let n = self.conn.execute(
                "UPDATE instances SET last_status = ?1, \
                     last_connected = coalesce(?2, last_connected) WHERE id = ?3",
                params![status, connected_at, id.0],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            Ok(())
        })();
        self.check(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gets_a_trailing_slash_and_keeps_its_path_prefix() {
        assert_eq!(
            validate_url("https://host/comfy").unwrap(),
            "https://host/comfy/"
        );
        assert_eq!(
            validate_url(" http://127.0.0.1:8188 ").unwrap(),
            "http://127.0.0.1:8188/"
        );
    }

    #[test]
    fn urls_that_could_carry_secrets_are_refused() {
        assert!(validate_url("http://user:pw@host/").is_err());
        assert!(validate_url("http://host/?token=abc").is_err());
        assert!(validate_url("http://host/#abc").is_err());
    }

    #[test]
    fn non_http_urls_are_refused() {
        assert!(validate_url("ftp://host/").is_err());
        assert!(validate_url("127.0.0.1:8188").is_err());
        assert!(validate_url("").is_err());
    }

    #[test]
    fn header_slots_are_named_after_the_lowercase_header() {
        let a = AuthSettings::Headers {
            names: vec!["CF-Access-Client-Id".into(), "X-Api-Key".into()],
        };
        assert_eq!(
            a.secret_slots(),
            ["header:cf-access-client-id", "header:x-api-key"]
        );
    }

    #[test]
    fn bad_or_repeated_header_names_are_refused() {
        let bad = AuthSettings::Headers {
            names: vec!["X Api".into()],
        };
        assert!(bad.validate().is_err());
        let twice = AuthSettings::Headers {
            names: vec!["X-Key".into(), "x-key".into()],
        };
        assert!(twice.validate().is_err());
        assert!(AuthSettings::Headers { names: vec![] }.validate().is_err());
    }

    #[test]
    fn stored_auth_reads_back_with_its_secret_references() {
        let id = InstanceId(7);
        let auth = AuthSettings::Basic { user: "ann".into() };
        let json = auth_json(id, &auth).unwrap();
        let (back, slots) = parse_auth(id, "basic", &json).unwrap();
        assert_eq!(back, auth);
        assert_eq!(
            slots,
            [SecretSlot {
                slot: "password".into(),
                secret_ref: "instance/7/password".into()
            }]
        );
    }

    #[test]
    fn missing_notification_fields_take_their_defaults() {
        let p: NotificationPrefs = serde_json::from_str(r#"{"job_done":false}"#).unwrap();
        assert!(!p.job_done);
        assert!(p.job_failed && p.queue_drained && p.disconnected && p.auth_rejected);
        assert!(!p.other_clients_jobs && !p.job_interrupted_by_other);
    }
}
