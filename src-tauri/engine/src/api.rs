//! HTTP to one instance: every request carries the instance's credentials, follows no
//! redirects (a 3xx to a login page means "authenticate", not "go there") and is classified
//! into errors a user can act on.

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

/// Is this status an authentication failure (including a proxy's redirect to a login page)?
pub fn auth_failure(status: StatusCode, location: Option<&str>) -> Option<String> {
    match status.as_u16() {
        401 => Some("auth failed: 401".into()),
        403 => Some("auth failed: 403".into()),
        300..=399 => Some(match location {
            Some(l) if l.to_ascii_lowercase().contains("login") => {
                format!("auth failed: {} redirect to {l}", status.as_u16())
            }
            Some(l) => format!(
                "auth failed: unexpected {} redirect to {l}",
                status.as_u16()
            ),
            None => format!("auth failed: unexpected {} redirect", status.as_u16()),
        }),
        _ => None,
    }
}

/// A request that got no answer; when TLS refused the certificate, which one and why.
fn request_failed(e: &reqwest::Error) -> ApiError {
    crate::tls::refused(e).unwrap_or_else(|| ApiError::Unreachable(describe(e)))
}

fn describe(e: &reqwest::Error) -> String {
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
        })
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

    /// A GET whose body the caller reads in chunks (downloads).
    pub(crate) async fn get_stream(&self, path: &str) -> Result<reqwest::Response, ApiError> {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| request_failed(&e))?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        if let Some(msg) = auth_failure(resp.status(), location) {
            return Err(ApiError::Auth(msg));
        }
        Ok(resp)
    }

    pub(crate) async fn get_raw(&self, path: &str) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        self.get(path).await
    }

    /// POSTs JSON; auth failures are errors, every other status is the caller's to read.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        let resp = self.client.post(self.url(path)).json(body).send().await;
        self.finish(resp).await
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

    async fn get(&self, path: &str) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        let resp = self.client.get(self.url(path)).send().await;
        self.finish(resp).await
    }

    async fn finish(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        let resp = resp.map_err(|e| request_failed(&e))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(msg) = auth_failure(status, location.as_deref()) {
            return Err(ApiError::Auth(msg));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Unreachable(describe(&e)))?;
        Ok((status, body))
    }

    async fn get_ok(&self, path: &str) -> Result<bytes::Bytes, ApiError> {
        let (status, body) = self.get(path).await?;
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
        match self.get_ok("api/system_stats").await {
            Ok(body) => Self::body("system_stats", wire::parse_system_stats(&body)),
            Err(ApiError::Status { status: 404, .. }) => {
                self.prefix = "";
                let body = self.get_ok("system_stats").await?;
                Self::body("system_stats", wire::parse_system_stats(&body))
            }
            Err(e) => Err(e),
        }
    }

    /// Does a route answer 200 (capability probing, not version parsing)?
    pub async fn has(&self, path: &str) -> Result<bool, ApiError> {
        let (status, _) = self.get(path).await?;
        Ok(status.is_success())
    }

    /// The server's feature flags (`/features`, ≥0.3.45), or `None` on older servers.
    pub async fn features(&self) -> Result<Option<serde_json::Value>, ApiError> {
        let (status, body) = self.get(&self.route("features")).await?;
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
        match self.get(&self.route(wire::COMPANION_STATE_ROUTE)).await {
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
        let body = self.get_ok(&p).await?;
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
            let body = self.get_ok(p).await?;
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
                let body = self.get_ok(p).await?;
                snap.recent_finished = Self::body(p, wire::parse_jobs(&body))?
                    .into_iter()
                    .map(|j| j.id)
                    .collect();
            }
        } else {
            let q = self.queue().await?;
            let active = |i: wire::QueueItem| ActiveJob {
                prompt_id: i.prompt_id,
                number: Some(i.number),
                client_id: Some(i.client_id),
                graph: Some(i.prompt),
                outputs_to_execute: Some(i.outputs_to_execute),
                create_time: i.create_time,
            };
            snap.running = q.running.into_iter().map(active).collect();
            snap.pending = q.pending.into_iter().map(active).collect();
            if include_recent {
                let p = self.route("history?max_items=10");
                let body = self.get_ok(&p).await?;
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
            let (status, body) = self.get(&p).await?;
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
            let body = self.get_ok(&p).await?;
            let entries = Self::body(&p, wire::parse_history(&body))?;
            Ok(match entries.into_iter().find(|f| &f.prompt_id == id) {
                Some(f) => Lookup::Found(Box::new(f)),
                None => Lookup::NotFound,
            })
        }
    }
}
