//! The choice of backend, call by call, against a stand-in keyring that can be locked and
//! unlocked (the real one: `tests/it/keyring.rs`).

use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A keyring in memory that answers like the Secret Service: while locked, reads and writes
/// fail as unreachable. Counts every call and every write.
#[derive(Default)]
struct FakeKeyring {
    items: Mutex<BTreeMap<String, String>>,
    locked: AtomicBool,
    calls: AtomicUsize,
    writes: AtomicUsize,
}

impl FakeKeyring {
    fn lock(&self) {
        self.locked.store(true, Ordering::SeqCst);
    }

    fn unlock(&self) {
        self.locked.store(false, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn item(&self, account: &str) -> Option<String> {
        self.items.lock().unwrap().get(account).cloned()
    }

    fn answer(&self) -> Result<(), Failure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.locked.load(Ordering::SeqCst) {
            return Err(Failure::Unreachable("the collection is locked".into()));
        }
        Ok(())
    }
}

/// The fake, shared between the test and the `Secrets` it is handed to.
struct Shared(Arc<FakeKeyring>);

impl Keyring for Shared {
    fn get(&self, account: &str, _: Duration) -> Result<Option<String>, Failure> {
        self.0.answer()?;
        Ok(self.0.item(account))
    }

    fn set(&self, account: &str, value: &str, _: Duration) -> Result<(), Failure> {
        self.0.answer()?;
        self.0.writes.fetch_add(1, Ordering::SeqCst);
        self.0
            .items
            .lock()
            .unwrap()
            .insert(account.into(), value.into());
        Ok(())
    }

    fn delete(&self, account: &str, _: Duration) -> Result<(), Failure> {
        self.0.answer()?;
        self.0.writes.fetch_add(1, Ordering::SeqCst);
        self.0.items.lock().unwrap().remove(account);
        Ok(())
    }
}

fn fallback() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets").join("secrets.json");
    (dir, path)
}

/// The automatic choice over `keyring`, asking it again on every call unless `retry` says.
fn auto(path: &Path, keyring: &Arc<FakeKeyring>, retry: Duration) -> Secrets {
    Secrets::open_with(Choice::Auto, path, Box::new(Shared(keyring.clone())))
        .unwrap()
        .keyring_retry(retry)
}

fn in_file(path: &Path, secret_ref: &str) -> Option<String> {
    if !path.exists() {
        return None;
    }
    Secrets::file_only(path).unwrap().get(secret_ref).unwrap()
}

#[test]
fn a_keyring_locked_at_start_does_not_send_the_rest_of_the_session_to_the_file() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    keyring.lock();
    let secrets = auto(&path, &keyring, Duration::ZERO);

    // Stored while locked: kept in the file, and the user is told.
    secrets.set("instance/1/token", "while-locked").unwrap();
    assert_eq!(
        in_file(&path, "instance/1/token").as_deref(),
        Some("while-locked")
    );
    let notices = secrets.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("could not be reached"), "{notices:?}");

    // Unlocked: the next store goes to the keyring, not to the file.
    keyring.unlock();
    secrets.set("instance/2/token", "after-unlock").unwrap();
    assert_eq!(
        keyring.item("instance/2/token").as_deref(),
        Some("after-unlock")
    );
    assert_eq!(in_file(&path, "instance/2/token"), None);
    assert_eq!(
        secrets.backend(),
        &Backend::KeyringOrFile { path: path.clone() }
    );
    // Both read back, wherever they are.
    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("while-locked")
    );
    assert_eq!(
        secrets.get("instance/2/token").unwrap().as_deref(),
        Some("after-unlock")
    );
}

#[test]
fn storing_again_once_the_keyring_answers_moves_the_value_out_of_the_file() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    keyring.lock();
    let secrets = auto(&path, &keyring, Duration::ZERO);
    secrets.set("instance/1/token", "old").unwrap();
    keyring.unlock();
    secrets.set("instance/1/token", "new").unwrap();
    assert_eq!(keyring.item("instance/1/token").as_deref(), Some("new"));
    assert_eq!(in_file(&path, "instance/1/token"), None);
    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("new")
    );
}

#[test]
fn a_keyring_that_could_not_be_reached_is_left_alone_until_the_retry_time() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    keyring.lock();
    let secrets = auto(&path, &keyring, Duration::from_secs(3600));
    assert_eq!(secrets.get("instance/1/token").unwrap(), None);
    assert_eq!(keyring.calls(), 1);
    // Within the retry time: the file alone, the keyring is not asked (nor waited for).
    keyring.unlock();
    assert_eq!(secrets.get("instance/1/token").unwrap(), None);
    secrets.set("instance/1/token", "t").unwrap();
    assert_eq!(keyring.calls(), 1);
    assert_eq!(in_file(&path, "instance/1/token").as_deref(), Some("t"));
}

#[test]
fn while_the_keyring_is_away_a_credential_it_may_hold_is_reported_unreachable_with_a_warning() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    auto(&path, &keyring, Duration::ZERO)
        .set("instance/1/token", "in-keyring")
        .unwrap();

    // The next start, before the desktop unlocks the keyring.
    keyring.lock();
    let secrets = auto(&path, &keyring, Duration::ZERO);
    let err = secrets.get("instance/1/token").unwrap_err();
    assert!(
        matches!(err, SecretsError::KeyringUnreachable(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("unlock the keyring"), "{err}");
    let notices = secrets.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("cannot be read until it is unlocked"),
        "{notices:?}"
    );
    // Warned once per outage, not once per call.
    assert!(secrets.get("instance/1/token").is_err());
    assert_eq!(secrets.take_notices(), Vec::<String>::new());
    // Deleting cannot reach the item either: said, not forgotten.
    assert!(matches!(
        secrets.delete("instance/1/token"),
        Err(SecretsError::KeyringUnreachable(_))
    ));

    keyring.unlock();
    assert_eq!(
        secrets.get("instance/1/token").unwrap().as_deref(),
        Some("in-keyring")
    );
}

#[test]
fn without_a_keyring_ever_used_a_missing_credential_is_just_missing() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    keyring.lock();
    let secrets = auto(&path, &keyring, Duration::ZERO);
    assert_eq!(secrets.get("instance/1/token").unwrap(), None);
    secrets.delete("instance/1/token").unwrap();
    assert_eq!(secrets.take_notices(), Vec::<String>::new());
}

#[test]
fn opening_and_reading_write_nothing_to_the_keyring() {
    let (dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    let secrets = auto(&path, &keyring, Duration::ZERO);
    assert_eq!(keyring.calls(), 0, "opening asks nothing");
    assert_eq!(secrets.get("instance/1/token").unwrap(), None);
    assert_eq!(keyring.writes.load(Ordering::SeqCst), 0);
    assert!(!dir.path().join("secrets").exists(), "nor makes a file");
}

#[test]
fn a_working_keyring_keeps_values_out_of_the_file() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    let secrets = auto(&path, &keyring, Duration::ZERO);
    secrets.set("instance/1/token", "t").unwrap();
    assert_eq!(keyring.item("instance/1/token").as_deref(), Some("t"));
    assert!(!path.exists());
    assert_eq!(secrets.take_notices(), Vec::<String>::new());
    secrets.delete("instance/1/token").unwrap();
    assert_eq!(keyring.item("instance/1/token"), None);
}

#[test]
fn asking_for_the_file_never_touches_the_keyring_and_is_announced_once() {
    let (_dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    let open =
        || Secrets::open_with(Choice::File, &path, Box::new(Shared(keyring.clone()))).unwrap();
    let first = open();
    first.set("instance/1/token", "t").unwrap();
    assert_eq!(first.backend(), &Backend::File { path: path.clone() });
    let notices = first.take_notices();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains(BACKEND_ENV_VAR), "{notices:?}");
    assert!(
        notices[0].contains(&path.display().to_string()),
        "{notices:?}"
    );
    assert_eq!(open().take_notices(), Vec::<String>::new());
    assert_eq!(keyring.calls(), 0);
}

#[test]
fn asking_for_the_keyring_fails_rather_than_falling_back() {
    let (dir, path) = fallback();
    let keyring = Arc::new(FakeKeyring::default());
    keyring.lock();
    let secrets =
        Secrets::open_with(Choice::Keyring, &path, Box::new(Shared(keyring.clone()))).unwrap();
    assert!(matches!(
        secrets.set("instance/1/token", "t"),
        Err(SecretsError::Keyring(_))
    ));
    assert!(matches!(
        secrets.get("instance/1/token"),
        Err(SecretsError::Keyring(_))
    ));
    assert!(!dir.path().join("secrets").exists());
}

#[test]
fn the_environment_variable_is_read_case_insensitively_and_unknown_values_mean_auto() {
    let c = |v: &str| Choice::parse(Some(OsStr::new(v)));
    assert_eq!(c("file"), Choice::File);
    assert_eq!(c(" FILE "), Choice::File);
    assert_eq!(c("Keyring"), Choice::Keyring);
    assert_eq!(c(""), Choice::Auto);
    assert_eq!(c("auto"), Choice::Auto);
    assert_eq!(c("fiel"), Choice::Auto);
    assert_eq!(Choice::parse(None), Choice::Auto);
}

#[test]
fn secrets_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Secrets>();
}
