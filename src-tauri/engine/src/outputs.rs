//! Output files: downloaded through `/view` with the instance's credentials, saved without
//! ever escaping the chosen folder, and turned into small thumbnails with bounded decoding so a
//! hostile server cannot exhaust memory.
//!
//! A download is bounded in size and cut when it stalls (not after a fixed time: a large video
//! takes as long as it takes), and it is written under a temporary name of its own, created
//! anew, which is removed however the download ends short: an error, or the download dropped.

use crate::api::{Api, ApiError};
use comfy_protocol::http::OutputFile;
use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Largest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 256;
/// Images larger than this are not decoded for thumbnails.
const MAX_DECODE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(
        "{file}: the server has no such file (HTTP 404; temp files vanish when ComfyUI restarts)"
    )]
    Missing { file: String },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a file name ComfyUI could have written")]
    BadName(String),
    #[error("cannot make a thumbnail: {0}")]
    Thumbnail(String),
}

/// The path under `dir` where `file` goes: `subfolder/filename`, with anything that could
/// climb out of `dir` (absolute paths, `..`, drive prefixes) refused.
pub fn local_path(dir: &Path, file: &OutputFile) -> Result<PathBuf, OutputError> {
    let name = Path::new(&file.filename);
    let mut comps = name.components();
    let (Some(Component::Normal(only)), None) = (comps.next(), comps.next()) else {
        return Err(OutputError::BadName(file.filename.clone()));
    };
    let mut path = dir.to_path_buf();
    for c in Path::new(&file.subfolder).components() {
        match c {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            _ => return Err(OutputError::BadName(file.subfolder.clone())),
        }
    }
    path.push(only);
    Ok(path)
}

/// `name.png`, then `name (1).png`, ... : the first that does not exist.
fn free_path(path: PathBuf) -> PathBuf {
    if !path.exists() {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1..)
        .map(|i| path.with_file_name(format!("{stem} ({i}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(path)
}

/// A download's temporary file: `<name>.<random>.part` beside its target, created new (never
/// an existing file, a user's own `x.part` included), and removed when dropped (after
/// [`Partial::persist`] linked it to its target, or whatever happened).
struct Partial {
    path: Option<PathBuf>,
}

impl Partial {
    fn create(target: &Path) -> std::io::Result<(Self, File)> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut tries = 0;
        loop {
            let path = target.with_file_name(format!("{name}.{:08x}.part", rand::random::<u32>()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok((Self { path: Some(path) }, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts the finished file at `target`, or at the next free name (`x (1).png`) when
    /// something took that name meanwhile (another download of a file of the same name, on
    /// this instance or another): never replaces a file. Returns where it went.
    fn persist(self, target: &Path) -> std::io::Result<PathBuf> {
        let Some(path) = self.path.as_deref() else {
            return Err(std::io::Error::other("the download has no temporary file"));
        };
        let mut candidate = target.to_path_buf();
        for _ in 0..64 {
            // A hard link fails when the name is taken, so a name is claimed atomically.
            match std::fs::hard_link(path, &candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    candidate = free_path(target.to_path_buf());
                }
                // A file system without hard links (FAT on a USB stick): a rename to a name
                // found free a moment ago.
                Err(_) => {
                    let free = free_path(candidate);
                    std::fs::rename(path, &free)?;
                    let mut this = self;
                    this.path = None;
                    return Ok(free);
                }
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("no free name for {}", target.display()),
        ))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Api {
    /// `GET /view` for one output, its body still to be read; a missing file and any other
    /// non-success status are errors. For display: the whole answer within the request timeout.
    pub(crate) async fn view(&self, file: &OutputFile) -> Result<reqwest::Response, OutputError> {
        self.open_view(file, false).await
    }

    /// `GET /view` for one output, as a download (read it with [`Api::next_chunk`]).
    async fn open_view(
        &self,
        file: &OutputFile,
        download: bool,
    ) -> Result<reqwest::Response, OutputError> {
        let query = format!(
            "view?filename={}&subfolder={}&type={}",
            enc(&file.filename),
            enc(&file.subfolder),
            enc(&file.kind)
        );
        let resp = self.get_stream(&self.route_of(&query), download).await?;
        if resp.status().as_u16() == 404 {
            return Err(OutputError::Missing {
                file: file.filename.clone(),
            });
        }
        if !resp.status().is_success() {
            return Err(ApiError::Status {
                status: resp.status().as_u16(),
                path: "view".into(),
            }
            .into());
        }
        Ok(resp)
    }

    /// Downloads one output into `dir` and returns where it went. The file is written under a
    /// temporary name and renamed when complete, so a full disk, a stalled or oversized
    /// download, or a download dropped half-way leaves nothing behind.
    pub async fn fetch_output(
        &self,
        file: &OutputFile,
        dir: &Path,
    ) -> Result<PathBuf, OutputError> {
        let target = free_path(local_path(dir, file)?);
        let mut resp = self.open_view(file, true).await?;
        let max = self.limits().max_download;
        let too_large = || {
            OutputError::Api(ApiError::TooLarge {
                what: file.filename.clone(),
                cap: max,
            })
        };
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OutputError::Write { path, source }
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        let (partial, mut out) = Partial::create(&target).map_err(write_err(&target))?;
        let mut written = 0u64;
        while let Some(chunk) = self.next_chunk(&mut resp).await? {
            written += chunk.len() as u64;
            if written > max {
                return Err(too_large());
            }
            out.write_all(&chunk).map_err(write_err(&target))?;
        }
        out.sync_all().map_err(write_err(&target))?;
        drop(out);
        partial.persist(&target).map_err(write_err(&target))
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A PNG thumbnail no larger than [`THUMBNAIL_SIDE`], from JPEG, PNG or WebP bytes (an animated
/// WebP's first frame). Decoding is
/// bounded: an image declaring huge dimensions is refused before its pixels are allocated.
pub fn thumbnail(bytes: &[u8]) -> Result<Vec<u8>, OutputError> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| OutputError::Thumbnail(e.to_string()))?;
    thumbnail_of(reader, false)
}

/// A thumbnail of a downloaded file, to keep in the store: decoded as it is read, so a large
/// file that is no image (a video) is refused after its first bytes, never read whole. A PNG
/// like [`thumbnail`]'s, unless that would exceed what the store keeps
/// ([`comfy_store::MAX_THUMBNAIL_BYTES`]; only noise does): then a JPEG.
pub fn thumbnail_file(path: &Path) -> Result<Vec<u8>, OutputError> {
    let reader = image::ImageReader::open(path)
        .and_then(image::ImageReader::with_guessed_format)
        .map_err(|e| OutputError::Thumbnail(format!("{}: {e}", path.display())))?;
    thumbnail_of(reader, true)
}

/// Thumbnail decodes running at once, at most, through [`thumbnail_off_thread`]: each may
/// allocate up to 512 MiB, and a page of outputs asks for dozens at a time.
pub const MAX_THUMBNAIL_DECODES: usize = 2;
static THUMBNAIL_DECODES: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_THUMBNAIL_DECODES);

/// What to make a thumbnail of.
#[derive(Debug)]
pub enum ThumbnailOf {
    Bytes(bytes::Bytes),
    File(PathBuf),
}

/// [`thumbnail`] or [`thumbnail_file`] on a blocking thread, at most
/// [`MAX_THUMBNAIL_DECODES`] at a time in the process; the others wait their turn. A caller
/// that stops waiting does not free its turn before its decode ends.
pub async fn thumbnail_off_thread(of: ThumbnailOf) -> Result<Vec<u8>, OutputError> {
    let permit = THUMBNAIL_DECODES
        .acquire()
        .await
        .map_err(|e| OutputError::Thumbnail(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _turn = permit;
        match of {
            ThumbnailOf::Bytes(bytes) => thumbnail(&bytes),
            ThumbnailOf::File(path) => thumbnail_file(&path),
        }
    })
    .await
    .map_err(|e| OutputError::Thumbnail(e.to_string()))?
}

fn thumbnail_of<R: std::io::BufRead + std::io::Seek>(
    mut reader: image::ImageReader<R>,
    fit_store: bool,
) -> Result<Vec<u8>, OutputError> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| OutputError::Thumbnail(e.to_string()))?;
    let thumb = img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let encode = |format| {
        let mut out = Vec::new();
        thumb
            .write_to(&mut std::io::Cursor::new(&mut out), format)
            .map(|()| out)
            .map_err(|e| OutputError::Thumbnail(e.to_string()))
    };
    let png = encode(image::ImageFormat::Png)?;
    if !fit_store || png.len() <= comfy_store::MAX_THUMBNAIL_BYTES {
        return Ok(png);
    }
    // JPEG has no alpha channel.
    let rgb = image::DynamicImage::ImageRgb8(thumb.to_rgb8());
    let mut jpeg = Vec::new();
    rgb.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .map_err(|e| OutputError::Thumbnail(e.to_string()))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, sub: &str) -> OutputFile {
        OutputFile {
            filename: name.into(),
            subfolder: sub.into(),
            kind: "output".into(),
        }
    }

    #[test]
    fn outputs_never_escape_the_chosen_folder() {
        let dir = Path::new("/tmp/out");
        assert_eq!(
            local_path(dir, &file("a.png", "x/y")).unwrap(),
            Path::new("/tmp/out/x/y/a.png")
        );
        for (name, sub) in [
            ("../a.png", ""),
            ("/etc/passwd", ""),
            ("a.png", "../.."),
            ("a.png", "/abs"),
            ("", ""),
        ] {
            assert!(local_path(dir, &file(name, sub)).is_err(), "{name} {sub}");
        }
    }

    #[test]
    fn two_downloads_finishing_at_one_name_both_keep_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ComfyUI_00001_.png");
        // Both picked the name while it was free, as two downloads running at once do.
        let (a, mut fa) = Partial::create(&target).unwrap();
        let (b, mut fb) = Partial::create(&target).unwrap();
        fa.write_all(b"from gpu-a").unwrap();
        fb.write_all(b"from gpu-b").unwrap();
        drop((fa, fb));
        let first = a.persist(&target).unwrap();
        let second = b.persist(&target).unwrap();
        assert_eq!(first, target);
        assert_eq!(second, dir.path().join("ComfyUI_00001_ (1).png"));
        assert_eq!(std::fs::read(&first).unwrap(), b"from gpu-a");
        assert_eq!(std::fs::read(&second).unwrap(), b"from gpu-b");
        // No temporary file is left.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["ComfyUI_00001_ (1).png", "ComfyUI_00001_.png"]);
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        std::fs::write(&p, b"x").unwrap();
        assert_eq!(free_path(p.clone()), dir.path().join("a (1).png"));
    }

    #[tokio::test(start_paused = true)]
    async fn thumbnails_are_decoded_two_at_a_time() {
        let mut png = Vec::new();
        image::RgbImage::new(64, 32)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let png = bytes::Bytes::from(png);
        // Both turns taken (two decodes running): a third waits, however long.
        let busy = THUMBNAIL_DECODES
            .acquire_many(MAX_THUMBNAIL_DECODES as u32)
            .await
            .unwrap();
        let mut third = std::pin::pin!(thumbnail_off_thread(ThumbnailOf::Bytes(png.clone())));
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(3600), &mut third)
                .await
                .is_err(),
            "no turn was free"
        );
        drop(busy);
        let t = third.await.expect("a thumbnail once a turn is free");
        assert!(t.starts_with(b"\x89PNG"));
        assert_eq!(THUMBNAIL_DECODES.available_permits(), MAX_THUMBNAIL_DECODES);
    }

    #[test]
    fn thumbnails_are_small_pngs() {
        let img = image::RgbImage::from_pixel(1024, 512, image::Rgb([200, 10, 10]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let t = thumbnail(&jpeg).unwrap();
        assert!(t.starts_with(b"\x89PNG"));
        assert_eq!(comfy_protocol::image_size(&t), Some((256, 128)));
    }

    #[test]
    fn an_animated_webp_saved_by_comfyui_gets_a_thumbnail_of_its_first_frame() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/saved/save-animated-webp.webp");
        let t = thumbnail(&std::fs::read(&path).unwrap()).unwrap();
        assert!(t.starts_with(b"\x89PNG"));
        // The saved frames are 16 px square: decoded, and fitted to the thumbnail's side.
        assert_eq!(
            comfy_protocol::image_size(&t),
            Some((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        );
        assert!(thumbnail_file(&path).unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_noisy_thumbnail_too_big_for_the_store_is_stored_as_a_jpeg() {
        let mut seed = 1u32;
        let img = image::RgbaImage::from_fn(256, 256, |_, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgba(seed.to_le_bytes())
        });
        let mut png = Vec::new();
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(png.len() > comfy_store::MAX_THUMBNAIL_BYTES);
        assert!(
            thumbnail(&png).unwrap().starts_with(b"\x89PNG"),
            "shown, not stored"
        );
        let dir = tempfile::tempdir().unwrap();
        let noise = dir.path().join("noise.png");
        std::fs::write(&noise, &png).unwrap();
        let t = thumbnail_file(&noise).unwrap();
        assert!(t.starts_with(b"\xff\xd8"), "a JPEG");
        assert!(t.len() <= comfy_store::MAX_THUMBNAIL_BYTES);
    }

    #[test]
    fn a_thumbnail_is_made_from_a_file_and_a_file_that_is_no_image_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        image::RgbImage::from_pixel(600, 300, image::Rgb([1, 2, 3]))
            .save(&png)
            .unwrap();
        let t = thumbnail_file(&png).unwrap();
        assert_eq!(comfy_protocol::image_size(&t), Some((256, 128)));
        let video = dir.path().join("b.mp4");
        std::fs::write(&video, b"\0\0\0\x18ftypmp42 not an image").unwrap();
        assert!(thumbnail_file(&video).is_err());
        assert!(thumbnail_file(&dir.path().join("missing.png")).is_err());
    }

    #[test]
    fn an_image_declaring_huge_dimensions_is_refused_without_decoding() {
        // A valid PNG header claiming 100000 x 100000 pixels, and no pixel data.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(thumbnail(&png).is_err());
        assert!(thumbnail(b"not an image").is_err());
    }
}
