//! Instance credentials for comfy-monitor (tokens, passwords, secret header values), kept in the
//! OS keyring, or while none can be reached, in a JSON file only the user can read.
//!
//! Secrets are addressed by the refs the store hands out (`instance/<id>/<slot>`); in the keyring
//! each ref is the account of an item under the service [`SERVICE`]. Opening touches neither the
//! keyring nor the file: the backend is decided call by call (see below), and what the user must
//! be told about it is collected for the caller ([`Secrets::take_notices`]).
//!
//! This crate must not log, print or `Debug`-format a secret value, write one anywhere but the
//! keyring or the owner-only file, or use a fallback file that others can read. It knows nothing
//! of instances, the store, the engine or tauri.
//!
//! # Choosing the backend
//!
//! `COMFY_MONITOR_SECRETS` ([`BACKEND_ENV_VAR`]) decides, case-insensitively ([`Choice`]):
//! - `file`: always the file, the keyring is not touched;
//! - `keyring`: always the keyring; a call it cannot answer fails instead of falling back;
//! - unset or anything else: the keyring, each call falling back to the file only while the
//!   keyring cannot be reached. A keyring that is locked or not yet started when the app starts
//!   (autostart before the desktop unlocks it) is asked again on a later call
//!   ([`Secrets::keyring_retry`]), so it is used as soon as it answers: one failure never moves
//!   the whole session to the file. No item is written just to find out.
//!
//! # The fallback file
//!
//! `{"version":1,"secrets":{"<ref>":"<value>"}}`, mode 0600, in a directory created as 0700. An
//! existing file open to group or others, or a directory others can write to, is refused with
//! [`SecretsError::Insecure`]; a file that does not parse is refused with
//! [`SecretsError::Corrupt`] and left as it is. On Windows, which has no mode bits, the file
//! and its directory must lie in the user's profile folder, whose access list (the user, SYSTEM,
//! Administrators) they inherit; anywhere else is refused with
//! [`SecretsError::OutsideProfile`]. (There the keyring is the Credential Manager, which every
//! signed-in session has, so the file is used only when `COMFY_MONITOR_SECRETS=file` asks.) Beside it, `<file name>.noticed` records that the
//! user has been told the file is forced, and `<file name>.in-keyring` that this profile has kept
//! credentials in the keyring (so when the keyring cannot be reached, a credential missing from
//! the file may be there, and the user is warned instead of told it is missing).

mod auto;
mod error;
mod file;
mod os_keyring;
mod values;

pub use error::SecretsError;
pub use os_keyring::SERVICE;
pub use values::SecretValues;

use auto::Auto;
use file::FileStore;
use os_keyring::{Failure, Keyring, OsKeyring, CALL_TIMEOUT};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The environment variable that forces a backend; see the crate docs.
pub const BACKEND_ENV_VAR: &str = "COMFY_MONITOR_SECRETS";

/// How long the keyring is left alone after it could not be reached, before a call asks it
/// again. Each call meanwhile uses the file alone, so a keyring that never answers costs one
/// wait per period, not one per call.
pub const KEYRING_RETRY: Duration = Duration::from_secs(30);

/// Where the user asked secrets to be kept ([`BACKEND_ENV_VAR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The keyring, falling back to the file call by call while it cannot be reached.
    Auto,
    File,
    Keyring,
}

impl Choice {
    /// What [`BACKEND_ENV_VAR`] asks for.
    pub fn from_env() -> Self {
        Self::parse(std::env::var_os(BACKEND_ENV_VAR).as_deref())
    }

    fn parse(value: Option<&OsStr>) -> Self {
        match value.and_then(OsStr::to_str).map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("file") => Choice::File,
            Some(v) if v.eq_ignore_ascii_case("keyring") => Choice::Keyring,
            _ => Choice::Auto,
        }
    }
}

/// Where secrets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The OS keyring, items under [`SERVICE`].
    Keyring,
    /// The owner-only JSON file at `path`.
    File { path: PathBuf },
    /// The OS keyring, and the file at `path` for what was stored while the keyring could not
    /// be reached.
    KeyringOrFile { path: PathBuf },
}

/// The secrets of every instance. `Send + Sync`; each call goes to the backend, no value is
/// cached, so other comfy-monitor processes' changes are seen.
pub struct Secrets {
    backend: Backend,
    store: Store,
    notices: Notices,
}

enum Store {
    File(FileStore),
    Keyring(Box<dyn Keyring>),
    Auto(Auto),
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Holds no values, but say so rather than rely on it.
        f.debug_struct("Secrets")
            .field("backend", &self.backend)
            .field("values", &"***")
            .finish()
    }
}

impl Secrets {
    /// The secrets as [`BACKEND_ENV_VAR`] chooses, with `fallback_path` as the file. Contacts
    /// no keyring; fails only when the file is forced and cannot be used.
    pub fn open(fallback_path: &Path) -> Result<Secrets, SecretsError> {
        Self::open_as(Choice::from_env(), fallback_path)
    }

    /// The secrets as `choice` says, with `fallback_path` as the file. Forcing the file checks
    /// it now, and notes once for this path (ever, across runs) that the user must be told.
    pub fn open_as(choice: Choice, fallback_path: &Path) -> Result<Secrets, SecretsError> {
        Self::open_with(choice, fallback_path, Box::new(OsKeyring))
    }

    fn open_with(
        choice: Choice,
        fallback_path: &Path,
        keyring: Box<dyn Keyring>,
    ) -> Result<Secrets, SecretsError> {
        let path = fallback_path.to_path_buf();
        Ok(match choice {
            Choice::File => {
                let secrets = Secrets::file_only(fallback_path)?;
                if claim_notice(fallback_path)? {
                    secrets.notices.push(file_forced_notice(fallback_path));
                }
                secrets
            }
            Choice::Keyring => Secrets {
                backend: Backend::Keyring,
                store: Store::Keyring(keyring),
                notices: Notices::default(),
            },
            Choice::Auto => Secrets {
                backend: Backend::KeyringOrFile { path: path.clone() },
                store: Store::Auto(Auto::new(keyring, path)),
                notices: Notices::default(),
            },
        })
    }

    /// The file backend at `path`, without touching the keyring or recording a notice.
    pub fn file_only(path: &Path) -> Result<Secrets, SecretsError> {
        Ok(Secrets {
            backend: Backend::File {
                path: path.to_path_buf(),
            },
            store: Store::File(FileStore::open(path)?),
            notices: Notices::default(),
        })
    }

    /// How long a keyring that could not be reached is left alone ([`KEYRING_RETRY`] unless
    /// changed); `Duration::ZERO` asks it again on every call. Only the automatic choice falls
    /// back, so only it has anything to retry.
    pub fn keyring_retry(mut self, after: Duration) -> Self {
        if let Store::Auto(auto) = &mut self.store {
            auto.set_retry(after);
        }
        self
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// What the user must be told since the last call (the file is forced, a credential went
    /// to the file, the keyring cannot be reached while it may hold credentials), each once.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices.take()
    }

    /// Stores `value` under `secret_ref`, replacing any earlier value.
    pub fn set(&self, secret_ref: &str, value: &str) -> Result<(), SecretsError> {
        match &self.store {
            Store::File(file) => file.set(secret_ref, value),
            Store::Keyring(keyring) => keyring
                .set(secret_ref, value, CALL_TIMEOUT)
                .map_err(keyring_error),
            Store::Auto(auto) => auto.set(secret_ref, value, &self.notices),
        }
    }

    /// The value under `secret_ref`, or `None` when there is none.
    pub fn get(&self, secret_ref: &str) -> Result<Option<String>, SecretsError> {
        match &self.store {
            Store::File(file) => file.get(secret_ref),
            Store::Keyring(keyring) => keyring.get(secret_ref, CALL_TIMEOUT).map_err(keyring_error),
            Store::Auto(auto) => auto.get(secret_ref, &self.notices),
        }
    }

    /// Removes the value under `secret_ref`; a missing one is not an error.
    pub fn delete(&self, secret_ref: &str) -> Result<(), SecretsError> {
        match &self.store {
            Store::File(file) => file.delete(secret_ref),
            Store::Keyring(keyring) => keyring
                .delete(secret_ref, CALL_TIMEOUT)
                .map_err(keyring_error),
            Store::Auto(auto) => auto.delete(secret_ref, &self.notices),
        }
    }
}

/// With the keyring forced, whatever it cannot do is an error: there is nothing to fall back to.
fn keyring_error(failure: Failure) -> SecretsError {
    SecretsError::Keyring(failure.why().to_owned())
}

/// Messages for the user, each kept once until taken.
#[derive(Default)]
struct Notices(Mutex<Vec<String>>);

impl Notices {
    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        // A list of messages stays valid after a panic elsewhere.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, text: String) {
        let mut notices = self.lock();
        if !notices.contains(&text) {
            notices.push(text);
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock())
    }
}

fn file_forced_notice(path: &Path) -> String {
    format!(
        "Instance credentials are kept in {} (readable only by you), not in the OS keyring: \
         {BACKEND_ENV_VAR}=file asks for it. To use the keyring, leave {BACKEND_ENV_VAR} unset \
         and run a Secret Service such as GNOME Keyring or KeePassXC; credentials already in the \
         file are not moved, so enter them again.",
        path.display()
    )
}

/// A marker beside the fallback file: `<file name>.<suffix>`.
fn marker(fallback_path: &Path, suffix: &str) -> PathBuf {
    let name = fallback_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secrets".to_owned());
    file::dir_of(fallback_path).join(format!("{name}.{suffix}"))
}

/// True exactly once per fallback path: whoever creates the marker first (creation is
/// exclusive, so two processes starting together cannot both win).
fn claim_notice(fallback_path: &Path) -> Result<bool, SecretsError> {
    let marker = marker(fallback_path, "noticed");
    match file::create_private_file(&marker) {
        Ok(mut f) => {
            // The content is for a person who finds the file; its existence is what counts.
            let _ = writeln!(
                f,
                "comfy-monitor has told the user that instance credentials are kept in {} instead of the OS keyring.",
                fallback_path.display()
            );
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(SecretsError::Io {
            path: marker,
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
