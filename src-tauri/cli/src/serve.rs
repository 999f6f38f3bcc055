//! `comfy-monitor serve`: every saved instance monitored with no window, for a server or an
//! always-on box. It journals as the desktop app does (the same [`JournalWriter`]), saves
//! outputs where an instance asks for it (the same [`Keeper`]), and offers Prometheus metrics
//! ([`comfy_app::metrics`]) and webhooks ([`comfy_app::webhooks`]). SIGTERM or Ctrl-C stops it
//! cleanly: the engine closes its sockets, the events already received are written, and queued
//! webhooks get a few seconds to go out.

use crate::secrets::announce;
use anyhow::{bail, Context};
use clap::Args;
use comfy_app::keeper::Keeper;
use comfy_app::metrics::{self, Metrics};
use comfy_app::recorder::JournalWriter;
use comfy_app::webhooks::{self, HookRule, HookStats, HookTarget, Retry, Webhooks};
use comfy_app::Profile;
use comfy_engine::{Engine, Events, DEFAULT_EVENT_CAPACITY};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long the engine may take to close its sockets at exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long queued webhooks may take to go out at exit.
const WEBHOOK_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics. A bare port listens on loopback only
    /// (127.0.0.1:PORT); give an address to listen elsewhere (0.0.0.0:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// POST each event (job finished/failed/interrupted/lost, queue drained, instance
    /// down/back) to this URL as JSON (repeatable). Prefix it with `ntfy+` for ntfy's plain
    /// text with Title/Tags/Priority headers: ntfy+https://ntfy.sh/my-topic.
    #[arg(long = "webhook", value_name = "URL")]
    pub webhooks: Vec<String>,
    /// Sign each webhook body with the HMAC-SHA256 secret in this environment variable
    /// (header X-Comfy-Monitor-Signature-256: sha256=<hex>).
    #[arg(long, value_name = "VAR")]
    pub webhook_secret_env: Option<String>,
    /// Monitor only these saved instances (repeatable); by default every enabled one.
    #[arg(long = "instance", value_name = "NAME")]
    pub instances: Vec<String>,
}

/// What [`start`] runs with.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to serve the metrics (`None`: no metrics).
    pub metrics: Option<SocketAddr>,
    pub webhooks: Vec<HookTarget>,
    /// Signs the instances' own webhooks (those saved with `instances edit --webhook`) too.
    pub secret: Option<Arc<[u8]>>,
    /// Only these saved instances (by name); empty: every enabled one.
    pub instances: Vec<String>,
    pub retry: Retry,
    /// How long an instance stays out of reach before it is posted down.
    pub down_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            metrics: None,
            webhooks: Vec::new(),
            secret: None,
            instances: Vec::new(),
            retry: Retry::default(),
            down_grace: webhooks::DOWN_GRACE,
        }
    }
}

/// `--metrics`: a bare port (or `:port`) means loopback; otherwise an address with its port.
pub fn metrics_addr(given: &str) -> anyhow::Result<SocketAddr> {
    let given = given.trim();
    let port = given.strip_prefix(':').unwrap_or(given);
    if let Ok(port) = port.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    given.parse().with_context(|| {
        format!(
            "--metrics {given:?}: give a port (9464) or an address with its port (0.0.0.0:9464)"
        )
    })
}

impl ServeOptions {
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let metrics = args.metrics.as_deref().map(metrics_addr).transpose()?;
        let secret: Option<Arc<[u8]>> = match &args.webhook_secret_env {
            Some(var) => {
                let value = std::env::var(var)
                    .with_context(|| format!("--webhook-secret-env: ${var} is not set"))?;
                if value.is_empty() {
                    bail!("--webhook-secret-env: ${var} is empty");
                }
                Some(Arc::from(value.into_bytes()))
            }
            None => None,
        };
        let webhooks = args
            .webhooks
            .iter()
            .map(|w| webhooks::parse_target(w, secret.clone()).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            metrics,
            webhooks,
            instances: args.instances.clone(),
            secret,
            ..Self::default()
        })
    }
}

/// A running `serve`.
pub struct Running {
    /// Where the metrics are served, once bound (port 0 resolved).
    pub metrics_addr: Option<SocketAddr>,
    pub hook_stats: Arc<HookStats>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops as SIGTERM does, and waits until the journal is written and webhooks are out.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// Starts monitoring the profile's instances, with metrics and webhooks as `options` say. Must
/// be called inside a tokio runtime.
pub async fn start(profile: Profile, options: ServeOptions) -> anyhow::Result<Running> {
    let now = comfy_engine::now_ms();
    if let Err(error) = profile.prune_journal(now) {
        tracing::warn!(%error, "the journal could not be pruned");
    }
    let mut records = profile.instances()?;
    if options.instances.is_empty() {
        records.retain(|r| r.enabled);
    } else {
        for name in &options.instances {
            if !records.iter().any(|r| &r.name == name) {
                bail!("no saved instance is named {name:?} (see `comfy-monitor instances list`)");
            }
        }
        records.retain(|r| options.instances.contains(&r.name));
    }
    if records.is_empty() {
        bail!("no instance to monitor: save one with `comfy-monitor instances add`");
    }
    // Taken first, so a port in use is refused before anything connects.
    let listener = match options.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics: cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let (engine, events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    let mut metrics = Metrics::default();
    let mut rule = HookRule::new(options.down_grace);
    let started = Instant::now();
    for rec in &records {
        metrics.add_instance(rec.id, &rec.name);
        rule.add_instance(rec.id, &rec.name, started);
        let spec = match profile.spec(rec) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::error!(instance = %rec.name, %error, "not monitored");
                continue;
            }
        };
        let restored = profile
            .journal()
            .restore(rec.id, &rec.client_id)
            .unwrap_or_else(|error| {
                tracing::warn!(instance = %rec.name, %error, "unfinished jobs and timing not restored");
                Default::default()
            });
        engine.add_saved(rec.id, spec, restored)?;
        tracing::info!(instance = %rec.name, url = %rec.base_url, "monitoring");
    }
    let keeper = Keeper::spawn(engine.clone(), profile.second_journal()?);
    let waker = keeper.waker();
    let writer = JournalWriter::new(Some(profile.second_journal()?))
        .with_notices(|text| tracing::error!("{text}"))
        .with_outputs_waiting(move || waker.wake());
    let mut targets = options.webhooks.clone();
    for (id, given) in profile.webhooks()? {
        if !records.iter().any(|r| r.id == id) {
            continue;
        }
        match webhooks::parse_target(&given, options.secret.clone()) {
            Ok(mut target) => {
                target.instances = Some(std::iter::once(id).collect());
                targets.push(target);
            }
            Err(error) => tracing::error!("an instance's webhook is not used: {error}"),
        }
    }
    let hooks = Webhooks::spawn(targets.clone(), options.retry).map_err(anyhow::Error::msg)?;
    for t in &targets {
        tracing::info!(target = %webhooks::redacted(&t.url), signed = t.secret.is_some(), "webhook");
    }
    let hook_stats = hooks.stats();
    let metrics = Arc::new(Mutex::new(metrics));
    let (stop_tx, stop_rx) = oneshot::channel();
    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let mut metrics_addr = None;
    let mut http = None;
    if let Some(listener) = listener {
        let bound = listener.local_addr()?;
        metrics_addr = Some(bound);
        tracing::info!("metrics at http://{bound}/metrics");
        let router = metrics_router(engine.clone(), metrics.clone(), hook_stats.clone());
        http = Some(tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = http_stop_rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics server stopped");
            }
        }));
    }
    let task = Loop {
        engine,
        events,
        writer,
        metrics,
        rule,
        hooks,
    };
    let done = tokio::spawn(async move {
        task.run(stop_rx).await;
        keeper.stop().await;
        let _ = http_stop_tx.send(());
        if let Some(http) = http {
            // A scraper holding its connection open does not hold up the exit.
            if tokio::time::timeout(SHUTDOWN_GRACE, http).await.is_err() {
                tracing::warn!("the metrics server did not stop in time");
            }
        }
        tracing::info!("stopped");
    });
    Ok(Running {
        metrics_addr,
        hook_stats,
        stop: stop_tx,
        done,
    })
}

struct Loop {
    engine: Engine,
    events: Events,
    writer: JournalWriter,
    metrics: Arc<Mutex<Metrics>>,
    rule: HookRule,
    hooks: Webhooks,
}

impl Loop {
    async fn run(self, mut stop: oneshot::Receiver<()>) {
        let Self {
            engine,
            mut events,
            mut writer,
            metrics,
            mut rule,
            hooks,
        } = self;
        let mut stopping: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let due = rule.next_deadline();
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break };
                    let now = Instant::now();
                    lock(&metrics).observe(&event);
                    if JournalWriter::records(&event.kind) {
                        // What the app shows in its event log (connection changes, server
                        // events), in serve's own log.
                        if let Some(logged) = writer.record(&event, now) {
                            let line = logged.line;
                            match &line.detail {
                                Some(detail) => tracing::info!(instance = %event.instance, "{}: {detail}", line.kind),
                                None => tracing::info!(instance = %event.instance, "{}", line.kind),
                            }
                        }
                    }
                    // Nothing new is posted once stopping: the sockets closing are not an outage.
                    if stopping.is_none() {
                        for hook in rule.apply(&event, now) {
                            hooks.send(hook);
                        }
                    }
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && stopping.is_none() => {
                    for hook in rule.tick(Instant::now()) {
                        hooks.send(hook);
                    }
                }
                _ = &mut stop, if stopping.is_none() => {
                    tracing::info!("stopping");
                    // The engine closes its sockets; the events it still sends are written,
                    // then the channel ends the loop.
                    let engine = engine.clone();
                    stopping = Some(tokio::spawn(async move {
                        if tokio::time::timeout(SHUTDOWN_GRACE, engine.shutdown()).await.is_err() {
                            tracing::warn!("the engine did not stop in time");
                        }
                    }));
                }
                () = tokio::time::sleep(SHUTDOWN_GRACE * 2), if stopping.is_some() => {
                    tracing::warn!("the engine's events did not end in time; what is left is not written");
                    break;
                }
            }
        }
        if let Some(stopping) = stopping {
            let _ = stopping.await;
        }
        hooks.close(WEBHOOK_GRACE).await;
    }
}

fn lock(m: &Mutex<Metrics>) -> std::sync::MutexGuard<'_, Metrics> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn metrics_router(
    engine: Engine,
    metrics: Arc<Mutex<Metrics>>,
    hooks: Arc<HookStats>,
) -> axum::Router {
    use axum::http::header;
    use axum::routing::get;
    let scrape = move || {
        let (engine, metrics, hooks) = (engine.clone(), metrics.clone(), hooks.clone());
        async move {
            let up = lock(&metrics).up();
            let gpus = metrics::gpu_memory(&engine, &up).await;
            let mut body = lock(&metrics).render(&gpus);
            body.push_str(&metrics::render_webhooks(&hooks));
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                body,
            )
        }
    };
    axum::Router::new().route("/metrics", get(scrape)).route(
        "/",
        get(|| async { "comfy-monitor serve: Prometheus metrics at /metrics\n" }),
    )
}

/// `comfy-monitor serve`, until SIGTERM or Ctrl-C.
pub fn run(args: &ServeArgs, db: Option<&std::path::Path>) -> anyhow::Result<()> {
    let options = ServeOptions::from_args(args)?;
    let profile = Profile::open(db)?;
    announce(&profile);
    let rt = crate::act::runtime()?;
    rt.block_on(async move {
        let running = start(profile, options).await?;
        comfy_signal::shutdown_signal().await;
        running.stop().await;
        Ok(())
    })
}
