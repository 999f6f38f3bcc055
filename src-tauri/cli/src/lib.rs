//! `comfy-monitor`'s headless subcommands: a host of the application layer (`comfy-app`), like
//! the desktop shell. Saved instances, their secrets, submit and download with their journal
//! entries are `comfy-app`'s; what is the CLI's own is argv, the terminal (prompts, progress,
//! NDJSON) and exit statuses.
//!
//! `run_cli` parses argv; with no subcommand it returns `None` and the caller opens the desktop
//! app. This crate never imports tauri.

mod act;
mod instances;
mod output;
pub mod replay;
mod secrets;
pub mod serve;
pub mod trace;
mod watch;

pub use output::{Format, Printer};

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "comfy-monitor",
    version,
    about = "Monitor ComfyUI servers. Without a subcommand, opens the desktop app."
)]
pub struct Cli {
    /// The SQLite file with saved instances and the job journal (default: the platform's data
    /// folder).
    #[arg(long, global = true, env = "COMFY_MONITOR_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Desktop app: start hidden, in the tray (as when launched at login).
    #[arg(long, alias = "minimized")]
    pub minimised: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow one ComfyUI server until interrupted: connection, queue, every job.
    Watch(WatchArgs),
    /// Feed a recorded session (trace .jsonl) through the decoder and tracker, offline.
    Replay(ReplayArgs),
    /// Queue an API-format workflow, or the prompt a saved output holds; with --wait, follow
    /// it to its end (and download outputs).
    Submit(SubmitArgs),
    /// Cancel one job: remove it if pending, interrupt it if running. Never touches another job.
    Cancel(CancelArgs),
    /// Download a finished job's outputs (again), e.g. after a full disk stopped `submit --out`.
    Fetch(FetchArgs),
    /// Saved instances: list, add, edit, remove.
    #[command(subcommand)]
    Instances(instances::InstancesCommand),
    /// Jobs in the journal, newest first.
    History {
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Monitor every saved instance with no window, for a server: journal, saved outputs,
    /// Prometheus metrics (--metrics) and webhooks (--webhook). Stops on SIGTERM or Ctrl-C.
    Serve(serve::ServeArgs),
    /// Queue again a job of this app that was lost (e.g. in a server restart).
    Resubmit {
        prompt_id: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// One JSON object per line instead of readable lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// A workflow in ComfyUI's API format (Workflow → Export (API)), or a file ComfyUI saved
    /// (PNG, WebP, FLAC, MP4): the prompt it embeds is queued.
    pub workflow: PathBuf,
    /// Draw every seed input anew (ComfyUI answers the same seeds from its cache).
    #[arg(long)]
    pub new_seed: bool,
    /// Queue this many copies (with --new-seed, each with its own seeds).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(comfy_app::jobs::MAX_COPIES)))]
    pub count: u32,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Follow the job to its end; the exit status then tells how it ended.
    #[arg(long)]
    pub wait: bool,
    /// Download the outputs into this folder (implies --wait).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Per-job live preview method (auto, latent2rgb, taesd, none); servers before 0.5 ignore it.
    #[arg(long)]
    pub preview_method: Option<String>,
    /// One JSON object per line instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job's prompt id.
    pub prompt_id: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The job's prompt id.
    pub prompt_id: String,
    /// The folder to download into (subfolders as on the server; existing files are kept).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How to reach one server: a saved instance, or a URL with its flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A saved instance (see `comfy-monitor instances`); its jobs go to the journal. Without
    /// this and --url: the only saved instance (for `cancel`, the one whose journal has the job).
    #[arg(long, conflicts_with = "url")]
    pub instance: Option<String>,
    /// Server base URL, e.g. http://127.0.0.1:8188 (a path prefix behind a proxy is kept).
    #[arg(long)]
    pub url: Option<String>,
    /// Name shown in every line (defaults to the URL's host:port).
    #[arg(long)]
    pub name: Option<String>,
    /// Credentials for --url: each secret from a named environment variable, or from a no-echo
    /// prompt with `-`, never from the command line (a saved instance keeps its own).
    #[command(flatten)]
    pub auth: instances::AuthArgs,
    /// The https:// server uses its own (self-signed) certificate: trust exactly the one given
    /// with --certificate-sha256 (without it, the refusal names the certificate presented).
    #[arg(long)]
    pub insecure: bool,
    /// The SHA-256 fingerprint of the server's own certificate (with --insecure).
    #[arg(long, value_name = "FINGERPRINT", requires = "insecure")]
    pub certificate_sha256: Option<comfy_model::CertificateFingerprint>,
    /// Use this client id instead of a fresh one (must not be another program's id).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Do not use the server's comfy-monitor companion even when it has one: other clients'
    /// jobs are then seen only through the queue (a saved instance keeps its own setting).
    #[arg(long)]
    pub no_companion: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A trace file (one JSON object per line; see the traces' README for the format).
    pub trace: PathBuf,
    /// The recorded socket whose frames to replay (default: the first one that received any).
    #[arg(long)]
    pub client: Option<String>,
    /// One JSON object per line instead of readable lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs a subcommand from the process arguments, or returns `None` when there is none.
/// What the desktop app takes from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppOptions {
    pub db: Option<PathBuf>,
    pub minimised: bool,
}

/// The desktop app's options, from the same command line `run_cli` declined (no subcommand).
pub fn app_options() -> AppOptions {
    app_options_from(std::env::args_os())
}

pub fn app_options_from<I, T>(args: I) -> AppOptions
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args)
        .map(|cli| AppOptions {
            db: cli.db,
            minimised: cli.minimised,
        })
        .unwrap_or_default()
}

pub fn run_cli() -> Option<ExitCode> {
    run_from(std::env::args_os())
}

pub fn run_from<I, T>(args: I) -> Option<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Some(ExitCode::from(code));
        }
    };
    let command = cli.command?;
    // A service logs what it does; a command run by hand only what went wrong.
    init_logging(if matches!(command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    });
    let db = cli.db.as_deref();
    let result = match command {
        Command::Watch(args) => watch::run(args, db),
        Command::Replay(args) => replay::run(args),
        Command::Submit(args) => return Some(act::submit(args, db)),
        Command::Cancel(args) => return Some(act::cancel(args, db)),
        Command::Fetch(args) => return Some(act::fetch(args, db)),
        Command::Instances(cmd) => instances::run(cmd, db),
        Command::History {
            instance,
            limit,
            json,
        } => instances::history(
            &mut std::io::stdout().lock(),
            instance.as_deref(),
            limit,
            json,
            db,
        ),
        Command::Serve(args) => serve::run(&args, db),
        Command::Resubmit { prompt_id, wait } => return Some(act::resubmit(&prompt_id, wait, db)),
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("comfy-monitor: {e:#}");
            ExitCode::from(1)
        }
    })
}

/// What `comfy-monitor history` prints (`--instance`, `--limit`, `--json` as given), written to
/// `out` instead of stdout.
pub fn print_history(
    out: &mut dyn std::io::Write,
    db: Option<&std::path::Path>,
    instance: Option<&str>,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    instances::history(out, instance, limit, json, db)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COMFY_MONITOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: not in a file, a pipe or the system journal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desktop_app_takes_its_database_and_start_hidden_from_argv() {
        assert!(!app_options_from(["comfy-monitor"]).minimised);
        let o = app_options_from(["comfy-monitor", "--db", "/tmp/x.db", "--minimised"]);
        assert_eq!(o.db.as_deref(), Some(std::path::Path::new("/tmp/x.db")));
        assert!(o.minimised);
        assert!(app_options_from(["comfy-monitor", "--minimized"]).minimised);
        // Nonsense is the CLI's to report; the app just starts with defaults.
        assert_eq!(
            app_options_from(["comfy-monitor", "--nope"]),
            AppOptions::default()
        );
    }

    fn watch_args(argv: &[&str]) -> ServerArgs {
        let cli = Cli::try_parse_from(argv).expect("parses");
        match cli.command {
            Some(Command::Watch(w)) => w.server,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_url_uses_the_companion_unless_no_companion_is_given() {
        let on = watch_args(&["comfy-monitor", "watch", "--url", "http://127.0.0.1:8188"]);
        assert!(watch::spec_from_args(&on).expect("spec").use_companion);
        let off = watch_args(&[
            "comfy-monitor",
            "watch",
            "--url",
            "http://127.0.0.1:8188",
            "--no-companion",
        ]);
        assert!(off.no_companion);
        assert!(!watch::spec_from_args(&off).expect("spec").use_companion);
    }

    #[test]
    fn no_companion_goes_with_url_not_with_a_saved_instance() {
        let args = watch_args(&[
            "comfy-monitor",
            "watch",
            "--instance",
            "gpu",
            "--no-companion",
        ]);
        let dir = tempfile::tempdir().expect("tempdir");
        let err = watch::resolve(&args, Some(&dir.path().join("p.db")), None)
            .map(|_| ())
            .expect_err("refused");
        assert!(err.to_string().contains("--no-companion"), "{err}");
    }
}
