//! The app's state, managed by Tauri for the commands: the profile (saved instances, secrets,
//! journal), the engine handle, the overview the webview reads, the latest preview frames, the
//! monitor's bus, and the background tasks it owns.
//!
//! Instances come from the profile; every change made in the settings is saved first and then
//! applied to the engine by restarting that one instance, so what runs is always what is saved.
//! Unfinished journal entries are handed to the engine when an instance starts, so jobs that
//! finished while the app was closed get their real outcome and vanished ones become `lost`.
//! An instance is named by one id everywhere: the store's.

use crate::shell::bus::{Bus, Control};
use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::events::Update;
use crate::shell::overview::SharedOverview;
use crate::shell::previews::Previews;
use crate::shell::tasks::OwnedTask;
use comfy_app::Profile;
use comfy_engine::{ConnectionState, ConnectionStatus, Engine};
use comfy_model::InstanceId;
use comfy_store::InstanceRecord;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value guarded here stays valid after a panic elsewhere.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct AppState {
    /// The profile; `Err` keeps why the database could not be opened, so every command that
    /// needs it can say so.
    profile: Result<Profile, String>,
    pub engine: Engine,
    pub overview: SharedOverview,
    pub previews: Previews,
    pub bus: Bus,
    /// Things the user must be told (the secrets fallback, a database that cannot open).
    notices: Mutex<Vec<String>>,
    /// The event task, the stats poll and the monitor: stopped when the state goes.
    tasks: Mutex<Vec<OwnedTask>>,
    /// Held while an instance is stopped and started again, so two quick edits cannot
    /// interleave and leave the engine running other settings than the saved ones.
    restarts: tokio::sync::Mutex<()>,
    /// Instances that could not start because the OS keyring holding their credentials could
    /// not be reached (locked at login, say): started again by [`AppState::retry_keyring`].
    waiting_for_keyring: Mutex<std::collections::BTreeSet<InstanceId>>,
}

/// Whether `e` means the OS keyring could not be reached (and may answer later), rather than
/// a credential missing or refused.
fn keyring_unreachable(e: &comfy_app::AppError) -> bool {
    matches!(
        e,
        comfy_app::AppError::Secrets(comfy_secrets::SecretsError::KeyringUnreachable(_))
    )
}

impl AppState {
    /// Opens the profile (`db`, else `COMFY_MONITOR_DB`, else the platform's data dir). A
    /// database that cannot be opened does not stop the app: it runs with no instances and says
    /// why.
    pub fn open(engine: Engine, db: Option<&Path>) -> Self {
        let (profile, notices) = match Profile::open(db) {
            Ok(p) => (Ok(p), Vec::new()),
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, "the database could not be opened");
                (Err(why.clone()), vec![why])
            }
        };
        Self {
            profile,
            engine,
            overview: SharedOverview::default(),
            previews: Previews::default(),
            bus: Bus::default(),
            notices: Mutex::new(notices),
            tasks: Mutex::new(Vec::new()),
            restarts: tokio::sync::Mutex::new(()),
            waiting_for_keyring: Mutex::new(Default::default()),
        }
    }

    /// The profile, or why the database is unavailable.
    pub fn profile(&self) -> Result<&Profile, CommandError> {
        self.profile
            .as_ref()
            .map_err(|why| CommandError::new(ErrorCode::Storage, why.clone()))
    }

    /// Keeps a background task running for as long as the app state lives.
    pub fn own(&self, task: OwnedTask) {
        lock(&self.tasks).push(task);
    }

    /// Stops every background task.
    pub fn stop_tasks(&self) {
        lock(&self.tasks).clear();
    }

    pub fn notice(&self, text: String) {
        let mut notices = lock(&self.notices);
        if !notices.contains(&text) {
            notices.push(text);
        }
    }

    /// Everything the user must be told, including what the profile learned since.
    pub fn notices(&self) -> Vec<String> {
        if let Ok(p) = &self.profile {
            for n in p.take_notices() {
                self.notice(n);
            }
        }
        lock(&self.notices).clone()
    }

    /// Starts every saved instance. Called once, inside the runtime.
    pub async fn start_all(&self, emit: &(dyn Fn(Update) + Send + Sync)) {
        let Ok(profile) = self.profile() else { return };
        // Retention runs as rows are written; once more at start, in case limits changed or the
        // app was off for months.
        if let Err(e) = profile.prune_journal(comfy_engine::now_ms()) {
            tracing::warn!(error = %e, "the journal could not be pruned");
        }
        let records = match profile.instances() {
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
        let _one_at_a_time = self.restarts.lock().await;
        self.stop_running(rec.id, emit).await;
        self.bus.control(Control::Instance {
            id: rec.id,
            name: rec.name.clone(),
            prefs: rec.notifications,
        });
        let mut for_keyring = false;
        let started = self
            .profile()
            .map_err(|e| e.message)
            .and_then(|profile| {
                let spec = profile.spec(rec).map_err(|e| {
                    for_keyring = keyring_unreachable(&e);
                    e.to_string()
                })?;
                let restored = profile
                    .journal()
                    .restore(rec.id, &rec.client_id)
                    .unwrap_or_else(|e| {
                        tracing::warn!(instance = %rec.name, error = %e, "unfinished jobs and timing not restored");
                        Default::default()
                    });
                self.engine
                    .add_saved(rec.id, spec, restored)
                    .map_err(|e| e.to_string())
            });
        if for_keyring {
            lock(&self.waiting_for_keyring).insert(rec.id);
        } else {
            lock(&self.waiting_for_keyring).remove(&rec.id);
        }
        let status = match started {
            Ok(()) => {
                self.previews.set_cap(rec.id, rec.preview_fps_cap);
                self.engine.status(rec.id).map(|rx| rx.borrow().clone())
            }
            Err(why) => {
                tracing::warn!(instance = %rec.name, %why, "not monitoring");
                Some(ConnectionStatus {
                    state: ConnectionState::AuthFailed,
                    detail: why,
                    retry_in_ms: for_keyring.then(|| {
                        u64::try_from(comfy_secrets::KEYRING_RETRY.as_millis()).unwrap_or(u64::MAX)
                    }),
                })
            }
        };
        let update = self.overview.lock().add_instance(
            rec.id,
            &rec.name,
            &rec.base_url,
            rec.enabled,
            rec.use_companion,
            status.as_ref(),
        );
        emit(update);
    }

    /// Starts again, every [`comfy_secrets::KEYRING_RETRY`], each saved instance that could
    /// not start because the keyring holding its credentials could not be reached (at login
    /// the keyring may unlock after the app started). Runs for as long as the app.
    pub async fn retry_keyring(&self, emit: &(dyn Fn(Update) + Send + Sync)) {
        loop {
            tokio::time::sleep(comfy_secrets::KEYRING_RETRY).await;
            let waiting: Vec<InstanceId> =
                lock(&self.waiting_for_keyring).iter().copied().collect();
            for id in waiting {
                // Still saved, as saved now (it may have been edited or removed meanwhile).
                match self.profile().map(|p| p.instance(id)) {
                    Ok(Ok(rec)) => self.start(&rec, emit).await,
                    _ => {
                        lock(&self.waiting_for_keyring).remove(&id);
                    }
                }
            }
        }
    }

    /// Stops monitoring one instance and forgets it in the overview.
    pub async fn stop(&self, id: InstanceId, emit: &(dyn Fn(Update) + Send + Sync)) {
        let _one_at_a_time = self.restarts.lock().await;
        self.stop_running(id, emit).await;
    }

    async fn stop_running(&self, id: InstanceId, emit: &(dyn Fn(Update) + Send + Sync)) {
        if self.engine.remove_instance(id).await.is_ok() {
            self.previews.forget(id);
            self.bus.control(Control::Forget(id));
        }
        let update = self.overview.lock().remove_instance(id);
        if let Some(update) = update {
            emit(update);
        }
    }

    /// The notification settings of every saved instance, by name (the policy's key).
    pub fn notification_settings(&self, only_when_unfocused: bool) -> comfy_notify::Settings {
        let instances = self
            .profile()
            .ok()
            .and_then(|p| p.instances().ok())
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.name, r.notifications))
            .collect();
        comfy_notify::Settings {
            only_when_unfocused,
            instances,
        }
    }
}
