//! `fake-comfyui`: serve one or more independent fake ComfyUI servers until SIGINT/SIGTERM.
//!
//! Prints one line per instance (`fake-comfyui listening on http://127.0.0.1:PORT`, or one JSON
//! object per line with `--json`) so scripts can pick the URLs up. The load flags
//! (`--jobs-per-minute` and the rates after it) and `--send-log` apply to every instance; they
//! map onto `fake_comfyui::Load` and `fake_comfyui::SendLog`. It is a thin host of the library
//! and must not grow behaviour of its own.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use comfy_signal::shutdown_signal;
use fake_comfyui::{FakeAuth, FakeComfy, FakeConfig, Load, SendLog, ServerVersion, SocketMode};

#[derive(Debug, Parser)]
#[command(
    name = "fake-comfyui",
    about = "Fake ComfyUI servers for tests, demos and benchmarks",
    after_help = "Benchmark load: with --jobs-per-minute > 0 every instance submits jobs on behalf \
of its most recently connected WebSocket client (after its feature flags), so that client gets \
the full submitter stream; nothing is submitted while no client is connected, and at most 2 load \
jobs wait in the queue.\n\nSend log (--send-log): one JSON object per line, times in ms since \
the Unix epoch (float):\n  {\"kind\":\"progress\",\"port\":P,\"prompt_id\":…,\"node\":…,\
\"value\":V,\"max\":M,\"sent_ms\":T,\"sid\":…}   stamped right before the socket write\n  \
{\"kind\":\"request\",\"port\":P,\"method\":…,\"path\":…,\"received_ms\":T}   every HTTP \
request\n  {\"kind\":\"preview\",\"port\":P,\"prompt_id\":…,\"sent_ms\":T,\"sid\":…}   only with \
--send-log-previews"
)]
struct Args {
    /// How many independent servers to start.
    #[arg(long, default_value_t = 1)]
    instances: u16,
    /// ComfyUI generation to imitate: legacy, 0.3.64 or 0.26.
    #[arg(long, default_value = "0.26")]
    version: ServerVersion,
    /// Port of the first instance (the next ones count up); 0 = an ephemeral port for each.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Require `Authorization: Bearer TOKEN`.
    #[arg(long, conflicts_with = "basic")]
    bearer: Option<String>,
    /// Require basic auth, given as USER:PASS.
    #[arg(long)]
    basic: Option<String>,
    /// Keep a stream of jobs from other clients running on every instance.
    #[arg(long)]
    busy: bool,
    /// Print one JSON object per instance instead of a sentence.
    #[arg(long)]
    json: bool,
    /// Default time per sampler step, in milliseconds.
    #[arg(long, default_value_t = 20)]
    step_delay_ms: u64,
    /// Replay this recorded trace to every socket instead of running jobs.
    #[arg(long, requires = "replay_client")]
    replay: Option<PathBuf>,
    /// The recorded client whose frames are replayed (e.g. `monitor`).
    #[arg(long)]
    replay_client: Option<String>,
    /// Benchmark load: jobs per minute submitted for the newest connected client (0 = none).
    #[arg(long, default_value_t = 0.0, conflicts_with = "replay")]
    jobs_per_minute: f64,
    /// Sampler steps per load job (one progress message each).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Progress messages per second in a load job (0 = as fast as possible).
    #[arg(long, default_value_t = 20.0)]
    progress_rate: f64,
    /// Preview frames per second in a load job, independent of the progress rate (0 = none).
    #[arg(long, default_value_t = 0.0)]
    preview_fps: f64,
    /// Side of the load's JPEG previews in px (ComfyUI's default is 512).
    #[arg(long, default_value_t = 512)]
    preview_size: u32,
    /// Node text frames (binary type 3) per second in a load job (0 = none).
    #[arg(long, default_value_t = 0.0)]
    node_text_rate: f64,
    /// `monitor.custom` events per second in a load job (0 = none).
    #[arg(long, default_value_t = 0.0)]
    custom_event_rate: f64,
    /// Write send stamps (progress frames, HTTP requests) as NDJSON to this file.
    #[arg(long)]
    send_log: Option<PathBuf>,
    /// Also stamp every preview frame in the send log.
    #[arg(long, requires = "send_log")]
    send_log_previews: bool,
    /// Act as if the comfy-monitor companion were installed: relay every job's execution
    /// messages and previews to sockets that opt in (feature flag `comfy_monitor_relay`) and
    /// answer `GET /comfy_monitor/v1/state` (docs/companion-protocol.md).
    #[arg(long)]
    companion: bool,
    /// How the `/ws` upgrade is answered, as by a proxy that does not pass WebSockets while
    /// HTTP works: accept, refuse-STATUS (refuse-403, refuse-404, refuse-302 to /login), hang
    /// (never answered) or close (accepted, then closed at once).
    #[arg(long, default_value = "accept")]
    socket: SocketMode,
}

impl Args {
    fn load(&self) -> Load {
        Load {
            jobs_per_minute: self.jobs_per_minute,
            steps: self.steps,
            progress_per_sec: self.progress_rate,
            preview_fps: self.preview_fps,
            preview_size: self.preview_size,
            node_text_per_sec: self.node_text_rate,
            custom_events_per_sec: self.custom_event_rate,
        }
    }
}

#[tokio::main]
async fn main() -> failure::Result {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let auth = match (&args.bearer, &args.basic) {
        (Some(token), _) => Some(FakeAuth::Bearer(token.clone())),
        (None, Some(pair)) => {
            let Some((user, password)) = pair.split_once(':') else {
                return Err("--basic expects USER:PASS".into());
            };
            Some(FakeAuth::Basic {
                user: user.to_string(),
                password: password.to_string(),
            })
        }
        (None, None) => None,
    };
    let send_log = match &args.send_log {
        Some(path) => Some(
            SendLog::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?
                .with_previews(args.send_log_previews),
        ),
        None => None,
    };
    let load = args.load();
    let mut servers = Vec::new();
    for i in 0..args.instances.max(1) {
        let port = if args.port == 0 {
            0
        } else {
            args.port.saturating_add(i)
        };
        let config = FakeConfig {
            version: args.version,
            auth: auth.clone(),
            bind: SocketAddr::new(args.host, port),
            step_delay: Duration::from_millis(args.step_delay_ms),
            send_log: send_log.clone(),
            companion: args.companion,
            socket: args.socket,
        };
        let server = match (&args.replay, &args.replay_client) {
            (Some(trace), Some(client)) => {
                FakeComfy::start_replay_file(config, trace, client).await
            }
            _ => FakeComfy::start(config).await,
        }
        .map_err(|e| format!("cannot start instance {}: {e}", i + 1))?;
        if args.busy {
            server.start_busy_traffic();
        }
        if load.is_active() {
            server.start_load(load.clone());
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            let line = serde_json::json!({
                "url": server.base_url(),
                "ws": format!("ws://{}/ws", server.addr()),
                "port": server.addr().port(),
                "version": args.version.to_string(),
            });
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        } else {
            writeln!(out, "fake-comfyui listening on {}", server.base_url())
                .map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
        servers.push(server);
    }
    shutdown_signal().await;
    drop(servers);
    Ok(())
}

/// The binary's error type: a message for stderr and exit code 1.
mod failure {
    pub type Result = std::result::Result<(), Error>;

    pub struct Error(String);

    impl std::fmt::Debug for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl From<String> for Error {
        fn from(s: String) -> Error {
            Error(s)
        }
    }

    impl From<&str> for Error {
        fn from(s: &str) -> Error {
            Error(s.to_string())
        }
    }
}
