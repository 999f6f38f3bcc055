//! The tray icon and its menu. Shaped as a plugin so the builder only has to
//! `.plugin(tray::init())`; the monitor task (`notify.rs`) repaints the icon, the tooltip and
//! the menu as jobs run.
//!
//! Left click shows or hides the window on Windows and macOS. On Linux the icon is a
//! status-notifier item (libayatana-appindicator), which gets no clicks and carries no
//! tooltip: a host opens the menu on either click, and the menu's first lines say what the
//! tooltip would (proven on xfce4-panel by `tests/e2e/tray.test.mjs`). The menu has one line
//! per instance (state and current job percent) and, while it is known, "Queue done ≈ 14:32",
//! "Cancel current job" per running instance, pausing notifications, the dashboard and Quit.
//! Where no status-notifier host exists the tray is simply absent: the window
//! stays reachable and closing it still only hides it.

use crate::shell::bus::{self, Control};
use crate::shell::window;
use comfy_notify::{TrayModel, TrayState};
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::plugin::{Builder, TauriPlugin};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};

pub const TRAY_ID: &str = "main";

/// A menu item's meaning, from its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuChoice {
    Show,
    Quit,
    PauseHour,
    PauseIndefinitely,
    Resume,
    Cancel(String),
}

const SHOW: &str = "show";
const QUIT: &str = "quit";
const PAUSE_HOUR: &str = "pause-hour";
const PAUSE: &str = "pause";
const RESUME: &str = "resume";
const CANCEL: &str = "cancel:";
const LINE: &str = "line:";

impl MenuChoice {
    pub fn parse(id: &str) -> Option<Self> {
        Some(match id {
            SHOW => Self::Show,
            QUIT => Self::Quit,
            PAUSE_HOUR => Self::PauseHour,
            PAUSE => Self::PauseIndefinitely,
            RESUME => Self::Resume,
            _ => Self::Cancel(id.strip_prefix(CANCEL)?.to_owned()),
        })
    }
}

/// What the menu shows. The menu is rebuilt only when its structure changes (see
/// [`MenuShape::same_structure`]); a new percent or a later "queue done" only changes a line's
/// text, so the menu does not flicker (or close under the pointer) at every progress step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuShape {
    /// The informational lines ([`TrayState::lines`]): one per instance, "Local — running 47%",
    /// then "Queue done ≈ 14:32" while known.
    pub lines: Vec<String>,
    /// Instances with a running job: (name, whose job it is).
    pub cancellable: Vec<(String, bool)>,
    pub paused: bool,
}

impl MenuShape {
    /// The menu for the tray's state (`tray.state()`, its lines and pause) and its instances.
    pub fn new(state: &TrayState, tray: &TrayModel) -> Self {
        Self {
            lines: state.lines.clone(),
            cancellable: tray
                .instances()
                .filter_map(|i| {
                    i.current_job()
                        .map(|j| (i.name.clone(), j.origin == comfy_engine::JobOrigin::SelfApp))
                })
                .collect(),
            paused: state.paused,
        }
    }
}

impl MenuShape {
    pub fn same_structure(&self, other: &Self) -> bool {
        self.lines.len() == other.lines.len()
            && self.cancellable == other.cancellable
            && self.paused == other.paused
    }
}

/// Updates the informational lines of a menu built for a shape of the same structure.
pub fn update_lines<R: Runtime>(menu: &Menu<R>, old: &MenuShape, new: &MenuShape) {
    for (i, (was, now)) in old.lines.iter().zip(&new.lines).enumerate() {
        if was == now {
            continue;
        }
        if let Some(item) = menu.get(&format!("{LINE}{i}")) {
            if let Some(item) = item.as_menuitem() {
                if let Err(error) = item.set_text(now) {
                    tracing::debug!(%error, "tray menu line not updated");
                }
            }
        }
    }
}

/// The tray menu for a shape.
pub fn build_menu<R: Runtime>(app: &AppHandle<R>, shape: &MenuShape) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    for (i, line) in shape.lines.iter().enumerate() {
        menu.append(&MenuItem::with_id(
            app,
            format!("{LINE}{i}"),
            line,
            false,
            None::<&str>,
        )?)?;
    }
    if !shape.lines.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
    }
    for (name, ours) in &shape.cancellable {
        let label = if *ours {
            format!("Cancel current job on {name}")
        } else {
            format!("Cancel current job on {name} (another client's)…")
        };
        menu.append(&MenuItem::with_id(
            app,
            format!("{CANCEL}{name}"),
            label,
            true,
            None::<&str>,
        )?)?;
    }
    if !shape.cancellable.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
    }
    if shape.paused {
        menu.append(&MenuItem::with_id(
            app,
            RESUME,
            "Resume notifications",
            true,
            None::<&str>,
        )?)?;
    } else {
        menu.append(&MenuItem::with_id(
            app,
            PAUSE_HOUR,
            "Pause notifications for 1 hour",
            true,
            None::<&str>,
        )?)?;
        menu.append(&MenuItem::with_id(
            app,
            PAUSE,
            "Pause notifications until resumed",
            true,
            None::<&str>,
        )?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        SHOW,
        "Open dashboard",
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?)?;
    Ok(menu)
}

pub fn init<R: Runtime>() -> TauriPlugin<R> {
    Builder::new("monitor-tray")
        .setup(|app, _api| {
            if let Err(error) = install(app) {
                // Without a tray the window still works; closing it then only hides it.
                tracing::warn!(%error, "no tray icon");
            }
            Ok(())
        })
        .build()
}

fn install<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let shape = MenuShape {
        lines: Vec::new(),
        cancellable: Vec::new(),
        paused: false,
    };
    let menu = build_menu(app, &shape)?;
    let icon = comfy_notify::render_icon(comfy_notify::IconState::Idle, None, 32);
    let (w, h) = icon.dimensions();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(tauri::image::Image::new_owned(icon.into_raw(), w, h))
        .tooltip("Comfy Monitor")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match MenuChoice::parse(event.id().as_ref()) {
            // Quit and Show work even before the monitor runs.
            Some(MenuChoice::Quit) => app.exit(0),
            Some(MenuChoice::Show) => {
                window::show_main(app);
                if let Some(m) = bus::of(app) {
                    m.control(Control::MarkSeen);
                }
            }
            Some(_) => {
                if let Some(m) = bus::of(app) {
                    m.control(Control::Menu(event.id().as_ref().to_owned()));
                }
            }
            None => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                window::toggle_main(tray.app_handle());
            }
        })
        .build(app)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(lines: &[&str], paused: bool) -> MenuShape {
        MenuShape {
            lines: lines.iter().map(|&l| l.to_owned()).collect(),
            cancellable: vec![("Local".into(), true)],
            paused,
        }
    }

    #[test]
    fn a_later_queue_end_changes_only_a_lines_text_and_its_coming_or_going_rebuilds() {
        let running = shape(&["Local — running 40%", "Queue done ≈ 14:32"], false);
        let later = shape(&["Local — running 41%", "Queue done ≈ 14:45"], false);
        assert!(running.same_structure(&later));
        let unknown = shape(&["Local — running 41%"], false);
        assert!(!running.same_structure(&unknown));
    }

    #[test]
    fn pausing_or_resuming_rebuilds_the_menu() {
        let idle = shape(&["Local — idle"], false);
        assert!(!idle.same_structure(&shape(&["Local — idle"], true)));
    }

    #[test]
    fn the_shape_follows_the_trays_state() {
        let mut tray = TrayModel::default();
        tray.set_paused(true);
        let s = MenuShape::new(&tray.state(), &tray);
        assert_eq!(
            s,
            MenuShape {
                lines: Vec::new(),
                cancellable: Vec::new(),
                paused: true
            }
        );
    }

    #[test]
    fn menu_ids_round_trip() {
        assert_eq!(MenuChoice::parse("show"), Some(MenuChoice::Show));
        assert_eq!(MenuChoice::parse("pause-hour"), Some(MenuChoice::PauseHour));
        assert_eq!(
            MenuChoice::parse("cancel:GPU box"),
            Some(MenuChoice::Cancel("GPU box".into()))
        );
        assert_eq!(MenuChoice::parse("line:0"), None);
        assert_eq!(MenuChoice::parse("nonsense"), None);
    }
}
