//! TLS for one instance: one configuration for both clients, the HTTP API and the socket.
//!
//! A server is trusted in one of two ways, never a third:
//! - through the OS trust store (the platform verifier: the system's roots, or a private CA the
//!   user installed), with the host name and validity dates checked, as a browser would;
//! - for a server that uses its own (self-signed) certificate, exactly the certificate the user
//!   accepted: its SHA-256 is pinned, and every other certificate is refused during the
//!   handshake, before a credential leaves this machine. With nothing pinned yet, every
//!   certificate is refused and the refusal names the one presented, so a host can show its
//!   fingerprint and ask (trust on first use); a certificate that differs from the pin is refused
//!   with both fingerprints until the user accepts the new one.
//!
//! The handshake's signatures are checked in both cases, so the server must hold the key of the
//! certificate it presents. This module must never grow an "accept anything" path.

use crate::api::{Api, ApiError};
use crate::instance::{Auth, InstanceSpec};
use comfy_model::{CertificateFingerprint, CertificateRefusal};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use std::error::Error as StdError;
use std::sync::Arc;

/// The SHA-256 of a certificate's DER bytes.
pub fn fingerprint(certificate: &[u8]) -> CertificateFingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    CertificateFingerprint::from_sha256(bytes)
}

/// The client configuration for an instance: the pinned certificate when the instance uses its
/// own, else the OS trust store.
pub fn client_config(spec: &InstanceSpec) -> Result<ClientConfig, ApiError> {
    crate::install_crypto_provider();
    let setup = |e: rustls::Error| ApiError::Unreachable(format!("TLS setup: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(setup)?;
    let verifier: Arc<dyn ServerCertVerifier> = if spec.accept_invalid_certs {
        Arc::new(PinnedCertificate {
            pin: spec.certificate_sha256,
            provider,
        })
    } else {
        Arc::new(rustls_platform_verifier::Verifier::new(provider).map_err(setup)?)
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The certificate an `https://` server presents, read without trusting it: the handshake is
/// refused once the certificate is seen, so no request (and no credential) is sent.
pub async fn presented_certificate(
    spec: &InstanceSpec,
) -> Result<CertificateFingerprint, ApiError> {
    if spec.base_url.scheme() != "https" {
        return Err(ApiError::Unreachable(format!(
            "{} is not an https:// address: there is no certificate to trust",
            spec.base_url
        )));
    }
    let mut probe = spec.clone();
    probe.accept_invalid_certs = true;
    probe.certificate_sha256 = None;
    probe.auth = Auth::None;
    match Api::new(&probe)?.probe().await {
        Err(ApiError::Certificate(refusal)) => Ok(refusal.presented),
        Err(e) => Err(e),
        Ok(_) => Err(ApiError::Unreachable(
            "the server answered without presenting a certificate".into(),
        )),
    }
}

/// Trusts exactly the pinned certificate (and, with none pinned, nothing), whatever its issuer,
/// names or dates: the user accepted this very certificate.
#[derive(Debug)]
struct PinnedCertificate {
    pin: Option<CertificateFingerprint>,
    provider: Arc<CryptoProvider>,
}

/// The refusal carried through rustls' error, so the clients' errors can say which certificate
/// was refused.
#[derive(Debug)]
struct Refused(CertificateRefusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Refused {}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if self.pin == Some(presented) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(Refused(CertificateRefusal {
                presented,
                pinned: self.pin,
            }))),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The error a client's failure stands for when TLS refused the server's certificate: a
/// certificate that is not the pinned one ([`ApiError::Certificate`], which waits for the user
/// like rejected credentials), or one the OS trust store does not vouch for (unreachable, with
/// the reason). `None` for every other failure.
pub(crate) fn refused(error: &(dyn StdError + 'static)) -> Option<ApiError> {
    let rustls_error = find_rustls(error)?;
    let rustls::Error::InvalidCertificate(why) = rustls_error else {
        return None;
    };
    if let CertificateError::Other(OtherError(inner)) = why {
        if let Some(Refused(refusal)) = inner.downcast_ref::<Refused>() {
            return Some(ApiError::Certificate(Box::new(refusal.clone())));
        }
    }
    let reason = match why {
        CertificateError::UnknownIssuer => "it is not signed by an authority this computer \
             trusts (if the server uses its own certificate, trust it in the instance's settings)"
            .to_owned(),
        CertificateError::Expired => "it has expired".to_owned(),
        CertificateError::NotValidForName => "it is not valid for this host name".to_owned(),
        other => other.to_string(),
    };
    Some(ApiError::Unreachable(format!(
        "the server's certificate is not trusted: {reason}"
    )))
}

/// The rustls error somewhere in a client's error chain. An `io::Error` does not return the
/// error it wraps as its source, so each one is opened.
fn find_rustls<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(found) = find_rustls(inner) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(pin: Option<CertificateFingerprint>) -> PinnedCertificate {
        PinnedCertificate {
            pin,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn verify(v: &PinnedCertificate, der: &[u8]) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("example.test").expect("a name");
        v.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn the_pinned_verifier_accepts_exactly_the_pinned_certificate() {
        let (ours, theirs) = (b"our certificate".as_slice(), b"another one".as_slice());
        let v = pinned(Some(fingerprint(ours)));
        assert!(verify(&v, ours).is_ok());
        let err = verify(&v, theirs).expect_err("refused");
        let Some(ApiError::Certificate(refusal)) = refused(&err) else {
            panic!("{err:?}");
        };
        assert_eq!(
            *refusal,
            CertificateRefusal {
                presented: fingerprint(theirs),
                pinned: Some(fingerprint(ours)),
            }
        );
        assert!(refusal.to_string().starts_with(&format!(
            "the server's certificate changed (was {}, now {})",
            fingerprint(ours),
            fingerprint(theirs)
        )));
    }

    #[test]
    fn with_nothing_pinned_every_certificate_is_refused_and_named() {
        let err = verify(&pinned(None), b"first sight").expect_err("refused");
        let refusal = match refused(&err) {
            Some(ApiError::Certificate(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(refusal.presented, fingerprint(b"first sight"));
        assert_eq!(refusal.pinned, None);
    }

    #[test]
    fn a_refusal_is_found_inside_the_io_error_a_tls_stream_returns() {
        let err = verify(&pinned(None), b"x").expect_err("refused");
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        assert!(matches!(refused(&io), Some(ApiError::Certificate(_))));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(refused(&plain).is_none());
    }

    #[test]
    fn a_sha256_fingerprint_is_the_digest_of_the_bytes() {
        assert_eq!(
            fingerprint(b"").to_string(),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:\
             78:52:B8:55"
        );
    }
}
