//! The fallback store: one JSON file that only its owner can read, for machines with no keyring.
//!
//! Layout: `{"version":1,"secrets":{"<ref>":"<value>"}}`. Every change rewrites the whole file
//! through a new owner-only temporary file and a rename, so a crash leaves the old file or the new
//! one, never half of either, and the file is never readable by others, not even for a moment.
//! The file is read afresh on every call, so two comfy-monitor processes see each other's changes.
//!
//! This module must not loosen permissions, repair or overwrite a file it cannot parse, or let a
//! value reach an error message or `Debug` output.

use crate::SecretsError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The only layout this version writes and reads.
pub(crate) const FILE_VERSION: u32 = 1;

/// Permission bits that must be clear on the file: nothing for group or others.
#[cfg(unix)]
const FILE_FORBIDDEN_BITS: u32 = 0o077;
/// Permission bits that must be clear on the directory: others must not add, rename or remove
/// entries, or they could swap the file.
#[cfg(unix)]
const DIR_FORBIDDEN_BITS: u32 = 0o022;

#[derive(Serialize, Deserialize)]
struct FileDoc {
    version: u32,
    secrets: BTreeMap<String, String>,
}

impl Default for FileDoc {
    fn default() -> Self {
        Self {
            version: FILE_VERSION,
            secrets: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for FileDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDoc")
            .field("version", &self.version)
            .field(
                "secrets",
                &self.secrets.keys().map(|k| (k, "***")).collect::<Vec<_>>(),
            )
            .finish()
    }
}

pub(crate) struct FileStore {
    path: PathBuf,
    /// Serialises read-modify-write within this process. Between processes the last rename wins.
    lock: Mutex<()>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Makes the directory if missing (owner-only) and checks an existing file: open to others
    /// is `Insecure`, unparsable is `Corrupt`. A missing file is fine; the first `set` makes it.
    pub(crate) fn open(path: &Path) -> Result<Self, SecretsError> {
        ensure_private_dir(&dir_of(path))?;
        let store = Self::lazy(path);
        store.load()?;
        Ok(store)
    }

    /// The store at `path`, not touched until used: nothing is created before the first `set`,
    /// and a missing file reads as empty. The checks of [`FileStore::open`] run at each use.
    pub(crate) fn lazy(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    pub(crate) fn get(&self, secret_ref: &str) -> Result<Option<String>, SecretsError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(self.load()?.secrets.remove(secret_ref))
    }

    pub(crate) fn set(&self, secret_ref: &str, value: &str) -> Result<(), SecretsError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ensure_private_dir(&dir_of(&self.path))?;
        let mut doc = self.load()?;
        doc.secrets.insert(secret_ref.to_owned(), value.to_owned());
        self.save(&doc)
    }

    pub(crate) fn delete(&self, secret_ref: &str) -> Result<(), SecretsError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut doc = self.load()?;
        if doc.secrets.remove(secret_ref).is_some() {
            self.save(&doc)?;
        }
        Ok(())
    }

    fn io_error(&self, source: io::Error) -> SecretsError {
        SecretsError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn load(&self) -> Result<FileDoc, SecretsError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileDoc::default()),
            Err(e) => return Err(self.io_error(e)),
        };
        // Checked on the open handle, so the file judged is the file read.
        let meta = file.metadata().map_err(|e| self.io_error(e))?;
        if !meta.is_file() {
            return Err(self.io_error(io::Error::other("not a regular file")));
        }
        check_private(&self.path, &meta, PrivateKind::File)?;
        // Others able to write to the directory could have swapped the file.
        let dir = dir_of(&self.path);
        let dir_meta = fs::metadata(&dir).map_err(|source| SecretsError::Io {
            path: dir.clone(),
            source,
        })?;
        check_private(&dir, &dir_meta, PrivateKind::Dir)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                self.corrupt("not UTF-8 text".to_owned())
            } else {
                self.io_error(e)
            }
        })?;
        let doc: FileDoc = serde_json::from_str(&text).map_err(|e| {
            // The parser's message can quote the file; keep only the kind and the place.
            let kind = match e.classify() {
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Syntax => "invalid JSON",
                serde_json::error::Category::Data => "unexpected layout",
                serde_json::error::Category::Eof => "truncated JSON",
            };
            self.corrupt(format!("{kind} at line {} column {}", e.line(), e.column()))
        })?;
        if doc.version != FILE_VERSION {
            return Err(self.corrupt(format!(
                "layout version {} where this comfy-monitor knows {FILE_VERSION}",
                doc.version
            )));
        }
        Ok(doc)
    }

    fn corrupt(&self, detail: String) -> SecretsError {
        SecretsError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    /// Writes `doc` to a new owner-only file beside the target, then renames it into place.
    fn save(&self, doc: &FileDoc) -> Result<(), SecretsError> {
        let dir = dir_of(&self.path);
        let mut bytes = serde_json::to_vec_pretty(doc)
            .map_err(|e| self.io_error(io::Error::other(e.to_string())))?;
        bytes.push(b'\n');
        let tmp = temp_path_for(&self.path);
        let written = create_private_file(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            // Best effort: the temporary file is owner-only, so a leftover leaks nothing.
            let _ = fs::remove_file(&tmp);
            return Err(self.io_error(e));
        }
        sync_dir(&dir);
        Ok(())
    }
}

/// Creates `path` exclusively with owner-only permissions from the first moment.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The directory holding `path`; a bare file name lives in the current directory.
pub(crate) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates missing directories as owner-only (0700), then refuses a directory that others may
/// write to. An existing directory's mode is not changed: it may belong to something else too.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), SecretsError> {
    let io_error = |source| SecretsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_error)?;
    let meta = fs::metadata(dir).map_err(io_error)?;
    check_private(dir, &meta, PrivateKind::Dir)
}

#[derive(Clone, Copy)]
enum PrivateKind {
    File,
    Dir,
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata, kind: PrivateKind) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    let forbidden = match kind {
        PrivateKind::File => FILE_FORBIDDEN_BITS,
        PrivateKind::Dir => DIR_FORBIDDEN_BITS,
    };
    if mode & forbidden != 0 {
        return Err(SecretsError::Insecure {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Windows has no mode bits: what makes a file the user's alone is its access control list,
/// which a new file or folder inherits from the folder it is made in. The user's profile folder
/// (`%USERPROFILE%`, holding `%APPDATA%` and `%LOCALAPPDATA%`) grants only the user, SYSTEM and
/// Administrators (as root may read a 0600 file), so the file and its folder must lie inside
/// it; a folder elsewhere (another drive's root grants every signed-in user) is refused. The
/// ACL itself is not read: that takes the Win32 security API, which is `unsafe` to call.
#[cfg(windows)]
fn check_private(path: &Path, _: &fs::Metadata, _: PrivateKind) -> Result<(), SecretsError> {
    let full = fs::canonicalize(path).map_err(|source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let profile = std::env::var_os("USERPROFILE").and_then(|p| fs::canonicalize(p).ok());
    match profile {
        Some(profile) if is_within(&full, &profile) => Ok(()),
        _ => Err(SecretsError::OutsideProfile {
            path: path.to_path_buf(),
        }),
    }
}

/// Elsewhere (neither Unix nor Windows) nothing is known to check.
#[cfg(not(any(unix, windows)))]
fn check_private(_: &Path, _: &fs::Metadata, _: PrivateKind) -> Result<(), SecretsError> {
    Ok(())
}

/// Whether `path` is `folder` or lies below it, comparing whole components, ASCII case aside
/// (Windows' paths ignore case; both sides come from `canonicalize`, which spells them alike).
#[cfg(any(windows, test))]
fn is_within(path: &Path, folder: &Path) -> bool {
    let mut inner = path.components();
    folder.components().all(|f| {
        inner
            .next()
            .is_some_and(|p| p.as_os_str().eq_ignore_ascii_case(f.as_os_str()))
    })
}

/// A fresh name beside `path`, unique within this process and across processes (pid).
fn temp_path_for(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secrets".to_owned());
    dir_of(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Makes the rename durable where the platform allows it. Failure only weakens durability.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_file_contents_shows_refs_but_never_values() {
        let mut doc = FileDoc::default();
        doc.secrets
            .insert("instance/1/token".into(), "hunter2-value".into());
        let shown = format!("{doc:?}");
        assert!(shown.contains("instance/1/token"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn corrupt_detail_never_quotes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        // A value where the map belongs: serde_json's own message would quote it.
        fs::write(&path, r#"{"version":1,"secrets":"hunter2-value"}"#).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = FileStore::open(&path).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, SecretsError::Corrupt { .. }), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn only_a_path_inside_the_folder_is_within_it() {
        let profile = Path::new("/home/Ada");
        assert!(is_within(
            Path::new("/home/Ada/AppData/secrets.json"),
            profile
        ));
        assert!(is_within(
            Path::new("/home/ada/AppData/secrets.json"),
            profile
        ));
        assert!(is_within(profile, profile));
        assert!(!is_within(Path::new("/home/Adam/secrets.json"), profile));
        assert!(!is_within(Path::new("/home"), profile));
        assert!(!is_within(Path::new("/srv/secrets.json"), profile));
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("secrets.json")), PathBuf::from("."));
        assert_eq!(dir_of(Path::new("/a/b.json")), PathBuf::from("/a"));
    }
}
