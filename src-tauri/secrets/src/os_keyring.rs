//! The OS keyring (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows),
//! one item per secret ref under the service name `comfy-monitor`.
//!
//! Every call runs on a short-lived thread of its own and is abandoned after a timeout. Two
//! reasons: the Linux client drives D-Bus with a private runtime and panics when called from
//! inside an async runtime's thread, and a locked keyring with no one to unlock it (a headless
//! session) never answers at all. An abandoned call keeps its thread until D-Bus gives up.
//!
//! This module must not hold values longer than one call or put them into an error message.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The keyring service every comfy-monitor item is filed under.
pub const SERVICE: &str = "comfy-monitor";

/// How long a call may take while the keyring is not known to work (the first call of a
/// session, or the first after a failure). Short, because a headless box with a locked keyring
/// would otherwise wait this long each time, yet long enough to answer an unlock prompt.
pub(crate) const FIRST_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one get/set/delete may take once the keyring has answered. Long enough for a
/// person to answer an unlock prompt.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a keyring call failed, in words for the user (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The keyring did not answer, is locked, or is not there: it may work later.
    Unreachable(String),
    /// The keyring answered and refused this one call (an ambiguous or undecodable item).
    Refused(String),
}

impl Failure {
    pub(crate) fn why(&self) -> &str {
        match self {
            Failure::Unreachable(why) | Failure::Refused(why) => why,
        }
    }
}

/// A keyring: the OS one, or a stand-in in tests.
pub(crate) trait Keyring: Send + Sync {
    fn get(&self, account: &str, timeout: Duration) -> Result<Option<String>, Failure>;
    fn set(&self, account: &str, value: &str, timeout: Duration) -> Result<(), Failure>;
    /// Deleting a missing item is not a failure.
    fn delete(&self, account: &str, timeout: Duration) -> Result<(), Failure>;
}

/// The OS keyring, items under [`SERVICE`].
pub(crate) struct OsKeyring;

impl Keyring for OsKeyring {
    fn get(&self, account: &str, timeout: Duration) -> Result<Option<String>, Failure> {
        let account = account.to_owned();
        run(
            timeout,
            "read a secret",
            move || match keyring::Entry::new(SERVICE, &account)?.get_password() {
                Ok(value) => Ok(Some(value)),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e),
            },
        )
    }

    fn set(&self, account: &str, value: &str, timeout: Duration) -> Result<(), Failure> {
        let (account, value) = (account.to_owned(), value.to_owned());
        run(timeout, "store a secret", move || {
            keyring::Entry::new(SERVICE, &account)?.set_password(&value)
        })
    }

    fn delete(&self, account: &str, timeout: Duration) -> Result<(), Failure> {
        let account = account.to_owned();
        run(
            timeout,
            "delete a secret",
            move || match keyring::Entry::new(SERVICE, &account)?.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(e),
            },
        )
    }
}

/// Runs `call` on its own thread and waits at most `timeout` for it.
fn run<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    let (tx, rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("comfy-secrets-keyring".into())
        .spawn(move || {
            // The receiver is gone when the caller stopped waiting; nothing to do then.
            let _ = tx.send(call().map_err(|e| classify(&e)));
        })
        .map_err(|e| Failure::Unreachable(format!("cannot start a thread to {what}: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::Unreachable(format!(
            "no answer within {} s to {what} (is the keyring locked with no one to unlock it?)",
            timeout.as_secs()
        ))),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Failure::Unreachable(format!(
            "the keyring client crashed trying to {what}"
        ))),
    }
}

/// Whether the keyring may work later (locked, absent, not answering) or refused this item.
fn classify(e: &keyring::Error) -> Failure {
    match e {
        keyring::Error::PlatformFailure(_) | keyring::Error::NoStorageAccess(_) => {
            Failure::Unreachable(describe(e))
        }
        _ => Failure::Refused(describe(e)),
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
    fn a_call_that_never_answers_times_out_as_unreachable_with_a_reason() {
        let (_never_sent, never_answers) = mpsc::channel::<()>();
        let err = run(Duration::from_millis(50), "read a secret", move || {
            // Blocks until the test ends and drops the sender.
            let _ = never_answers.recv();
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(&err, Failure::Unreachable(_)), "{err:?}");
        assert!(err.why().contains("no answer within"), "{err:?}");
    }

    #[test]
    fn a_locked_store_is_unreachable_and_an_undecodable_item_is_refused_without_its_bytes() {
        let locked = classify(&keyring::Error::NoStorageAccess("prompt dismissed".into()));
        assert!(matches!(locked, Failure::Unreachable(_)), "{locked:?}");
        let bad = classify(&keyring::Error::BadEncoding(b"hunter2-value\xff".to_vec()));
        assert!(matches!(&bad, Failure::Refused(_)), "{bad:?}");
        assert!(!bad.why().contains("hunter2"), "{bad:?}");
    }
}
