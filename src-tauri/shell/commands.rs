//! The commands the webview may invoke. Each takes its arguments, asks the overview or the
//! engine, and maps errors to [`CommandError`]; nothing else.

use crate::shell::error::{CommandError, ErrorCode};
use crate::shell::view::Snapshot;
use crate::shell::{EngineSlot, SharedOverview};
use tauri::State;

/// The current picture of every instance, for a UI that (re)loads.
#[tauri::command]
pub fn get_snapshot(overview: State<'_, SharedOverview>) -> Snapshot {
    overview.lock().snapshot()
}

/// Asks an instance to re-read its queue now.
#[tauri::command]
pub async fn refresh_instance(
    engine: State<'_, EngineSlot>,
    instance: String,
) -> Result<(), CommandError> {
    let slot = engine.0.lock().await;
    let engine = slot
        .as_ref()
        .ok_or_else(|| CommandError::new(ErrorCode::ShuttingDown, "the app is quitting"))?;
    let (id, _) = engine
        .instances()
        .into_iter()
        .find(|(_, name)| *name == instance)
        .ok_or_else(|| CommandError::unknown_instance(&instance))?;
    engine.refresh(id).await?;
    Ok(())
}
