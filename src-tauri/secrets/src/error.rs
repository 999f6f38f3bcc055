//! The one error type of the secrets crate, worded so the user can act on it.
//!
//! No variant carries a secret value, not even a fragment of one: the JSON parser's own messages
//! can quote the input, so `Corrupt` keeps only where the file went wrong, never what it said.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The OS keyring refused, failed or did not answer in time.
    #[error("the OS keyring failed: {0}")]
    Keyring(String),

    /// The keyring could not be reached (locked, not started yet, not answering) and the
    /// credential is not in the fallback file, so it may be in the keyring.
    #[error("the OS keyring cannot be reached ({0}) and the credential may be kept there: unlock the keyring (log in to the desktop session) and try again")]
    KeyringUnreachable(String),

    /// The fallback file or its directory could not be read, written or created.
    #[error("cannot use the secrets file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Not a comfy-monitor secrets file (bad JSON, wrong shape, unknown version). Left untouched.
    #[error("{} is not a readable comfy-monitor secrets file ({detail}); it was left untouched: move it aside and enter the instance credentials again", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// The fallback file (or its directory) is open to other users, so its secrets may already
    /// have leaked; it is not used until only its owner can reach it.
    #[error("{} is open to other users (mode {mode:03o}), so comfy-monitor will not use it; run `chmod go-rwx {}` and consider changing the credentials it holds", path.display(), path.display())]
    Insecure { path: PathBuf, mode: u32 },

    /// Windows: the fallback file (or its directory) is outside the user's profile folder,
    /// whose access rules (the user, SYSTEM and Administrators) are what keep it the user's
    /// alone there; elsewhere, such as another drive's folders, other users may read it.
    #[error("{} is outside your user profile folder, where other users may be able to read it, so comfy-monitor will not use it: keep the profile (--db) under your user folder, or leave COMFY_MONITOR_SECRETS unset so credentials go to the Windows Credential Manager", path.display())]
    OutsideProfile { path: PathBuf },
}
