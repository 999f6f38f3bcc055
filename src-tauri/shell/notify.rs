//! The tray monitor and desktop notifications: engine events in, the tray icon, tooltip and menu
//! repainted, notifications delivered. The decisions live in `comfy-notify` (pure, tested with
//! explicit time); this task only owns the clock and puts the results on screen.

use crate::shell::events::{CancelConfirmationRequested, ShowRequested, Update};
use crate::shell::host::lock;
use crate::shell::{tray, window, SharedHost};
use comfy_engine::{Event, EventKind, JobOrigin};
use comfy_notify::{
    render_icon, ActionInvoked, Deliver, InstanceSettings, Notification, Policy, RepaintGate,
    Settings, TrayModel,
};
use comfy_protocol::PromptId;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::{AppHandle, Manager, Runtime};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// Side of the tray icon drawn, in pixels.
const ICON_SIDE: u32 = 32;

/// What the rest of the shell tells the monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// The main window gained or lost the focus.
    Focused(bool),
    /// This app is about to cancel the job: its interruption is ours, not news.
    CancelledByUs {
        instance: String,
        prompt_id: PromptId,
    },
    /// An instance's notification switches (on start and on every edit).
    Instance {
        name: String,
        settings: InstanceSettings,
    },
    Forget(String),
    OnlyWhenUnfocused(bool),
    /// The user looked at the dashboard: failures are no longer unseen.
    MarkSeen,
    /// A tray menu item was chosen.
    Menu(String),
}

/// The monitor's inboxes. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct Monitor {
    events: mpsc::UnboundedSender<Event>,
    control: mpsc::UnboundedSender<Control>,
}

impl Monitor {
    /// Hands an engine event over. Previews and node text change nothing here and are not sent.
    pub fn observe(&self, event: &Event) {
        if matches!(event.kind, EventKind::Preview(_) | EventKind::Text { .. }) {
            return;
        }
        let _ = self.events.send(event.clone());
    }

    pub fn control(&self, control: Control) {
        let _ = self.control.send(control);
    }
}

/// The shared monitor, once it runs (the tray plugin's callbacks reach it through the app).
#[derive(Clone, Default)]
pub struct MonitorSlot(pub Arc<Mutex<Option<Monitor>>>);

impl MonitorSlot {
    pub fn control(&self, control: Control) {
        if let Some(m) = lock(&self.0).as_ref() {
            m.control(control);
        }
    }

    pub fn observe(&self, event: &Event) {
        if let Some(m) = lock(&self.0).as_ref() {
            m.observe(event);
        }
    }
}

/// The notification switches of a saved instance, in the policy's terms.
pub fn instance_settings(prefs: &comfy_store::NotificationPrefs) -> InstanceSettings {
    InstanceSettings {
        job_done: prefs.job_done,
        job_failed: prefs.job_failed,
        job_interrupted: prefs.job_interrupted_by_other,
        queue_drained: prefs.queue_drained,
        disconnected: prefs.disconnected,
        auth_failed: prefs.auth_rejected,
        other_clients: prefs.other_clients_jobs,
    }
}

/// Starts the monitor task.
pub fn spawn<R: Runtime>(
    app: AppHandle<R>,
    host: SharedHost,
    deliver: Arc<dyn Deliver>,
    actions: Option<mpsc::Receiver<ActionInvoked>>,
    settings: Settings,
) -> Monitor {
    let (events_tx, events) = mpsc::unbounded_channel();
    let (control_tx, control) = mpsc::unbounded_channel();
    let task = Task {
        app,
        host,
        deliver,
        policy: Policy::new(settings),
        tray: TrayModel::default(),
        gate: RepaintGate::default(),
        menu: None,
    };
    tauri::async_runtime::spawn(task.run(events, control, actions));
    Monitor {
        events: events_tx,
        control: control_tx,
    }
}

struct Task<R: Runtime> {
    app: AppHandle<R>,
    host: SharedHost,
    deliver: Arc<dyn Deliver>,
    policy: Policy,
    tray: TrayModel,
    gate: RepaintGate,
    /// The tray menu and what it shows.
    menu: Option<(tray::MenuShape, tauri::menu::Menu<R>)>,
}

impl<R: Runtime> Task<R> {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut actions: Option<mpsc::Receiver<ActionInvoked>>,
    ) {
        loop {
            let deadline = [self.policy.next_deadline(), self.gate.retry_at()]
                .into_iter()
                .flatten()
                .min();
            let shown = tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break };
                    self.tray.apply(&event);
                    self.policy.apply(&event, Instant::now().into_std())
                }
                Some(c) = control.recv() => self.on_control(c).await,
                Some(click) = next_action(&mut actions) => {
                    self.on_action(click);
                    Vec::new()
                }
                () = sleep_until(deadline.map_or_else(Instant::now, Instant::from_std)), if deadline.is_some() => {
                    self.policy.tick(Instant::now().into_std())
                }
            };
            for n in shown {
                self.show(n);
            }
            self.repaint();
        }
    }

    async fn on_control(&mut self, control: Control) -> Vec<Notification> {
        let now = Instant::now().into_std();
        match control {
            Control::Focused(focused) => {
                if focused {
                    self.tray.mark_seen();
                }
                return self.policy.set_focused(focused, now);
            }
            Control::CancelledByUs {
                instance,
                prompt_id,
            } => self.policy.cancelled_by_us(&instance, &prompt_id),
            Control::Instance { name, settings } => {
                self.policy.set_instance_settings(&name, settings);
            }
            Control::Forget(name) => {
                self.policy.forget_instance(&name);
                self.tray.forget_instance(&name);
            }
            Control::OnlyWhenUnfocused(on) => {
                let mut settings = self.policy.settings().clone();
                settings.only_when_unfocused = on;
                self.policy.set_settings(settings);
            }
            Control::MarkSeen => self.tray.mark_seen(),
            Control::Menu(id) => self.on_menu(&id).await,
        }
        Vec::new()
    }

    async fn on_menu(&mut self, id: &str) {
        match tray::MenuChoice::parse(id) {
            Some(tray::MenuChoice::Show) => {
                self.tray.mark_seen();
                window::show_main(&self.app);
            }
            Some(tray::MenuChoice::Quit) => self.app.exit(0),
            Some(tray::MenuChoice::PauseHour) => self
                .policy
                .pause(Instant::now().into_std(), Some(Duration::from_secs(3600))),
            Some(tray::MenuChoice::PauseIndefinitely) => {
                self.policy.pause(Instant::now().into_std(), None);
            }
            Some(tray::MenuChoice::Resume) => {
                for n in self.policy.resume(Instant::now().into_std()) {
                    self.show(n);
                }
            }
            Some(tray::MenuChoice::Cancel(instance)) => self.cancel_current(&instance).await,
            None => tracing::debug!(id, "unknown tray menu item"),
        }
    }

    /// "Cancel current job": ours at once; another client's only after the window asks.
    async fn cancel_current(&mut self, instance: &str) {
        let job = self
            .tray
            .instances()
            .find(|i| i.name == instance)
            .and_then(|i| i.current_job())
            .map(|j| (j.prompt_id.clone(), j.origin));
        let Some((prompt_id, origin)) = job else {
            return;
        };
        if origin != JobOrigin::SelfApp {
            window::show_main(&self.app);
            crate::shell::emit(
                &self.app,
                &Update::CancelConfirmationRequested(CancelConfirmationRequested {
                    instance: instance.to_owned(),
                    prompt_id: prompt_id.to_string(),
                }),
            );
            return;
        }
        self.policy.cancelled_by_us(instance, &prompt_id);
        let Ok(id) = self.host.engine_id(instance) else {
            return;
        };
        let host = self.host.clone();
        let instance = instance.to_owned();
        tauri::async_runtime::spawn(async move {
            let result = match host.engine().await {
                Ok(engine) => engine
                    .cancel(id, &prompt_id)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.message),
            };
            if let Err(error) = result {
                tracing::warn!(%instance, %error, "cancel from the tray failed");
            }
        });
    }

    fn on_action(&mut self, click: ActionInvoked) {
        match click.action {
            comfy_notify::Action::Show {
                instance,
                prompt_id,
            } => {
                self.tray.mark_seen();
                window::show_main(&self.app);
                crate::shell::emit(
                    &self.app,
                    &Update::ShowRequested(ShowRequested {
                        instance,
                        prompt_id: prompt_id.map(|p| p.to_string()),
                    }),
                );
            }
            // Outputs are not downloaded on their own, so no notification offers this (see
            // `show`); a stray click is ignored.
            comfy_notify::Action::OpenFolder { .. } => {}
        }
    }

    /// Delivers one notification off the loop, with its thumbnail fetched through the engine.
    fn show(&self, mut n: Notification) {
        n.actions
            .retain(|a| !matches!(a, comfy_notify::Action::OpenFolder { .. }));
        let deliver = self.deliver.clone();
        let host = self.host.clone();
        tauri::async_runtime::spawn(async move {
            let image = match &n.image {
                Some(r) => thumbnail(&host, &r.instance, &r.file).await,
                None => None,
            };
            if let Err(error) = deliver.deliver(n, image).await {
                tracing::warn!(%error, "notification not shown");
            }
        });
    }

    fn repaint(&mut self) {
        let state = self.tray.state();
        let repaint = self.gate.check(&state, Instant::now().into_std());
        let Some(icon) = self.app.tray_by_id(tray::TRAY_ID) else {
            return;
        };
        if repaint.icon {
            let rgba = render_icon(state.icon, state.percent, ICON_SIDE);
            let (w, h) = rgba.dimensions();
            let image = tauri::image::Image::new_owned(rgba.into_raw(), w, h);
            if let Err(error) = icon.set_icon(Some(image)) {
                tracing::debug!(%error, "tray icon not updated");
            }
        }
        if repaint.tooltip {
            if let Err(error) =
                icon.set_tooltip(Some(format!("Comfy Monitor — {}", state.tooltip())))
            {
                tracing::debug!(%error, "tray tooltip not updated");
            }
            let paused = self.policy.paused(Instant::now().into_std()).is_some();
            let shape = tray::MenuShape::new(&self.tray, paused);
            match &mut self.menu {
                Some((old, menu)) if old.same_structure(&shape) => {
                    tray::update_lines(menu, old, &shape);
                    *old = shape;
                }
                _ => match tray::build_menu(&self.app, &shape) {
                    Ok(menu) => {
                        if let Err(error) = icon.set_menu(Some(menu.clone())) {
                            tracing::debug!(%error, "tray menu not updated");
                        }
                        self.menu = Some((shape, menu));
                    }
                    Err(error) => tracing::debug!(%error, "tray menu not built"),
                },
            }
        }
    }
}

async fn next_action(actions: &mut Option<mpsc::Receiver<ActionInvoked>>) -> Option<ActionInvoked> {
    match actions {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn thumbnail(
    host: &SharedHost,
    instance: &str,
    file: &comfy_protocol::http::OutputFile,
) -> Option<image::RgbaImage> {
    let id = host.engine_id(instance).ok()?;
    let bytes = host.engine().await.ok()?.view_output(id, file).await.ok()?;
    tokio::task::spawn_blocking(move || comfy_notify::notification_image(&bytes).ok())
        .await
        .ok()
        .flatten()
}

/// The monitor, from a Tauri app handle (for window and tray callbacks).
pub fn slot<R: Runtime>(app: &AppHandle<R>) -> Option<MonitorSlot> {
    app.try_state::<MonitorSlot>().map(|s| s.inner().clone())
}
