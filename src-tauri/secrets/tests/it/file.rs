//! The fallback file on real files: what it stores, the permissions it keeps, and the files it
//! refuses without changing them.

use crate::support::fallback_path;
#[cfg(unix)]
use crate::support::{mode, set_mode};
use comfy_secrets::{Backend, Secrets, SecretsError};
use std::fs;

#[test]
fn a_stored_value_reads_back_and_a_missing_one_is_none() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    assert_eq!(secrets.backend(), &Backend::File { path: path.clone() });

    assert_eq!(secrets.get("instance/1/token").unwrap(), None);
    secrets.set("instance/1/token", "first").unwrap();
    secrets.set("instance/1/token", "second").unwrap();
    let odd = "pä\"ss\\word\n with {json} and 🔑";
    secrets.set("instance/2/password", odd).unwrap();

    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("second")
    );
    assert_eq!(
        secrets.get("instance/2/password").unwrap().as_deref(),
        Some(odd)
    );
    assert_eq!(secrets.get("instance/3/token").unwrap(), None);
}

#[test]
fn values_survive_reopening_and_the_file_has_the_documented_layout() {
    let (_tmp, path) = fallback_path();
    Secrets::file_only(&path)
        .unwrap()
        .set("instance/1/header/X-Api-Key", "k")
        .unwrap();

    let reopened = Secrets::file_only(&path).unwrap();
    assert_eq!(
        reopened
            .get("instance/1/header/X-Api-Key")
            .unwrap()
            .as_deref(),
        Some("k")
    );
    let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "secrets": {"instance/1/header/X-Api-Key": "k"}})
    );
}

#[test]
fn a_deleted_value_is_gone_and_deleting_a_missing_one_is_fine() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    secrets.set("instance/1/token", "t").unwrap();
    secrets.set("instance/1/password", "p").unwrap();

    secrets.delete("instance/1/token").unwrap();
    secrets.delete("instance/1/token").unwrap();
    secrets.delete("instance/9/never-set").unwrap();

    assert_eq!(secrets.get("instance/1/token").unwrap(), None);
    assert_eq!(
        Secrets::file_only(&path)
            .unwrap()
            .get("instance/1/password")
            .unwrap()
            .as_deref(),
        Some("p")
    );
}

#[test]
fn a_fresh_store_writes_no_file_until_something_is_set() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    secrets.delete("instance/1/token").unwrap();
    assert!(!path.exists());
}

#[cfg(unix)]
#[test]
fn the_file_is_owner_only_in_an_owner_only_directory_and_no_temporary_file_is_left() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    let dir = path.parent().unwrap();
    assert_eq!(mode(dir), 0o700);

    secrets.set("instance/1/token", "t").unwrap();
    assert_eq!(mode(&path), 0o600);
    secrets.set("instance/1/token", "u").unwrap();
    secrets.delete("instance/1/token").unwrap();
    assert_eq!(mode(&path), 0o600);

    let names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["secrets.json"]);
}

#[cfg(unix)]
#[test]
fn an_existing_file_others_can_read_is_refused_and_left_as_it_is() {
    let (_tmp, path) = fallback_path();
    Secrets::file_only(&path)
        .unwrap()
        .set("instance/1/token", "t")
        .unwrap();
    let before = fs::read(&path).unwrap();
    set_mode(&path, 0o644);

    let err = Secrets::file_only(&path).unwrap_err();
    match &err {
        SecretsError::Insecure { path: p, mode: m } => {
            assert_eq!(p, &path);
            assert_eq!(*m, 0o644);
        }
        other => panic!("expected Insecure, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("chmod go-rwx"), "{message}");
    assert!(message.contains("644"), "{message}");
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(mode(&path), 0o644);
}

#[cfg(unix)]
#[test]
fn a_file_opened_up_after_open_is_refused_on_the_next_call() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    secrets.set("instance/1/token", "t").unwrap();
    set_mode(&path, 0o640);

    assert!(matches!(
        secrets.get("instance/1/token"),
        Err(SecretsError::Insecure { .. })
    ));
    assert!(matches!(
        secrets.set("instance/1/token", "u"),
        Err(SecretsError::Insecure { .. })
    ));
    assert_eq!(mode(&path), 0o640);
}

#[cfg(unix)]
#[test]
fn a_directory_others_can_write_to_is_refused() {
    let (_tmp, path) = fallback_path();
    let dir = path.parent().unwrap();
    fs::create_dir_all(dir).unwrap();
    set_mode(dir, 0o777);

    let err = Secrets::file_only(&path).unwrap_err();
    assert!(
        matches!(&err, SecretsError::Insecure { path: p, mode: 0o777 } if p == dir),
        "{err:?}"
    );
    assert_eq!(mode(dir), 0o777);
}

#[cfg(unix)]
#[test]
fn an_existing_directory_others_can_only_read_is_used_as_it_is() {
    let (_tmp, path) = fallback_path();
    let dir = path.parent().unwrap();
    fs::create_dir_all(dir).unwrap();
    set_mode(dir, 0o755);

    let secrets = Secrets::file_only(&path).unwrap();
    secrets.set("instance/1/token", "t").unwrap();
    assert_eq!(mode(dir), 0o755);
    assert_eq!(mode(&path), 0o600);
}

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    set_mode(path, 0o600);
}

#[test]
fn a_corrupt_file_is_refused_and_left_untouched() {
    let (_tmp, path) = fallback_path();
    for bytes in [
        &b"{\"version\":1,\"secrets\":{\"instance/1/token\":"[..],
        b"not json at all",
        b"",
        b"{\"version\":1,\"secrets\":[\"a list\"]}",
        b"\xff\xfe binary",
    ] {
        write_private(&path, bytes);
        let err = Secrets::file_only(&path).unwrap_err();
        assert!(
            matches!(&err, SecretsError::Corrupt { path: p, .. } if p == &path),
            "{err:?}"
        );
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}

#[test]
fn a_file_of_a_newer_layout_is_refused_and_left_untouched() {
    let (_tmp, path) = fallback_path();
    let bytes = br#"{"version":2,"secrets":{},"keys":"elsewhere"}"#;
    write_private(&path, bytes);
    let err = Secrets::file_only(&path).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_file_damaged_after_open_is_never_overwritten() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    secrets.set("instance/1/token", "t").unwrap();
    write_private(&path, b"{ damaged");

    assert!(matches!(
        secrets.set("instance/2/token", "u"),
        Err(SecretsError::Corrupt { .. })
    ));
    assert!(matches!(
        secrets.delete("instance/1/token"),
        Err(SecretsError::Corrupt { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), b"{ damaged");
}

#[test]
fn debug_output_never_shows_a_value() {
    let (_tmp, path) = fallback_path();
    let secrets = Secrets::file_only(&path).unwrap();
    secrets.set("instance/1/token", "hunter2-secret").unwrap();
    let shown = format!("{secrets:?} {:?}", secrets.backend());
    assert!(shown.contains("***"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");

    // Errors about a file that holds the value do not quote it either.
    #[cfg(unix)]
    {
        set_mode(&path, 0o644);
        let err = secrets.get("instance/1/token").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn concurrent_writers_in_one_process_lose_nothing() {
    let (_tmp, path) = fallback_path();
    let secrets = std::sync::Arc::new(Secrets::file_only(&path).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let secrets = secrets.clone();
            std::thread::spawn(move || {
                for slot in 0..5 {
                    secrets
                        .set(&format!("instance/{i}/slot{slot}"), &format!("{i}-{slot}"))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let reopened = Secrets::file_only(&path).unwrap();
    for i in 0..8 {
        for slot in 0..5 {
            assert_eq!(
                reopened
                    .get(&format!("instance/{i}/slot{slot}"))
                    .unwrap()
                    .unwrap(),
                format!("{i}-{slot}")
            );
        }
    }
}
