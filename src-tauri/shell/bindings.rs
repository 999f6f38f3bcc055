//! Keeps `ui/src/bindings/` equal to what the Rust types generate.
//!
//! `cargo test` fails when the committed TypeScript drifts from the types here; regenerate with
//! `UPDATE_BINDINGS=1 cargo test -p comfy-monitor --lib bindings`.

use crate::shell::commands::{SavedOutput, SubmitResult};
use crate::shell::error::CommandError;
use crate::shell::events::{
    catalogue, CancelConfirmationRequested, EventLogged, InstanceStatusChanged, InstancesChanged,
    JobUpdated, QueueChanged, ServerInfoChanged, ShowRequested, StatsChanged, ViewChanged,
};
use crate::shell::preferences::AppSettings;
use crate::shell::rendering::RenderingInUse;
use crate::shell::settings::{InstanceInput, InstanceSettings};
use crate::shell::view::{HistoryEntry, LogEntry, Snapshot};
use comfy_model::{CancelOutcome, ConnectionCheck, NotificationPrefs, OutputFile, PreviewMethod};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ts_rs::TS;

const BINDINGS_DIR: &str = "ui/src/bindings";
const EVENTS_FILE: &str = "events.ts";
const DEFAULTS_FILE: &str = "defaults.ts";

fn config(dir: &Path) -> ts_rs::Config {
    // Timestamps and counters fit in a double; the UI wants plain numbers, not bigint.
    ts_rs::Config::new()
        .with_large_int("number")
        .with_out_dir(dir)
}

fn generate(dir: &Path) {
    let cfg = config(dir);
    let results = [
        Snapshot::export_all(&cfg),
        InstanceStatusChanged::export_all(&cfg),
        ServerInfoChanged::export_all(&cfg),
        QueueChanged::export_all(&cfg),
        JobUpdated::export_all(&cfg),
        ViewChanged::export_all(&cfg),
        InstancesChanged::export_all(&cfg),
        StatsChanged::export_all(&cfg),
        EventLogged::export_all(&cfg),
        ShowRequested::export_all(&cfg),
        CancelConfirmationRequested::export_all(&cfg),
        CommandError::export_all(&cfg),
        InstanceSettings::export_all(&cfg),
        InstanceInput::export_all(&cfg),
        ConnectionCheck::export_all(&cfg),
        SubmitResult::export_all(&cfg),
        PreviewMethod::export_all(&cfg),
        CancelOutcome::export_all(&cfg),
        SavedOutput::export_all(&cfg),
        HistoryEntry::export_all(&cfg),
        LogEntry::export_all(&cfg),
        OutputFile::export_all(&cfg),
        AppSettings::export_all(&cfg),
        RenderingInUse::export_all(&cfg),
        NotificationPrefs::export_all(&cfg),
        comfy_model::WorkflowSummary::export_all(&cfg),
        comfy_model::SavingStatus::export_all(&cfg),
        crate::shell::saving::GalleryItem::export_all(&cfg),
        crate::shell::saving::GalleryQuery::export_all(&cfg),
    ];
    for result in results {
        if let Err(error) = result {
            panic!("exporting bindings: {error}");
        }
    }
    write(&dir.join(EVENTS_FILE), &events_module(&cfg));
    write(&dir.join(DEFAULTS_FILE), &defaults_module());
}

/// The defaults and limits the Rust side decides, as TypeScript values, so the webview never
/// spells one itself (a new instance's notification switches, the largest file read for its
/// prompt).
fn defaults_module() -> String {
    let prefs = serde_json::to_string_pretty(&NotificationPrefs::default())
        .unwrap_or_else(|error| panic!("serialising the defaults: {error}"));
    let max_prompt_file = comfy_app::jobs::MAX_PROMPT_FILE_BYTES;
    format!(
        "// Generated from the Rust side's defaults and limits by the bindings test. Do not edit.\n\
         import type {{ NotificationPrefs }} from \"./NotificationPrefs\";\n\n\
         export const DEFAULT_NOTIFICATION_PREFS: NotificationPrefs = {prefs};\n\n\
         /** The largest file read whole for the prompt it holds. */\n\
         export const MAX_PROMPT_FILE_BYTES = {max_prompt_file};\n"
    )
}

/// The event names and their payload types, so the UI never spells an event name itself.
fn events_module(cfg: &ts_rs::Config) -> String {
    let events = catalogue(cfg);
    let mut out = String::from(
        "// Generated from src-tauri/shell/events.rs by the bindings test. Do not edit.\n",
    );
    for (_, payload) in &events {
        out.push_str(&format!(
            "import type {{ {payload} }} from \"./{payload}\";\n"
        ));
    }
    out.push_str("\nexport const EVENTS = {\n");
    for (name, payload) in &events {
        out.push_str(&format!("  {}: \"{name}\",\n", lower_first(payload)));
    }
    out.push_str("} as const;\n\nexport type EventName = (typeof EVENTS)[keyof typeof EVENTS];\n");
    out.push_str("\nexport interface EventPayloads {\n");
    for (name, payload) in &events {
        out.push_str(&format!("  \"{name}\": {payload};\n"));
    }
    out.push_str("}\n");
    out
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn write(path: &Path, contents: &str) {
    if let Err(error) = std::fs::write(path, contents) {
        panic!("writing {}: {error}", path.display());
    }
}

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (name, text)
        })
        .collect()
}

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(BINDINGS_DIR)
}

#[test]
fn committed_bindings_match_the_rust_types() {
    let committed = committed_dir();
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        for name in read_dir(&committed).keys() {
            let _ = std::fs::remove_file(committed.join(name));
        }
        if let Err(error) = std::fs::create_dir_all(&committed) {
            panic!("creating {}: {error}", committed.display());
        }
        generate(&committed);
        return;
    }

    let fresh = std::env::temp_dir().join(format!("comfy-monitor-bindings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    if let Err(error) = std::fs::create_dir_all(&fresh) {
        panic!("creating {}: {error}", fresh.display());
    }
    generate(&fresh);
    let expected = read_dir(&fresh);
    let _ = std::fs::remove_dir_all(&fresh);
    let actual = read_dir(&committed);

    let mut drift = Vec::new();
    for (name, text) in &expected {
        match actual.get(name) {
            None => drift.push(format!("missing {name}")),
            Some(t) if t != text => drift.push(format!("stale {name}")),
            Some(_) => {}
        }
    }
    drift.extend(
        actual
            .keys()
            .filter(|name| !expected.contains_key(*name))
            .map(|name| format!("extra {name}")),
    );
    assert!(
        drift.is_empty(),
        "{BINDINGS_DIR} drifted from the Rust types ({}); regenerate with \
         `UPDATE_BINDINGS=1 cargo test -p comfy-monitor --lib bindings` and commit the result",
        drift.join(", ")
    );
}

/// The notification switches are one type with one default; this proves every place that
/// applies a default takes that one: a new saved instance, an instance the policy has no
/// settings for, a row written before a switch existed, and the webview's generated defaults.
#[test]
fn every_host_takes_the_one_notification_default() {
    let default = NotificationPrefs::default();
    let dir = std::env::temp_dir().join(format!("comfy-monitor-defaults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = comfy_store::Store::open(dir.join("p.db")).expect("store");
    let rec = store
        .insert_instance(&comfy_store::NewInstance::new("gpu", "http://gpu:8188/"), 1)
        .expect("instance");
    assert_eq!(rec.notifications, default, "the store's new instance");
    assert_eq!(
        comfy_notify::Settings::default().instance("never configured"),
        default,
        "the notification policy"
    );
    let old_row: NotificationPrefs = serde_json::from_str("{}").expect("an empty row reads");
    assert_eq!(old_row, default, "a row from before the switches");
    let _ = std::fs::remove_dir_all(&dir);

    let generated = std::fs::read_to_string(committed_dir().join(DEFAULTS_FILE))
        .expect("the generated defaults are committed");
    let json = generated
        .split_once("DEFAULT_NOTIFICATION_PREFS: NotificationPrefs = ")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map(|(value, _)| value)
        .expect("the exported defaults");
    let webview: NotificationPrefs = serde_json::from_str(json).expect("the webview's defaults");
    assert_eq!(webview, default, "the webview's generated defaults");
}
