//! The real OS keyring. Ignored by default: it needs a running, unlocked OS keyring (or the
//! platform's keychain). On Linux, `scripts/keyring-test` (run by `scripts/test-all`) starts one
//! on a private D-Bus session, gnome-keyring unlocked with a throwaway password in a temporary
//! folder, and runs these with `COMFY_MONITOR_SECRETS=keyring` (and the password in
//! `KEYRING_TEST_PASSWORD`, so the locked-keyring test can unlock it again).
//!
//! The tests take turns ([`exclusive`]): one of them locks the keyring for a while.

use comfy_secrets::{Backend, Choice, Secrets, SecretsError};
use std::sync::{Mutex, MutexGuard};

fn secret_ref(slot: &str) -> String {
    format!("instance/test-{}/{slot}", std::process::id())
}

/// Held by every test here, so none runs while another has the keyring locked.
fn exclusive() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
#[ignore = "needs a running, unlocked OS keyring"]
fn a_secret_round_trips_through_the_os_keyring_and_no_file_is_made() {
    let _turn = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("secrets.json");
    let secrets = Secrets::open(&path).unwrap();
    assert_eq!(secrets.backend(), &Backend::Keyring);

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
    assert_eq!(secrets.take_notices(), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
#[ignore = "needs a running, unlocked OS keyring"]
fn the_keyring_works_from_inside_an_async_runtime() {
    let _turn = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let secrets = Secrets::open(&tmp.path().join("secrets.json")).unwrap();
        assert_eq!(secrets.backend(), &Backend::Keyring);
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
    let _turn = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let secrets = Secrets::open(&tmp.path().join("secrets.json")).unwrap();
    assert_eq!(secrets.backend(), &Backend::Keyring);
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

/// The keyring as the desktop session leaves it before the user unlocks it (autostart): the
/// default collection locked, and no one to answer an unlock prompt. Unlocked again when
/// dropped, so a failing test does not leave it locked for the others.
#[cfg(target_os = "linux")]
struct Locked {
    bus: zbus::blocking::Connection,
    collection: zbus::zvariant::OwnedObjectPath,
}

#[cfg(target_os = "linux")]
impl Locked {
    const DEST: &'static str = "org.freedesktop.secrets";
    const PATH: &'static str = "/org/freedesktop/secrets";
    const SERVICE: &'static str = "org.freedesktop.Secret.Service";

    fn now() -> Locked {
        let bus = zbus::blocking::Connection::session().expect("the session bus");
        let reply = bus
            .call_method(
                Some(Self::DEST),
                Self::PATH,
                Some(Self::SERVICE),
                "ReadAlias",
                &("default",),
            )
            .expect("the default collection");
        let collection: zbus::zvariant::OwnedObjectPath =
            reply.body().deserialize().expect("an object path");
        bus.call_method(
            Some(Self::DEST),
            Self::PATH,
            Some(Self::SERVICE),
            "Lock",
            &(vec![collection.clone()],),
        )
        .expect("locked");
        Locked { bus, collection }
    }

    /// Unlocks with the password the keyring was created with, the way the desktop's login
    /// does: gnome-keyring's own interface, over a plain session on this same connection.
    fn unlock(&self) {
        let password = std::env::var("KEYRING_TEST_PASSWORD")
            .expect("KEYRING_TEST_PASSWORD (run through scripts/keyring-test)");
        let reply = self
            .bus
            .call_method(
                Some(Self::DEST),
                Self::PATH,
                Some(Self::SERVICE),
                "OpenSession",
                &("plain", zbus::zvariant::Value::from("")),
            )
            .expect("a plain session");
        let (_, session): (zbus::zvariant::OwnedValue, zbus::zvariant::OwnedObjectPath) =
            reply.body().deserialize().expect("the session's path");
        let master = (
            session,
            Vec::<u8>::new(),
            password.into_bytes(),
            "text/plain",
        );
        self.bus
            .call_method(
                Some(Self::DEST),
                Self::PATH,
                Some("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"),
                "UnlockWithMasterPassword",
                &(self.collection.clone(), master),
            )
            .expect("unlocked");
    }
}

#[cfg(target_os = "linux")]
impl Drop for Locked {
    fn drop(&mut self) {
        self.unlock();
    }
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs a running, unlocked OS keyring"]
fn a_keyring_locked_at_start_is_used_again_once_unlocked_and_the_session_never_moves_to_the_file() {
    let _turn = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("secrets.json");
    let auto = || {
        Secrets::open_as(Choice::Auto, &path)
            .unwrap()
            .keyring_retry(std::time::Duration::ZERO)
    };
    let (kept, typed, later) = (secret_ref("kept"), secret_ref("typed"), secret_ref("later"));
    auto().set(&kept, "in-keyring").unwrap();
    assert!(!path.exists());

    // The next start, before the desktop has unlocked the keyring.
    let locked = Locked::now();
    let secrets = auto();
    let err = secrets.get(&kept).unwrap_err();
    assert!(
        matches!(err, SecretsError::KeyringUnreachable(_)),
        "{err:?}"
    );
    let notices = secrets.take_notices();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("cannot be read until it is unlocked")),
        "{notices:?}"
    );
    // What is stored meanwhile is kept in the file, not lost.
    secrets.set(&typed, "while-locked").unwrap();
    assert_eq!(
        Secrets::file_only(&path)
            .unwrap()
            .get(&typed)
            .unwrap()
            .as_deref(),
        Some("while-locked")
    );

    // Unlocked: the same session reads the keyring and stores in it again.
    drop(locked);
    assert_eq!(secrets.get(&kept).unwrap().as_deref(), Some("in-keyring"));
    assert_eq!(
        secrets.get(&typed).unwrap().as_deref(),
        Some("while-locked")
    );
    secrets.set(&later, "after-unlock").unwrap();
    assert_eq!(
        Secrets::file_only(&path).unwrap().get(&later).unwrap(),
        None
    );
    let keyring = Secrets::open_as(Choice::Keyring, &path).unwrap();
    assert_eq!(
        keyring.get(&later).unwrap().as_deref(),
        Some("after-unlock")
    );

    for r in [&kept, &typed, &later] {
        secrets.delete(r).unwrap();
    }
}
