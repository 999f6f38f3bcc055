//! Images for the webview, served by the app's own `media:` scheme so no bytes travel as JSON
//! and the webview never talks to ComfyUI (whose origin checks would refuse it, and which would
//! need the credentials):
//!
//! - `media://localhost/preview/<instance>`: the instance's latest preview frame. Only the
//!   latest is kept, so a webview that paints slowly simply skips frames; nothing queues.
//! - `media://localhost/output/<instance>?filename=&subfolder=&type=[&thumb=1]`: an output file,
//!   fetched through `/view` with the instance's auth; `thumb=1` gives a small PNG, cached.
//!   When the server cannot give it (out of reach, or the file is gone), what the journal kept
//!   is served instead: the saved copy, or the thumbnail stored when it was saved.

use crate::shell::host::lock;
use crate::shell::SharedHost;
use bytes::Bytes;
use comfy_engine::Preview;
use comfy_protocol::http::OutputFile;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tauri::http::{header, Request, Response, StatusCode};
use tauri::{Manager, Runtime, UriSchemeContext, UriSchemeResponder};
use tokio::time::Instant;

pub const SCHEME: &str = "media";

/// One preview frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub mime: &'static str,
    pub bytes: Bytes,
}

/// A frame to announce to the webview as `seq`, with what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub instance: String,
    pub seq: u64,
    pub prompt_id: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// A kept frame the cap held back: announced when its instance's window has passed.
struct Held {
    due: Instant,
    prompt_id: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Default)]
struct PreviewState {
    next_seq: u64,
    latest: HashMap<String, Frame>,
    shown_at: HashMap<String, Instant>,
    held: HashMap<String, Held>,
}

impl PreviewState {
    fn announce(
        &mut self,
        instance: &str,
        prompt_id: Option<String>,
        width: Option<u32>,
        height: Option<u32>,
        now: Instant,
    ) -> Announced {
        self.next_seq += 1;
        self.shown_at.insert(instance.to_owned(), now);
        self.held.remove(instance);
        Announced {
            instance: instance.to_owned(),
            seq: self.next_seq,
            prompt_id,
            width,
            height,
        }
    }
}

/// The latest preview frame of every instance.
#[derive(Clone, Default)]
pub struct Previews(Arc<Mutex<PreviewState>>);

impl Previews {
    /// Keeps a frame as the instance's latest (`fps_cap` 0 turns previews off) and returns it
    /// to announce when the cap allows showing a frame now. A frame that comes too soon is still
    /// kept, so whoever loads the preview next gets the newest image, and it is announced when
    /// the window passes ([`Self::take_due`]) unless a newer one is announced first: the last
    /// frame of a burst is shown too.
    pub fn offer(
        &self,
        instance: &str,
        preview: &Preview,
        fps_cap: u32,
        now: Instant,
    ) -> Option<Announced> {
        if fps_cap == 0 {
            return None;
        }
        let mut state = lock(&self.0);
        let interval = std::time::Duration::from_secs(1) / fps_cap;
        state.latest.insert(
            instance.to_owned(),
            Frame {
                mime: preview.mime,
                bytes: preview.image.clone(),
            },
        );
        let prompt_id = preview.prompt_id.as_ref().map(|p| p.as_str().to_owned());
        match state.shown_at.get(instance) {
            Some(last) if now.duration_since(*last) < interval => {
                let due = *last + interval;
                state.held.insert(
                    instance.to_owned(),
                    Held {
                        due,
                        prompt_id,
                        width: preview.width,
                        height: preview.height,
                    },
                );
                None
            }
            _ => Some(state.announce(instance, prompt_id, preview.width, preview.height, now)),
        }
    }

    /// When the next held-back frame is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        lock(&self.0).held.values().map(|h| h.due).min()
    }

    /// The held-back frames whose windows have passed, to announce now.
    pub fn take_due(&self, now: Instant) -> Vec<Announced> {
        let mut state = lock(&self.0);
        let due: Vec<String> = state
            .held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(instance, _)| instance.clone())
            .collect();
        due.into_iter()
            .filter_map(|instance| {
                let h = state.held.remove(&instance)?;
                Some(state.announce(&instance, h.prompt_id, h.width, h.height, now))
            })
            .collect()
    }

    pub fn latest(&self, instance: &str) -> Option<Frame> {
        lock(&self.0).latest.get(instance).cloned()
    }

    pub fn forget(&self, instance: &str) {
        let mut state = lock(&self.0);
        state.latest.remove(instance);
        state.shown_at.remove(instance);
        state.held.remove(instance);
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
                // The server is out of reach or no longer has the file (temp files go at its
                // restart): what this app kept of it, if anything, is the next best thing.
                Err(e) => {
                    if let Some(kept) = kept(&host, &instance, &file, thumb).await {
                        return kept;
                    }
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

/// What the journal kept of a server file: for a thumbnail, the stored one or one made from the
/// downloaded copy; for the file itself, the downloaded copy. `None` when nothing was kept (or
/// the copy is gone from the disk).
async fn kept(
    host: &SharedHost,
    instance: &str,
    file: &OutputFile,
    thumb: bool,
) -> Option<Response<Vec<u8>>> {
    let rec = host.record(instance).ok()?;
    let copy = host
        .with_journal(|j| {
            Ok(j.store()
                .kept_copy(rec.id, &file.filename, &file.subfolder, &file.kind)?)
        })
        .ok()??;
    if thumb {
        if let Some(t) = copy.thumbnail {
            return Some(respond(StatusCode::OK, image_mime(&t), t, "no-store"));
        }
    }
    let bytes = tokio::fs::read(copy.local_path?).await.ok()?;
    if !thumb {
        return Some(respond(
            StatusCode::OK,
            mime_of(&file.filename),
            bytes,
            "no-store",
        ));
    }
    let png = tokio::task::spawn_blocking(move || comfy_engine::outputs::thumbnail(&bytes))
        .await
        .ok()?
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

    fn frame(bytes: &'static [u8], mime: &'static str, prompt: &str) -> Preview {
        Preview {
            prompt_id: Some(prompt.into()),
            node: None,
            mime,
            width: Some(64),
            height: Some(48),
            bytes: bytes.len(),
            image: Bytes::from_static(bytes),
        }
    }

    #[test]
    fn only_the_latest_frame_is_kept_and_the_last_of_a_burst_is_announced_when_the_cap_allows() {
        let previews = Previews::default();
        let t0 = Instant::now();
        let ms = std::time::Duration::from_millis;
        let a = previews.offer("gpu", &frame(b"1", "image/jpeg", "p"), 10, t0);
        assert_eq!(a.map(|a| a.seq), Some(1));
        assert_eq!(previews.next_due(), None);
        // 10 fps: frames 30 and 50 ms later are not announced now, but the newest replaces the
        // kept one and is due when the window passes.
        assert_eq!(
            previews.offer("gpu", &frame(b"2", "image/jpeg", "p"), 10, t0 + ms(30)),
            None
        );
        assert_eq!(
            previews.offer("gpu", &frame(b"3", "image/png", "p"), 10, t0 + ms(50)),
            None
        );
        let latest = previews.latest("gpu").expect("kept");
        assert_eq!((latest.mime, &latest.bytes[..]), ("image/png", &b"3"[..]));
        assert_eq!(previews.next_due(), Some(t0 + ms(100)));
        assert!(previews.take_due(t0 + ms(99)).is_empty());
        let late = previews.take_due(t0 + ms(100));
        assert_eq!(
            late,
            [Announced {
                instance: "gpu".into(),
                seq: 2,
                prompt_id: Some("p".into()),
                width: Some(64),
                height: Some(48),
            }]
        );
        assert_eq!(previews.next_due(), None, "announced once");
        // A frame announced at once clears what was held.
        assert_eq!(
            previews.offer("gpu", &frame(b"4", "image/jpeg", "p"), 10, t0 + ms(150)),
            None
        );
        let b = previews.offer("gpu", &frame(b"5", "image/jpeg", "p"), 10, t0 + ms(200));
        assert_eq!(b.map(|b| b.seq), Some(3));
        assert_eq!(previews.next_due(), None);
        // A cap of 0 turns previews off.
        assert_eq!(
            previews.offer("cpu", &frame(b"x", "image/jpeg", "q"), 0, t0),
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
