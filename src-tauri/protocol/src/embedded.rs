//! The prompt ComfyUI embeds in what it saves, read back so a saved output can be queued again.
//!
//! Every save node writes the job's API-format prompt (what `POST /prompt` takes) under the key
//! `prompt`, and the page's own drawing of the graph under `workflow`:
//! - PNG (`SaveImage`, `SaveAnimatedPNG`): `tEXt` chunks (`iTXt` when the text is not Latin-1,
//!   and a `comf` chunk after the frames for animated PNGs), each `key\0value`;
//! - WebP (`SaveAnimatedWEBP`, `SaveWEBP`): EXIF in the RIFF `EXIF` chunk, the prompt as
//!   `prompt:{…}` in tag 0x0110 (Model) and the other keys as `key:{…}` from 0x010F downwards;
//! - FLAC (`SaveAudio`): Vorbis comments `prompt={…}`;
//! - MP4 (`SaveVideo`): QuickTime `mdta` metadata (`movflags=use_metadata_tags`) in `moov`.
//!
//! A JSON file is taken as it is. Everything here reads untrusted bytes: lengths are checked
//! before use, nothing is allocated from a length the file states, and a prompt is at most
//! [`MAX_PROMPT_BYTES`]. Any damage is a clear error, never a panic.

use crate::http::{check_api_workflow, WorkflowError};
use serde_json::Value;

/// The largest embedded prompt read (a real one is tens of kilobytes).
pub const MAX_PROMPT_BYTES: usize = 16 << 20;
/// How deep MP4 boxes are searched for the metadata.
const MAX_BOX_DEPTH: usize = 8;

/// What kind of file the bytes are, as the messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Png,
    Webp,
    Flac,
    Mp4,
    Json,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG image",
            Self::Webp => "WebP image",
            Self::Flac => "FLAC audio file",
            Self::Mp4 => "MP4 video",
            Self::Json => "JSON file",
        }
    }

    /// Recognises the bytes by their first bytes.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else if bytes.starts_with(b"fLaC") {
            Some(Self::Flac)
        } else if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
            Some(Self::Mp4)
        } else if bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{' || b == b'[')
            || bytes.starts_with(b"\xef\xbb\xbf")
        {
            Some(Self::Json)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbeddedError {
    #[error("not a file ComfyUI saves a prompt in (PNG, WebP, FLAC, MP4) nor an API-format workflow (JSON)")]
    Unknown,
    #[error("this {} holds only the workflow as the ComfyUI page draws it, not the prompt it ran; open it in ComfyUI and queue it there, or save it with Workflow → Export (API)", .0.name())]
    OnlyUiWorkflow(FileKind),
    #[error("this {} holds no ComfyUI prompt (it was not saved by ComfyUI, or saved with its metadata turned off)", .0.name())]
    NoPrompt(FileKind),
    #[error("this {} is damaged: {why}", .kind.name())]
    Damaged { kind: FileKind, why: &'static str },
    #[error("the prompt in this {} is larger than {} MiB", .0.name(), MAX_PROMPT_BYTES >> 20)]
    TooLarge(FileKind),
    #[error("the prompt in this {} is not valid: {why}", .kind.name())]
    BadPrompt { kind: FileKind, why: String },
}

/// The texts found under the two keys that matter.
#[derive(Debug, Default)]
struct Found {
    prompt: Option<String>,
    workflow: bool,
}

impl Found {
    /// Takes one `key`/`value` pair; keys are matched as ComfyUI writes them, ignoring case.
    fn take(&mut self, kind: FileKind, key: &[u8], value: &[u8]) -> Result<(), EmbeddedError> {
        if key.eq_ignore_ascii_case(b"prompt") {
            if self.prompt.is_none() {
                if value.len() > MAX_PROMPT_BYTES {
                    return Err(EmbeddedError::TooLarge(kind));
                }
                self.prompt = Some(text(value));
            }
        } else if key.eq_ignore_ascii_case(b"workflow") {
            self.workflow = true;
        }
        Ok(())
    }

    fn prompt(self, kind: FileKind) -> Result<Value, EmbeddedError> {
        let Some(text) = self.prompt else {
            return Err(if self.workflow {
                EmbeddedError::OnlyUiWorkflow(kind)
            } else {
                EmbeddedError::NoPrompt(kind)
            });
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| EmbeddedError::BadPrompt {
            kind,
            why: e.to_string(),
        })?;
        checked(kind, value)
    }
}

fn checked(kind: FileKind, value: Value) -> Result<Value, EmbeddedError> {
    match check_api_workflow(&value) {
        Ok(()) => Ok(value),
        Err(WorkflowError::UiFormat) => Err(EmbeddedError::OnlyUiWorkflow(kind)),
        Err(e) => Err(EmbeddedError::BadPrompt {
            kind,
            why: e.to_string(),
        }),
    }
}

/// UTF-8 where it is (JSON from ComfyUI is ASCII), else each byte as Latin-1 (PNG `tEXt`).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The API-format prompt in `bytes` (a file ComfyUI saved, or a workflow as JSON).
pub fn embedded_prompt(bytes: &[u8]) -> Result<Value, EmbeddedError> {
    let kind = FileKind::of(bytes).ok_or(EmbeddedError::Unknown)?;
    let found = match kind {
        FileKind::Json => {
            let value: Value =
                serde_json::from_slice(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes))
                    .map_err(|e| EmbeddedError::BadPrompt {
                        kind,
                        why: e.to_string(),
                    })?;
            return checked(kind, value);
        }
        FileKind::Png => png(bytes)?,
        FileKind::Webp => webp(bytes)?,
        FileKind::Flac => flac(bytes)?,
        FileKind::Mp4 => mp4(bytes)?,
    };
    found.prompt(kind)
}

fn damaged(kind: FileKind, why: &'static str) -> EmbeddedError {
    EmbeddedError::Damaged { kind, why }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `len` bytes from `at`, if the file has them.
fn slice(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(len)?)
}

fn png(b: &[u8]) -> Result<Found, EmbeddedError> {
    let kind = FileKind::Png;
    let mut found = Found::default();
    let mut at = 8;
    while at < b.len() {
        let (Some(len), Some(chunk)) = (be32(b, at), b.get(at + 4..at + 8)) else {
            return Err(damaged(kind, "it ends inside a chunk header"));
        };
        let data = slice(b, at + 8, len as usize)
            .ok_or_else(|| damaged(kind, "a chunk runs past the end of the file"))?;
        match chunk {
            // keyword \0 text
            b"tEXt" | b"comf" => {
                if let Some(nul) = data.iter().position(|&c| c == 0) {
                    found.take(kind, &data[..nul], &data[nul + 1..])?;
                }
            }
            b"iTXt" => {
                if let Some((key, compressed, value)) = itxt(data) {
                    if !compressed {
                        found.take(kind, key, value)?;
                    } else if key.eq_ignore_ascii_case(b"prompt") {
                        return Err(damaged(
                            kind,
                            "its prompt is compressed, which ComfyUI never does",
                        ));
                    }
                }
            }
            b"IEND" => break,
            _ => {}
        }
        // Header 8, data, CRC 4.
        at = at.saturating_add(12).saturating_add(len as usize);
    }
    Ok(found)
}

/// An `iTXt` chunk: keyword \0, compression flag, method, language \0, translated keyword \0,
/// text. Returns the keyword, whether the text is compressed, and the text.
fn itxt(data: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let nul = data.iter().position(|&c| c == 0)?;
    let (key, rest) = (&data[..nul], &data[nul + 1..]);
    let compressed = *rest.first()? != 0;
    let mut tail = rest.get(2..)?.splitn(3, |&c| c == 0);
    let (_language, _translated, value) = (tail.next()?, tail.next()?, tail.next()?);
    Some((key, compressed, value))
}

fn webp(b: &[u8]) -> Result<Found, EmbeddedError> {
    let kind = FileKind::Webp;
    let mut at = 12;
    while at < b.len() {
        let (Some(fourcc), Some(len)) = (b.get(at..at + 4), le32(b, at + 4)) else {
            return Err(damaged(kind, "it ends inside a chunk header"));
        };
        let data = slice(b, at + 8, len as usize)
            .ok_or_else(|| damaged(kind, "a chunk runs past the end of the file"))?;
        if fourcc == b"EXIF" {
            // Some writers keep the JPEG "Exif\0\0" prefix.
            let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
            return exif(tiff).ok_or_else(|| damaged(kind, "its EXIF block is damaged"))?;
        }
        // Chunks are padded to an even length.
        at = at
            .saturating_add(8)
            .saturating_add(len as usize)
            .saturating_add(len as usize & 1);
    }
    Ok(Found::default())
}

/// The `key:value` strings of the first EXIF directory (`None` when it is damaged).
fn exif(t: &[u8]) -> Option<Result<Found, EmbeddedError>> {
    let kind = FileKind::Webp;
    let little = match t.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<usize> {
        let b: [u8; 2] = t.get(at..at + 2)?.try_into().ok()?;
        Some(usize::from(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = t.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
        .ok()
    };
    let ifd = u32_at(4)?;
    let entries = u16_at(ifd)?;
    let mut found = Found::default();
    for i in 0..entries {
        let entry = ifd + 2 + i * 12;
        // ASCII (2) or UNDEFINED (7): one byte per count.
        let (kind_code, count) = (u16_at(entry + 2)?, u32_at(entry + 4)?);
        if kind_code != 2 && kind_code != 7 {
            continue;
        }
        let value = if count <= 4 {
            t.get(entry + 8..entry + 8 + count)?
        } else {
            slice(t, u32_at(entry + 8)?, count)?
        };
        let value = value.strip_suffix(b"\0").unwrap_or(value);
        if let Some(colon) = value.iter().position(|&c| c == b':') {
            if let Err(e) = found.take(kind, &value[..colon], &value[colon + 1..]) {
                return Some(Err(e));
            }
        }
    }
    Some(Ok(found))
}

fn flac(b: &[u8]) -> Result<Found, EmbeddedError> {
    let kind = FileKind::Flac;
    let mut found = Found::default();
    let mut at = 4;
    loop {
        let header = be32(b, at).ok_or_else(|| damaged(kind, "it ends inside its metadata"))?;
        let last = header & 0x8000_0000 != 0;
        let block_type = (header >> 24) & 0x7f;
        let len = (header & 0x00ff_ffff) as usize;
        let data = slice(b, at + 4, len)
            .ok_or_else(|| damaged(kind, "a metadata block runs past the end of the file"))?;
        if block_type == 4 {
            vorbis_comments(data, &mut found)
                .ok_or_else(|| damaged(kind, "its comment block is damaged"))??;
        }
        if last {
            return Ok(found);
        }
        at += 4 + len;
    }
}

/// Vendor string, then `KEY=value` comments, each with its length (little-endian).
fn vorbis_comments(d: &[u8], found: &mut Found) -> Option<Result<(), EmbeddedError>> {
    let vendor = le32(d, 0)? as usize;
    let mut at = 4usize.checked_add(vendor)?;
    let count = le32(d, at)?;
    at += 4;
    for _ in 0..count {
        let len = le32(d, at)? as usize;
        let comment = slice(d, at + 4, len)?;
        at += 4 + len;
        if let Some(eq) = comment.iter().position(|&c| c == b'=') {
            if let Err(e) = found.take(FileKind::Flac, &comment[..eq], &comment[eq + 1..]) {
                return Some(Err(e));
            }
        }
    }
    Some(Ok(()))
}

/// One ISO/QuickTime box: its type and its content.
fn boxes(b: &[u8]) -> impl Iterator<Item = Option<(&[u8], &[u8])>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= b.len() {
            return None;
        }
        let item = (|| {
            let size = be32(b, at)? as usize;
            let kind = b.get(at + 4..at + 8)?;
            let (header, size) = match size {
                0 => (8, b.len() - at),
                1 => {
                    let large = u64::from_be_bytes(b.get(at + 8..at + 16)?.try_into().ok()?);
                    (16, usize::try_from(large).ok()?)
                }
                n => (8, n),
            };
            let content = b.get(at + header..at.checked_add(size)?)?;
            at += size;
            Some((kind, content))
        })();
        if item.is_none() {
            at = b.len();
        }
        Some(item)
    })
}

fn mp4(b: &[u8]) -> Result<Found, EmbeddedError> {
    let kind = FileKind::Mp4;
    let mut found = Found::default();
    for item in boxes(b) {
        let (name, content) =
            item.ok_or_else(|| damaged(kind, "a box runs past the end of the file"))?;
        if name == b"moov" {
            find_meta(content, 0, &mut found)
                .ok_or_else(|| damaged(kind, "its metadata is damaged"))??;
        }
    }
    Ok(found)
}

/// Looks through a box's children for `meta` (in `moov`, or `udta`, `trak` below it).
fn find_meta(b: &[u8], depth: usize, found: &mut Found) -> Option<Result<(), EmbeddedError>> {
    if depth > MAX_BOX_DEPTH {
        return Some(Ok(()));
    }
    for item in boxes(b) {
        let (name, content) = item?;
        match name {
            b"meta" => {
                // ISO's `meta` has 4 bytes of version and flags first; QuickTime's does not.
                let children = if content.get(4..8) == Some(b"hdlr") {
                    content
                } else {
                    content.get(4..)?
                };
                if let Err(e) = mdta(children, found)? {
                    return Some(Err(e));
                }
            }
            b"udta" | b"trak" => {
                if let Err(e) = find_meta(content, depth + 1, found)? {
                    return Some(Err(e));
                }
            }
            _ => {}
        }
    }
    Some(Ok(()))
}

/// QuickTime `mdta` metadata: the key names in `keys`, the values in `ilst` by key number.
fn mdta(b: &[u8], found: &mut Found) -> Option<Result<(), EmbeddedError>> {
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut list = None;
    for item in boxes(b) {
        let (name, content) = item?;
        match name {
            b"keys" => {
                let count = be32(content, 4)?;
                let mut at = 8usize;
                for _ in 0..count {
                    let size = be32(content, at)? as usize;
                    keys.push(content.get(at + 8..at.checked_add(size)?)?);
                    at += size.max(8);
                }
            }
            b"ilst" => list = Some(content),
            _ => {}
        }
    }
    let Some(list) = list else {
        return Some(Ok(()));
    };
    for item in boxes(list) {
        let (index, content) = item?;
        let index = u32::from_be_bytes(index.try_into().ok()?) as usize;
        let Some(key) = index.checked_sub(1).and_then(|i| keys.get(i)) else {
            continue;
        };
        for data in boxes(content) {
            let (name, value) = data?;
            // type (4) and locale (4), then the value.
            if name == b"data" {
                if let Err(e) = found.take(FileKind::Mp4, key, value.get(8..)?) {
                    return Some(Err(e));
                }
            }
        }
    }
    Some(Ok(()))
}

#[cfg(test)]
mod tests;
