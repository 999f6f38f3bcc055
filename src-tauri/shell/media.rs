//! Images for the webview, served by the app's own `media:` scheme so no bytes travel as JSON
//! and the webview never talks to ComfyUI (whose origin checks would refuse it, and which would
//! need the credentials):
//!
//! - `media://localhost/preview/<instance id>`: the instance's latest preview frame (kept by
//!   [`Previews`](crate::shell::previews::Previews)). Only the latest is kept, so a webview that
//!   paints slowly simply skips frames; nothing queues.
//! - `media://localhost/output/<instance id>?filename=&subfolder=&type=[&thumb=1]`: an output file,
//!   fetched through `/view` with the instance's auth; `thumb=1` gives a small PNG, cached.
//!   When the server cannot give it (out of reach, or the file is gone), what the journal kept
//!   is served instead: the saved copy, or the thumbnail stored when it was saved.

use crate::shell::state::AppState;
use bytes::Bytes;
use comfy_engine::media_uri::{self, MediaRequest};
use comfy_engine::outputs::{thumbnail_off_thread, ThumbnailOf};
use comfy_model::{InstanceId, OutputFile};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tauri::http::{header, Request, Response, StatusCode};
use tauri::{Manager, Runtime, UriSchemeContext, UriSchemeResponder};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value guarded here stays valid after a panic elsewhere.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub const SCHEME: &str = "media";

/// Thumbnails made so far, the oldest dropped past a bound.
#[derive(Default)]
pub struct Thumbnails {
    entries: HashMap<String, Bytes>,
    order: VecDeque<String>,
}

const MAX_THUMBNAILS: usize = 512;

impl Thumbnails {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: String, png: Bytes) {
        if self.entries.insert(key.clone(), png).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_THUMBNAILS {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}

pub type SharedThumbnails = Arc<Mutex<Thumbnails>>;

fn respond(status: StatusCode, mime: &str, body: Vec<u8>, cache: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime)
        .header(header::CACHE_CONTROL, cache)
        // The page reads videos and sounds with `fetch` (WebKit's player takes no custom
        // scheme, only the blob made of them), from its own origin.
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn text(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        message.as_bytes().to_vec(),
        "no-store",
    )
}

/// Guesses a content type from a file name (the server's own answer is not kept).
fn mime_of(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    match lower.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        _ => "application/octet-stream",
    }
}

/// The `media:` handler: answers from memory or fetches through the engine, off the main thread.
pub fn handle<R: Runtime>(
    ctx: UriSchemeContext<'_, R>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let app = ctx.app_handle().clone();
    let uri = request.uri().clone();
    tauri::async_runtime::spawn(async move {
        let response = match media_uri::parse(uri.path(), uri.query()) {
            None => text(StatusCode::NOT_FOUND, "unknown media path"),
            Some(asked) => serve(&app, asked).await,
        };
        responder.respond(response);
    });
}

async fn serve<R: Runtime>(app: &tauri::AppHandle<R>, asked: MediaRequest) -> Response<Vec<u8>> {
    let (Some(state), Some(thumbs)) = (
        app.try_state::<AppState>(),
        app.try_state::<SharedThumbnails>(),
    ) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting");
    };
    match asked {
        MediaRequest::Preview { instance } => match state.previews.latest(instance) {
            Some(frame) => respond(StatusCode::OK, frame.mime, frame.bytes.to_vec(), "no-store"),
            None => text(StatusCode::NOT_FOUND, "no preview yet"),
        },
        MediaRequest::Output {
            instance,
            file,
            thumb,
        } => {
            // Keyed by the instance's client id, which no other saved instance ever gets (a
            // store id may be given again after a removal).
            let key = state.engine.client_id(instance).map(|client| {
                format!(
                    "{client}\u{0}{}\u{0}{}\u{0}{}",
                    file.kind, file.subfolder, file.filename
                )
            });
            if let (true, Some(key)) = (thumb, &key) {
                if let Some(png) = lock(&thumbs).get(key) {
                    return respond(StatusCode::OK, "image/png", png.to_vec(), "max-age=3600");
                }
            }
            // A copy this app saved is read from the disk: no request to the server, and it
            // shows while the server is away.
            if let Some(kept) = kept(&state, instance, &file, thumb).await {
                return kept;
            }
            let bytes = match state.engine.view_output(instance, &file).await {
                Ok(b) => b,
                Err(e) => {
                    return match e {
                        comfy_engine::outputs::OutputError::Missing { .. } => {
                            text(StatusCode::NOT_FOUND, "the server no longer has this file")
                        }
                        e => text(StatusCode::BAD_GATEWAY, &e.to_string()),
                    };
                }
            };
            if !thumb {
                return respond(
                    StatusCode::OK,
                    mime_of(&file.filename),
                    bytes.to_vec(),
                    "max-age=3600",
                );
            }
            match thumbnail_off_thread(ThumbnailOf::Bytes(bytes)).await {
                Ok(png) => {
                    if let Some(key) = key {
                        lock(&thumbs).put(key, Bytes::from(png.clone()));
                    }
                    respond(StatusCode::OK, "image/png", png, "max-age=3600")
                }
                Err(e) => text(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
            }
        }
    }
}

/// The largest saved file the `media:` scheme answers with (a long video is opened from its
/// folder instead).
const MAX_KEPT_BYTES: u64 = 512 << 20;

/// What the journal kept of a server file: for a thumbnail, the stored one or one made from the
/// downloaded copy; for the file itself, the downloaded copy. `None` when nothing was kept (or
/// the copy is gone from the disk).
async fn kept(
    state: &AppState,
    instance: InstanceId,
    file: &OutputFile,
    thumb: bool,
) -> Option<Response<Vec<u8>>> {
    let copy = state
        .profile()
        .ok()?
        .journal()
        .store()
        .kept_copy(instance, &file.filename, &file.subfolder, &file.kind)
        .ok()??;
    if thumb {
        if let Some(t) = copy.thumbnail {
            return Some(respond(StatusCode::OK, image_mime(&t), t, "no-store"));
        }
    }
    let path = copy.local_path?;
    // Held whole in memory to answer: a file past the cap is left to the file manager.
    if tokio::fs::metadata(&path).await.ok()?.len() > MAX_KEPT_BYTES {
        return Some(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large to show here; open its folder",
        ));
    }
    let bytes = tokio::fs::read(path).await.ok()?;
    if !thumb {
        return Some(respond(
            StatusCode::OK,
            mime_of(&file.filename),
            bytes,
            "no-store",
        ));
    }
    let png = thumbnail_off_thread(ThumbnailOf::Bytes(bytes.into()))
        .await
        .ok()?;
    Some(respond(StatusCode::OK, "image/png", png, "no-store"))
}

/// A stored thumbnail is PNG, or JPEG when a PNG would have been too big.
fn image_mime(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else {
        "image/png"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbnail_cache_is_bounded() {
        let mut t = Thumbnails::default();
        for i in 0..(MAX_THUMBNAILS + 10) {
            t.put(format!("k{i}"), Bytes::from_static(b"png"));
        }
        assert_eq!(t.entries.len(), MAX_THUMBNAILS);
        assert!(t.get("k0").is_none());
        assert!(t.get(&format!("k{}", MAX_THUMBNAILS + 9)).is_some());
    }
}
