//! The app's state: the saved instances (SQLite), their secrets (keyring), the engine that
//! watches them, and the overview the webview reads.
//!
//! Instances come from the store; every change made in the settings is saved first and then
//! applied to the engine by restarting that one instance, so what runs is always what is saved.
//! Unfinished journal entries are handed to the engine when an instance starts, so jobs that
//! finished while the app was closed get their real outcome and vanished ones become `lost`.

use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::events::Update;
use crate::shell::media::Previews;
use crate::shell::SharedOverview;
use comfy_cli::profile::{spec_from, Profile};
use comfy_engine::journal::Journal;
use comfy_engine::{ConnectionState, ConnectionStatus, Engine, InstanceId};
use comfy_secrets::Secrets;
use comfy_store::{InstanceRecord, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the event task needs to know of a running instance, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub store_id: comfy_store::InstanceId,
    pub preview_fps_cap: u32,
}

/// Instance name → route, shared by the host (writer) and the event task (reader).
#[derive(Clone, Default)]
pub struct Routes(Arc<Mutex<HashMap<String, Route>>>);

impl Routes {
    pub fn get(&self, name: &str) -> Option<Route> {
        lock(&self.0).get(name).copied()
    }

    pub(crate) fn set(&self, name: &str, route: Route) {
        lock(&self.0).insert(name.to_owned(), route);
    }

    fn remove(&self, name: &str) {
        lock(&self.0).remove(name);
    }
}

/// Locks a std mutex, ignoring poisoning: every value guarded here stays valid after a panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Running {
    engine_id: InstanceId,
    name: String,
}

pub struct Host {
    /// The journal over the settings store; `Err` keeps why the database could not be opened,
    /// so every command that needs it can say so.
    journal: Mutex<Result<Journal, String>>,
    db_path: Option<PathBuf>,
    secrets_path: PathBuf,
    secrets: Mutex<Option<Secrets>>,
    /// Things the user must be told once (the secrets fallback, a database that cannot open).
    notices: Mutex<Vec<String>>,
    engine: tokio::sync::RwLock<Option<Engine>>,
    running: Mutex<HashMap<i64, Running>>,
    pub routes: Routes,
    pub overview: SharedOverview,
    pub previews: Previews,
    /// The tray and notification task, once it runs.
    pub monitor: crate::shell::notify::MonitorSlot,
}

impl Host {
    /// Opens the profile (`db`, else `COMFY_MONITOR_DB`, else the platform's data dir). A
    /// database that cannot be opened does not stop the app: it runs with no instances and says
    /// why.
    pub fn open(engine: Engine, db: Option<&std::path::Path>) -> Self {
        let (journal, db_path, secrets_path, notices) = match Profile::open(db) {
            Ok(p) => {
                let db = p.store.path().to_path_buf();
                (
                    Ok(Journal::new(p.store)),
                    Some(db),
                    p.secrets_path,
                    Vec::new(),
                )
            }
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(error = %why, "the database could not be opened");
                (
                    Err(why.clone()),
                    None,
                    PathBuf::from("secrets.json"),
                    vec![why],
                )
            }
        };
        Self {
            journal: Mutex::new(journal),
            db_path,
            secrets_path,
            secrets: Mutex::new(None),
            notices: Mutex::new(notices),
            engine: tokio::sync::RwLock::new(Some(engine)),
            running: Mutex::new(HashMap::new()),
            routes: Routes::default(),
            overview: SharedOverview::default(),
            previews: Previews::default(),
            monitor: crate::shell::notify::MonitorSlot::default(),
        }
    }

    /// A second connection to the database, for the event task's journal.
    pub fn open_journal(&self) -> Option<Journal> {
        let path = self.db_path.as_ref()?;
        match Store::open(path) {
            Ok(store) => Some(Journal::new(store)),
            Err(error) => {
                tracing::error!(%error, "the journal could not open the database");
                self.notice(error.to_string());
                None
            }
        }
    }

    pub fn notice(&self, text: String) {
        let mut notices = lock(&self.notices);
        if !notices.contains(&text) {
            notices.push(text);
        }
    }

    pub fn notices(&self) -> Vec<String> {
        lock(&self.notices).clone()
    }

    /// Runs `f` on the journal (and its store), or says why the database is unavailable.
    pub fn with_journal<T>(
        &self,
        f: impl FnOnce(&mut Journal) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let mut guard = lock(&self.journal);
        match guard.as_mut() {
            Ok(journal) => f(journal),
            Err(why) => Err(CommandError::new(ErrorCode::Storage, why.clone())),
        }
    }

    /// Runs `f` with the secret store, opening it (and noting the fallback) the first time.
    pub fn with_secrets<T>(
        &self,
        f: impl FnOnce(&Secrets) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let mut guard = lock(&self.secrets);
        if guard.is_none() {
            let (secrets, opened) = Secrets::open(&self.secrets_path)?;
            if let Some(notice) = opened.notice() {
                self.notice(notice);
            }
            *guard = Some(secrets);
        }
        match guard.as_ref() {
            Some(secrets) => f(secrets),
            None => Err(CommandError::new(ErrorCode::Secrets, "no secret store")),
        }
    }

    /// The engine, for a command that only reads it (many may run at once).
    pub async fn engine(&self) -> Result<tokio::sync::RwLockReadGuard<'_, Engine>, CommandError> {
        let guard = self.engine.read().await;
        tokio::sync::RwLockReadGuard::try_map(guard, Option::as_ref)
            .map_err(|_| CommandError::shutting_down())
    }

    /// Takes the engine out for shutdown.
    pub fn take_engine(&self) -> Option<Engine> {
        self.engine.try_write().ok().and_then(|mut e| e.take())
    }

    /// The engine's id of a running instance, by name.
    pub fn engine_id(&self, name: &str) -> Result<InstanceId, CommandError> {
        lock(&self.running)
            .values()
            .find(|r| r.name == name)
            .map(|r| r.engine_id)
            .ok_or_else(|| CommandError::unknown_instance(name))
    }

    /// The saved instance with this name.
    pub fn record(&self, name: &str) -> Result<InstanceRecord, CommandError> {
        self.with_journal(|j| {
            j.store()
                .instance_by_name(name)
                .map_err(|_| CommandError::unknown_instance(name))
        })
    }

    /// Starts every saved instance. Called once, inside the runtime.
    pub async fn start_all(&self, emit: &(dyn Fn(Update) + Send + Sync)) {
        // Retention runs as rows are written; once more at start, in case limits changed or the
        // app was off for months.
        let now = comfy_engine::now_ms();
        if let Err(e) = self.with_journal(|j| {
            let store = j.store_mut();
            Ok(store.prune_jobs(now)? + store.prune_events(now)?)
        }) {
            tracing::warn!(error = %e, "the journal could not be pruned");
        }
        let records = match self.with_journal(|j| Ok(j.store().instances()?)) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the saved instances");
                return;
            }
        };
        for rec in records {
            self.start(&rec, emit).await;
        }
    }

    /// Starts monitoring one saved instance (replacing it if it runs), resuming its unfinished
    /// journal entries. An instance whose secrets cannot be read is shown with the reason.
    pub async fn start(&self, rec: &InstanceRecord, emit: &(dyn Fn(Update) + Send + Sync)) {
        self.stop(rec.id.0, emit).await;
        self.monitor
            .control(crate::shell::notify::Control::Instance {
                name: rec.name.clone(),
                settings: crate::shell::notify::instance_settings(&rec.notifications),
            });
        let spec = if rec.secret_slots.is_empty() {
            spec_from(rec, None).map_err(|e| format!("{e:#}"))
        } else {
            self.with_secrets(|s| spec_from(rec, Some(s)).map_err(CommandError::internal))
                .map_err(|e| e.message)
        };
        let restored = self
            .with_journal(|j| Ok(j.restored_jobs(rec.id, &rec.client_id)?))
            .unwrap_or_else(|e| {
                tracing::warn!(instance = %rec.name, error = %e, "unfinished jobs not restored");
                Vec::new()
            });
        let mut engine = self.engine.write().await;
        let Some(engine) = engine.as_mut() else {
            return;
        };
        let started = spec.and_then(|spec| {
            engine
                .add_instance_with(spec, restored)
                .map_err(|e| e.to_string())
        });
        let update = match started {
            Ok(engine_id) => {
                let status = engine.status(engine_id).map(|rx| rx.borrow().clone());
                lock(&self.running).insert(
                    rec.id.0,
                    Running {
                        engine_id,
                        name: rec.name.clone(),
                    },
                );
                self.routes.set(
                    &rec.name,
                    Route {
                        store_id: rec.id,
                        preview_fps_cap: rec.preview_fps_cap,
                    },
                );
                self.overview.lock().add_instance(
                    rec.id.0,
                    &rec.name,
                    &rec.base_url,
                    rec.enabled,
                    status.as_ref(),
                )
            }
            Err(why) => {
                tracing::warn!(instance = %rec.name, %why, "not monitoring");
                let status = ConnectionStatus {
                    state: ConnectionState::AuthFailed,
                    detail: why,
                    retry_in_ms: None,
                };
                self.overview.lock().add_instance(
                    rec.id.0,
                    &rec.name,
                    &rec.base_url,
                    rec.enabled,
                    Some(&status),
                )
            }
        };
        emit(update);
    }

    /// Stops monitoring one instance and forgets it in the overview.
    pub async fn stop(&self, store_id: i64, emit: &(dyn Fn(Update) + Send + Sync)) {
        let running = lock(&self.running).remove(&store_id);
        if let Some(running) = running {
            self.routes.remove(&running.name);
            self.previews.forget(&running.name);
            self.monitor
                .control(crate::shell::notify::Control::Forget(running.name.clone()));
            if let Some(engine) = self.engine.write().await.as_mut() {
                let _ = engine.remove_instance(running.engine_id).await;
            }
        }
        let update = self.overview.lock().remove_instance(store_id);
        if let Some(update) = update {
            emit(update);
        }
    }

    /// The notification settings of every saved instance, by name.
    pub fn notification_settings(&self, only_when_unfocused: bool) -> comfy_notify::Settings {
        let instances = self
            .with_journal(|j| Ok(j.store().instances()?))
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    crate::shell::notify::instance_settings(&r.notifications),
                )
            })
            .collect();
        comfy_notify::Settings {
            only_when_unfocused,
            instances,
        }
    }

    /// Name and engine id of every running instance.
    pub fn running(&self) -> Vec<(String, InstanceId)> {
        lock(&self.running)
            .values()
            .map(|r| (r.name.clone(), r.engine_id))
            .collect()
    }
}
