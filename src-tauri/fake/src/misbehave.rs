//! HTTP answers a real ComfyUI (or the proxy in front of it) can give and a client must survive:
//! bodies too large to hold, bodies that never end, bodies that trickle or stall, redirects.
//!
//! A fault is set per route ([`crate::FakeComfy::set_http_fault`]) and answers every GET of
//! that route, at `/X` and `/api/X`, whatever the query, after the authentication gate. Bodies
//! are streamed as they are sent: the fake never holds a huge body in memory either.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

/// One way to misbehave on a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpFault {
    /// A 200 whose body is `[0,0,0,…` forever (valid JSON so far, never finished). With
    /// `declared`, the answer announces that `Content-Length` (and still never ends).
    Endless { declared: Option<u64> },
    /// A 200 with `len` bytes (`Content-Length` set unless `chunked`), sent in one go.
    Sized { len: u64, chunked: bool },
    /// A 200 whose body is sent `chunk` bytes at a time, one chunk every `every`, `chunks`
    /// times; then, with `stall`, nothing more is ever sent (the connection stays open).
    Trickle {
        chunk: usize,
        every: Duration,
        chunks: usize,
        stall: bool,
    },
    /// A redirect (`301`, `302`, `307`, …) to `location`, as a proxy answers.
    Redirect { status: u16, location: String },
    /// An error page with `status` (`502`, `503`, …), as a proxy answers when the server
    /// behind it is gone.
    Status { status: u16 },
}

/// Bytes of a body: `[0,0,0,…` repeated, so the start is the start of valid JSON.
fn filler(len: usize, first: bool) -> Bytes {
    let mut out = Vec::with_capacity(len);
    if first && len > 0 {
        out.push(b'[');
    }
    while out.len() < len {
        out.extend_from_slice(if out.len() + 2 <= len { b"0," } else { b"0" });
    }
    Bytes::from(out)
}

const PIECE: usize = 64 << 10;

fn ok(body: Body, len: Option<u64>) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(n) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    r
}

/// The answer a fault gives.
pub fn answer(fault: &HttpFault) -> Response {
    match fault.clone() {
        HttpFault::Endless { declared } => {
            let body =
                stream::iter((0u64..).map(|i| Ok::<_, std::io::Error>(filler(PIECE, i == 0))));
            ok(Body::from_stream(body), declared)
        }
        HttpFault::Sized { len, chunked } => {
            let pieces = len.div_ceil(PIECE as u64);
            let body = stream::iter((0..pieces).map(move |i| {
                let left = len - i * PIECE as u64;
                Ok::<_, std::io::Error>(filler(left.min(PIECE as u64) as usize, i == 0))
            }));
            ok(Body::from_stream(body), (!chunked).then_some(len))
        }
        HttpFault::Trickle {
            chunk,
            every,
            chunks,
            stall,
        } => {
            let body = stream::unfold(0usize, move |i| async move {
                if i == chunks {
                    if !stall {
                        return None;
                    }
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(every).await;
                Some((Ok::<_, std::io::Error>(filler(chunk, i == 0)), i + 1))
            });
            ok(Body::from_stream(body), None)
        }
        HttpFault::Redirect { status, location } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
            [(header::LOCATION, location)],
        )
            .into_response(),
        HttpFault::Status { status } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>Bad Gateway</h1></body></html>",
        )
            .into_response(),
    }
}

/// The route a request path names, without the `/api` prefix.
pub fn route(path: &str) -> &str {
    match path.strip_prefix("/api") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}
