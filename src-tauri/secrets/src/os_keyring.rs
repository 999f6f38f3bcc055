//! The OS keyring (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows),
//! one item per secret ref under the service name `comfy-monitor`.
//!
//! Every call runs on a short-lived thread of its own and is abandoned after a timeout. Two
//! reasons: the Linux client drives D-Bus with a private runtime and panics when called from
//! inside an async runtime's thread, and a locked keyring with no one to unlock it (a headless
//! session) never answers at all. An abandoned call keeps its thread until D-Bus gives up.
//!
//! This module must not hold values longer than one call or put them into an error message.

use crate::SecretsError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The keyring service every comfy-monitor item is filed under.
pub const SERVICE: &str = "comfy-monitor";

/// How long [`probe`] waits before deciding the keyring is unusable. Short, because it runs at
/// every start and a headless box with a locked keyring would otherwise wait this long each time.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one get/set/delete may take. Long enough for a person to answer an unlock prompt.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The probe's item: one per call (process id and a counter), so two probes running at once,
/// in one process or two, never read or delete each other's item.
fn probe_account() -> String {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let n = PROBES.fetch_add(1, Ordering::Relaxed);
    format!("probe/{}/{n}", std::process::id())
}

/// A harmless write, read back and delete of a throwaway item. `Err` says why the keyring cannot
/// be used, in words for the fallback notice.
pub(crate) fn probe() -> Result<(), String> {
    run(PROBE_TIMEOUT, "probe", move || {
        let entry = keyring::Entry::new(SERVICE, &probe_account())?;
        let written = "comfy-monitor keyring probe";
        entry.set_password(written)?;
        let read = entry.get_password();
        // Delete before judging, so a failed read still cleans up.
        let deleted = entry.delete_credential();
        if read? != written {
            return Err(keyring::Error::Invalid(
                "probe".into(),
                "read back something other than what was written".into(),
            ));
        }
        deleted
    })
}

pub(crate) fn set(secret_ref: &str, value: &str) -> Result<(), SecretsError> {
    let (account, value) = (secret_ref.to_owned(), value.to_owned());
    run(CALL_TIMEOUT, "store a secret", move || {
        keyring::Entry::new(SERVICE, &account)?.set_password(&value)
    })
    .map_err(SecretsError::Keyring)
}

pub(crate) fn get(secret_ref: &str) -> Result<Option<String>, SecretsError> {
    let account = secret_ref.to_owned();
    run(
        CALL_TIMEOUT,
        "read a secret",
        move || match keyring::Entry::new(SERVICE, &account)?.get_password() {
            Ok(value) => Ok(Some(value)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        },
    )
    .map_err(SecretsError::Keyring)
}

pub(crate) fn delete(secret_ref: &str) -> Result<(), SecretsError> {
    let account = secret_ref.to_owned();
    run(
        CALL_TIMEOUT,
        "delete a secret",
        move || match keyring::Entry::new(SERVICE, &account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        },
    )
    .map_err(SecretsError::Keyring)
}

/// Runs `call` on its own thread and waits at most `timeout` for it.
fn run<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("comfy-secrets-keyring".into())
        .spawn(move || {
            // The receiver is gone when the caller stopped waiting; nothing to do then.
            let _ = tx.send(call().map_err(|e| describe(&e)));
        })
        .map_err(|e| format!("cannot start a thread to {what}: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "no answer within {} s to {what} (is the keyring locked with no one to unlock it?)",
            timeout.as_secs()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(format!("the keyring client crashed trying to {what}"))
        }
    }
}

/// The keyring's message, minus anything that could echo a value or list other items.
fn describe(e: &keyring::Error) -> String {
    match e {
        keyring::Error::Ambiguous(items) => format!(
            "{} keyring items match one secret; remove the extra ones with the desktop's password manager",
            items.len()
        ),
        keyring::Error::BadEncoding(_) => "a keyring item is not UTF-8 text".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_never_answers_times_out_with_a_reason() {
        let (_never_sent, never_answers) = mpsc::channel::<()>();
        let err = run(Duration::from_millis(50), "read a secret", move || {
            // Blocks until the test ends and drops the sender.
            let _ = never_answers.recv();
            Ok(())
        })
        .unwrap_err();
        assert!(err.contains("no answer within"), "{err}");
    }

    #[test]
    fn an_undecodable_item_is_described_without_its_bytes() {
        let shown = describe(&keyring::Error::BadEncoding(b"hunter2-value\xff".to_vec()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
