//! The user's profile: saved instances in the SQLite store (`--db` / `COMFY_MONITOR_DB` / the
//! platform's data dir) with the job journal, and their secrets in the OS keyring (or the
//! owner-only fallback file beside the database).
//!
//! Secrets go one way: a host may hand in a new value for a slot, and learns back only whether
//! a slot has a value stored ([`Profile::secrets_set`]). Every change of an instance is saved
//! first; what runs is the host's business.

use crate::AppError;
use comfy_engine::journal::Journal;
use comfy_engine::{Auth, InstanceSpec, Secret};
use comfy_model::InstanceId;
use comfy_secrets::Secrets;
use comfy_store::{
    secret_ref, AuthSettings, InstanceRecord, InstanceUpdate, NewInstance, SecretSlot, Store,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The store with its journal, and the secret store opened on first use. Every method takes
/// `&self`, so a host may share one profile between tasks.
pub struct Profile {
    journal: Mutex<Journal>,
    path: PathBuf,
    secrets_path: PathBuf,
    secrets: Mutex<Option<Secrets>>,
    /// What the user must be told once (the secrets fallback file), not yet taken.
    notices: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value guarded here stays valid after a panic elsewhere.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Profile {
    /// Opens the profile at `db`, else `COMFY_MONITOR_DB`, else the platform's data dir.
    pub fn open(db: Option<&Path>) -> Result<Profile, AppError> {
        let path = match db {
            Some(p) => p.to_path_buf(),
            None => comfy_store::default_path()?,
        };
        let store = Store::open(&path)?;
        let secrets_path = path
            .parent()
            .map(|d| d.join("secrets.json"))
            .unwrap_or_else(|| PathBuf::from("secrets.json"));
        Ok(Profile {
            journal: Mutex::new(Journal::new(store)),
            path,
            secrets_path,
            secrets: Mutex::new(None),
            notices: Mutex::new(Vec::new()),
        })
    }

    /// Opens the profile at `db` with its secrets in the owner-only file at `secrets`, without
    /// probing the OS keyring or recording a notice. For tests, which must not touch the
    /// user's keyring; a host uses [`Profile::open`].
    pub fn open_with_secrets_file(db: &Path, secrets: &Path) -> Result<Profile, AppError> {
        let store = Store::open(db)?;
        Ok(Profile {
            journal: Mutex::new(Journal::new(store)),
            path: db.to_path_buf(),
            secrets_path: secrets.to_path_buf(),
            secrets: Mutex::new(Some(Secrets::file_only(secrets)?)),
            notices: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal (and its store), for one short piece of work; never hold it across an await.
    pub fn journal(&self) -> MutexGuard<'_, Journal> {
        lock(&self.journal)
    }

    /// A second connection to the database with a journal of its own, for a task that writes
    /// events while commands use this one.
    pub fn second_journal(&self) -> Result<Journal, AppError> {
        Ok(Journal::new(Store::open(&self.path)?))
    }

    /// Runs `f` with the secret store, opening it the first time, and keeps what the store
    /// says the user must be told (a credential kept in the fallback file, a keyring that
    /// cannot be reached) for [`Profile::take_notices`]. Opening contacts no keyring, and the
    /// store keeps no failure of the keyring for the session: a keyring locked now is used as
    /// soon as it answers.
    pub fn with_secrets<T>(
        &self,
        f: impl FnOnce(&Secrets) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let mut guard = lock(&self.secrets);
        let secrets = match guard.take() {
            Some(s) => s,
            None => Secrets::open(&self.secrets_path)?,
        };
        let result = f(&secrets);
        let told = secrets.take_notices();
        if !told.is_empty() {
            let mut notices = lock(&self.notices);
            for notice in told {
                if !notices.contains(&notice) {
                    notices.push(notice);
                }
            }
        }
        *guard = Some(secrets);
        result
    }

    /// What the user must be told once, taken (each notice is returned once).
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.notices))
    }

    /// The saved instance with this id.
    pub fn instance(&self, id: InstanceId) -> Result<InstanceRecord, AppError> {
        self.journal().store().instance(id).map_err(|e| match e {
            comfy_store::StoreError::NotFound { .. } => AppError::UnknownInstance(id),
            other => other.into(),
        })
    }

    /// Every saved instance.
    pub fn instances(&self) -> Result<Vec<InstanceRecord>, AppError> {
        Ok(self.journal().store().instances()?)
    }

    /// The saved instance with this name; an unknown name is told with the names there are.
    pub fn instance_named(&self, name: &str) -> Result<InstanceRecord, AppError> {
        let journal = self.journal();
        journal.store().instance_by_name(name).map_err(|e| match e {
            comfy_store::StoreError::NotFound { .. } => {
                let known: Vec<String> = journal
                    .store()
                    .instances()
                    .map(|v| v.into_iter().map(|i| i.name).collect())
                    .unwrap_or_default();
                AppError::UnknownInstanceName {
                    name: name.to_owned(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                }
            }
            other => other.into(),
        })
    }

    /// The saved instance to use when none is named: the one whose journal has `job` (when
    /// exactly one has it), else the only saved instance.
    pub fn default_instance(&self, job: Option<&str>) -> Result<InstanceRecord, AppError> {
        let journal = self.journal();
        let store = journal.store();
        let all = store.instances()?;
        if let Some(job) = job {
            let mut knowing = Vec::new();
            for rec in &all {
                if store.job(rec.id, job)?.is_some() {
                    knowing.push(rec);
                }
            }
            if let [rec] = knowing.as_slice() {
                return Ok((*rec).clone());
            }
        }
        match all.as_slice() {
            [rec] => Ok(rec.clone()),
            [] => Err(AppError::NoInstanceChosen(
                "no saved instance: add one with `comfy-monitor instances add`, or give --url"
                    .into(),
            )),
            many => Err(AppError::NoInstanceChosen(format!(
                "{} saved instances ({}): name one with --instance NAME, or give --url",
                many.len(),
                many.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The engine's view of a saved instance, its secrets read from the keyring.
    pub fn spec(&self, rec: &InstanceRecord) -> Result<InstanceSpec, AppError> {
        let mut spec = InstanceSpec::new(&rec.name, &rec.base_url)?;
        spec.client_id = rec.client_id.clone();
        spec.accept_invalid_certs = rec.accept_invalid_certs;
        spec.certificate_sha256 = rec.certificate_sha256;
        spec.enabled = rec.enabled;
        spec.use_companion = rec.use_companion;
        spec.auth = if rec.secret_slots.is_empty() {
            auth_from(&rec.auth, |slot| {
                Err(AppError::MissingSecret {
                    instance: rec.name.clone(),
                    slot: slot.to_owned(),
                })
            })?
        } else {
            self.with_secrets(|s| {
                auth_from(&rec.auth, |slot| {
                    s.get(&secret_ref(rec.id, slot))?
                        .map(Secret::new)
                        .ok_or_else(|| AppError::MissingSecret {
                            instance: rec.name.clone(),
                            slot: slot.to_owned(),
                        })
                })
            })?
        };
        Ok(spec)
    }

    /// The secret slots of an instance that have a value stored (`token`, `password`,
    /// `header:<name>`); never the values.
    pub fn secrets_set(&self, rec: &InstanceRecord) -> Vec<String> {
        if rec.secret_slots.is_empty() {
            return Vec::new();
        }
        self.with_secrets(|s| {
            Ok(rec
                .secret_slots
                .iter()
                .filter(|slot| matches!(s.get(&slot.secret_ref), Ok(Some(_))))
                .map(|slot| slot.slot.clone())
                .collect())
        })
        .unwrap_or_default()
    }

    /// A stored secret of a saved instance, for checking settings before they are saved.
    /// Only for the server it was entered for: see [`Profile::secrets_go_to`].
    pub fn stored_secret(&self, id: InstanceId, slot: &str) -> Result<Option<String>, AppError> {
        self.with_secrets(|s| Ok(s.get(&secret_ref(id, slot))?))
    }

    /// Whether the stored secrets of the saved instance `id` may be sent to `url`: only when it
    /// is the same server (scheme, host and port) as the saved one. A secret is never sent to
    /// a changed address without being entered again, so a typo or a tampered form cannot
    /// hand it to another host.
    pub fn secrets_go_to(&self, id: InstanceId, url: &str) -> bool {
        self.instance(id)
            .is_ok_and(|rec| same_server(&rec.base_url, url))
    }

    /// Applies the journal's retention: old jobs and event-log lines are deleted. Runs as rows
    /// are written; every host runs it once more at start, in case it was off for months.
    pub fn prune_journal(&self, now: i64) -> Result<usize, AppError> {
        let mut journal = self.journal();
        let store = journal.store_mut();
        Ok(store.prune_jobs(now)? + store.prune_events(now)?)
    }

    /// Sets or (with `None`) removes an instance's own webhook, checked first (see
    /// [`crate::webhooks::parse_target`]).
    pub fn set_webhook(&self, id: InstanceId, target: Option<&str>) -> Result<(), AppError> {
        let target = target.map(str::trim);
        if let Some(t) = target {
            crate::webhooks::parse_target(t, None).map_err(AppError::InvalidInput)?;
        }
        Ok(self
            .journal()
            .store_mut()
            .set_instance_webhook(id, target)?)
    }

    /// Every instance's own webhook, by id.
    pub fn webhooks(&self) -> Result<Vec<(InstanceId, String)>, AppError> {
        Ok(self.journal().store().instance_webhooks()?)
    }

    /// Saves a new instance with the secrets its auth needs (by slot). A secret left out is
    /// refused before anything is saved; if the secrets cannot be written, the instance is
    /// taken back out.
    pub fn add_instance(
        &self,
        new: &NewInstance,
        secrets: &BTreeMap<String, String>,
        now: i64,
    ) -> Result<InstanceRecord, AppError> {
        if let Some(slot) = new
            .auth
            .secret_slots()
            .into_iter()
            .find(|slot| secrets.get(slot).is_none_or(|v| v.is_empty()))
        {
            return Err(AppError::SecretRequired { slot });
        }
        let rec = self.journal().store_mut().insert_instance(new, now)?;
        if let Err(e) = self.write_secrets(&rec, secrets) {
            // Without its secrets the instance is useless.
            let _ = self.journal().store_mut().delete_instance(rec.id);
            return Err(e);
        }
        Ok(rec)
    }

    /// Saves changes to an instance. Every slot the (new) auth needs must have a value, given
    /// here or already stored; given values are written, and the secrets of slots the instance
    /// no longer has are deleted. When the address moves to another server (scheme, host or
    /// port), stored secrets do not count: each one the auth needs must be given again.
    pub fn update_instance(
        &self,
        id: InstanceId,
        update: &InstanceUpdate,
        secrets: &BTreeMap<String, String>,
        now: i64,
    ) -> Result<InstanceRecord, AppError> {
        let old = self.instance(id)?;
        let moved = update
            .base_url
            .as_deref()
            .is_some_and(|url| !same_server(&old.base_url, url));
        if update.auth.is_some() || moved {
            let auth = update.auth.as_ref().unwrap_or(&old.auth);
            for slot in auth.secret_slots() {
                if secrets.get(&slot).is_some_and(|v| !v.is_empty()) {
                    continue;
                }
                if moved {
                    return Err(secret_needed_again(&slot));
                }
                if self.stored_secret(id, &slot)?.is_none() {
                    return Err(AppError::SecretRequired { slot });
                }
            }
        }
        let rec = self
            .journal()
            .store_mut()
            .update_instance(id, update, now)?;
        self.write_secrets(&rec, secrets)?;
        let gone: Vec<&SecretSlot> = old
            .secret_slots
            .iter()
            .filter(|s| !rec.secret_slots.iter().any(|n| n.slot == s.slot))
            .collect();
        self.delete_secrets(&gone)?;
        Ok(rec)
    }

    /// Forgets an instance, with its journal and its secrets.
    pub fn remove_instance(&self, id: InstanceId) -> Result<InstanceRecord, AppError> {
        let removed = self
            .journal()
            .store_mut()
            .delete_instance(id)
            .map_err(|e| match e {
                comfy_store::StoreError::NotFound { .. } => AppError::UnknownInstance(id),
                other => other.into(),
            })?;
        self.delete_secrets(&removed.secret_slots.iter().collect::<Vec<_>>())?;
        Ok(removed)
    }

    /// Writes the given secrets of the record's slots; values for slots it does not have are
    /// ignored.
    fn write_secrets(
        &self,
        rec: &InstanceRecord,
        given: &BTreeMap<String, String>,
    ) -> Result<(), AppError> {
        let wanted: Vec<_> = rec
            .secret_slots
            .iter()
            .filter_map(|slot| {
                given
                    .get(&slot.slot)
                    .filter(|v| !v.is_empty())
                    .map(|v| (&slot.secret_ref, v))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        self.with_secrets(|s| {
            for (r, v) in wanted {
                s.set(r, v)?;
            }
            Ok(())
        })
    }

    fn delete_secrets(&self, slots: &[&SecretSlot]) -> Result<(), AppError> {
        if slots.is_empty() {
            return Ok(());
        }
        self.with_secrets(|s| {
            for slot in slots {
                s.delete(&slot.secret_ref)?;
            }
            Ok(())
        })
    }
}

/// The engine's auth for saved settings, each secret slot (`token`, `password`,
/// `header:<lowercase name>`) read through `get`.
pub fn auth_from(
    auth: &AuthSettings,
    get: impl Fn(&str) -> Result<Secret, AppError>,
) -> Result<Auth, AppError> {
    Ok(match auth {
        AuthSettings::None => Auth::None,
        AuthSettings::Bearer => Auth::Bearer(get("token")?),
        AuthSettings::QueryToken => Auth::QueryToken(get("token")?),
        AuthSettings::Basic { user } => Auth::Basic {
            user: user.clone(),
            password: get("password")?,
        },
        AuthSettings::Headers { names } => Auth::Headers(
            names
                .iter()
                .map(|n| {
                    Ok((
                        n.clone(),
                        get(&format!("header:{}", n.to_ascii_lowercase()))?,
                    ))
                })
                .collect::<Result<_, AppError>>()?,
        ),
    })
}

/// Whether two instance addresses name the same server: the same scheme, host and port (a
/// default port written out or not). An address that does not parse names no server.
fn same_server(a: &str, b: &str) -> bool {
    use comfy_engine::instance::parse_base_url;
    match (parse_base_url(a), parse_base_url(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// The refusal to send a stored secret to a server other than the one it was entered for.
pub(crate) fn secret_needed_again(slot: &str) -> AppError {
    AppError::InvalidInput(format!(
        "the address now points to another server (its scheme, host or port changed), so the \
         {} must be entered again: stored credentials are only sent to the server they were \
         entered for",
        slot_label(slot)
    ))
}

/// A secret slot as people say it: `token`, `password`, `value of header X-Key`.
pub fn slot_label(slot: &str) -> String {
    match slot.strip_prefix("header:") {
        Some(h) => format!("value of header {h}"),
        None => slot.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::Auth;

    /// A profile in a fresh database, its secrets in a file (never the user's keyring), and a
    /// second handle on that file to look at it from outside.
    fn profile() -> (tempfile::TempDir, Profile, Secrets) {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("secrets").join("secrets.json");
        let profile = Profile::open_with_secrets_file(&dir.path().join("profile.db"), &secrets)
            .expect("profile");
        let outside = Secrets::file_only(&secrets).expect("secrets file");
        (dir, profile, outside)
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn bearer(name: &str) -> NewInstance {
        let mut new = NewInstance::new(name, "http://127.0.0.1:8188/");
        new.auth = AuthSettings::Bearer;
        new
    }

    #[test]
    fn adding_an_instance_without_a_secret_its_auth_needs_is_refused_and_saves_nothing() {
        let (_dir, profile, _) = profile();
        let before = profile.instances().expect("instances");
        for secrets in [given(&[]), given(&[("token", "")])] {
            let err = profile
                .add_instance(&bearer("gpu"), &secrets, 1)
                .expect_err("refused");
            assert!(
                matches!(&err, AppError::SecretRequired { slot } if slot == "token"),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "the token is required");
        }
        assert_eq!(profile.instances().expect("instances"), before);
    }

    #[test]
    fn an_added_instance_keeps_its_secret_outside_the_database_and_its_spec_reads_it_back() {
        let (_dir, profile, outside) = profile();
        let rec = profile
            .add_instance(&bearer("gpu"), &given(&[("token", "t0ps3cret")]), 1)
            .expect("added");
        assert_eq!(
            outside.get(&secret_ref(rec.id, "token")).expect("read"),
            Some("t0ps3cret".to_owned())
        );
        assert_eq!(profile.secrets_set(&rec), vec!["token".to_owned()]);
        let spec = profile.spec(&rec).expect("spec");
        assert_eq!(spec.auth, Auth::Bearer(Secret::new("t0ps3cret")));
        assert_eq!(spec.client_id, rec.client_id);
    }

    #[test]
    fn a_saved_instance_whose_secret_is_gone_names_the_slot_and_how_to_set_it_again() {
        let (_dir, profile, outside) = profile();
        let rec = profile
            .add_instance(&bearer("gpu"), &given(&[("token", "t")]), 1)
            .expect("added");
        outside
            .delete(&secret_ref(rec.id, "token"))
            .expect("deleted");
        let err = profile.spec(&rec).expect_err("no secret");
        assert_eq!(
            err.to_string(),
            "the token of gpu is missing from the keyring; set it again in the instance \
             settings or with `comfy-monitor instances edit gpu`"
        );
    }

    #[test]
    fn editing_an_instance_writes_the_new_secrets_and_deletes_those_of_slots_it_no_longer_has() {
        let (_dir, profile, outside) = profile();
        let mut new = NewInstance::new("gw", "http://127.0.0.1:8188/");
        new.auth = AuthSettings::Headers {
            names: vec!["X-Key".into(), "X-Other".into()],
        };
        let rec = profile
            .add_instance(
                &new,
                &given(&[("header:x-key", "k1"), ("header:x-other", "o1")]),
                1,
            )
            .expect("added");
        let update = InstanceUpdate {
            auth: Some(AuthSettings::Headers {
                names: vec!["X-Key".into()],
            }),
            ..InstanceUpdate::default()
        };
        // The slot kept needs no new value: the stored one does.
        let rec = profile
            .update_instance(rec.id, &update, &given(&[]), 2)
            .expect("updated");
        assert_eq!(
            outside
                .get(&secret_ref(rec.id, "header:x-key"))
                .expect("read"),
            Some("k1".to_owned())
        );
        assert_eq!(
            outside
                .get(&secret_ref(rec.id, "header:x-other"))
                .expect("read"),
            None
        );
        let update = InstanceUpdate {
            auth: Some(AuthSettings::Bearer),
            ..InstanceUpdate::default()
        };
        let rec = profile
            .update_instance(rec.id, &update, &given(&[("token", "t2")]), 3)
            .expect("updated");
        assert_eq!(
            outside.get(&secret_ref(rec.id, "token")).expect("read"),
            Some("t2".to_owned())
        );
        assert_eq!(
            outside
                .get(&secret_ref(rec.id, "header:x-key"))
                .expect("read"),
            None
        );
        assert_eq!(rec.auth, AuthSettings::Bearer);
    }

    #[test]
    fn editing_to_an_auth_whose_secret_is_neither_given_nor_stored_is_refused_and_changes_nothing()
    {
        let (_dir, profile, _) = profile();
        let rec = profile
            .add_instance(
                &NewInstance::new("plain", "http://127.0.0.1:8188/"),
                &given(&[]),
                1,
            )
            .expect("added");
        let update = InstanceUpdate {
            auth: Some(AuthSettings::Basic { user: "me".into() }),
            ..InstanceUpdate::default()
        };
        let err = profile
            .update_instance(rec.id, &update, &given(&[]), 2)
            .expect_err("refused");
        assert!(
            matches!(&err, AppError::SecretRequired { slot } if slot == "password"),
            "{err:?}"
        );
        assert_eq!(profile.instance(rec.id).expect("still there"), rec);
    }

    #[test]
    fn moving_an_instance_to_another_server_needs_its_secrets_entered_again() {
        let (_dir, profile, outside) = profile();
        let rec = profile
            .add_instance(&bearer("gpu"), &given(&[("token", "t0ps3cret")]), 1)
            .expect("added");
        for elsewhere in [
            "http://attacker.example:8188/",
            "http://127.0.0.1:8189/",
            "https://127.0.0.1:8188/",
        ] {
            let update = InstanceUpdate {
                base_url: Some(elsewhere.into()),
                ..InstanceUpdate::default()
            };
            let err = profile
                .update_instance(rec.id, &update, &given(&[]), 2)
                .expect_err("the stored token must not follow the address");
            assert!(
                matches!(&err, AppError::InvalidInput(m) if m.contains("token must be entered again")),
                "{elsewhere}: {err:?}"
            );
            assert_eq!(profile.instance(rec.id).expect("unchanged"), rec);
        }
        // The same server under another path keeps its token.
        let update = InstanceUpdate {
            base_url: Some("http://127.0.0.1:8188/comfy/".into()),
            ..InstanceUpdate::default()
        };
        let moved_path = profile
            .update_instance(rec.id, &update, &given(&[]), 3)
            .expect("same server");
        assert_eq!(
            profile.spec(&moved_path).expect("spec").auth,
            Auth::Bearer(Secret::new("t0ps3cret"))
        );
        // Entered again, it goes to the new server.
        let update = InstanceUpdate {
            base_url: Some("http://gpu.example:8188/".into()),
            ..InstanceUpdate::default()
        };
        let moved = profile
            .update_instance(rec.id, &update, &given(&[("token", "n3w")]), 4)
            .expect("moved with its token entered again");
        assert_eq!(moved.base_url, "http://gpu.example:8188/");
        assert_eq!(
            outside.get(&secret_ref(rec.id, "token")).expect("read"),
            Some("n3w".to_owned())
        );
    }

    #[test]
    fn stored_secrets_go_only_to_the_server_they_were_entered_for() {
        let (_dir, profile, _) = profile();
        let rec = profile
            .add_instance(&bearer("gpu"), &given(&[("token", "t")]), 1)
            .expect("added");
        assert!(profile.secrets_go_to(rec.id, "http://127.0.0.1:8188"));
        assert!(profile.secrets_go_to(rec.id, "127.0.0.1:8188/other/path"));
        assert!(!profile.secrets_go_to(rec.id, "http://127.0.0.1:80/"));
        assert!(!profile.secrets_go_to(rec.id, "https://127.0.0.1:8188/"));
        assert!(!profile.secrets_go_to(rec.id, "http://localhost:8188/"));
        assert!(!profile.secrets_go_to(rec.id, "not a url at all"));
        assert!(!profile.secrets_go_to(InstanceId(999), "http://127.0.0.1:8188"));
        assert!(same_server("http://h/", "http://h:80/"));
        assert!(same_server(
            "https://H.example/",
            "https://h.example:443/x/"
        ));
    }

    #[tokio::test]
    async fn test_connection_sends_stored_secrets_only_to_the_saved_server() {
        use std::io::{Read, Write};
        let (_dir, profile, _) = profile();
        // A server that records the head of the one request it gets.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn
                .write_all(b"HTTP/1.1 500 No\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            String::from_utf8_lossy(&head).to_ascii_lowercase()
        });
        let mut new = NewInstance::new("gpu", format!("http://127.0.0.1:{port}/"));
        new.auth = AuthSettings::Bearer;
        let rec = profile
            .add_instance(&new, &given(&[("token", "st0red")]), 1)
            .expect("added");
        let typed = given(&[]);
        fn candidate<'a>(
            url: &'a str,
            typed: &'a BTreeMap<String, String>,
            saved: InstanceId,
        ) -> crate::check::Candidate<'a> {
            crate::check::Candidate {
                name: "gpu",
                url,
                auth: &AuthSettings::Bearer,
                accept_invalid_certs: false,
                certificate_sha256: None,
                secrets: typed,
                saved: Some(saved),
            }
        }

        // Another host (the same listener under another name): refused before any request.
        let moved = format!("http://localhost:{port}/");
        let err = crate::check::test_connection(Some(&profile), candidate(&moved, &typed, rec.id))
            .await
            .expect_err("a stored token never goes to another server");
        assert!(
            err.to_string().contains("token must be entered again"),
            "{err}"
        );

        // The saved server: the stored token goes with the test.
        let same = format!("http://127.0.0.1:{port}/");
        crate::check::test_connection(Some(&profile), candidate(&same, &typed, rec.id))
            .await
            .expect("tested");
        let head = server.join().expect("server");
        assert!(head.contains("authorization: bearer st0red"), "{head}");
    }

    #[test]
    fn the_spec_uses_the_companion_as_the_instance_says() {
        let (_dir, profile, _) = profile();
        let on = profile
            .instance_named("Local")
            .expect("a new profile has Local");
        assert!(profile.spec(&on).expect("spec").use_companion);
        let off = profile
            .add_instance(
                &NewInstance {
                    use_companion: false,
                    ..NewInstance::new("plain", "http://127.0.0.1:8189/")
                },
                &given(&[]),
                1,
            )
            .expect("added");
        assert!(!profile.spec(&off).expect("spec").use_companion);
        let update = InstanceUpdate {
            use_companion: Some(true),
            ..InstanceUpdate::default()
        };
        let back_on = profile
            .update_instance(off.id, &update, &given(&[]), 2)
            .expect("updated");
        assert!(profile.spec(&back_on).expect("spec").use_companion);
    }

    #[test]
    fn removing_an_instance_deletes_its_secrets() {
        let (_dir, profile, outside) = profile();
        let rec = profile
            .add_instance(&bearer("gpu"), &given(&[("token", "t")]), 1)
            .expect("added");
        let removed = profile.remove_instance(rec.id).expect("removed");
        assert_eq!(removed.id, rec.id);
        assert_eq!(
            outside.get(&secret_ref(rec.id, "token")).expect("read"),
            None
        );
        assert!(matches!(
            profile.instance(rec.id),
            Err(AppError::UnknownInstance(id)) if id == rec.id
        ));
        assert!(matches!(
            profile.remove_instance(rec.id),
            Err(AppError::UnknownInstance(_))
        ));
    }

    #[test]
    fn an_unknown_instance_name_is_told_with_the_names_there_are() {
        let (_dir, profile, _) = profile();
        profile
            .add_instance(
                &NewInstance::new("second", "http://127.0.0.1:8189/"),
                &given(&[]),
                1,
            )
            .expect("added");
        assert_eq!(
            profile
                .instance_named("x")
                .expect_err("unknown")
                .to_string(),
            "no instance named \"x\"; configured: Local, second"
        );
        for rec in profile.instances().expect("instances") {
            profile.remove_instance(rec.id).expect("removed");
        }
        assert_eq!(
            profile
                .instance_named("x")
                .expect_err("unknown")
                .to_string(),
            "no instance named \"x\"; configured: none"
        );
    }

    #[test]
    fn without_a_name_the_instance_whose_journal_has_the_job_is_chosen_else_the_only_one() {
        let (_dir, profile, _) = profile();
        let local = profile
            .instance_named("Local")
            .expect("a new profile has Local");
        assert_eq!(profile.default_instance(None).expect("the only one"), local);
        let second = profile
            .add_instance(
                &NewInstance::new("second", "http://127.0.0.1:8189/"),
                &given(&[]),
                1,
            )
            .expect("added");
        assert_eq!(
            profile.default_instance(None).expect_err("two").to_string(),
            "2 saved instances (Local, second): name one with --instance NAME, or give --url"
        );
        profile
            .journal()
            .record_submitted(
                second.id,
                &comfy_model::PromptId::from("p1"),
                &serde_json::json!({}),
                1,
            )
            .expect("journalled");
        assert_eq!(
            profile.default_instance(Some("p1")).expect("known job"),
            profile.instance(second.id).expect("second")
        );
        assert!(profile.default_instance(Some("unknown")).is_err());
        profile.remove_instance(local.id).expect("removed");
        profile.remove_instance(second.id).expect("removed");
        assert_eq!(
            profile
                .default_instance(None)
                .expect_err("none")
                .to_string(),
            "no saved instance: add one with `comfy-monitor instances add`, or give --url"
        );
    }
}
