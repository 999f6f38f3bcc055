//! `comfy-monitor instances` and `history`: the saved instances and the job journal.

use crate::output::approx;
use crate::secrets::{announce, read_secret};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use comfy_app::Profile;
use comfy_model::CertificateFingerprint;
use comfy_store::{AuthSettings, InstanceRecord, InstanceUpdate, NewInstance};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// The saved instances.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Save a new instance.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        #[command(flatten)]
        auth: AuthArgs,
        /// The server uses its own (self-signed) certificate: trust exactly that one. Its
        /// SHA-256 fingerprint is read from the server now, printed and pinned, unless
        /// --certificate-sha256 gives it.
        #[arg(long)]
        insecure: bool,
        /// The SHA-256 fingerprint of the server's own certificate, to pin without asking the
        /// server (`openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints it).
        #[arg(long, value_name = "FINGERPRINT", requires = "insecure")]
        certificate_sha256: Option<CertificateFingerprint>,
        /// Saved but not monitored.
        #[arg(long)]
        disabled: bool,
        /// Do not use the server's comfy-monitor companion even when it has one.
        #[arg(long)]
        no_companion: bool,
        /// Save the outputs of this app's jobs into this folder, without asking (the desktop
        /// app saves them; `default`: ~/Pictures/ComfyUI/<name>).
        #[arg(long, value_name = "DIR")]
        save_to: Option<String>,
        /// Save other clients' jobs' outputs too (a browser, a script).
        #[arg(long, requires = "save_to")]
        save_others: bool,
        /// Where `comfy-monitor serve` posts this instance's events (as with serve's own
        /// --webhook: a URL, or ntfy+URL for ntfy's plain text).
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
    },
    /// Change a saved instance; only the options given change.
    Edit {
        name: String,
        #[arg(long)]
        rename: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        /// Remove any authentication.
        #[arg(long, conflicts_with_all = ["token_env", "basic_user", "header_env", "query_token_env"])]
        no_auth: bool,
        /// The server uses its own certificate: trust exactly that one (read now, printed and
        /// pinned, unless one is pinned already or --certificate-sha256 gives it).
        #[arg(long, conflicts_with = "secure")]
        insecure: bool,
        /// Verify certificates through the OS trust store again (forgets the pinned one).
        #[arg(long)]
        secure: bool,
        /// Pin the certificate the server presents now, in place of the pinned one (after the
        /// server's certificate changed, and only if you know why).
        #[arg(long, conflicts_with_all = ["secure", "certificate_sha256"])]
        accept_certificate: bool,
        /// Pin the certificate with this SHA-256 fingerprint.
        #[arg(long, value_name = "FINGERPRINT", conflicts_with = "secure")]
        certificate_sha256: Option<CertificateFingerprint>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Use the server's comfy-monitor companion when it has one (the default).
        #[arg(long, conflicts_with = "no_companion")]
        companion: bool,
        /// Do not use the server's comfy-monitor companion.
        #[arg(long)]
        no_companion: bool,
        /// Save outputs into this folder without asking (`default`: the suggested one).
        #[arg(long, value_name = "DIR", conflicts_with = "no_save")]
        save_to: Option<String>,
        /// Stop saving outputs.
        #[arg(long)]
        no_save: bool,
        /// Save other clients' jobs' outputs too.
        #[arg(long, conflicts_with_all = ["no_save_others", "no_save"])]
        save_others: bool,
        /// Save only this app's jobs' outputs.
        #[arg(long)]
        no_save_others: bool,
        /// Where `comfy-monitor serve` posts this instance's events (a URL, or ntfy+URL).
        #[arg(long, value_name = "URL", conflicts_with = "no_webhook")]
        webhook: Option<String>,
        /// Stop posting this instance's events to its own webhook.
        #[arg(long)]
        no_webhook: bool,
    },
    /// Forget an instance (its secrets too; its journal entries go with it).
    Remove { name: String },
}

/// Credentials: each secret comes from the named environment variable, or from a no-echo
/// prompt when the name is `-`. Never from the command line itself.
#[derive(Debug, Args, Default)]
pub struct AuthArgs {
    /// Bearer token from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["basic_user", "query_token_env"])]
    pub token_env: Option<String>,
    /// Basic auth user name (the password comes from --password-env).
    #[arg(long, requires = "password_env", conflicts_with = "query_token_env")]
    pub basic_user: Option<String>,
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// A header whose value comes from an environment variable: 'Name:VAR' (repeatable).
    #[arg(long, value_name = "NAME:VAR")]
    pub header_env: Vec<String>,
    /// `?token=` value from this environment variable (ComfyUI-Login).
    #[arg(long, value_name = "VAR")]
    pub query_token_env: Option<String>,
}

impl AuthArgs {
    pub(crate) fn given(&self) -> bool {
        self.token_env.is_some()
            || self.basic_user.is_some()
            || !self.header_env.is_empty()
            || self.query_token_env.is_some()
    }

    /// The settings to store and the secrets (slot, value) to put in the keyring.
    pub(crate) fn resolve(&self) -> anyhow::Result<(AuthSettings, Vec<(String, String)>)> {
        if !self.header_env.is_empty() {
            if self.token_env.is_some()
                || self.basic_user.is_some()
                || self.query_token_env.is_some()
            {
                bail!("--header-env cannot be combined with other kinds of authentication");
            }
            let mut names = Vec::new();
            let mut secrets = Vec::new();
            for h in &self.header_env {
                let (name, var) = h.split_once(':').with_context(|| {
                    format!("--header-env must look like 'Name:VAR', got {h:?}")
                })?;
                let name = name.trim().to_owned();
                if name.is_empty() {
                    bail!("--header-env {h:?} has an empty header name");
                }
                let value = read_secret(var.trim(), &format!("value of header {name}"))?;
                secrets.push((format!("header:{}", name.to_ascii_lowercase()), value));
                names.push(name);
            }
            return Ok((AuthSettings::Headers { names }, secrets));
        }
        if let Some(var) = &self.token_env {
            return Ok((
                AuthSettings::Bearer,
                vec![("token".into(), read_secret(var, "token")?)],
            ));
        }
        if let Some(var) = &self.query_token_env {
            return Ok((
                AuthSettings::QueryToken,
                vec![("token".into(), read_secret(var, "token")?)],
            ));
        }
        if let Some(user) = &self.basic_user {
            let var = self
                .password_env
                .as_deref()
                .context("--basic-user needs --password-env")?;
            return Ok((
                AuthSettings::Basic { user: user.clone() },
                vec![("password".into(), read_secret(var, "password")?)],
            ));
        }
        Ok((AuthSettings::None, Vec::new()))
    }
}

fn auth_label(a: &AuthSettings) -> String {
    match a {
        AuthSettings::None => "none".into(),
        AuthSettings::Bearer => "bearer".into(),
        AuthSettings::QueryToken => "query token".into(),
        AuthSettings::Basic { user } => format!("basic ({user})"),
        AuthSettings::Headers { names } => format!("headers ({})", names.join(", ")),
    }
}

/// The folder `--save-to` names, made absolute; `default` is the suggested one.
fn save_folder(dir: &str, instance: &str) -> anyhow::Result<String> {
    let path = if dir == "default" {
        comfy_app::jobs::default_output_folder(instance)
            .context("this platform names no pictures folder; give a folder")?
    } else {
        std::path::absolute(dir).with_context(|| format!("{dir}: not a usable folder"))?
    };
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

fn record_json(r: &InstanceRecord) -> serde_json::Value {
    serde_json::json!({
        "name": r.name, "url": r.base_url, "auth": auth_label(&r.auth),
        "insecure": r.accept_invalid_certs,
        "certificate_sha256": r.certificate_sha256.map(|c| c.to_string()),
        "enabled": r.enabled, "client_id": r.client_id,
        "last_status": r.last_status, "last_connected": r.last_connected,
        "use_companion": r.use_companion,
        "save_to": r.saving.folder, "save_others": r.saving.others,
    })
}

/// One line of `instances list`.
fn record_line(r: &InstanceRecord) -> String {
    format!(
        "{:<16} {:<36} auth: {:<20}{}{}{}{}",
        r.name,
        r.base_url,
        auth_label(&r.auth),
        if r.enabled { "" } else { " (disabled)" },
        match (r.accept_invalid_certs, r.certificate_sha256) {
            (false, _) => String::new(),
            (true, Some(c)) => format!(" (own certificate {c})"),
            (true, None) => " (own certificate, none pinned yet)".to_owned(),
        },
        if r.use_companion {
            ""
        } else {
            " (no companion)"
        },
        match &r.saving.folder {
            Some(f) if r.saving.others => format!(" (saves every job's outputs to {f})"),
            Some(f) => format!(" (saves outputs to {f})"),
            None => String::new(),
        },
    )
}

/// Reads the certificate the server at `url` presents and tells the user what is about to be
/// trusted; an unreachable server is refused with what to do instead.
fn read_certificate(url: &str) -> anyhow::Result<CertificateFingerprint> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let presented = runtime
        .block_on(comfy_app::check::presented_certificate(url))
        .with_context(|| {
            format!(
                "cannot read the certificate of {url}; start the server and try again, or give \
                 its fingerprint with --certificate-sha256"
            )
        })?;
    println!(
        "{url} presents a certificate with SHA-256 fingerprint\n  {presented}\npinned: only this \
         certificate is trusted from now on (compare it with the server's own: `openssl x509 \
         -noout -fingerprint -sha256 -in cert.pem`)"
    );
    Ok(presented)
}

fn normalise_url(url: &str) -> anyhow::Result<String> {
    Ok(comfy_engine::instance::parse_base_url(url)?.to_string())
}

pub fn run(cmd: InstancesCommand, db: Option<&Path>) -> anyhow::Result<()> {
    let profile = Profile::open(db)?;
    let now = comfy_engine::now_ms();
    match cmd {
        InstancesCommand::List { json } => {
            let webhooks: std::collections::HashMap<_, _> =
                profile.webhooks()?.into_iter().collect();
            for r in profile.instances()? {
                let webhook = webhooks.get(&r.id);
                if json {
                    let mut line = record_json(&r);
                    if let (Some(w), Some(obj)) = (webhook, line.as_object_mut()) {
                        obj.insert("webhook".into(), w.clone().into());
                    }
                    println!("{line}");
                } else if let Some(w) = webhook {
                    println!("{} (webhook {w})", record_line(&r));
                } else {
                    println!("{}", record_line(&r));
                }
            }
        }
        InstancesCommand::Add {
            name,
            url,
            auth,
            insecure,
            certificate_sha256,
            disabled,
            no_companion,
            save_to,
            save_others,
            webhook,
        } => {
            if let Some(w) = &webhook {
                comfy_app::webhooks::parse_target(w, None).map_err(anyhow::Error::msg)?;
            }
            let (settings, secrets) = auth.resolve()?;
            let mut new = NewInstance::new(name, normalise_url(&url)?);
            new.auth = settings;
            new.accept_invalid_certs = insecure;
            if insecure {
                new.certificate_sha256 = Some(match certificate_sha256 {
                    Some(given) => given,
                    None => read_certificate(&new.base_url)?,
                });
            }
            new.enabled = !disabled;
            new.use_companion = !no_companion;
            if let Some(dir) = save_to {
                new.saving = comfy_model::OutputSaving {
                    folder: Some(save_folder(&dir, &new.name)?),
                    others: save_others,
                };
            }
            let rec = profile.add_instance(&new, &secrets.into_iter().collect(), now);
            announce(&profile);
            let rec = rec?;
            if let Some(w) = &webhook {
                profile.set_webhook(rec.id, Some(w))?;
            }
            println!("added {} ({})", rec.name, rec.base_url);
        }
        InstancesCommand::Edit {
            name,
            rename,
            url,
            auth,
            no_auth,
            insecure,
            secure,
            accept_certificate,
            certificate_sha256,
            enable,
            disable,
            companion,
            no_companion,
            save_to,
            no_save,
            save_others,
            no_save_others,
            webhook,
            no_webhook,
        } => {
            let rec = profile.instance_named(&name)?;
            if let Some(w) = &webhook {
                comfy_app::webhooks::parse_target(w, None).map_err(anyhow::Error::msg)?;
            }
            let mut update = InstanceUpdate {
                name: rename,
                base_url: url.as_deref().map(normalise_url).transpose()?,
                ..InstanceUpdate::default()
            };
            let mut secrets = BTreeMap::new();
            if no_auth {
                update.auth = Some(AuthSettings::None);
            } else if auth.given() {
                let (settings, s) = auth.resolve()?;
                update.auth = Some(settings);
                secrets = s.into_iter().collect();
            }
            if secure {
                update.accept_invalid_certs = Some(false);
                update.certificate_sha256 = Some(None);
            } else if insecure || accept_certificate || certificate_sha256.is_some() {
                update.accept_invalid_certs = Some(true);
                let url = update.base_url.as_deref().unwrap_or(&rec.base_url);
                let pin = match certificate_sha256 {
                    Some(given) => Some(given),
                    None if accept_certificate || rec.certificate_sha256.is_none() => {
                        Some(read_certificate(url)?)
                    }
                    None => None,
                };
                if let (Some(was), Some(now)) = (rec.certificate_sha256, pin) {
                    if was != now {
                        println!("replacing the pinned certificate {was}");
                    }
                }
                if pin.is_some() {
                    update.certificate_sha256 = Some(pin);
                }
            }
            if enable || disable {
                update.enabled = Some(enable);
            }
            if companion || no_companion {
                update.use_companion = Some(companion);
            }
            if save_to.is_some() || no_save || save_others || no_save_others {
                let mut saving = rec.saving.clone();
                if let Some(dir) = save_to {
                    let name = update.name.as_deref().unwrap_or(&rec.name);
                    saving.folder = Some(save_folder(&dir, name)?);
                }
                if no_save {
                    saving = comfy_model::OutputSaving::default();
                }
                if save_others || no_save_others {
                    saving.others = save_others;
                }
                if saving.others && saving.folder.is_none() {
                    anyhow::bail!("--save-others needs a folder: give --save-to DIR too");
                }
                update.saving = Some(saving);
            }
            let updated = profile.update_instance(rec.id, &update, &secrets, now);
            announce(&profile);
            let updated = updated?;
            if webhook.is_some() || no_webhook {
                profile.set_webhook(updated.id, webhook.as_deref())?;
            }
            println!("updated {}", updated.name);
        }
        InstancesCommand::Remove { name } => {
            let rec = profile.instance_named(&name)?;
            let removed = profile.remove_instance(rec.id);
            announce(&profile);
            let removed = removed?;
            println!("removed {}", removed.name);
        }
    }
    Ok(())
}

/// `comfy-monitor history`, written to `out`: each job with, when its workflow's fingerprint is
/// known, the typical run time learned from its instance's past runs of that workflow.
pub fn history(
    out: &mut dyn Write,
    instance: Option<&str>,
    limit: u32,
    json: bool,
    db: Option<&Path>,
) -> anyhow::Result<()> {
    let profile = Profile::open(db)?;
    let inst = instance.map(|n| profile.instance_named(n)).transpose()?;
    let names: std::collections::HashMap<_, _> = profile
        .instances()?
        .into_iter()
        .map(|i| (i.id, i.name))
        .collect();
    let records = comfy_app::jobs::history(&profile, inst.as_ref().map(|i| i.id), limit, 0)?;
    let journal = profile.journal();
    let store = journal.store();
    // Each listed instance's timing model, learned once from its journal.
    let mut timings = std::collections::HashMap::new();
    for j in &records {
        if j.fingerprint.is_some() && !timings.contains_key(&j.instance) {
            timings.insert(j.instance, journal.timings(j.instance)?);
        }
    }
    for j in records {
        let name = names.get(&j.instance).cloned().unwrap_or_default();
        let typical = j
            .fingerprint
            .as_deref()
            .zip(timings.get(&j.instance))
            .and_then(|(fp, model)| model.typical(fp))
            .map(|t| (t.ms.round().max(0.0) as u64, t.samples));
        let downloaded: Vec<_> = store
            .outputs(j.id)?
            .into_iter()
            .filter(|o| o.local_path.is_some())
            .collect();
        if json {
            let mut line = serde_json::json!({
                "instance": name, "prompt_id": j.prompt_id, "origin": j.origin.as_str(),
                "state": format!("{:?}", j.state).to_lowercase(), "queued_at_ms": j.queued_at,
                "started_at_ms": j.started_at, "finished_at_ms": j.finished_at,
                "outputs": j.outputs_json.as_deref().and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok()),
                "error": j.error_json.as_deref().and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok()),
                "detail": j.detail, "label": j.label, "resubmittable": j.has_workflow && j.state == comfy_store::JobState::Lost,
                "downloads": downloaded.iter().map(|o| serde_json::json!({
                    "node": (!o.node_id.is_empty()).then_some(&o.node_id),
                    "filename": o.filename, "subfolder": o.subfolder, "type": o.kind.as_str(),
                    "local_path": o.local_path.as_ref().map(|p| p.display().to_string()), "thumbnail": o.has_thumbnail,
                })).collect::<Vec<_>>(),
            });
            if let (Some((ms, samples)), Some(fields)) = (typical, line.as_object_mut()) {
                fields.insert("typical_ms".into(), ms.into());
                fields.insert("typical_samples".into(), samples.into());
            }
            writeln!(out, "{line}")?;
        } else {
            let when =
                time::OffsetDateTime::from_unix_timestamp_nanos(j.queued_at as i128 * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::macros::format_description!(
                            "[year]-[month]-[day] [hour]:[minute]"
                        ))
                        .ok()
                    })
                    .unwrap_or_default();
            let took = match (j.started_at, j.finished_at) {
                (Some(s), Some(f)) => format!(" {:.1} s", (f - s).max(0) as f64 / 1000.0),
                _ => String::new(),
            };
            let hint = if j.has_workflow && j.state == comfy_store::JobState::Lost {
                "  (resubmit: comfy-monitor resubmit ".to_owned() + &j.prompt_id + ")"
            } else {
                String::new()
            };
            writeln!(
                out,
                "{when} {name:<12} {} {:<11} {:<9}{took}{}{}{}{hint}",
                j.prompt_id.chars().take(8).collect::<String>(),
                format!("{:?}", j.state).to_lowercase(),
                j.origin.as_str(),
                typical
                    .map(|(ms, samples)| typical_label(ms, samples))
                    .unwrap_or_default(),
                j.label
                    .as_deref()
                    .map(|l| format!(" · {l}"))
                    .unwrap_or_default(),
                j.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
            )?;
            for o in &downloaded {
                if let Some(p) = &o.local_path {
                    writeln!(out, "    {} -> {}", o.filename, p.display())?;
                }
            }
        }
    }
    Ok(())
}

/// A history line's typical run time of the job's workflow: " · typical ≈2m10s (5 runs)".
fn typical_label(ms: u64, samples: u32) -> String {
    format!(
        " · typical ≈{} ({samples} run{})",
        approx(ms),
        if samples == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        cmd: InstancesCommand,
    }

    fn parse(argv: &[&str]) -> Result<InstancesCommand, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("instances").chain(argv.iter().copied()))
            .map(|w| w.cmd)
    }

    /// A saved instance, named, with a profile that has nothing else.
    fn saved(db: &Path, argv: &[&str]) -> InstanceRecord {
        run(parse(argv).expect("parses"), Some(db)).expect("runs");
        Profile::open(Some(db))
            .expect("profile")
            .instance_named("gpu")
            .expect("saved")
    }

    #[test]
    fn add_uses_the_companion_unless_no_companion_is_given_and_edit_switches_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("p.db");
        let add = ["add", "--name", "gpu", "--url", "http://gpu:8188"];
        assert!(saved(&db, &add).use_companion);
        run(parse(&["remove", "gpu"]).expect("parses"), Some(&db)).expect("removed");
        let rec = saved(&db, &[&add[..], &["--no-companion"]].concat());
        assert!(!rec.use_companion);
        assert!(
            record_line(&rec).ends_with(" (no companion)"),
            "{}",
            record_line(&rec)
        );
        assert_eq!(record_json(&rec)["use_companion"], false);

        let rec = saved(&db, &["edit", "gpu", "--companion"]);
        assert!(rec.use_companion);
        assert!(!record_line(&rec).contains("companion"));
        let rec = saved(&db, &["edit", "gpu", "--no-companion"]);
        assert!(!rec.use_companion);
        let rec = saved(&db, &["edit", "gpu", "--disable"]);
        assert!(!rec.use_companion, "an edit without the flags keeps it");
        assert!(parse(&["edit", "gpu", "--companion", "--no-companion"]).is_err());
    }

    #[test]
    fn a_history_line_gives_the_typical_run_time_and_the_runs_it_stands_on() {
        assert_eq!(typical_label(130_000, 5), " · typical ≈2m10s (5 runs)");
        assert_eq!(typical_label(4_200, 1), " · typical ≈4.2s (1 run)");
    }
}
