//! Generates the Tauri context (config, embedded `ui/dist`, ACL) at build time, so a rebuilt UI
//! is picked up by the next `cargo build` without touching Rust sources.

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "get_snapshot",
        "batch_shown",
        "view_visibility",
        "refresh_instance",
        "submit_workflow",
        "read_prompt",
        "get_job_summary",
        "open_in_comfyui",
        "resubmit_job",
        "cancel_job",
        "clear_queue",
        "get_history",
        "get_event_log",
        "save_output",
        "open_folder",
        "saving_status",
        "default_output_folder",
        "gallery",
        "open_job_folder",
        "open_instance_folder",
        "list_instances",
        "add_instance",
        "update_instance",
        "remove_instance",
        "test_connection",
        "get_app_settings",
        "set_app_settings",
        "get_rendering",
        "restart_app",
    ]);
    let attributes = tauri_build::Attributes::new()
        .app_manifest(manifest)
        .codegen(tauri_build::CodegenContext::new());
    if let Err(error) = tauri_build::try_build(attributes) {
        // Build scripts report failures by panicking; the message names the broken file.
        panic!("tauri-build failed: {error:#}");
    }
}
