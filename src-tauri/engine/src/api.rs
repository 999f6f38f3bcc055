//! HTTP to one instance: every request carries the instance's credentials, follows no
//! redirects (a 3xx to a login page means "authenticate", any other names the URL to use
//! instead) and is classified into errors a user can act on.
//!
//! Every answer is read with a bound: a body larger than its endpoint's cap is refused as it
//! arrives, never held whole; downloads are bounded in size and cut when they stall, not after
//! a fixed time. No error text carries a URL, since with `?token=` auth a URL carries the token.

use crate::instance::{Auth, InstanceSpec};
use crate::tracker::{ActiveJob, Lookup, Snapshot};
use base64::Engine as _;
use comfy_protocol::http::{self as wire, ApiJob, SystemStats};
use comfy_protocol::{DecodeError, PromptId};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use std::collections::HashSet;
use std::time::Duration;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read from a list endpoint: `/queue` (every queued graph), `/history`,
/// `/api/jobs`.
pub const MAX_LIST_BODY: usize = 32 << 20;
/// The largest answer read from any other endpoint: one job, `/system_stats`, `/features`, the
/// companion's state, the answer to a POST.
pub const MAX_ITEM_BODY: usize = 4 << 20;

/// How long requests may take, and how long and how large a download may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Every request but a download, from connecting to the end of its (capped) answer.
    pub request_timeout: Duration,
    /// A download fails when nothing arrives for this long (the answer's headers included).
    pub download_idle: Duration,
    /// A download fails when it takes longer than this in all (a server trickling a byte now
    /// and then never stalls).
    pub download_total: Duration,
    /// A download larger than this is refused, and nothing of it is left on disk.
    pub max_download: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT,
            download_idle: Duration::from_secs(30),
            download_total: Duration::from_secs(2 * 60 * 60),
            max_download: 4 << 30,
        }
    }
}

/// `32 MiB`, `4 GiB`, or bytes when not a round number of either.
pub(crate) fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `30 s`, `1.5 s`.
pub(crate) fn secs_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: refused, reset, DNS, TLS, timeout.
    #[error("{0}")]
    Unreachable(String),
    /// 401/403 or a redirect to a login page.
    #[error("{0}")]
    Auth(String),
    #[error("HTTP {status} from {path}")]
    Status { status: u16, path: String },
    #[error("unexpected body from {path}")]
    Body {
        path: String,
        #[source]
        source: DecodeError,
    },
    #[error("bad credentials: {0}")]
    BadCredentials(String),
    /// An answer (or a download) larger than its cap, refused before it was held whole.
    #[error("{what} is larger than {}; refused", size_text(*cap))]
    TooLarge { what: String, cap: u64 },
    /// A redirect that is not to a login page: the instance's URL is not the one to use (an
    /// `http://` URL on a server that moved to `https://`).
    #[error("the server redirects to {to} (HTTP {status}); use that URL")]
    Redirect { status: u16, to: String },
    /// TLS refused a certificate that is not the one pinned (or with none pinned yet); like
    /// rejected credentials, it waits for the user to accept the certificate. Boxed: two
    /// fingerprints would double the size of every `Result` that carries an `ApiError`.
    #[error("{0}")]
    Certificate(Box<comfy_model::CertificateRefusal>),
}

impl ApiError {
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::Auth(_) | Self::BadCredentials(_) | Self::Certificate(_)
        )
    }
}

/// A client for one instance.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    base: Url,
    query_token: Option<String>,
    /// `"api/"` on servers since mid-2024, `""` on older ones.
    prefix: &'static str,
    limits: HttpLimits,
}

/// The headers that carry an instance's credentials (also used on the WebSocket upgrade).
pub fn auth_headers(auth: &Auth) -> Result<HeaderMap, ApiError> {
    let mut h = HeaderMap::new();
    let value = |s: &str| {
        let mut v = HeaderValue::from_str(s).map_err(|_| {
            ApiError::BadCredentials("a header value has invalid characters".into())
        })?;
        v.set_sensitive(true);
        Ok::<_, ApiError>(v)
    };
    match auth {
        Auth::None | Auth::QueryToken(_) => {}
        Auth::Bearer(t) => {
            h.insert(AUTHORIZATION, value(&format!("Bearer {}", t.expose()))?);
        }
        Auth::Basic { user, password } => {
            let raw = format!("{user}:{}", password.expose());
            let enc = base64::engine::general_purpose::STANDARD.encode(raw);
            h.insert(AUTHORIZATION, value(&format!("Basic {enc}"))?);
        }
        Auth::Headers(list) => {
            for (k, v) in list {
                let name = HeaderName::from_bytes(k.trim().as_bytes())
                    .map_err(|_| ApiError::BadCredentials(format!("`{k}` is not a header name")))?;
                h.append(name, value(v.expose())?);
            }
        }
    }
    Ok(h)
}

/// Is this status an authentication failure (a 401, a 403, or a proxy's redirect to a login
/// page)? Another redirect is not: see [`refusal`].
pub fn auth_failure(status: StatusCode, location: Option<&str>) -> Option<String> {
    match status.as_u16() {
        401 => Some("auth failed: 401".into()),
        403 => Some("auth failed: 403".into()),
        300..=399 => location
            .filter(|l| l.to_ascii_lowercase().contains("login"))
            .map(|l| {
                format!(
                    "auth failed: {} redirect to {}",
                    status.as_u16(),
                    no_query(l)
                )
            }),
        _ => None,
    }
}

/// `l` without its query and fragment (which may carry a token).
fn no_query(l: &str) -> &str {
    l.split(['?', '#']).next().unwrap_or_default()
}

/// What an answer that is no answer means: rejected credentials, or a redirect to another
/// URL. `requested` is the URL asked for, `base` the instance's.
pub fn refusal(
    status: StatusCode,
    location: Option<&str>,
    requested: &Url,
    base: &Url,
) -> Option<ApiError> {
    if let Some(msg) = auth_failure(status, location) {
        return Some(ApiError::Auth(msg));
    }
    if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
        return None;
    }
    Some(ApiError::Redirect {
        status: status.as_u16(),
        to: location
            .and_then(|l| redirect_target(requested, base, l))
            .unwrap_or_else(|| "another URL (it did not say which)".into()),
    })
}

/// Where a redirect says the instance is: the target without credentials, query or fragment,
/// and, when it is the requested path under another base (`http://h/api/x` → `https://h/api/x`),
/// that base (`https://h/`), which is what the user should type.
fn redirect_target(requested: &Url, base: &Url, location: &str) -> Option<String> {
    let mut to = requested.join(location).ok()?;
    to.set_query(None);
    to.set_fragment(None);
    let _ = to.set_username("");
    let _ = to.set_password(None);
    if let Some(tail) = requested.path().strip_prefix(base.path()) {
        if let Some(prefix) = to.path().strip_suffix(tail).map(str::to_owned) {
            if !tail.is_empty() && prefix.ends_with('/') {
                to.set_path(&prefix);
            }
        }
    }
    Some(to.to_string())
}

/// Why credentials on this instance travel unprotected, if they do: they are sent on every
/// request, and over `http://` to another machine anyone on the path can read them (and a
/// redirect to `https://` comes too late: the first request has gone out already).
pub fn cleartext_credentials(spec: &InstanceSpec) -> Option<String> {
    let what = match &spec.auth {
        Auth::None => return None,
        Auth::Bearer(_) => "the bearer token",
        Auth::Basic { .. } => "the password",
        Auth::Headers(_) => "the credential headers",
        Auth::QueryToken(_) => "the token",
    };
    if spec.base_url.scheme() != "http" {
        return None;
    }
    let loopback = match spec.base_url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    (!loopback).then(|| {
        format!("warning: over http:// {what} is sent unencrypted on every request; use https://")
    })
}

/// A request that got no answer; when TLS refused the certificate, which one and why.
fn request_failed(e: &reqwest::Error) -> ApiError {
    crate::tls::refused(e).unwrap_or_else(|| ApiError::Unreachable(describe(e)))
}

/// A failed request in words: what failed and its deepest cause. Never the error's own message,
/// which may carry the URL (and a `?token=`); callers also pass errors through `without_url`.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut src = e.source();
    let mut last = None;
    while let Some(cause) = src {
        last = Some(cause.to_string());
        src = cause.source();
    }
    if let Some(l) = last {
        s.push_str(": ");
        s.push_str(&l);
    }
    s
}

/// An answer's body, refused as soon as it is known to exceed `cap`: from its declared length
/// before anything is read, or from the bytes read so far. Nothing past the cap is held.
async fn read_capped(
    mut resp: reqwest::Response,
    path: &str,
    cap: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || ApiError::TooLarge {
        what: format!(
            "the answer to {}",
            path.split('?').next().unwrap_or_default()
        ),
        cap: cap as u64,
    };
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ApiError::Unreachable(describe(&e.without_url())))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl Api {
    pub fn new(spec: &InstanceSpec) -> Result<Self, ApiError> {
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .default_headers(auth_headers(&spec.auth)?)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("comfy-monitor/", env!("CARGO_PKG_VERSION")));
        if spec.base_url.scheme() == "https" {
            // The socket's TLS too: the OS trust store, or exactly the pinned certificate.
            builder = builder.tls_backend_preconfigured(crate::tls::client_config(spec)?);
        }
        let client = builder
            .build()
            .map_err(|e| ApiError::Unreachable(describe(&e)))?;
        Ok(Self {
            client,
            base: spec.base_url.clone(),
            query_token: match &spec.auth {
                Auth::QueryToken(t) => Some(t.expose().to_owned()),
                _ => None,
            },
            prefix: "api/",
            limits: HttpLimits::default(),
        })
    }

    /// This client with other time and size limits (tests use short ones).
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> HttpLimits {
        self.limits
    }

    /// A URL under the instance's base, with the query token when configured.
    pub fn url(&self, path_and_query: &str) -> Url {
        let mut url = self
            .base
            .join(path_and_query.trim_start_matches('/'))
            .unwrap_or_else(|_| self.base.clone());
        if let Some(t) = &self.query_token {
            url.query_pairs_mut().append_pair("token", t);
        }
        url
    }

    /// A route that exists at `/X` and `/api/X`: use the prefix the server supports.
    fn route(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path.trim_start_matches('/'))
    }

    /// A route that exists at `/X` and `/api/X`, with the prefix this server supports.
    pub(crate) fn route_of(&self, path: &str) -> String {
        self.route(path)
    }

    /// A GET whose body the caller reads in chunks, with [`Api::next_chunk`] when it is a
    /// download (`download`: no total timeout but [`HttpLimits::download_total`], and an idle
    /// timeout on the answer's headers), or within the request timeout otherwise.
    pub(crate) async fn get_stream(
        &self,
        path: &str,
        download: bool,
    ) -> Result<reqwest::Response, ApiError> {
        let url = self.url(path);
        let timeout = if download {
            self.limits.download_total
        } else {
            self.limits.request_timeout
        };
        let send = self.client.get(url.clone()).timeout(timeout).send();
        let resp = if download {
            tokio::time::timeout(self.limits.download_idle, send)
                .await
                .map_err(|_| self.stalled())?
        } else {
            send.await
        };
        self.answer(&url, resp)
    }

    /// The next piece of a download's body; fails when nothing arrives for
    /// [`HttpLimits::download_idle`].
    pub(crate) async fn next_chunk(
        &self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, ApiError> {
        tokio::time::timeout(self.limits.download_idle, resp.chunk())
            .await
            .map_err(|_| self.stalled())?
            .map_err(|e| ApiError::Unreachable(describe(&e.without_url())))
    }

    fn stalled(&self) -> ApiError {
        ApiError::Unreachable(format!(
            "the download stalled: nothing arrived for {}",
            secs_text(self.limits.download_idle)
        ))
    }

    /// A GET answered within [`MAX_ITEM_BODY`] (one job, system stats).
    pub(crate) async fn get_raw(&self, path: &str) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        self.get(path, MAX_ITEM_BODY).await
    }

    /// POSTs JSON; auth failures are errors, every other status is the caller's to read (an
    /// answer within [`MAX_ITEM_BODY`]).
    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        let url = self.url(path);
        let resp = self
            .client
            .post(url.clone())
            .timeout(self.limits.request_timeout)
            .json(body)
            .send()
            .await;
        let resp = self.answer(&url, resp)?;
        Ok((resp.status(), read_capped(resp, path, MAX_ITEM_BODY).await?))
    }

    /// POSTs JSON to an endpoint that answers an empty 200.
    pub(crate) async fn post_empty(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), ApiError> {
        let (status, _) = self.post_json(path, body).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ApiError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
            })
        }
    }

    /// A GET and its answer, read up to `cap` bytes.
    async fn get(&self, path: &str, cap: usize) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        let resp = self.get_stream(path, false).await?;
        Ok((resp.status(), read_capped(resp, path, cap).await?))
    }

    /// An answer, unless it is none: no connection, rejected credentials, a redirect.
    fn answer(
        &self,
        url: &Url,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, ApiError> {
        let resp = resp.map_err(|e| request_failed(&e.without_url()))?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        match refusal(resp.status(), location, url, &self.base) {
            Some(e) => Err(e),
            None => Ok(resp),
        }
    }

    async fn get_ok(&self, path: &str, cap: usize) -> Result<bytes::Bytes, ApiError> {
        let (status, body) = self.get(path, cap).await?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
            });
        }
        // A login portal may answer 200 with HTML where JSON belongs.
        if body.first() == Some(&b'<') {
            return Err(ApiError::Auth(format!(
                "auth failed: {path} answered with an HTML page"
            )));
        }
        Ok(body)
    }

    fn body<T>(path: &str, r: Result<T, DecodeError>) -> Result<T, ApiError> {
        r.map_err(|source| ApiError::Body {
            path: path.to_owned(),
            source,
        })
    }

    /// The health probe: `/system_stats`. Also settles the `/api` prefix: servers before
    /// mid-2024 only have bare routes.
    pub async fn probe(&mut self) -> Result<SystemStats, ApiError> {
        self.prefix = "api/";
        match self.get_ok("api/system_stats", MAX_ITEM_BODY).await {
            Ok(body) => Self::body("system_stats", wire::parse_system_stats(&body)),
            Err(ApiError::Status { status: 404, .. }) => {
                self.prefix = "";
                let body = self.get_ok("system_stats", MAX_ITEM_BODY).await?;
                Self::body("system_stats", wire::parse_system_stats(&body))
            }
            Err(e) => Err(e),
        }
    }

    /// Does a route answer 200 (capability probing, not version parsing)? The body is not
    /// read.
    pub async fn has(&self, path: &str) -> Result<bool, ApiError> {
        Ok(self.get_stream(path, false).await?.status().is_success())
    }

    /// The server's feature flags (`/features`, ≥0.3.45), or `None` on older servers.
    pub async fn features(&self) -> Result<Option<serde_json::Value>, ApiError> {
        let (status, body) = self.get(&self.route("features"), MAX_ITEM_BODY).await?;
        if !status.is_success() {
            return Ok(None);
        }
        // A 200 that is not JSON (a proxy's page) still says the route exists.
        Ok(Some(
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// The companion's picture of the running job, as messages to feed the tracker (see
    /// [`wire::companion_catch_up`]); nothing when it cannot be read.
    pub async fn companion_catch_up(&self) -> Vec<String> {
        match self
            .get(&self.route(wire::COMPANION_STATE_ROUTE), MAX_ITEM_BODY)
            .await
        {
            Ok((status, body)) if status.is_success() => wire::companion_catch_up(&body),
            _ => Vec::new(),
        }
    }

    pub async fn has_jobs_api(&self) -> Result<bool, ApiError> {
        // Only ever under /api (protocol §2.6).
        self.has("api/jobs?limit=1").await
    }

    pub async fn queue(&self) -> Result<wire::Queue, ApiError> {
        let p = self.route("queue");
        let body = self.get_ok(&p, MAX_LIST_BODY).await?;
        Self::body(&p, wire::parse_queue(&body))
    }

    /// Reads the queue. With the jobs API the light list is polled and the heavy `/queue`
    /// (every graph) is read only when a job we do not know yet appears.
    pub async fn snapshot(
        &self,
        jobs_api: bool,
        known: &HashSet<PromptId>,
        include_recent: bool,
    ) -> Result<Snapshot, ApiError> {
        let mut snap = Snapshot {
            requested_at: crate::now_ms(),
            ..Snapshot::default()
        };
        if jobs_api {
            let p = "api/jobs?status=in_progress,pending";
            let body = self.get_ok(p, MAX_LIST_BODY).await?;
            let jobs = Self::body(p, wire::parse_jobs(&body))?;
            let unknown = jobs.iter().any(|j| !known.contains(&j.id));
            let details = if unknown {
                Some(self.queue().await?)
            } else {
                None
            };
            let detail_of = |id: &PromptId| {
                details.as_ref().and_then(|q| {
                    q.running
                        .iter()
                        .chain(&q.pending)
                        .find(|i| &i.prompt_id == id)
                        .cloned()
                })
            };
            let mut pending = Vec::new();
            for j in &jobs {
                let item = detail_of(&j.id);
                let active = ActiveJob {
                    prompt_id: j.id.clone(),
                    number: j.priority.or(item.as_ref().map(|i| i.number)),
                    client_id: item.as_ref().map(|i| i.client_id.clone()),
                    graph: item.as_ref().map(|i| i.prompt.clone()),
                    outputs_to_execute: item.as_ref().map(|i| i.outputs_to_execute.clone()),
                    create_time: j.create_time,
                };
                match j.status {
                    wire::JobStatus::InProgress => snap.running.push(active),
                    _ => pending.push(active),
                }
            }
            // `/api/jobs` sorts by creation time; the run order is by priority.
            pending.sort_by(|a, b| {
                a.number
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.number.unwrap_or(f64::MAX))
                    .then_with(|| a.prompt_id.cmp(&b.prompt_id))
            });
            snap.pending = pending;
            if include_recent {
                let p = "api/jobs?status=completed,failed,cancelled&limit=10";
                let body = self.get_ok(p, MAX_LIST_BODY).await?;
                snap.recent_finished = Self::body(p, wire::parse_jobs(&body))?
                    .into_iter()
                    .map(|j| j.id)
                    .collect();
            }
        } else {
            let q = self.queue().await?;
            snap.running = q.running.into_iter().map(ActiveJob::from).collect();
            snap.pending = q.pending.into_iter().map(ActiveJob::from).collect();
            if include_recent {
                let p = self.route("history?max_items=10");
                let body = self.get_ok(&p, MAX_LIST_BODY).await?;
                snap.recent_finished = Self::body(&p, wire::parse_history(&body))?
                    .into_iter()
                    .map(|f| f.prompt_id)
                    .collect();
            }
        }
        Ok(snap)
    }

    /// How a job ended, from `/api/jobs/{id}` or `/history/{id}`.
    pub async fn outcome(&self, id: &PromptId, jobs_api: bool) -> Result<Lookup, ApiError> {
        let enc = url::form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect::<String>();
        if jobs_api {
            let p = format!("api/jobs/{enc}");
            let (status, body) = self.get(&p, MAX_ITEM_BODY).await?;
            if status == StatusCode::NOT_FOUND {
                return Ok(Lookup::NotFound);
            }
            if !status.is_success() {
                return Err(ApiError::Status {
                    status: status.as_u16(),
                    path: p,
                });
            }
            let job: ApiJob = Self::body(&p, wire::parse_job(&body))?;
            Ok(match job.finished() {
                Some(f) => Lookup::Found(Box::new(f)),
                // Still queued or running: nothing to conclude yet.
                None => Lookup::Unavailable,
            })
        } else {
            let p = self.route(&format!("history/{enc}"));
            let body = self.get_ok(&p, MAX_ITEM_BODY).await?;
            let history = Self::body(&p, wire::read_history(&body))?;
            if let Some(f) = history.jobs.into_iter().find(|f| &f.prompt_id == id) {
                return Ok(Lookup::Found(Box::new(f)));
            }
            if history.unreadable.contains(id) {
                // It ended, but how is not known: not a job the server forgot.
                return Err(ApiError::Body {
                    path: p,
                    source: unreadable_entry(),
                });
            }
            Ok(Lookup::NotFound)
        }
    }

    /// The graph (API-format prompt) a job ran or will run, as the server keeps it: the jobs
    /// API's `workflow.prompt`, or the history entry's prompt. `None` when the server does not
    /// know the job or keeps no graph for it.
    pub async fn job_graph(
        &self,
        id: &PromptId,
        jobs_api: bool,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let enc = url::form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect::<String>();
        let (p, pointer) = if jobs_api {
            (format!("api/jobs/{enc}"), "/workflow/prompt".to_owned())
        } else {
            (
                self.route(&format!("history/{enc}")),
                // `[number, id, prompt, extra_data, outputs]`
                format!(
                    "/{}/prompt/2",
                    id.as_str().replace('~', "~0").replace('/', "~1")
                ),
            )
        };
        let (status, body) = self.get(&p, MAX_ITEM_BODY).await?;
        if status == StatusCode::NOT_FOUND {
            return self.queued_graph(id).await;
        }
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                path: p,
            });
        }
        let value: serde_json::Value = Self::body(
            &p,
            serde_json::from_slice(&body).map_err(|e| DecodeError::BadMessage {
                kind: "job graph".into(),
                source: e,
            }),
        )?;
        match value.pointer(&pointer).filter(|g| g.is_object()) {
            Some(graph) => Ok(Some(graph.clone())),
            // Not ended yet: a job still queued or running is in `/queue`, with its graph.
            None => self.queued_graph(id).await,
        }
    }

    /// The graph of a job still in the queue (pending or running), from `/queue`.
    async fn queued_graph(&self, id: &PromptId) -> Result<Option<serde_json::Value>, ApiError> {
        let queue = self.queue().await?;
        Ok(queue
            .running
            .into_iter()
            .chain(queue.pending)
            .find(|item| &item.prompt_id == id)
            .map(|item| item.prompt)
            .filter(serde_json::Value::is_object))
    }
}

/// The decode error of a history entry that could not be read.
fn unreadable_entry() -> DecodeError {
    DecodeError::BadMessage {
        kind: "history entry".into(),
        source: serde::de::Error::custom("the entry could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Secret;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_redirect_to_https_names_the_url_to_use_and_is_no_auth_failure() {
        let base = url("http://h:8188/");
        let requested = url("http://h:8188/api/system_stats?token=s3cret");
        let e = refusal(
            StatusCode::MOVED_PERMANENTLY,
            Some("https://h/api/system_stats?token=s3cret"),
            &requested,
            &base,
        )
        .unwrap();
        assert!(!e.is_auth());
        assert_eq!(
            e.to_string(),
            "the server redirects to https://h/ (HTTP 301); use that URL"
        );
        // Behind a path prefix, relative, or elsewhere entirely.
        let base = url("http://h/comfy/");
        let requested = url("http://h/comfy/queue");
        let to = |l| {
            refusal(StatusCode::FOUND, Some(l), &requested, &base)
                .unwrap()
                .to_string()
        };
        assert!(to("https://h/comfy/queue").contains(" https://h/comfy/ "));
        assert!(to("/other/queue").contains(" http://h/other/ "));
        assert!(to("https://u:p@elsewhere/x#f").contains(" https://elsewhere/x "));
        assert!(refusal(StatusCode::FOUND, None, &requested, &base)
            .unwrap()
            .to_string()
            .contains("did not say which"));
    }

    #[test]
    fn a_redirect_to_a_login_page_and_401_403_are_auth_failures() {
        let base = url("http://h/");
        let requested = url("http://h/queue");
        for (status, location) in [
            (StatusCode::FOUND, Some("/login?next=/queue&token=s3cret")),
            (StatusCode::UNAUTHORIZED, None),
            (StatusCode::FORBIDDEN, None),
        ] {
            let e = refusal(status, location, &requested, &base).unwrap();
            assert!(e.is_auth(), "{status}");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
        assert!(refusal(StatusCode::OK, None, &requested, &base).is_none());
        assert!(refusal(StatusCode::NOT_MODIFIED, None, &requested, &base).is_none());
        assert!(refusal(StatusCode::NOT_FOUND, None, &requested, &base).is_none());
    }

    #[test]
    fn credentials_over_plain_http_to_another_machine_are_warned_about() {
        let spec = |u: &str, auth: Auth| {
            let mut s = InstanceSpec::new("t", u).unwrap();
            s.auth = auth;
            s
        };
        let bearer = || Auth::Bearer(Secret::new("t"));
        let basic = || Auth::Basic {
            user: "u".into(),
            password: Secret::new("p"),
        };
        assert!(
            cleartext_credentials(&spec("http://comfy.lan:8188", bearer()))
                .unwrap()
                .contains("the bearer token")
        );
        assert!(cleartext_credentials(&spec("http://10.0.0.5", basic()))
            .unwrap()
            .contains("the password"));
        for quiet in [
            spec("https://comfy.lan", bearer()),
            spec("http://comfy.lan", Auth::None),
            spec("http://localhost:8188", basic()),
            spec("http://127.0.0.1:8188", bearer()),
            spec("http://[::1]:8188", bearer()),
        ] {
            assert_eq!(cleartext_credentials(&quiet), None, "{}", quiet.base_url);
        }
    }

    #[tokio::test]
    async fn a_failed_request_never_tells_the_token_in_its_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut spec = InstanceSpec::new("t", &format!("http://127.0.0.1:{port}")).unwrap();
        spec.auth = Auth::QueryToken(Secret::new("s3cret"));
        let e = Api::new(&spec).unwrap().queue().await.unwrap_err();
        assert!(matches!(e, ApiError::Unreachable(_)), "{e:?}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
    }

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(size_text(MAX_LIST_BODY as u64), "32 MiB");
        assert_eq!(size_text(4 << 30), "4 GiB");
        assert_eq!(size_text(1000), "1000 bytes");
        assert_eq!(secs_text(Duration::from_secs(30)), "30 s");
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5 s");
    }
}
