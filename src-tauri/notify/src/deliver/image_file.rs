//! Thumbnails written to PNG files, for Windows toasts and macOS notifications, which take an
//! image by path where D-Bus takes its pixels. The files live in a private temporary folder
//! that is removed with the notifier; only the last [`LISTENED`] are kept, since a notification
//! still on screen (or in the Action Center) may read its file again.

use super::{lock, DeliverError, LISTENED};
use image::RgbaImage;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(super) struct ImageFiles {
    inner: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Files {
    /// Made on the first image, so a notifier that never shows one leaves nothing behind.
    dir: Option<tempfile::TempDir>,
    written: VecDeque<PathBuf>,
    next: u64,
}

impl ImageFiles {
    /// Writes `image` as a new PNG and returns its absolute path (no `\\?\` prefix, which
    /// Windows toasts refuse: the temporary folder is an ordinary path). Blocking file I/O.
    pub(super) fn write(&self, image: &RgbaImage) -> Result<PathBuf, DeliverError> {
        let failed = |e: &dyn std::fmt::Display| DeliverError::Image(e.to_string());
        let mut files = lock(&self.inner);
        let dir = match &files.dir {
            Some(dir) => dir.path().to_path_buf(),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("comfy-monitor-notifications-")
                    .tempdir()
                    .map_err(|e| failed(&e))?;
                let path = dir.path().to_path_buf();
                files.dir = Some(dir);
                path
            }
        };
        let path = dir.join(format!("{}.png", files.next));
        files.next += 1;
        image
            .save_with_format(&path, image::ImageFormat::Png)
            .map_err(|e| failed(&e))?;
        files.written.push_back(path.clone());
        while files.written.len() > LISTENED {
            if let Some(old) = files.written.pop_front() {
                // Best effort: the whole folder goes with the notifier anyway.
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_images_are_kept_and_the_folder_goes_with_the_notifier() {
        let files = ImageFiles::default();
        let img = RgbaImage::from_pixel(4, 2, image::Rgba([1, 2, 3, 255]));
        let paths: Vec<_> = (0..LISTENED + 2)
            .map(|_| files.write(&img).unwrap())
            .collect();
        assert!(paths.iter().all(|p| p.is_absolute()));
        assert!(!paths[0].exists() && !paths[1].exists());
        assert!(paths[2..].iter().all(|p| p.exists()));
        assert_eq!(image::open(&paths[LISTENED + 1]).unwrap().to_rgba8(), img);
        let dir = paths[2].parent().unwrap().to_path_buf();
        drop(files);
        assert!(!dir.exists());
    }
}
