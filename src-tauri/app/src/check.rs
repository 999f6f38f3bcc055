//! "Test connection": settings tried before they are saved, on the same path the monitor will
//! take (the HTTP API, then the socket, with the same credentials), and the certificate a server
//! presents, for pinning. Credentials that would travel unencrypted (`http://` to another
//! machine) are warned about in the HTTP step, whether or not it passed.

use crate::{auth_from, AppError, Profile};
use comfy_engine::{InstanceSpec, Secret};
use comfy_model::{CertificateFingerprint, CheckStep, ConnectionCheck, InstanceId};
use comfy_store::AuthSettings;
use std::collections::BTreeMap;

/// Settings to try.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// For display only; "test" when empty.
    pub name: &'a str,
    pub url: &'a str,
    pub auth: &'a AuthSettings,
    /// The server uses its own certificate: only `certificate_sha256` is trusted (with none,
    /// the test reports the certificate presented, to be accepted).
    pub accept_invalid_certs: bool,
    pub certificate_sha256: Option<CertificateFingerprint>,
    /// Secret values typed in, by slot.
    pub secrets: &'a BTreeMap<String, String>,
    /// The saved instance being edited, whose stored secrets fill the slots not typed in.
    pub saved: Option<InstanceId>,
}

/// Tries the settings: typed secrets first, then the saved instance's (only while the address
/// is still that instance's server); a slot with neither is an input error. Never touches a running monitor's connection.
pub async fn test_connection(
    profile: Option<&Profile>,
    candidate: Candidate<'_>,
) -> Result<ConnectionCheck, AppError> {
    let url = comfy_engine::instance::parse_base_url(candidate.url)?;
    let name = match candidate.name.trim() {
        "" => "test",
        n => n,
    };
    let mut spec = InstanceSpec::new(name, url.as_str())?;
    spec.accept_invalid_certs = candidate.accept_invalid_certs;
    spec.certificate_sha256 = candidate.certificate_sha256;
    spec.auth = auth_from(candidate.auth, |slot| {
        if let Some(v) = candidate.secrets.get(slot).filter(|v| !v.is_empty()) {
            return Ok(Secret::new(v.clone()));
        }
        let stored = match (profile, candidate.saved) {
            (Some(p), Some(id)) if p.secrets_go_to(id, candidate.url) => {
                p.stored_secret(id, slot)?
            }
            (Some(_), Some(_)) => return Err(crate::profile::secret_needed_again(slot)),
            _ => None,
        };
        stored
            .map(Secret::new)
            .ok_or_else(|| AppError::SecretRequired {
                slot: slot.to_owned(),
            })
    })?;
    let check = comfy_engine::probe::check_connection(&spec).await;
    Ok(warned(
        check,
        comfy_engine::api::cleartext_credentials(&spec).as_deref(),
    ))
}

/// The certificate the `https://` server at `url` presents, read without trusting it and
/// without sending a request, for the user to compare and accept (pin).
pub async fn presented_certificate(url: &str) -> Result<CertificateFingerprint, AppError> {
    let spec = InstanceSpec::new("certificate", url)?;
    comfy_engine::tls::presented_certificate(&spec)
        .await
        .map_err(|e| AppError::Engine(e.into()))
}

/// `check` with `warning` added to its HTTP step's detail.
fn warned(check: ConnectionCheck, warning: Option<&str>) -> ConnectionCheck {
    let Some(warning) = warning else {
        return check;
    };
    let steps = check
        .steps()
        .iter()
        .cloned()
        .map(|mut s| {
            if s.step == CheckStep::Http {
                s.detail = format!("{}; {warning}", s.detail);
            }
            s
        })
        .collect();
    ConnectionCheck::new(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_over_plain_http_is_warned_about_in_the_http_step() {
        // A port nothing listens on: the HTTP step fails at once, and the warning still stands
        // (the credentials went out with the attempt).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let auth = AuthSettings::Bearer;
        let secrets = BTreeMap::from([("token".to_owned(), "t0k".to_owned())]);
        let candidate = Candidate {
            name: "",
            url: &format!("http://127.0.0.1:{port}"),
            auth: &auth,
            accept_invalid_certs: false,
            certificate_sha256: None,
            secrets: &secrets,
            saved: None,
        };
        let local = test_connection(None, candidate.clone()).await.unwrap();
        assert!(
            !local.steps()[0].detail.contains("unencrypted"),
            "loopback never leaves the machine: {local:?}"
        );
        let mut remote = InstanceSpec::new("r", "http://comfy.lan:8188").unwrap();
        remote.auth = comfy_engine::Auth::Bearer(Secret::new("t0k"));
        let warning = comfy_engine::api::cleartext_credentials(&remote);
        let check = warned(local, warning.as_deref());
        let http = &check.steps()[0];
        assert_eq!(http.step, CheckStep::Http);
        assert!(!http.ok);
        assert!(
            http.detail
                .ends_with("warning: over http:// the bearer token is sent unencrypted on every request; use https://"),
            "{http:?}"
        );
        assert!(!check.ok());
    }
}
