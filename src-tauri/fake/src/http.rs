//! The HTTP surface: every route at `/X` and `/api/X` (the jobs API only under `/api`), the
//! request log, the authentication gate and recorded answers in replay mode.
//!
//! Handlers are thin: they parse the request, call one `State` operation under the lock and
//! write the answer the way aiohttp would (JSON with `charset=utf-8`, empty 200s, plain-text
//! 500s). They must not sleep or hold the lock across an `.await`.

use std::sync::Arc;
use tokio::sync::watch;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth;
use crate::catalog;
use crate::companion;
use crate::images;
use crate::jobs;
use crate::json::J;
use crate::misbehave;
use crate::obj;
use crate::sendlog::{self, Record};
use crate::state::{Reply, Shared};
use crate::ws;
use crate::{RequestRecord, ServerVersion};

/// ComfyUI's default `--max-upload-size`.
const BODY_LIMIT: usize = 100 * 1024 * 1024;
/// The request log keeps at most this many entries (a long benchmark polls a lot).
const LOG_CAP: usize = 100_000;

type Params = Query<Vec<(String, String)>>;

pub fn router(shared: Arc<Shared>, version: ServerVersion) -> Router {
    let mut common: Router<Arc<Shared>> = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/prompt", get(get_prompt).post(post_prompt))
        .route("/queue", get(get_queue).post(post_queue))
        .route("/interrupt", post(post_interrupt))
        .route("/history", get(get_history).post(post_history))
        .route("/history/{id}", get(get_history_one))
        .route("/view", get(view))
        .route("/system_stats", get(system_stats))
        .route("/object_info", get(object_info))
        .route("/object_info/{class}", get(object_info_one))
        .route("/embeddings", get(empty_list))
        .route("/extensions", get(empty_list))
        .route("/free", post(free))
        .route("/comfy_monitor/v1/state", get(companion_state));
    if version != ServerVersion::Legacy {
        common = common.route("/features", get(features));
    }
    let mut api = common.clone();
    if version == ServerVersion::V0_26 {
        api = api
            .route("/jobs", get(jobs_list))
            .route("/jobs/cancel", post(jobs_cancel_many))
            .route("/jobs/{id}", get(jobs_one))
            .route("/jobs/{id}/cancel", post(jobs_cancel_one));
    }
    Router::new()
        .merge(common)
        .nest("/api", api)
        .route("/login", get(login))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

pub fn reply(r: Reply) -> Response {
    match r {
        Reply::Json(status, body) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_py_string(),
        )
            .into_response(),
        Reply::Empty(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/octet-stream")],
        )
            .into_response(),
        Reply::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "500 Internal Server Error\n\nServer got itself in trouble",
        )
            .into_response(),
    }
}

fn json(body: J) -> Response {
    reply(Reply::Json(200, body))
}

/// Logs every request (WebSocket upgrades included) with the status it got, and stamps its
/// arrival in the send log.
async fn record(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    // Headers are parsed, the body may still be on its way: as close to arrival as it gets here.
    let received_ms = sendlog::epoch_ms();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (parts, body) = req.into_parts();
    let (response, body) = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => {
            let req = Request::from_parts(parts, Body::from(bytes.clone()));
            (next.run(req).await, bytes.to_vec())
        }
        Err(_) => (
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "413: Request Entity Too Large",
            )
                .into_response(),
            Vec::new(),
        ),
    };
    let mut s = shared.lock();
    if let Some(log) = &s.send_log {
        let record = Record::Request {
            port: s.port,
            method: method.clone(),
            path: path.split('?').next().unwrap_or_default().to_string(),
        };
        log.stamp_at(record, received_ms);
    }
    if s.requests.len() >= LOG_CAP {
        s.requests.drain(..LOG_CAP / 2);
    }
    s.requests.push(RequestRecord {
        method,
        path,
        headers,
        status: response.status().as_u16(),
        body,
    });
    response
}

/// Authentication, then a fault set for the route, then recorded answers when replaying.
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (auth, replay, fault) = {
        let s = shared.lock();
        let fault = (req.method() == axum::http::Method::GET)
            .then(|| s.http_faults.get(misbehave::route(req.uri().path())))
            .flatten()
            .cloned();
        (s.auth.clone(), s.replay.clone(), fault)
    };
    if req.uri().path() != "/login" {
        if let Some(auth) = auth {
            if let Some(denied) = auth::check(&auth, req.headers(), req.uri().query()) {
                return denied;
            }
        }
    }
    if let Some(fault) = fault {
        return misbehave::answer(&fault);
    }
    if let Some(script) = replay {
        let path = req
            .uri()
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default();
        if let Some(answer) = script.answer(req.method().as_str(), &path) {
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            if let Some(ct) = answer
                .content_type
                .and_then(|c| HeaderValue::from_str(&c).ok())
            {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            return response;
        }
    }
    next.run(req).await
}

async fn not_found() -> Response {
    reply(Reply::Empty(404))
}

async fn login() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Login</title><form method=post><input name=password type=password></form>",
    )
        .into_response()
}

async fn get_prompt(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.lock().exec_info();
    json(body)
}

async fn post_prompt(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let answer = shared.lock().post_prompt(&body);
    reply(answer)
}

async fn get_queue(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.lock();
    let running: Vec<J> = s.running.iter().map(|r| r.item.to_json()).collect();
    let pending: Vec<J> = s
        .pending_heap_order()
        .into_iter()
        .map(|i| i.to_json())
        .collect();
    let body = obj! { "queue_running" => J::Arr(running), "queue_pending" => J::Arr(pending) };
    drop(s);
    json(body)
}

/// Bodies that are not JSON crash ComfyUI's handlers: aiohttp answers a plain-text 500.
fn parse_body(body: &[u8]) -> Option<J> {
    J::parse_slice(body).ok()
}

async fn post_queue(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(request) = parse_body(&body) else {
        return reply(Reply::ServerError);
    };
    let deleted: Vec<&str> = request
        .get("delete")
        .and_then(J::as_array)
        .map(|ids| ids.iter().filter_map(J::as_str).collect())
        .unwrap_or_default();
    shared.start_if_armed(&deleted).await;
    let mut s = shared.lock();
    if request.get("clear").is_some_and(J::truthy) {
        s.wipe_queue();
    }
    if let Some(ids) = request.get("delete").and_then(J::as_array) {
        for id in ids.iter().filter_map(J::as_str) {
            s.delete_pending(id);
        }
    }
    reply(Reply::Empty(200))
}

async fn post_interrupt(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = J::parse_slice(&body).unwrap_or_default();
    if matches!(request, J::Arr(_)) {
        return reply(Reply::ServerError);
    }
    let target = match request.get("prompt_id") {
        None | Some(J::Null) => None,
        Some(J::Str(s)) => Some(s.clone()),
        Some(other) => Some(other.python_str()),
    };
    shared.finish_if_armed(target.as_deref()).await;
    shared.lock().interrupt(target.as_deref());
    reply(Reply::Empty(200))
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn get_history(State(shared): State<Arc<Shared>>, Query(query): Params) -> Response {
    let max_items = match param(&query, "max_items").map(|v| v.trim().parse::<i64>()) {
        Some(Ok(n)) => Some(n.max(0) as usize),
        Some(Err(_)) => return reply(Reply::ServerError),
        None => None,
    };
    let s = shared.lock();
    let offset = match param(&query, "offset").filter(|_| s.version != ServerVersion::Legacy) {
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return reply(Reply::ServerError),
        },
        None => None,
    };
    let body = s.history_json(max_items, offset);
    drop(s);
    json(body)
}

async fn get_history_one(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let body = match shared.lock().history_entry(&id) {
        Some(entry) => J::Obj(vec![(id.clone(), entry.to_json())]),
        None => J::obj(),
    };
    json(body)
}

async fn post_history(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(request) = parse_body(&body) else {
        return reply(Reply::ServerError);
    };
    let mut s = shared.lock();
    if request.get("clear").is_some_and(J::truthy) {
        s.history.clear();
    }
    if let Some(ids) = request.get("delete").and_then(J::as_array) {
        for id in ids.iter().filter_map(J::as_str) {
            s.history.retain(|e| e.item.prompt_id != id);
        }
    }
    reply(Reply::Empty(200))
}

async fn view(State(shared): State<Arc<Shared>>, Query(query): Params) -> Response {
    let Some(raw) = param(&query, "filename") else {
        return reply(Reply::Empty(404));
    };
    let mut kind = param(&query, "type").unwrap_or("output").to_string();
    let mut filename = raw.to_string();
    for annotation in ["output", "input", "temp"] {
        if let Some(name) = raw.strip_suffix(&format!(" [{annotation}]")) {
            filename = name.to_string();
            kind = annotation.to_string();
        }
    }
    if filename.is_empty() || filename.starts_with('/') || filename.contains("..") {
        return reply(Reply::Empty(400));
    }
    if !matches!(kind.as_str(), "output" | "input" | "temp") {
        return reply(Reply::Empty(400));
    }
    let subfolder = param(&query, "subfolder")
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    if subfolder.contains("..") {
        return reply(Reply::Empty(403));
    }
    let base = filename.rsplit('/').next().unwrap_or(&filename).to_string();
    let info = shared
        .lock()
        .files
        .get(&(kind, subfolder, base.clone()))
        .copied();
    let Some(info) = info else {
        return reply(Reply::Empty(404));
    };
    let png = images::file_png(info.width, info.height, info.seed);
    let headers = [
        (header::CONTENT_TYPE, "image/png".to_string()),
        (header::CONTENT_DISPOSITION, format!("filename=\"{base}\"")),
    ];
    (headers, Body::from_stream(view_body(&shared, png))).into_response()
}

/// A `/view` body sent in two halves, counted in `views_open` while it is sent; while
/// [`crate::FakeComfy::hold_views`] holds, the second half waits.
fn view_body(
    shared: &Shared,
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    use futures_util::StreamExt;
    /// Counts one answer out when it ends or is dropped (the client went away).
    struct Open(watch::Sender<(usize, usize)>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.send_modify(|(open, _)| *open -= 1);
        }
    }
    let (open, mut held) = {
        let s = shared.lock();
        s.signals.views_open.send_modify(|(open, most)| {
            *open += 1;
            *most = (*most).max(*open);
        });
        (
            Open(s.signals.views_open.clone()),
            s.signals.views_held.subscribe(),
        )
    };
    let mut first = Bytes::from(bytes);
    let rest = first.split_off(first.len() / 2);
    futures_util::stream::once(async move { Ok(first) }).chain(futures_util::stream::once(
        async move {
            let _ = held.wait_for(|held| !*held).await;
            drop(open);
            Ok(rest)
        },
    ))
}

fn system_stats_json(version: ServerVersion, port: u16) -> J {
    const RAM_TOTAL: i64 = 25_276_514_304;
    const RAM_FREE: i64 = 24_087_298_048;
    let argv = J::from(
        [
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--preview-method",
            "auto",
            "--disable-auto-launch",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    );
    let python = "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]";
    let system = match version {
        ServerVersion::V0_26 => obj! {
            "os" => "linux",
            "ram_total" => RAM_TOTAL,
            "ram_free" => RAM_FREE,
            "comfyui_version" => "0.26.0",
            "required_frontend_version" => "1.45.19",
            "installed_templates_version" => "0.10.7",
            "required_templates_version" => "0.10.7",
            "comfy_package_versions" => J::Arr(
                [
                    ("comfyui-frontend-package", "1.45.19"),
                    ("comfyui-workflow-templates", "0.10.7"),
                    ("comfyui-embedded-docs", "0.5.5"),
                ]
                .iter()
                .map(|(n, v)| obj! { "name" => *n, "installed" => *v, "required" => *v })
                .collect(),
            ),
            "python_version" => python,
            "pytorch_version" => "2.11.0+cu130",
            "embedded_python" => false,
            "deploy_environment" => "local-git",
            "argv" => argv,
        },
        ServerVersion::V0_3_64 => obj! {
            "os" => "posix",
            "ram_total" => RAM_TOTAL,
            "ram_free" => RAM_FREE,
            "comfyui_version" => "0.3.64",
            "required_frontend_version" => "1.27.10",
            "installed_templates_version" => "0.1.95",
            "required_templates_version" => "0.1.95",
            "python_version" => python,
            "pytorch_version" => "2.8.0+cpu",
            "embedded_python" => false,
            "argv" => argv,
        },
        ServerVersion::Legacy => obj! {
            "os" => "posix",
            "ram_total" => RAM_TOTAL,
            "ram_free" => RAM_FREE,
            "python_version" => python,
            "pytorch_version" => "2.5.1+cpu",
            "embedded_python" => false,
            "argv" => argv,
        },
    };
    obj! {
        "system" => system,
        "devices" => J::Arr(vec![obj! {
            "name" => "cpu",
            "type" => "cpu",
            "index" => J::Null,
            "vram_total" => RAM_TOTAL,
            "vram_free" => RAM_FREE,
            "torch_vram_total" => RAM_TOTAL,
            "torch_vram_free" => RAM_FREE,
        }]),
    }
}

async fn system_stats(State(shared): State<Arc<Shared>>) -> Response {
    let (version, port) = {
        let s = shared.lock();
        (s.version, s.port)
    };
    json(system_stats_json(version, port))
}

async fn features(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.lock().server_features();
    json(body)
}

async fn object_info(State(shared): State<Arc<Shared>>) -> Response {
    let version = shared.lock().version;
    json(catalog::object_info(version))
}

async fn object_info_one(State(shared): State<Arc<Shared>>, Path(class): Path<String>) -> Response {
    let version = shared.lock().version;
    json(catalog::object_info_one(version, &class))
}

/// The companion's state route; a 404 like any unknown route without companion mode.
async fn companion_state(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.lock();
    if !s.companion {
        return reply(Reply::Empty(404));
    }
    let body = companion::state_json(&s);
    drop(s);
    json(body)
}

async fn empty_list() -> Response {
    json(J::Arr(Vec::new()))
}

async fn free(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(request) = parse_body(&body) else {
        return reply(Reply::ServerError);
    };
    if request.get("free_memory").is_some_and(J::truthy) {
        shared.lock().cache.clear();
    }
    reply(Reply::Empty(200))
}

async fn jobs_list(State(shared): State<Arc<Shared>>, Query(query): Params) -> Response {
    let answer = jobs::list(&shared.lock(), &query);
    reply(answer)
}

async fn jobs_one(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let answer = jobs::one(&shared.lock(), &id);
    reply(answer)
}

async fn jobs_cancel_one(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    shared.start_if_armed(&[&id]).await;
    shared.finish_if_armed(Some(&id)).await;
    let answer = jobs::cancel_one(&mut shared.lock(), &id);
    reply(answer)
}

async fn jobs_cancel_many(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let ids: Vec<String> = J::parse_slice(&body)
        .ok()
        .and_then(|j| j.get("job_ids").and_then(J::as_array).cloned())
        .map(|ids| {
            ids.iter()
                .filter_map(J::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    shared.start_if_armed(&ids).await;
    let answer = jobs::cancel_many(&mut shared.lock(), &body);
    reply(answer)
}
