//! The real OS keyring. Ignored by default: it needs a running, unlocked Secret Service (or the
//! platform's keychain). On Linux, `scripts/keyring-test` (run by `scripts/test-all`) starts one
//! on a private D-Bus session, gnome-keyring unlocked with a throwaway password in a temporary
//! folder, and runs these with `COMFY_MONITOR_SECRETS=keyring`.

use comfy_secrets::{Backend, Secrets};

fn secret_ref(slot: &str) -> String {
    format!("instance/test-{}/{slot}", std::process::id())
}

#[test]
#[ignore = "needs a running, unlocked OS keyring"]
fn a_secret_round_trips_through_the_os_keyring_and_no_file_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("secrets.json");
    let (secrets, opened) = Secrets::open(&path).unwrap();
    assert_eq!(
        opened.backend,
        Backend::Keyring,
        "fell back: {:?}",
        opened.reason
    );
    assert_eq!(opened.notice(), None);

    let token = secret_ref("token");
    assert_eq!(secrets.get(&token).unwrap(), None);
    secrets.set(&token, "first").unwrap();
    secrets.set(&token, "sëcond \"value\"").unwrap();
    assert_eq!(
        secrets.get(&token).unwrap().as_deref(),
        Some("sëcond \"value\"")
    );
    secrets.delete(&token).unwrap();
    secrets.delete(&token).unwrap();
    assert_eq!(secrets.get(&token).unwrap(), None);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
#[ignore = "needs a running, unlocked OS keyring"]
fn the_keyring_works_from_inside_an_async_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (secrets, opened) = Secrets::open(&tmp.path().join("secrets.json")).unwrap();
        assert_eq!(opened.backend, Backend::Keyring, "{:?}", opened.reason);
        let password = secret_ref("password");
        let task = tokio::spawn(async move {
            secrets.set(&password, "p").unwrap();
            let read = secrets.get(&password).unwrap();
            secrets.delete(&password).unwrap();
            read
        });
        assert_eq!(task.await.unwrap().as_deref(), Some("p"));
    });
}

#[test]
#[ignore = "needs a running, unlocked OS keyring"]
fn many_threads_can_use_the_keyring_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (secrets, opened) = Secrets::open(&tmp.path().join("secrets.json")).unwrap();
    assert_eq!(opened.backend, Backend::Keyring, "{:?}", opened.reason);
    let secrets = std::sync::Arc::new(secrets);
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let secrets = secrets.clone();
            std::thread::spawn(move || {
                let r = secret_ref(&format!("slot{i}"));
                secrets.set(&r, &format!("value {i}")).unwrap();
                let read = secrets.get(&r).unwrap();
                secrets.delete(&r).unwrap();
                assert_eq!(read, Some(format!("value {i}")));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
