//! The desktop shell: hosts the engine inside Tauri and projects its events onto the webview.
//!
//! The shell owns no monitoring logic (connections and job tracking live in `comfy-engine`, the
//! use cases in `comfy-app`). It keeps an [`overview::Overview`] fed by the engine's events so
//! the UI can load or reload at any time, forwards each change as a typed event, and exposes a
//! few thin commands. Preview image bytes never travel through here as JSON.
//!
//! Inside the shell, imports only run downwards, with no circle: `state` (the managed state)
//! knows the bus, the overview and the previews; the commands and `media` know `state`;
//! `notify` (the monitor task) knows `state`, `tray` and `window`; `tray` and `window` know only
//! the `bus`; nothing imports this file's items.

mod batcher;
#[cfg(test)]
mod bindings;
pub mod bus;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
mod forward;
pub mod media;
pub mod notify;
pub mod overview;
pub mod preferences;
pub mod previews;
pub mod rendering;
pub mod saving;
pub mod settings;
pub mod state;
mod stats;
mod tasks;
pub mod tray;
pub mod view;
pub mod visibility;
pub mod window;

use comfy_engine::{Engine, DEFAULT_EVENT_CAPACITY};
use events::emit;
use state::AppState;
use std::path::PathBuf;
use std::time::Duration;
use tasks::OwnedTask;
use tauri::{App, AppHandle, Manager, RunEvent, Runtime};

/// How long quitting waits for sockets to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long quitting waits for the event task to write what is queued (job ends, log lines).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The exit's hold on the event task, taken once when the app exits.
struct ForwardExit(std::sync::Mutex<Option<forward::Exit>>);

/// What the desktop app takes from its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The profile's database (else `COMFY_MONITOR_DB`, else the platform's data dir).
    pub db: Option<PathBuf>,
    /// Start hidden, in the tray.
    pub minimised: bool,
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only when a subscriber is already installed, which is as good.
    // Colours only on a terminal: not in a log file or the system journal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// Opens the database, starts monitoring the saved instances and forwarding their events.
pub fn start(app: &mut App, options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let (engine, events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    app.manage(AppState::open(engine, options.db.as_deref()));
    app.manage(media::SharedThumbnails::default());
    let state = app.state::<AppState>();
    app.manage(state.bus.clone());

    let prefs = preferences::load(app.handle(), &state);
    let shown = !(options.minimised || prefs.start_minimised);
    app.manage(visibility::ViewVisibility::new(shown));
    if shown {
        window::show_main(app.handle());
    }
    let (deliver, actions) = notifier(&app.config().identifier);
    let (monitor, task) = notify::spawn(
        app.handle().clone(),
        deliver,
        actions,
        state.notification_settings(prefs.notify_only_when_unfocused),
    );
    state.bus.connect(monitor);
    state.own(task);

    provision(&state);
    let handle = app.handle().clone();
    // Starting an instance spawns its supervisor, so it must run inside the runtime.
    tauri::async_runtime::block_on(state.start_all(&|u| emit(&handle, &u)));

    let journal = match state.profile().map(comfy_app::Profile::second_journal) {
        Ok(Ok(journal)) => Some(journal),
        Ok(Err(error)) => {
            tracing::error!(%error, "the journal could not open the database");
            state.notice(error.to_string());
            None
        }
        Err(_) => None,
    };
    let (shown, shown_rx) = tokio::sync::watch::channel(0);
    app.manage(commands::BatchShown(shown));
    let (changes, changes_rx) = tokio::sync::mpsc::unbounded_channel();
    app.manage(events::ViewChanges(changes));
    let handle = app.handle().clone();
    let bus = state.bus.clone();
    let (exit, exit_signal) = forward::exit_signal();
    app.manage(ForwardExit(std::sync::Mutex::new(Some(exit))));
    let notices = app.handle().clone();
    let saver = saving::start(app.handle(), &state);
    let writer = comfy_app::recorder::JournalWriter::new(journal)
        .with_notices(move |text| {
            if let Some(state) = notices.try_state::<AppState>() {
                state.notice(text);
            }
        })
        .with_outputs_waiting(move || {
            if let Some(saver) = &saver {
                saver.wake();
            }
        });
    let on_screen = app.handle().clone();
    let view = forward::View {
        shown: shown_rx,
        changes: changes_rx,
        on_screen: move || {
            on_screen
                .try_state::<visibility::ViewVisibility>()
                .is_none_or(|v| v.is_visible())
        },
        emit: move |update| events::deliver(&handle, &update),
    };
    state.own(OwnedTask::spawn(forward::forward(
        events,
        view,
        state.overview.clone(),
        state.previews.clone(),
        writer,
        exit_signal,
        move |event| bus.observe(event),
    )));
    state.own(OwnedTask::spawn(poll_stats(app.handle().clone())));
    let keyring = app.handle().clone();
    state.own(OwnedTask::spawn(async move {
        if let Some(state) = keyring.try_state::<AppState>() {
            state.retry_keyring(&|u| emit(&keyring, &u)).await;
        }
    }));
    Ok(())
}

/// The platform's own notifications (`comfy_notify::DesktopNotifier`): over D-Bus on Linux and
/// the BSDs, named by the desktop file so the server groups them under the app; toasts on
/// Windows and the Notification Center on macOS, named by the app's `identifier` (the
/// AppUserModelID Tauri's installers register; the bundle's identifier).
fn notifier(
    identifier: &str,
) -> (
    std::sync::Arc<dyn comfy_notify::Deliver>,
    Option<tokio::sync::mpsc::Receiver<comfy_notify::ActionInvoked>>,
) {
    let (n, actions) = comfy_notify::DesktopNotifier::new("Comfy Monitor");
    #[cfg(all(unix, not(target_os = "macos")))]
    let n = {
        let _ = identifier;
        n.with_desktop_entry("comfy-monitor")
    };
    #[cfg(any(windows, target_os = "macos"))]
    let n = n.with_app_id(identifier);
    (std::sync::Arc::new(n), Some(actions))
}

/// Saves the instances listed in `COMFY_MONITOR_INSTANCES` that are not saved yet.
fn provision(state: &AppState) {
    let Ok(profile) = state.profile() else { return };
    let listed = config::instances(std::env::var(config::INSTANCES_VAR).ok().as_deref());
    for entry in listed {
        if profile.instance_named(&entry.name).is_ok() {
            continue;
        }
        let saved = comfy_engine::instance::parse_base_url(&entry.url)
            .map_err(comfy_app::AppError::from)
            .and_then(|url| {
                let new = comfy_store::NewInstance::new(entry.name.clone(), url.to_string());
                profile.add_instance(&new, &Default::default(), comfy_engine::now_ms())
            });
        if let Err(error) = saved {
            tracing::warn!(name = %entry.name, %error, "{}: not saved", config::INSTANCES_VAR);
        }
    }
}

/// Reads RAM and VRAM of connected instances, as often as [`stats::StatsSchedule`] says.
async fn poll_stats<R: Runtime>(app: AppHandle<R>) {
    let mut schedule = stats::StatsSchedule::default();
    let mut tick = tokio::time::interval(stats::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = app.try_state::<AppState>() else {
            return;
        };
        let due = {
            let overview = state.overview.lock();
            let seen: Vec<stats::Seen> = state
                .engine
                .instances()
                .into_iter()
                .filter_map(|(id, _)| {
                    let view = overview.instance(id)?;
                    Some(stats::Seen {
                        id,
                        connected: view.status.status.state.is_up(),
                        busy: view.queue.running + view.queue.pending > 0,
                    })
                })
                .collect();
            schedule.due(seen, std::time::Instant::now())
        };
        for id in due {
            let Ok(stats) = state.engine.system_stats(id).await else {
                continue;
            };
            let update = state
                .overview
                .lock()
                .set_stats(id, view::StatsView::from(&stats));
            if let Some(update) = update {
                emit(&app, &update);
            }
        }
    }
}

/// Shuts the engine down when the app exits, so servers see clean socket closes, lets the
/// event task write what is queued (job ends, log lines), then stops the background tasks.
pub fn on_run_event<R: Runtime>(app: &AppHandle<R>, event: RunEvent) {
    if let RunEvent::Exit = event {
        let Some(state) = app.try_state::<AppState>() else {
            return;
        };
        let engine = state.engine.clone();
        let exit = app
            .try_state::<ForwardExit>()
            .and_then(|e| e.0.lock().ok()?.take());
        tauri::async_runtime::block_on(async {
            if tokio::time::timeout(SHUTDOWN_GRACE, engine.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("engine did not stop in time");
            }
            if let Some(exit) = exit {
                if !exit.drain(DRAIN_GRACE).await {
                    tracing::warn!("events still queued at exit were not all written in time");
                }
            }
        });
        state.stop_tasks();
    }
}
