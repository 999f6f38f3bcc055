//! Instance credentials for comfy-monitor (tokens, passwords, secret header values), kept in the
//! OS keyring, or where none is reachable, in a JSON file only the user can read.
//!
//! Secrets are addressed by the refs the store hands out (`instance/<id>/<slot>`); in the keyring
//! each ref is the account of an item under the service [`SERVICE`]. [`Secrets::open`] probes the
//! keyring once and reports in [`Opened`] which backend it chose and whether this is the first
//! time the file was chosen, so the caller can tell the user exactly once ([`Opened::notice`]).
//!
//! This crate must not log, print or `Debug`-format a secret value, write one anywhere but the
//! keyring or the owner-only file, or use a fallback file that others can read. It knows nothing
//! of instances, the store, the engine or tauri.
//!
//! # Choosing the backend
//!
//! `COMFY_MONITOR_SECRETS` ([`BACKEND_ENV_VAR`]) decides, case-insensitively:
//! - `file`: always the file, the keyring is not touched;
//! - `keyring`: always the keyring; if it does not work, `open` fails instead of falling back;
//! - unset or anything else: the keyring if the probe succeeds, else the file.
//!
//! # The fallback file
//!
//! `{"version":1,"secrets":{"<ref>":"<value>"}}`, mode 0600, in a directory created as 0700. An
//! existing file open to group or others, or a directory others can write to, is refused with
//! [`SecretsError::Insecure`]; a file that does not parse is refused with
//! [`SecretsError::Corrupt`] and left as it is. Beside it, `<file name>.noticed` records that the
//! user has been told about the fallback.

mod error;
mod file;
mod os_keyring;

pub use error::SecretsError;
pub use os_keyring::SERVICE;

use file::FileStore;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The environment variable that forces a backend; see the crate docs.
pub const BACKEND_ENV_VAR: &str = "COMFY_MONITOR_SECRETS";

/// Where secrets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The OS keyring, items under [`SERVICE`].
    Keyring,
    /// The owner-only JSON file at `path`.
    File { path: PathBuf },
}

/// What [`Secrets::open`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub backend: Backend,
    /// True the first time the file was chosen for this path (ever, across runs): the caller
    /// should show [`Opened::notice`] now, and will not be asked to again.
    pub first_fallback: bool,
    /// Why the file is used (the keyring's failure, or the environment variable); `None` when
    /// the keyring is used.
    pub reason: Option<String>,
}

impl Opened {
    /// The one-time message for the user, when [`Opened::first_fallback`] is set.
    pub fn notice(&self) -> Option<String> {
        let Backend::File { path } = &self.backend else {
            return None;
        };
        if !self.first_fallback {
            return None;
        }
        let why = self
            .reason
            .as_deref()
            .unwrap_or("no OS keyring is available");
        Some(format!(
            "Instance credentials are kept in {} (readable only by you), not in the OS keyring: \
             {why}. To use the keyring, leave {BACKEND_ENV_VAR} unset and run an unlocked Secret \
             Service such as GNOME Keyring or KeePassXC; credentials already in the file are not \
             moved, so enter them again.",
            path.display()
        ))
    }
}

/// The secrets of every instance, in the backend chosen at open. `Send + Sync`; each call goes
/// to the backend, nothing is cached, so other comfy-monitor processes' changes are seen.
pub struct Secrets {
    backend: Backend,
    file: Option<FileStore>,
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

/// What the user asked for through [`BACKEND_ENV_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Auto,
    File,
    Keyring,
}

impl Choice {
    fn from_env(value: Option<&OsStr>) -> Self {
        match value.and_then(OsStr::to_str).map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("file") => Choice::File,
            Some(v) if v.eq_ignore_ascii_case("keyring") => Choice::Keyring,
            _ => Choice::Auto,
        }
    }
}

impl Secrets {
    /// Probes the keyring (a write, read and delete of a throwaway item under [`SERVICE`]) and
    /// uses it if that works; otherwise, or when `COMFY_MONITOR_SECRETS=file`, uses the file at
    /// `fallback_path`. The probe gives up after a few seconds, so a locked keyring that nobody
    /// can unlock delays the start by that much and then falls back.
    pub fn open(fallback_path: &Path) -> Result<(Secrets, Opened), SecretsError> {
        let choice = Choice::from_env(std::env::var_os(BACKEND_ENV_VAR).as_deref());
        open_with(fallback_path, choice, os_keyring::probe)
    }

    /// The file backend at `path`, without probing the keyring or recording a notice.
    pub fn file_only(path: &Path) -> Result<Secrets, SecretsError> {
        Ok(Secrets {
            backend: Backend::File {
                path: path.to_path_buf(),
            },
            file: Some(FileStore::open(path)?),
        })
    }

    fn keyring() -> Secrets {
        Secrets {
            backend: Backend::Keyring,
            file: None,
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Stores `value` under `secret_ref`, replacing any earlier value.
    pub fn set(&self, secret_ref: &str, value: &str) -> Result<(), SecretsError> {
        match &self.file {
            Some(file) => file.set(secret_ref, value),
            None => os_keyring::set(secret_ref, value),
        }
    }

    /// The value under `secret_ref`, or `None` when there is none.
    pub fn get(&self, secret_ref: &str) -> Result<Option<String>, SecretsError> {
        match &self.file {
            Some(file) => file.get(secret_ref),
            None => os_keyring::get(secret_ref),
        }
    }

    /// Removes the value under `secret_ref`; a missing one is not an error.
    pub fn delete(&self, secret_ref: &str) -> Result<(), SecretsError> {
        match &self.file {
            Some(file) => file.delete(secret_ref),
            None => os_keyring::delete(secret_ref),
        }
    }
}

/// [`Secrets::open`] with the environment already read and the keyring probe passed in.
fn open_with(
    fallback_path: &Path,
    choice: Choice,
    probe: impl FnOnce() -> Result<(), String>,
) -> Result<(Secrets, Opened), SecretsError> {
    let why_file = match choice {
        Choice::File => format!("{BACKEND_ENV_VAR}=file asks for it"),
        Choice::Keyring => {
            probe().map_err(SecretsError::Keyring)?;
            return Ok(keyring_opened());
        }
        Choice::Auto => match probe() {
            Ok(()) => return Ok(keyring_opened()),
            Err(why) => format!("no usable OS keyring ({why})"),
        },
    };
    let secrets = Secrets::file_only(fallback_path)?;
    let first_fallback = claim_notice(fallback_path)?;
    let opened = Opened {
        backend: secrets.backend.clone(),
        first_fallback,
        reason: Some(why_file),
    };
    Ok((secrets, opened))
}

fn keyring_opened() -> (Secrets, Opened) {
    let opened = Opened {
        backend: Backend::Keyring,
        first_fallback: false,
        reason: None,
    };
    (Secrets::keyring(), opened)
}

/// The marker beside the fallback file that says the user has been told.
fn notice_marker(fallback_path: &Path) -> PathBuf {
    let name = fallback_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secrets".to_owned());
    file::dir_of(fallback_path).join(format!("{name}.noticed"))
}

/// True exactly once per fallback path: whoever creates the marker first (creation is
/// exclusive, so two processes starting together cannot both win).
fn claim_notice(fallback_path: &Path) -> Result<bool, SecretsError> {
    let marker = notice_marker(fallback_path);
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
mod tests {
    use super::*;

    fn no_keyring() -> Result<(), String> {
        Err("no Secret Service on the session bus".to_owned())
    }

    fn fallback() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets").join("secrets.json");
        (dir, path)
    }

    #[test]
    fn a_failed_probe_falls_back_to_the_file_and_says_why() {
        let (_dir, path) = fallback();
        let (secrets, opened) = open_with(&path, Choice::Auto, no_keyring).unwrap();
        assert_eq!(opened.backend, Backend::File { path: path.clone() });
        assert_eq!(secrets.backend(), &opened.backend);
        let reason = opened.reason.unwrap();
        assert!(reason.contains("no Secret Service"), "{reason}");
    }

    #[test]
    fn the_fallback_is_announced_once_and_never_again() {
        let (_dir, path) = fallback();
        let (_, first) = open_with(&path, Choice::Auto, no_keyring).unwrap();
        assert!(first.first_fallback);
        assert!(first
            .notice()
            .unwrap()
            .contains(&path.display().to_string()));
        let (_, second) = open_with(&path, Choice::Auto, no_keyring).unwrap();
        assert!(!second.first_fallback);
        assert_eq!(second.notice(), None);
    }

    #[test]
    fn a_working_keyring_is_chosen_and_no_file_is_made() {
        let (dir, path) = fallback();
        let (secrets, opened) = open_with(&path, Choice::Auto, || Ok(())).unwrap();
        assert_eq!(secrets.backend(), &Backend::Keyring);
        assert_eq!(
            opened,
            Opened {
                backend: Backend::Keyring,
                first_fallback: false,
                reason: None
            }
        );
        assert_eq!(opened.notice(), None);
        assert!(!dir.path().join("secrets").exists());
    }

    #[test]
    fn asking_for_the_file_never_touches_the_keyring() {
        let (_dir, path) = fallback();
        let (_, opened) = open_with(&path, Choice::File, || {
            panic!("the keyring was probed although the file was asked for")
        })
        .unwrap();
        assert_eq!(opened.backend, Backend::File { path });
        assert!(opened.reason.unwrap().contains(BACKEND_ENV_VAR));
    }

    #[test]
    fn asking_for_the_keyring_fails_rather_than_falling_back() {
        let (dir, path) = fallback();
        let err = open_with(&path, Choice::Keyring, no_keyring).unwrap_err();
        assert!(matches!(err, SecretsError::Keyring(_)), "{err}");
        assert!(!dir.path().join("secrets").exists());
    }

    #[test]
    fn the_environment_variable_is_read_case_insensitively_and_unknown_values_mean_auto() {
        let c = |v: &str| Choice::from_env(Some(OsStr::new(v)));
        assert_eq!(c("file"), Choice::File);
        assert_eq!(c(" FILE "), Choice::File);
        assert_eq!(c("Keyring"), Choice::Keyring);
        assert_eq!(c(""), Choice::Auto);
        assert_eq!(c("auto"), Choice::Auto);
        assert_eq!(c("fiel"), Choice::Auto);
        assert_eq!(Choice::from_env(None), Choice::Auto);
    }

    #[test]
    fn secrets_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Secrets>();
    }
}
