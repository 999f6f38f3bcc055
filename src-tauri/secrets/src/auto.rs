//! The automatic choice: the keyring, and the file for each call the keyring cannot answer.
//!
//! Nothing is decided at open. A failure is remembered only for [`KEYRING_RETRY`] (the caller
//! may change it), never for the session: a keyring locked when the app starts is used as soon
//! as it answers. Reads look in the file first (it holds only what was stored while the keyring
//! could not be reached, and a later store in the keyring removes it there), then in the
//! keyring; a store goes to the keyring and falls back to the file only when it cannot be
//! reached. While it cannot, a credential missing from the file is reported as possibly in the
//! keyring when this profile has kept credentials there (the `.in-keyring` marker), instead of
//! as missing.
//!
//! [`KEYRING_RETRY`]: crate::KEYRING_RETRY

use crate::file::{self, FileStore};
use crate::os_keyring::{Failure, Keyring, CALL_TIMEOUT, FIRST_CALL_TIMEOUT};
use crate::{marker, Notices, SecretsError, KEYRING_RETRY};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the keyring did lately.
enum Reach {
    /// Not asked yet in this session.
    Untried,
    /// It answered the last call.
    Working,
    /// It could not be reached; not asked again before `retry_at`.
    Away {
        why: String,
        retry_at: Instant,
        /// The user has been warned during this outage.
        warned: bool,
    },
}

pub(crate) struct Auto {
    keyring: Box<dyn Keyring>,
    file: FileStore,
    path: PathBuf,
    reach: Mutex<Reach>,
    retry_after: Duration,
    /// This profile is known to have kept credentials in the keyring.
    keyring_used: AtomicBool,
    /// The user has been told that a credential went to the file in this session.
    told_fallback: AtomicBool,
}

impl Auto {
    pub(crate) fn new(keyring: Box<dyn Keyring>, path: PathBuf) -> Self {
        Self {
            keyring,
            file: FileStore::lazy(&path),
            path,
            reach: Mutex::new(Reach::Untried),
            retry_after: KEYRING_RETRY,
            keyring_used: AtomicBool::new(false),
            told_fallback: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_retry(&mut self, after: Duration) {
        self.retry_after = after;
    }

    pub(crate) fn get(
        &self,
        secret_ref: &str,
        notices: &Notices,
    ) -> Result<Option<String>, SecretsError> {
        if let Some(value) = self.file.get(secret_ref)? {
            return Ok(Some(value));
        }
        match self.call(notices, |k, timeout| k.get(secret_ref, timeout)) {
            Ok(Some(value)) => {
                self.mark_used();
                Ok(Some(value))
            }
            Ok(None) => Ok(None),
            Err(Failure::Refused(why)) => Err(SecretsError::Keyring(why)),
            Err(Failure::Unreachable(why)) if self.used() => {
                Err(SecretsError::KeyringUnreachable(why))
            }
            // This profile never kept anything in the keyring: the credential is missing.
            Err(Failure::Unreachable(_)) => Ok(None),
        }
    }

    pub(crate) fn set(
        &self,
        secret_ref: &str,
        value: &str,
        notices: &Notices,
    ) -> Result<(), SecretsError> {
        match self.call(notices, |k, timeout| k.set(secret_ref, value, timeout)) {
            Ok(()) => {
                self.mark_used();
                // An older value stored while the keyring was away would shadow this one.
                self.file.delete(secret_ref)
            }
            Err(Failure::Refused(why)) => Err(SecretsError::Keyring(why)),
            Err(Failure::Unreachable(why)) => {
                self.file.set(secret_ref, value)?;
                if !self.told_fallback.swap(true, Ordering::Relaxed) {
                    notices.push(format!(
                        "A credential was kept in {} (readable only by you) instead of the OS \
                         keyring, which could not be reached ({why}). The keyring is used again \
                         as soon as it answers; what is in the file stays there until it is \
                         entered again.",
                        self.path.display()
                    ));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn delete(&self, secret_ref: &str, notices: &Notices) -> Result<(), SecretsError> {
        self.file.delete(secret_ref)?;
        match self.call(notices, |k, timeout| k.delete(secret_ref, timeout)) {
            Ok(()) => Ok(()),
            Err(Failure::Refused(why)) => Err(SecretsError::Keyring(why)),
            // The item may still be in the keyring: say so rather than forget it silently.
            Err(Failure::Unreachable(why)) if self.used() => {
                Err(SecretsError::KeyringUnreachable(why))
            }
            Err(Failure::Unreachable(_)) => Ok(()),
        }
    }

    fn reach(&self) -> MutexGuard<'_, Reach> {
        // The state is valid after a panic elsewhere: at worst the keyring is asked once more.
        self.reach
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One keyring call, unless it could not be reached lately (then its reason, at once). The
    /// lock is not held during the call, which may wait for an unlock prompt.
    fn call<T>(
        &self,
        notices: &Notices,
        f: impl FnOnce(&dyn Keyring, Duration) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let timeout = match &*self.reach() {
            Reach::Working => CALL_TIMEOUT,
            Reach::Untried => FIRST_CALL_TIMEOUT,
            Reach::Away { why, retry_at, .. } => {
                if Instant::now() < *retry_at {
                    return Err(Failure::Unreachable(why.clone()));
                }
                FIRST_CALL_TIMEOUT
            }
        };
        let result = f(self.keyring.as_ref(), timeout);
        let warn = {
            let mut reach = self.reach();
            match &result {
                // A refusal is an answer: the keyring is there.
                Ok(_) | Err(Failure::Refused(_)) => {
                    *reach = Reach::Working;
                    None
                }
                Err(Failure::Unreachable(why)) => {
                    let warned = matches!(&*reach, Reach::Away { warned: true, .. });
                    *reach = Reach::Away {
                        why: why.clone(),
                        retry_at: Instant::now() + self.retry_after,
                        warned,
                    };
                    (!warned).then(|| why.clone())
                }
            }
        };
        if let Some(why) = warn {
            if self.used() {
                notices.push(format!(
                    "The OS keyring could not be reached ({why}), so the instance credentials \
                     kept in it cannot be read until it is unlocked, and instances that need them \
                     are not monitored meanwhile. The keyring is asked again on the next use."
                ));
                if let Reach::Away { warned, .. } = &mut *self.reach() {
                    *warned = true;
                }
            }
        }
        result
    }

    /// Whether this profile has kept credentials in the keyring (this session, or an earlier
    /// one that left the marker).
    fn used(&self) -> bool {
        if self.keyring_used.load(Ordering::Relaxed) {
            return true;
        }
        let used = marker(&self.path, "in-keyring").exists();
        if used {
            self.keyring_used.store(true, Ordering::Relaxed);
        }
        used
    }

    /// Records that the keyring holds credentials of this profile. Best effort: without the
    /// marker, a credential the keyring cannot give is reported missing instead of unreachable.
    fn mark_used(&self) {
        if self.keyring_used.swap(true, Ordering::Relaxed) {
            return;
        }
        let marker = marker(&self.path, "in-keyring");
        if marker.exists() || file::ensure_private_dir(&file::dir_of(&self.path)).is_err() {
            return;
        }
        if let Ok(mut f) = file::create_private_file(&marker) {
            // The content is for a person who finds the file; its existence is what counts.
            let _ = writeln!(
                f,
                "comfy-monitor keeps instance credentials of this profile in the OS keyring \
                 (service {}); {} holds only those stored while the keyring could not be reached.",
                crate::SERVICE,
                self.path.display()
            );
        }
    }
}
