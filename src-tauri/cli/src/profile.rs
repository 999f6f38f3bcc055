//! The user's saved instances: the SQLite store (`--db` / `COMFY_MONITOR_DB` / the platform's
//! data dir) for settings and the journal, the OS keyring (or the owner-only fallback file) for
//! secrets. Secrets are read from environment variables or a no-echo prompt, never from argv,
//! and never printed.

use anyhow::{anyhow, bail, Context};
use comfy_engine::{Auth, InstanceSpec, Secret};
use comfy_secrets::Secrets;
use comfy_store::{secret_ref, AuthSettings, InstanceRecord, Store};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub struct Profile {
    pub store: Store,
    pub secrets_path: PathBuf,
}

impl Profile {
    pub fn open(db: Option<&Path>) -> anyhow::Result<Profile> {
        let path = match db {
            Some(p) => p.to_path_buf(),
            None => comfy_store::default_path()?,
        };
        let store = Store::open(&path)?;
        let secrets_path = path
            .parent()
            .map(|d| d.join("secrets.json"))
            .unwrap_or_else(|| PathBuf::from("secrets.json"));
        Ok(Profile {
            store,
            secrets_path,
        })
    }

    /// The secret store, announcing the fallback file the first time it is chosen.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        let (secrets, notice) = self.open_secrets()?;
        if let Some(notice) = notice {
            eprintln!("comfy-monitor: {notice}");
        }
        Ok(secrets)
    }

    /// The secret store and, the first time the fallback file is chosen, what to tell the user.
    pub fn open_secrets(&self) -> anyhow::Result<(Secrets, Option<String>)> {
        let (secrets, opened) = Secrets::open(&self.secrets_path)?;
        Ok((secrets, opened.notice()))
    }

    pub fn instance(&self, name: &str) -> anyhow::Result<InstanceRecord> {
        self.store.instance_by_name(name).map_err(|e| match e {
            comfy_store::StoreError::NotFound { .. } => {
                let known: Vec<String> = self
                    .store
                    .instances()
                    .map(|v| v.into_iter().map(|i| i.name).collect())
                    .unwrap_or_default();
                anyhow!(
                    "no instance named {name:?}; configured: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )
            }
            other => other.into(),
        })
    }

    /// The saved instance to use when the command line names none: the one whose journal has
    /// `job` (when exactly one has it), else the only saved instance.
    pub fn default_instance(&self, job: Option<&str>) -> anyhow::Result<InstanceRecord> {
        let all = self.store.instances()?;
        if let Some(job) = job {
            let mut knowing = Vec::new();
            for rec in &all {
                if self.store.job(rec.id, job)?.is_some() {
                    knowing.push(rec);
                }
            }
            if let [rec] = knowing.as_slice() {
                return Ok((*rec).clone());
            }
        }
        match all.as_slice() {
            [rec] => Ok(rec.clone()),
            [] => bail!(
                "no saved instance: add one with `comfy-monitor instances add`, or give --url"
            ),
            many => bail!(
                "{} saved instances ({}): name one with --instance NAME, or give --url",
                many.len(),
                many.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The engine's view of a saved instance, with its secrets from the keyring.
    pub fn spec(&self, rec: &InstanceRecord) -> anyhow::Result<InstanceSpec> {
        let secrets = if rec.secret_slots.is_empty() {
            None
        } else {
            Some(self.secrets()?)
        };
        spec_from(rec, secrets.as_ref())
    }
}

/// The engine's view of a saved instance, its secrets read from `secrets` (needed only when the
/// instance has secret slots).
pub fn spec_from(rec: &InstanceRecord, secrets: Option<&Secrets>) -> anyhow::Result<InstanceSpec> {
    let mut spec = InstanceSpec::new(&rec.name, &rec.base_url)?;
    spec.client_id = rec.client_id.clone();
    spec.accept_invalid_certs = rec.accept_invalid_certs;
    spec.enabled = rec.enabled;
    let get = |slot: &str| -> anyhow::Result<Secret> {
        let s = secrets.context("no secret store")?;
        let value = s
            .get(&secret_ref(rec.id, slot))?
            .ok_or_else(|| anyhow!("the {slot} of {} is missing from the keyring; set it again in the instance settings or with `comfy-monitor instances edit {}`", rec.name, rec.name))?;
        Ok(Secret::new(value))
    };
    spec.auth = auth_from(&rec.auth, get)?;
    Ok(spec)
}

/// The engine's auth for saved settings, each secret slot (`token`, `password`,
/// `header:<lowercase name>`) read through `get`.
pub fn auth_from(
    auth: &AuthSettings,
    get: impl Fn(&str) -> anyhow::Result<Secret>,
) -> anyhow::Result<Auth> {
    Ok(match auth {
        AuthSettings::None => Auth::None,
        AuthSettings::Bearer => Auth::Bearer(get("token")?),
        AuthSettings::QueryToken => Auth::QueryToken(get("token")?),
        AuthSettings::Basic { user } => Auth::Basic {
            user: user.clone(),
            password: get("password")?,
        },
        AuthSettings::Headers { names } => Auth::Headers(
            names
                .iter()
                .map(|n| {
                    Ok((
                        n.clone(),
                        get(&format!("header:{}", n.to_ascii_lowercase()))?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?,
        ),
    })
}

/// Reads a secret from the named environment variable, or asks for it without echo when the
/// variable is `-` and a terminal is attached.
pub fn read_secret(var: &str, what: &str) -> anyhow::Result<String> {
    if var == "-" {
        if !std::io::stdin().is_terminal() {
            bail!(
                "cannot prompt for the {what}: no terminal; name an environment variable instead"
            );
        }
        let v = rpassword::prompt_password(format!("{what}: "))?;
        if v.is_empty() {
            bail!("the {what} is empty");
        }
        return Ok(v);
    }
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => bail!("environment variable {var} (the {what}) is empty"),
        Err(_) => bail!("environment variable {var} (the {what}) is not set"),
    }
}
