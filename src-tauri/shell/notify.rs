//! The tray monitor and desktop notifications: engine events in, the tray icon, tooltip and menu
//! repainted, notifications delivered. The decisions live in `comfy-notify` (pure, tested with
//! explicit time); this task only owns the clock and puts the results on screen.

use crate::shell::bus::{Control, Monitor};
use crate::shell::events::{emit, CancelConfirmationRequested, ShowRequested, Update};
use crate::shell::state::AppState;
use crate::shell::tasks::OwnedTask;
use crate::shell::{tray, window};
use comfy_engine::{Event, JobOrigin};
use comfy_model::InstanceId;
use comfy_notify::{
    render_icon, ActionInvoked, Deliver, Notification, Policy, RepaintGate, Settings, TimeZone,
    TrayModel,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tauri::{AppHandle, Manager, Runtime};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// Side of the tray icon drawn, in pixels.
const ICON_SIDE: u32 = 32;

/// Starts the monitor task: its inboxes, and the handle that stops it.
pub fn spawn<R: Runtime>(
    app: AppHandle<R>,
    deliver: Arc<dyn Deliver>,
    actions: Option<mpsc::Receiver<ActionInvoked>>,
    settings: Settings,
) -> (Monitor, OwnedTask) {
    let (events_tx, events) = mpsc::unbounded_channel();
    let (control_tx, control) = mpsc::unbounded_channel();
    let task = Task {
        app,
        deliver,
        policy: Policy::new(settings),
        tray: TrayModel::new(local_zone()),
        gate: RepaintGate::default(),
        menu: None,
        names: HashMap::new(),
    };
    let owned = OwnedTask::spawn(task.run(events, control, actions));
    (
        Monitor {
            events: events_tx,
            control: control_tx,
        },
        owned,
    )
}

/// The notification policy and the tray model name instances (they speak to people); the rest
/// of the shell names them by id. The monitor keeps the one mapping.
struct Task<R: Runtime> {
    app: AppHandle<R>,
    names: HashMap<InstanceId, String>,
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
            } => {
                if let Some(name) = self.names.get(&instance) {
                    self.policy.cancelled_by_us(name, &prompt_id);
                }
            }
            Control::JobLabel {
                instance,
                prompt_id,
                label,
            } => {
                if let Some(name) = self.names.get(&instance) {
                    self.policy.set_job_label(name, &prompt_id, &label);
                }
            }
            Control::Instance { id, name, prefs } => {
                if let Some(old) = self.names.insert(id, name.clone()) {
                    if old != name {
                        self.policy.forget_instance(&old);
                        self.tray.forget_instance(&old);
                    }
                }
                self.policy.set_instance_settings(&name, prefs);
            }
            Control::Forget(id) => {
                if let Some(name) = self.names.remove(&id) {
                    self.policy.forget_instance(&name);
                    self.tray.forget_instance(&name);
                }
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
        let Some(id) = self.id_of(instance) else {
            return;
        };
        if origin != JobOrigin::SelfApp {
            window::show_main(&self.app);
            emit(
                &self.app,
                &Update::CancelConfirmationRequested(CancelConfirmationRequested {
                    instance_id: id,
                    prompt_id,
                }),
            );
            return;
        }
        self.policy.cancelled_by_us(instance, &prompt_id);
        let Some(engine) = self.app.try_state::<AppState>().map(|s| s.engine.clone()) else {
            return;
        };
        let instance = instance.to_owned();
        tauri::async_runtime::spawn(async move {
            if let Err(error) = engine.cancel(id, &prompt_id).await {
                tracing::warn!(%instance, %error, "cancel from the tray failed");
            }
        });
    }

    /// The id of an instance the policy or the tray names.
    fn id_of(&self, name: &str) -> Option<InstanceId> {
        self.names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
    }

    /// Whether an instance saves its outputs into a folder.
    fn saves_outputs(&self, name: &str) -> bool {
        let Some(id) = self.id_of(name) else {
            return false;
        };
        self.app
            .try_state::<AppState>()
            .and_then(|state| state.profile().ok()?.instance(id).ok())
            .is_some_and(|rec| rec.saving.folder.is_some())
    }

    fn on_action(&mut self, click: ActionInvoked) {
        match click.action {
            comfy_notify::Action::Show {
                instance,
                prompt_id,
            } => {
                self.tray.mark_seen();
                window::show_main(&self.app);
                emit(
                    &self.app,
                    &Update::ShowRequested(ShowRequested {
                        instance_id: instance.and_then(|name| self.id_of(&name)),
                        prompt_id,
                    }),
                );
            }
            // Offered where the instance saves outputs (see `show`): the saved copy's folder,
            // or the instance's while the file is still being saved.
            comfy_notify::Action::OpenFolder { instance, file } => {
                let folder = self.id_of(&instance).and_then(|id| {
                    let state = self.app.try_state::<AppState>()?;
                    crate::shell::saving::file_folder(state.profile().ok()?, id, &file)
                });
                match folder {
                    Some(folder) => {
                        if let Err(e) = crate::shell::commands::open_externally(folder.as_os_str())
                        {
                            tracing::warn!(error = %e.message, "the folder could not be opened");
                        }
                    }
                    None => tracing::info!(%instance, "no saved folder to open"),
                }
            }
        }
    }

    /// Delivers one notification off the loop, with its thumbnail fetched through the engine.
    fn show(&self, mut n: Notification) {
        // "Open folder" only where the instance saves the file into a folder.
        n.actions.retain(|a| match a {
            comfy_notify::Action::OpenFolder { instance, file } => {
                file.kind == "output" && self.saves_outputs(instance)
            }
            comfy_notify::Action::Show { .. } => true,
        });
        n.sound = self.policy.wants_sound(&n);
        let deliver = self.deliver.clone();
        let image_of = n.image.as_ref().and_then(|r| {
            let engine = self.app.try_state::<AppState>()?.engine.clone();
            Some((engine, self.id_of(&r.instance)?, r.file.clone()))
        });
        tauri::async_runtime::spawn(async move {
            let image = match image_of {
                Some((engine, id, file)) => thumbnail(&engine, id, &file).await,
                None => None,
            };
            if let Err(error) = deliver.deliver(n, image).await {
                tracing::warn!(%error, "notification not shown");
            }
        });
    }

    fn repaint(&mut self) {
        let now = Instant::now().into_std();
        // Told every time: a pause from the menu shows at once, and one for an hour ends on its
        // own (the loop wakes then, at the policy's deadline).
        self.tray.set_paused(self.policy.paused(now).is_some());
        let state = self.tray.state();
        let repaint = self.gate.check(&state, now);
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
        }
        if repaint.tooltip || repaint.menu {
            let shape = tray::MenuShape::new(&state, &self.tray);
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

/// The zone the tray tells "queue done ≈ 14:32" in; without one, it tells UTC and says so.
fn local_zone() -> Option<TimeZone> {
    match TimeZone::try_system() {
        Ok(zone) => Some(zone),
        Err(error) => {
            tracing::info!(%error, "no local time zone found; the tray tells times in UTC");
            None
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
    engine: &comfy_engine::Engine,
    id: InstanceId,
    file: &comfy_model::OutputFile,
) -> Option<image::RgbaImage> {
    let bytes = engine.view_output(id, file).await.ok()?;
    tokio::task::spawn_blocking(move || comfy_notify::notification_image(&bytes).ok())
        .await
        .ok()
        .flatten()
}
