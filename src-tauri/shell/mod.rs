//! The desktop shell: hosts the engine inside Tauri and projects its events onto the webview.
//!
//! The shell owns no monitoring logic (connections and job tracking live in `comfy-engine`). It
//! keeps an [`overview::Overview`] fed by the engine's events so the UI can load or reload at any
//! time, forwards each change as a typed event, and exposes a few thin commands. Preview image
//! bytes never travel through here as JSON.

#[cfg(test)]
mod bindings;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
mod forward;
pub mod overview;
mod throttle;
pub mod tray;
pub mod view;
pub mod window;

use comfy_engine::{Engine, InstanceSpec, DEFAULT_EVENT_CAPACITY};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tauri::{App, AppHandle, Manager, RunEvent, Runtime};

/// The overview shared by the event task (writer) and the commands (readers).
#[derive(Clone, Default)]
pub struct SharedOverview(Arc<Mutex<overview::Overview>>);

impl SharedOverview {
    /// Locks the overview. A panic elsewhere while holding the lock leaves a value that is still
    /// a valid picture, so poisoning is ignored rather than taking the UI down with it.
    pub fn lock(&self) -> MutexGuard<'_, overview::Overview> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The engine, until the app quits and shuts it down.
pub struct EngineSlot(pub tokio::sync::Mutex<Option<Engine>>);

/// How long quitting waits for sockets to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only when a subscriber is already installed, which is as good.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Creates the engine with the configured instances and starts forwarding its events.
pub fn start(app: &mut App) -> Result<(), Box<dyn std::error::Error>> {
    let (mut engine, events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    let shared = SharedOverview::default();

    let env = std::env::var(config::INSTANCES_VAR).ok();
    let entries = config::instances(env.as_deref());
    // `add_instance` spawns the instance's supervisor, so it must run inside the runtime.
    tauri::async_runtime::block_on(async {
        for entry in entries {
            let spec = match InstanceSpec::new(entry.name.clone(), &entry.url) {
                Ok(spec) => spec,
                Err(error) => {
                    tracing::warn!(name = %entry.name, %error, "skipping instance");
                    continue;
                }
            };
            let url = spec.base_url.to_string();
            match engine.add_instance(spec) {
                Ok(id) => {
                    let status = engine.status(id).map(|rx| rx.borrow().clone());
                    shared
                        .lock()
                        .add_instance(&entry.name, &url, status.as_ref());
                }
                Err(error) => tracing::warn!(name = %entry.name, %error, "skipping instance"),
            }
        }
    });

    app.manage(shared.clone());
    app.manage(EngineSlot(tokio::sync::Mutex::new(Some(engine))));

    let handle = app.handle().clone();
    tauri::async_runtime::spawn(forward::forward(events, shared, move |update| {
        if let Err(error) = update.emit(&handle) {
            tracing::warn!(%error, event = update.name(), "could not emit to the webview");
        }
    }));
    Ok(())
}

/// Shuts the engine down when the app exits, so servers see clean socket closes.
pub fn on_run_event<R: Runtime>(app: &AppHandle<R>, event: RunEvent) {
    if let RunEvent::Exit = event {
        let Some(slot) = app.try_state::<EngineSlot>() else {
            return;
        };
        let engine = slot.0.try_lock().ok().and_then(|mut slot| slot.take());
        if let Some(engine) = engine {
            tauri::async_runtime::block_on(async {
                if tokio::time::timeout(SHUTDOWN_GRACE, engine.shutdown())
                    .await
                    .is_err()
                {
                    tracing::warn!("engine did not stop in time");
                }
            });
        }
    }
}
