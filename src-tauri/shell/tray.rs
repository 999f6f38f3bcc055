//! The tray icon: Show brings the window back, Quit stops monitoring and exits. Shaped as a
//! plugin so the builder only has to `.plugin(tray::init())`.

use crate::shell::window;
use tauri::menu::{Menu, MenuItem};
use tauri::plugin::{Builder, TauriPlugin};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};

const SHOW: &str = "show";
const QUIT: &str = "quit";

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
    let show = MenuItem::with_id(app, SHOW, "Show", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut tray = TrayIconBuilder::with_id("main")
        .tooltip("Comfy Monitor")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            SHOW => window::show_main(app),
            QUIT => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                window::show_main(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}
