//! `comfy-monitor watch`: one instance, followed until interrupted.

use crate::output::{Format, Printer};
use crate::{ServerArgs, WatchArgs};
use anyhow::{bail, Context};
use comfy_engine::{Engine, InstanceSpec, Secret, DEFAULT_EVENT_CAPACITY};

/// A saved instance, opened for journalling.
pub struct Saved {
    pub profile: crate::profile::Profile,
    pub instance: comfy_store::InstanceId,
}

/// The instance to act on: a saved one (with its journal), or one built from the flags. With
/// neither `--instance` nor `--url`, the saved instance whose journal has `job`, else the only
/// saved one. Bad input gets a clear error before anything connects.
pub fn resolve(
    args: &ServerArgs,
    db: Option<&std::path::Path>,
    job: Option<&str>,
) -> anyhow::Result<(InstanceSpec, Option<Saved>)> {
    if args.instance.is_none() && args.url.is_some() {
        return Ok((spec_from_args(args)?, None));
    }
    if args.auth.given() || args.insecure {
        bail!(
            "credentials and --insecure go with --url; a saved instance uses its own \
             (change them with `comfy-monitor instances edit`)"
        );
    }
    let profile = crate::profile::Profile::open(db)?;
    let rec = match &args.instance {
        Some(name) => profile.instance(name)?,
        None => profile.default_instance(job)?,
    };
    let spec = profile.spec(&rec)?;
    Ok((
        spec,
        Some(Saved {
            profile,
            instance: rec.id,
        }),
    ))
}

/// Builds the instance from the URL flags.
pub fn spec_from_args(args: &ServerArgs) -> anyhow::Result<InstanceSpec> {
    let Some(url) = &args.url else {
        bail!("give --url or --instance");
    };
    let url = comfy_engine::instance::parse_base_url(url)?;
    let name =
        args.name
            .clone()
            .unwrap_or_else(|| match (url.host_str(), url.port_or_known_default()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                _ => url.to_string(),
            });
    let mut spec = InstanceSpec::new(name, url.as_str())?;
    if let Some(id) = &args.client_id {
        if id.trim().is_empty() {
            bail!("--client-id must not be empty");
        }
        spec.client_id = id.clone();
    }
    spec.accept_invalid_certs = args.insecure;
    let (settings, secrets) = args.auth.resolve()?;
    spec.auth = crate::profile::auth_from(&settings, |slot| {
        secrets
            .iter()
            .find(|(s, _)| s == slot)
            .map(|(_, v)| Secret::new(v))
            .with_context(|| format!("no {slot} was given"))
    })?;
    Ok(spec)
}

pub fn run(args: WatchArgs, db: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (spec, saved) = resolve(&args.server, db, None)?;
    let mut journal = match saved {
        Some(s) => {
            let j = comfy_engine::journal::Journal::new(s.profile.store);
            let restored = j.restored_jobs(s.instance, &spec.client_id)?;
            Some((j, s.instance, restored))
        }
        None => None,
    };
    let format = if args.json {
        Format::Json
    } else {
        Format::Human
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        eprintln!(
            "comfy-monitor: watching {} as client id {} (queue jobs with this client_id to see their progress live; Ctrl-C to stop)",
            spec.base_url, spec.client_id
        );
        let (engine, mut events) = Engine::new(DEFAULT_EVENT_CAPACITY);
        let restored = journal.as_mut().map(|j| std::mem::take(&mut j.2)).unwrap_or_default();
        engine.add_instance_with(spec, restored)?;
        let mut printer = Printer::new(std::io::stdout().lock(), format);
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => {
                        if let (Some((j, instance, _)), comfy_engine::EventKind::Job(job)) = (journal.as_mut(), &e.kind) {
                            if let Err(err) = j.record(*instance, job, comfy_engine::now_ms()) {
                                eprintln!("comfy-monitor: the journal could not record {}: {err}", job.prompt_id);
                            }
                        }
                        if let Err(err) = printer.print(&e) {
                            // A closed pipe (`| head`) ends the watch quietly.
                            if err.kind() == std::io::ErrorKind::BrokenPipe { break; }
                            return Err(err.into());
                        }
                    }
                    None => break,
                },
                _ = &mut stop => break,
            }
        }
        engine.shutdown().await;
        Ok(())
    })
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
