//! An instance's link: its connection state, what the server told us about itself, a
//! connection test's steps (with a certificate it refused), and what became of a cancel request.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The state of one instance's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// The socket dropped but the server answers HTTP; reconnecting soon.
    Reconnecting,
    /// The server does not answer.
    Unreachable,
    /// The server (or a proxy in front of it) rejects our credentials.
    AuthFailed,
    Disabled,
    /// HTTP answers but the socket cannot be opened (a proxy refuses the upgrade, or it never
    /// completes): the queue and outcomes are polled, submit, cancel and downloads work, there
    /// is no live progress and no preview. The socket is retried in the background.
    HttpOnly,
}

impl ConnectionState {
    /// The server answers, live or by polling alone: jobs are followed and actions work.
    pub fn is_up(self) -> bool {
        matches!(self, Self::Connected | Self::HttpOnly)
    }
}

/// Connection state plus the reason, for display ("auth failed: 401", "reconnecting in 4 s").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    pub detail: String,
    /// When the next attempt is due, if one is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub retry_in_ms: Option<u64>,
}

/// What the server told us about itself when we connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServerInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub version: Option<String>,
    /// `/api/jobs` exists (≥0.6.0): other clients' jobs are followed through it.
    pub jobs_api: bool,
    /// `/features` exists (≥0.3.45): feature flags, type-4 previews, `progress_state`.
    pub feature_flags: bool,
    /// The client id this app uses on the instance.
    pub client_id: String,
    /// The comfy-monitor companion's version when the server has it and we use it (other
    /// clients' jobs are then relayed to us), else `null`.
    pub companion: Option<String>,
}

/// The steps of a connection test ("Test connection"), in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CheckStep {
    /// `GET /system_stats` with the instance's credentials.
    Http,
    /// The `/ws` upgrade with the same credentials.
    Websocket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StepResult {
    pub step: CheckStep,
    pub ok: bool,
    /// What was found ("ComfyUI 0.3.64"), or why the step failed.
    pub detail: String,
    /// The failure was the server refusing the credentials.
    pub auth: bool,
    /// The failure was TLS refusing the server's certificate, which can be accepted (pinned):
    /// what it presented and what was pinned before. Unset for every other failure.
    pub certificate: Option<CertificateRefusal>,
}

/// A certificate refused because it is not the one pinned for a server that uses its own
/// (self-signed) certificate: not pinned yet (`pinned` is `None`), or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CertificateRefusal {
    pub presented: CertificateFingerprint,
    pub pinned: Option<CertificateFingerprint>,
}

impl fmt::Display for CertificateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pinned {
            None => write!(
                f,
                "the server's certificate is not trusted yet (SHA-256 {}); accept it only if it \
                 is your server's",
                self.presented
            ),
            Some(pinned) => write!(
                f,
                "the server's certificate changed (was {pinned}, now {}); accept the new one only \
                 if you know why it changed",
                self.presented
            ),
        }
    }
}

/// The SHA-256 of a certificate (its DER bytes), written as browsers and `openssl x509
/// -fingerprint -sha256` write it: 32 upper-case hex pairs joined by colons. Read back with or
/// without the colons (or spaces), in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
pub struct CertificateFingerprint([u8; 32]);

impl CertificateFingerprint {
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        Self(digest)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateFingerprint({self})")
    }
}

/// A text that is not a SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFingerprint(pub String);

impl fmt::Display for BadFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)",
            self.0
        )
    }
}

impl std::error::Error for BadFingerprint {}

impl FromStr for CertificateFingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_owned());
        let digits: Vec<u8> = s
            .trim()
            .bytes()
            .filter(|b| !matches!(b, b':' | b' '))
            .collect();
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
            let hex = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for CertificateFingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertificateFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Every step that ran, in order: the first failure ends the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConnectionCheck {
    /// Every step passed (made from the steps, never set on its own).
    ok: bool,
    steps: Vec<StepResult>,
}

impl ConnectionCheck {
    pub fn new(steps: Vec<StepResult>) -> Self {
        Self {
            ok: steps.iter().all(|s| s.ok),
            steps,
        }
    }

    pub fn ok(&self) -> bool {
        self.ok
    }

    pub fn steps(&self) -> &[StepResult] {
        &self.steps
    }
}

/// What became of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It was running and was told to stop (its end arrives as `interrupted`).
    Interrupted,
    /// It was pending and was removed from the queue.
    Removed,
    /// It had already finished.
    AlreadyFinished,
    /// The server does not know it.
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_written_as_colon_separated_upper_case_hex_and_read_back_loosely() {
        let fp = CertificateFingerprint::from_sha256(std::array::from_fn(|i| i as u8 * 8));
        let text = fp.to_string();
        assert_eq!(text.len(), 95);
        assert!(text.starts_with("00:08:10:18:"), "{text}");
        assert_eq!(text.parse::<CertificateFingerprint>(), Ok(fp));
        let loose = text.replace(':', "").to_lowercase();
        assert_eq!(loose.parse::<CertificateFingerprint>(), Ok(fp));
        assert_eq!(serde_json::to_string(&fp).unwrap(), format!("\"{text}\""));
        let plus = format!("+A{}", &loose[2..]);
        for bad in [
            "",
            "AB:CD",
            &text[..93],
            &format!("{}:ZZ", &text[..92]),
            &plus,
        ] {
            assert!(bad.parse::<CertificateFingerprint>().is_err(), "{bad}");
        }
    }
}
