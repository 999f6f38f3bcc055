//! Who a notification is shown as. Windows and macOS attribute a notification to an app by an
//! identifier the system must already know: on Windows the AppUserModelID, which Tauri's
//! installers (NSIS and MSI) give the app's Start-menu shortcut, set to `tauri.conf.json`'s
//! `identifier`; on macOS the bundle identifier of an installed `.app`. A binary run from where
//! cargo built it has neither, and the system would drop its notifications without a word, so
//! it borrows a stand-in that is always registered (PowerShell's AppUserModelID; Terminal's
//! bundle), as the official Tauri notification plugin does in development.

use std::path::Path;

/// Whether `exe` is where cargo built it: cargo keeps a `.cargo-lock` file in each profile's
/// output folder (`target/debug`, `target/release`, whatever `CARGO_TARGET_DIR` is), and an
/// installer never copies it.
#[cfg(any(windows, test))]
pub(super) fn built_by_cargo(exe: &Path) -> bool {
    exe.parent()
        .is_some_and(|dir| dir.join(".cargo-lock").is_file())
}

/// Whether `exe` runs from inside an app bundle (`Name.app/Contents/MacOS/exe`), which is what
/// gives it a bundle identifier macOS knows.
#[cfg(any(target_os = "macos", test))]
pub(super) fn in_app_bundle(exe: &Path) -> bool {
    let mut up = exe.ancestors().skip(1).map(Path::file_name);
    matches!(
        (up.next(), up.next(), up.next()),
        (Some(Some(macos)), Some(Some(contents)), Some(Some(app)))
            if macos == "MacOS"
                && contents == "Contents"
                && Path::new(app).extension().is_some_and(|e| e == "app")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_beside_cargos_lock_file_was_built_by_cargo() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("comfy-monitor.exe");
        assert!(!built_by_cargo(&exe));
        std::fs::write(dir.path().join(".cargo-lock"), "").unwrap();
        assert!(built_by_cargo(&exe));
    }

    #[test]
    fn only_a_binary_inside_an_app_bundle_has_a_bundle_identifier() {
        assert!(in_app_bundle(Path::new(
            "/Applications/comfy-monitor.app/Contents/MacOS/comfy-monitor"
        )));
        assert!(!in_app_bundle(Path::new(
            "/Users/me/comfy-monitor/target/release/comfy-monitor"
        )));
        assert!(!in_app_bundle(Path::new("/Contents/MacOS/comfy-monitor")));
        assert!(!in_app_bundle(Path::new("comfy-monitor")));
    }
}
