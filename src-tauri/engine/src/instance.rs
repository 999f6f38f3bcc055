//! How to reach one ComfyUI instance: its URL, credentials and TLS choice.

use std::fmt;
use url::Url;

/// A secret (token, password, header value). Never printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials, sent on every HTTP request and on the WebSocket upgrade (protocol §7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// Core ComfyUI has no authentication.
    #[default]
    None,
    /// `Authorization: Bearer <token>` (API gateways, ComfyUI-Login).
    Bearer(Secret),
    /// `Authorization: Basic ...` (nginx/Caddy basic auth).
    Basic { user: String, password: Secret },
    /// Arbitrary headers (Cloudflare Access service tokens, `X-API-Key`, ...).
    Headers(Vec<(String, Secret)>),
    /// `?token=<token>` on every URL (ComfyUI-Login, Comfy Cloud's socket).
    QueryToken(Secret),
}

#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// The name users see, and the `instance` field of every event.
    pub name: String,
    /// The base URL, possibly with a path prefix behind a reverse proxy.
    pub base_url: Url,
    pub auth: Auth,
    /// The server uses its own (self-signed) certificate: trust exactly the one pinned in
    /// `certificate_sha256` instead of the OS trust store (per instance, opt-in; see `tls`).
    pub accept_invalid_certs: bool,
    /// The certificate pinned for such a server; `None` until the user accepts one, and every
    /// certificate is refused meanwhile.
    pub certificate_sha256: Option<comfy_model::CertificateFingerprint>,
    /// This app's client id on the instance. Jobs queued with it are followed live. Must be
    /// unique to this app: reusing another program's id steals its messages (protocol §2.1).
    pub client_id: String,
    pub enabled: bool,
    /// Use the server's comfy-monitor companion when it has one: other clients' jobs are then
    /// relayed to us and followed like our own (`docs/companion-protocol.md`).
    pub use_companion: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("`{0}` is not a URL: {1}")]
    BadUrl(String, #[source] url::ParseError),
    #[error("`{0}` must be an http:// or https:// URL")]
    BadScheme(String),
    #[error(
        "`{0}` carries a user name or password: give the address alone, and the credentials as \
         the instance's Basic auth (the CLI's --basic-user and --password-env), which keeps \
         them out of logs and lists"
    )]
    Credentials(String),
}

/// `input` with anything between `://` and its last `@` hidden, for messages: a URL may carry
/// `user:password@`, and one that does not parse may have a `/`, `?` or `#` in the password, so
/// the last `@` anywhere counts (an `@` in a path hides a little too much, never too little).
pub fn redact_userinfo(input: &str) -> String {
    let (scheme, rest) = match input.find("://") {
        Some(at) => input.split_at(at + 3),
        None => ("", input),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => input.to_owned(),
    }
}

impl InstanceSpec {
    /// A spec with a fresh client id; `url` may omit the scheme (`127.0.0.1:8188`).
    pub fn new(name: impl Into<String>, url: &str) -> Result<Self, SpecError> {
        Ok(Self {
            name: name.into(),
            base_url: parse_base_url(url)?,
            auth: Auth::None,
            accept_invalid_certs: false,
            certificate_sha256: None,
            client_id: new_client_id(),
            enabled: true,
            use_companion: true,
        })
    }
}

/// Parses a user-typed server address into a base URL ending in `/`.
pub fn parse_base_url(input: &str) -> Result<Url, SpecError> {
    let trimmed = input.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let mut url =
        Url::parse(&with_scheme).map_err(|e| SpecError::BadUrl(redact_userinfo(input), e))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SpecError::Credentials(redact_userinfo(input)));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SpecError::BadScheme(input.to_owned()));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A new client id: `comfy-monitor-` and 32 hex digits, recognisable in server logs.
pub fn new_client_id() -> String {
    format!("comfy-monitor-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_is_refused_without_repeating_them() {
        for input in [
            "http://ann:s3cret@gpu:8188",
            "ann:s3cret@gpu:8188/comfy",
            "https://ann@gpu/",
            "http://ann:s3cret@gpu:notaport/",
            "http://ann:s3/cret@gpu",
            "http://ann:s3#cret@gpu",
            "ann:s3?cret@gpu",
        ] {
            let err = parse_base_url(input).expect_err(input).to_string();
            assert!(!err.contains("s3cret") && !err.contains("ann"), "{err}");
            assert!(err.contains("***@gpu"), "{err}");
        }
        assert_eq!(redact_userinfo("http://a:b/c@h:1/"), "http://***@h:1/");
        assert_eq!(redact_userinfo("http://h/x"), "http://h/x");
    }

    #[test]
    fn base_url_gets_a_scheme_and_a_trailing_slash() {
        assert_eq!(
            parse_base_url("127.0.0.1:8188").unwrap().as_str(),
            "http://127.0.0.1:8188/"
        );
        assert_eq!(
            parse_base_url("https://host/comfy").unwrap().as_str(),
            "https://host/comfy/"
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(matches!(
            parse_base_url("ftp://host"),
            Err(SpecError::BadScheme(_))
        ));
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let a = Auth::Basic {
            user: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
