//! Secrets as the command line takes them: from a named environment variable, or from a
//! no-echo prompt, never from argv, and never printed. Where they are kept is the application
//! layer's business (`comfy_app::Profile`).

use anyhow::bail;
use std::io::IsTerminal;

/// Reads a secret from the named environment variable, or asks for it without echo when the
/// variable is `-` and a terminal is attached.
pub(crate) fn read_secret(var: &str, what: &str) -> anyhow::Result<String> {
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

/// Tells the user, once, what the profile says must be told (that secrets went to the
/// fallback file instead of the keyring), as soon as the secret store was opened.
pub(crate) fn announce(profile: &comfy_app::Profile) {
    for notice in profile.take_notices() {
        eprintln!("comfy-monitor: {notice}");
    }
}
