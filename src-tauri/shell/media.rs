//! Images for the webview, served by the app's own `media:` scheme so no bytes travel as JSON
//! and the webview never talks to ComfyUI (whose origin checks would refuse it, and which would
//! need the credentials):
//!
//! - `media://localhost/preview/<instance>`: the instance's latest preview frame. Only the
//!   latest is kept, so a webview that paints slowly simply skips frames; nothing queues.
//! - `media://localhost/output/<instance>?filename=&subfolder=&type=[&thumb=1]`: an output file,
//!   fetched through `/view` with the instance's auth; `thumb=1` gives a small PNG, cached.

use crate::shell::host::lock;
use crate::shell::SharedHost;
use bytes::Bytes;
use comfy_protocol::http::OutputFile;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tauri::http::{header, Request, Response, StatusCode};
use tauri::{Manager, Runtime, UriSchemeContext, UriSchemeResponder};

pub const SCHEME: &str = "media";

/// One preview frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub mime: &'static str,
    pub bytes: Bytes,
}

#[derive(Default)]
struct PreviewState {
    next_seq: u64,
    latest: HashMap<String, Frame>,
    shown_at: HashMap<String, tokio::time::Instant>,
}

/// The latest preview frame of every instance.
#[derive(Clone, Default)]
pub struct Previews(Arc<Mutex<PreviewState>>);

impl Previews {
    /// Keeps a frame as the instance's latest (`fps_cap` 0 turns previews off). Returns a new
    /// sequence number when the cap allows showing a frame now; a frame that comes too soon is
    /// still kept, so whoever loads the preview next gets the newest image.
    pub fn offer(
        &self,
        instance: &str,
        mime: &'static str,
        bytes: Bytes,
        fps_cap: u32,
        now: tokio::time::Instant,
    ) -> Option<u64> {
        if fps_cap == 0 {
            return None;
        }
        let mut state = lock(&self.0);
        let interval = std::time::Duration::from_secs(1) / fps_cap;
        let too_soon = state
            .shown_at
            .get(instance)
            .is_some_and(|last| now.duration_since(*last) < interval);
        if too_soon {
            if let Some(frame) = state.latest.get_mut(instance) {
                frame.mime = mime;
                frame.bytes = bytes;
            }
            return None;
        }
        state.next_seq += 1;
        let seq = state.next_seq;
        state.shown_at.insert(instance.to_owned(), now);
        state
            .latest
            .insert(instance.to_owned(), Frame { mime, bytes });
        Some(seq)
    }

    pub fn latest(&self, instance: &str) -> Option<Frame> {
        lock(&self.0).latest.get(instance).cloned()
    }

    pub fn forget(&self, instance: &str) {
        let mut state = lock(&self.0);
        state.latest.remove(instance);
        state.shown_at.remove(instance);
    }
}

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

/// What a `media:` URL asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Preview {
        instance: String,
    },
    Output {
        instance: String,
        file: OutputFile,
        thumb: bool,
    },
}

fn parse(path: &str, query: Option<&str>) -> Option<Asked> {
    let path = path.trim_start_matches('/');
    let (kind, rest) = path.split_once('/')?;
    // Percent-decoding only: a `+` in an instance name stays a plus.
    let instance = percent_decode(rest)?;
    match kind {
        "preview" => Some(Asked::Preview { instance }),
        "output" => {
            let pairs: HashMap<String, String> = query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let filename = pairs.get("filename")?.clone();
            Some(Asked::Output {
                instance,
                file: OutputFile {
                    filename,
                    subfolder: pairs.get("subfolder").cloned().unwrap_or_default(),
                    kind: pairs
                        .get("type")
                        .cloned()
                        .unwrap_or_else(|| "output".into()),
                },
                thumb: pairs.get("thumb").is_some_and(|v| v == "1"),
            })
        }
        _ => None,
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
        let response = match parse(uri.path(), uri.query()) {
            None => text(StatusCode::NOT_FOUND, "unknown media path"),
            Some(asked) => serve(&app, asked).await,
        };
        responder.respond(response);
    });
}

async fn serve<R: Runtime>(app: &tauri::AppHandle<R>, asked: Asked) -> Response<Vec<u8>> {
    let (Some(host), Some(thumbs)) = (
        app.try_state::<SharedHost>(),
        app.try_state::<SharedThumbnails>(),
    ) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting");
    };
    match asked {
        Asked::Preview { instance } => match host.previews.latest(&instance) {
            Some(frame) => respond(StatusCode::OK, frame.mime, frame.bytes.to_vec(), "no-store"),
            None => text(StatusCode::NOT_FOUND, "no preview yet"),
        },
        Asked::Output {
            instance,
            file,
            thumb,
        } => {
            let key = format!(
                "{instance}\u{0}{}\u{0}{}\u{0}{}",
                file.kind, file.subfolder, file.filename
            );
            if thumb {
                if let Some(png) = lock(&thumbs).get(&key) {
                    return respond(StatusCode::OK, "image/png", png.to_vec(), "max-age=3600");
                }
            }
            let Ok(id) = host.engine_id(&instance) else {
                return text(StatusCode::NOT_FOUND, "no such instance");
            };
            let bytes = match host.engine().await {
                Ok(engine) => engine.view_output(id, &file).await,
                Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, &e.message),
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(comfy_engine::outputs::OutputError::Missing { .. }) => {
                    return text(StatusCode::NOT_FOUND, "the server no longer has this file")
                }
                Err(e) => return text(StatusCode::BAD_GATEWAY, &e.to_string()),
            };
            if !thumb {
                return respond(
                    StatusCode::OK,
                    mime_of(&file.filename),
                    bytes.to_vec(),
                    "max-age=3600",
                );
            }
            let made =
                tokio::task::spawn_blocking(move || comfy_engine::outputs::thumbnail(&bytes)).await;
            match made {
                Ok(Ok(png)) => {
                    let png = Bytes::from(png);
                    lock(&thumbs).put(key, png.clone());
                    respond(StatusCode::OK, "image/png", png.to_vec(), "max-age=3600")
                }
                Ok(Err(e)) => text(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_and_output_paths_parse_with_encoded_names() {
        assert_eq!(
            parse("/preview/GPU%20box%2B1", None),
            Some(Asked::Preview {
                instance: "GPU box+1".into()
            })
        );
        assert_eq!(
            parse(
                "/output/Local",
                Some("filename=a%20b.png&subfolder=x%2Fy&type=temp&thumb=1")
            ),
            Some(Asked::Output {
                instance: "Local".into(),
                file: OutputFile {
                    filename: "a b.png".into(),
                    subfolder: "x/y".into(),
                    kind: "temp".into(),
                },
                thumb: true,
            })
        );
        assert_eq!(parse("/output/Local", Some("subfolder=x")), None);
        assert_eq!(parse("/elsewhere/Local", None), None);
        assert_eq!(parse("/preview/%zz", None), None);
    }

    #[test]
    fn only_the_latest_frame_is_kept_and_the_cap_limits_how_often_one_is_shown() {
        let previews = Previews::default();
        let t0 = tokio::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let a = previews.offer("gpu", "image/jpeg", Bytes::from_static(b"1"), 10, t0);
        assert_eq!(a, Some(1));
        // 10 fps: a frame 50 ms later is not announced, but it replaces the kept one.
        assert_eq!(
            previews.offer(
                "gpu",
                "image/jpeg",
                Bytes::from_static(b"2"),
                10,
                t0 + ms(50)
            ),
            None
        );
        assert_eq!(&previews.latest("gpu").expect("kept").bytes[..], b"2");
        let b = previews.offer(
            "gpu",
            "image/png",
            Bytes::from_static(b"3"),
            10,
            t0 + ms(100),
        );
        assert_eq!(b, Some(2));
        let latest = previews.latest("gpu").expect("a frame is kept");
        assert_eq!((latest.mime, &latest.bytes[..]), ("image/png", &b"3"[..]));
        // A cap of 0 turns previews off.
        assert_eq!(
            previews.offer("cpu", "image/jpeg", Bytes::from_static(b"x"), 0, t0),
            None
        );
        assert!(previews.latest("cpu").is_none());
        previews.forget("gpu");
        assert!(previews.latest("gpu").is_none());
    }

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
