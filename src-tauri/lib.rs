//! The desktop app. This file only assembles the Tauri builder; every part lives in `shell/`.

mod shell;

pub use shell::Options;
use std::process::ExitCode;

/// Opens the desktop app and runs it until it quits.
pub fn run(options: Options) -> ExitCode {
    shell::init_logging();
    // Before WebKit reads its environment, and before any thread.
    let rendering = shell::rendering::apply(options.db.as_deref());
    let app = tauri::Builder::default()
        .manage(rendering)
        // First, so a second launch hands over before anything else starts: it only brings the
        // running app's window back.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            shell::window::show_main(app);
        }))
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::SIZE
                        | tauri_plugin_window_state::StateFlags::POSITION
                        | tauri_plugin_window_state::StateFlags::MAXIMIZED,
                )
                .build(),
        )
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--minimised"]),
        ))
        .plugin(shell::tray::init())
        .register_asynchronous_uri_scheme_protocol(shell::media::SCHEME, shell::media::handle)
        .invoke_handler(tauri::generate_handler![
            shell::commands::get_snapshot,
            shell::commands::batch_shown,
            shell::visibility::view_visibility,
            shell::commands::refresh_instance,
            shell::commands::submit_workflow,
            shell::commands::read_prompt,
            shell::commands::get_job_summary,
            shell::commands::open_in_comfyui,
            shell::commands::resubmit_job,
            shell::commands::cancel_job,
            shell::commands::clear_queue,
            shell::commands::get_history,
            shell::commands::get_event_log,
            shell::commands::save_output,
            shell::commands::open_folder,
            shell::saving::saving_status,
            shell::saving::default_output_folder,
            shell::saving::gallery,
            shell::saving::open_job_folder,
            shell::saving::open_instance_folder,
            shell::settings::list_instances,
            shell::settings::add_instance,
            shell::settings::update_instance,
            shell::settings::remove_instance,
            shell::settings::test_connection,
            shell::preferences::get_app_settings,
            shell::preferences::set_app_settings,
            shell::preferences::get_rendering,
            shell::preferences::restart_app,
        ])
        .setup(move |app| shell::start(app, &options))
        .on_window_event(shell::window::on_window_event)
        .build(context());
    match app {
        Ok(app) => {
            let code = app.run_return(shell::on_run_event);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(error) => {
            tracing::error!(%error, "could not start the desktop app");
            ExitCode::FAILURE
        }
    }
}

/// The context tauri-build generated from `tauri.conf.json`, the capabilities and `ui/dist`.
#[allow(clippy::unwrap_used)] // in the generated code, on values checked at build time
fn context() -> tauri::Context<tauri::Wry> {
    tauri::tauri_build_context!()
}
