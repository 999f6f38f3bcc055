//! "Test connection": settings tried before they are saved, on the same path the monitor will
//! take (the HTTP API, then the socket, with the same credentials), and the certificate a server
//! presents, for pinning.

use crate::{auth_from, AppError, Profile};
use comfy_engine::{InstanceSpec, Secret};
use comfy_model::{CertificateFingerprint, ConnectionCheck, InstanceId};
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

/// Tries the settings: typed secrets first, then the saved instance's; a slot with neither is
/// an input error. Never touches a running monitor's connection.
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
            (Some(p), Some(id)) => p.stored_secret(id, slot)?,
            _ => None,
        };
        stored
            .map(Secret::new)
            .ok_or_else(|| AppError::SecretRequired {
                slot: slot.to_owned(),
            })
    })?;
    Ok(comfy_engine::probe::check_connection(&spec).await)
}

/// The certificate the `https://` server at `url` presents, read without trusting it and
/// without sending a request, for the user to compare and accept (pin).
pub async fn presented_certificate(url: &str) -> Result<CertificateFingerprint, AppError> {
    let spec = InstanceSpec::new("certificate", url)?;
    comfy_engine::tls::presented_certificate(&spec)
        .await
        .map_err(|e| AppError::Engine(e.into()))
}
