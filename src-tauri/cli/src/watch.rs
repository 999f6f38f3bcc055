//! `comfy-monitor watch`: one instance, followed until interrupted.

use crate::output::{Format, Printer};
use crate::secrets::announce;
use crate::{ServerArgs, WatchArgs};
use anyhow::bail;
use comfy_app::{AppError, Profile};
use comfy_engine::{Engine, InstanceId, InstanceSpec, Secret, DEFAULT_EVENT_CAPACITY};
use comfy_signal::shutdown_signal;

/// A saved instance, opened for journalling.
pub struct Saved {
    pub profile: Profile,
    /// The store's id, which is also the engine's id for it.
    pub instance: InstanceId,
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
    if args.auth.given() || args.insecure || args.no_companion {
        bail!(
            "credentials, --insecure and --no-companion go with --url; a saved instance uses \
             its own (change them with `comfy-monitor instances edit`)"
        );
    }
    let profile = Profile::open(db)?;
    let rec = match &args.instance {
        Some(name) => profile.instance_named(name)?,
        None => profile.default_instance(job)?,
    };
    let spec = profile.spec(&rec);
    announce(&profile);
    Ok((
        spec?,
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
    spec.certificate_sha256 = args.certificate_sha256;
    spec.use_companion = !args.no_companion;
    let (settings, secrets) = args.auth.resolve()?;
    spec.auth = comfy_app::auth_from(&settings, |slot| {
        secrets
            .iter()
            .find(|(s, _)| s == slot)
            .map(|(_, v)| Secret::new(v))
            .ok_or_else(|| AppError::InvalidInput(format!("no {slot} was given")))
    })?;
    Ok(spec)
}

pub fn run(args: WatchArgs, db: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (spec, saved) = resolve(&args.server, db, None)?;
    let restored = match &saved {
        Some(s) => s.profile.journal().restore(s.instance, &spec.client_id)?,
        None => Default::default(),
    };
    let format = if args.json {
        Format::Json
    } else {
        Format::Human
    };
    let rt = crate::act::runtime()?;
    rt.block_on(async move {
        eprintln!(
            "comfy-monitor: watching {} as client id {} (queue jobs with this client_id to see their progress live; Ctrl-C to stop)",
            spec.base_url, spec.client_id
        );
        let (engine, mut events) = Engine::new(DEFAULT_EVENT_CAPACITY);
        match &saved {
            Some(s) => engine.add_saved(s.instance, spec, restored)?,
            None => {
                engine.add_instance(spec)?;
            }
        }
        let mut printer = Printer::new(std::io::stdout().lock(), format);
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => {
                        if let (Some(s), comfy_engine::EventKind::Job(job)) = (saved.as_ref(), &e.kind) {
                            let recorded = s.profile.journal().record(s.instance, job, comfy_engine::now_ms());
                            if let Err(err) = recorded {
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
