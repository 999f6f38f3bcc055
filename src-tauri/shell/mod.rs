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
pub mod host;
pub mod media;
pub mod notify;
pub mod overview;
pub mod preferences;
pub mod settings;
mod stats;
mod throttle;
pub mod tray;
pub mod view;
pub mod window;

use comfy_engine::{Engine, DEFAULT_EVENT_CAPACITY};
use events::Update;
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
        host::lock(&self.0)
    }
}

/// The app's state, managed by Tauri for the commands.
pub type SharedHost = Arc<host::Host>;

/// How long quitting waits for sockets to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only when a subscriber is already installed, which is as good.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Sends one update to the webview; a failure is logged and the app goes on.
pub fn emit<R: Runtime>(app: &AppHandle<R>, update: &Update) {
    if let Err(error) = update.emit(app) {
        tracing::warn!(%error, event = update.name(), "could not emit to the webview");
    }
}

/// Opens the database, starts monitoring the saved instances and forwarding their events.
pub fn start(app: &mut App) -> Result<(), Box<dyn std::error::Error>> {
    let options = comfy_cli::app_options();
    let (engine, events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    let host: SharedHost = Arc::new(host::Host::open(engine, options.db.as_deref()));
    app.manage(host.clone());
    app.manage(host.monitor.clone());
    app.manage(media::SharedThumbnails::default());

    let prefs = preferences::load(app.handle(), &host);
    if !(options.minimised || prefs.start_minimised) {
        window::show_main(app.handle());
    }
    let (deliver, actions) = notifier();
    let monitor = notify::spawn(
        app.handle().clone(),
        host.clone(),
        deliver,
        actions,
        host.notification_settings(prefs.notify_only_when_unfocused),
    );
    *host::lock(&host.monitor.0) = Some(monitor);

    provision(&host);
    let handle = app.handle().clone();
    // Starting an instance spawns its supervisor, so it must run inside the runtime.
    tauri::async_runtime::block_on(host.start_all(&|u| emit(&handle, &u)));

    let recorder = forward::Recorder::new(host.open_journal(), host.routes.clone());
    let (shown, shown_rx) = tokio::sync::watch::channel(0);
    app.manage(commands::ProgressShown(shown));
    let handle = app.handle().clone();
    let monitor = host.monitor.clone();
    tauri::async_runtime::spawn(forward::forward(
        events,
        shown_rx,
        host.overview.clone(),
        host.previews.clone(),
        recorder,
        move |event| monitor.observe(event),
        move |update| emit(&handle, &update),
    ));
    let handle = app.handle().clone();
    tauri::async_runtime::spawn(poll_stats(host, handle));
    Ok(())
}

/// Desktop notifications over D-Bus where there is one (Linux, BSD); elsewhere they are only
/// logged for now.
fn notifier() -> (
    Arc<dyn comfy_notify::Deliver>,
    Option<tokio::sync::mpsc::Receiver<comfy_notify::ActionInvoked>>,
) {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let (n, actions) = comfy_notify::DesktopNotifier::new("Comfy Monitor");
        (
            Arc::new(n.with_desktop_entry("comfy-monitor")),
            Some(actions),
        )
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        (Arc::new(comfy_notify::Recorder::default()), None)
    }
}

/// Saves the instances listed in `COMFY_MONITOR_INSTANCES` that are not saved yet.
fn provision(host: &host::Host) {
    let listed = config::instances(std::env::var(config::INSTANCES_VAR).ok().as_deref());
    for entry in listed {
        let saved = host.with_journal(|j| {
            if j.store().instance_by_name(&entry.name).is_ok() {
                return Ok(());
            }
            let url = comfy_engine::instance::parse_base_url(&entry.url)
                .map_err(error::CommandError::internal)?;
            let new = comfy_store::NewInstance::new(entry.name.clone(), url.to_string());
            j.store_mut()
                .insert_instance(&new, comfy_engine::now_ms())?;
            Ok(())
        });
        if let Err(error) = saved {
            tracing::warn!(name = %entry.name, %error, "{}: not saved", config::INSTANCES_VAR);
        }
    }
}

/// Reads RAM and VRAM of connected instances, as often as [`stats::StatsSchedule`] says.
async fn poll_stats<R: Runtime>(host: SharedHost, app: AppHandle<R>) {
    let mut schedule = stats::StatsSchedule::default();
    let mut tick = tokio::time::interval(stats::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let running = host.running();
        let due = {
            let overview = host.overview.lock();
            let seen = running.iter().filter_map(|(name, _)| {
                let view = overview.instance(name)?;
                Some(stats::Seen {
                    name,
                    connected: view.status.state == view::ConnectionStateView::Connected,
                    busy: view.queue.running + view.queue.pending > 0,
                })
            });
            schedule.due(seen, std::time::Instant::now())
        };
        for (name, id) in running.iter().filter(|(name, _)| due.contains(name)) {
            let stats = match host.engine().await {
                Ok(engine) => engine.system_stats(*id).await,
                Err(_) => return,
            };
            let Ok(stats) = stats else { continue };
            let update = host
                .overview
                .lock()
                .set_stats(name, view::StatsView::from(&stats));
            if let Some(update) = update {
                emit(&app, &update);
            }
        }
    }
}

/// Shuts the engine down when the app exits, so servers see clean socket closes.
pub fn on_run_event<R: Runtime>(app: &AppHandle<R>, event: RunEvent) {
    if let RunEvent::Exit = event {
        let Some(host) = app.try_state::<SharedHost>() else {
            return;
        };
        if let Some(engine) = host.take_engine() {
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
