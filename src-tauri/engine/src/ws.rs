//! Opening the WebSocket to one instance: the URL with our client id, credentials on the
//! upgrade, frame limits per kind checked before a payload is read (`wire`), a connect timeout,
//! TCP keepalive, and the instance's TLS (`tls`: the OS trust store, or exactly
//! the pinned certificate, as for HTTP).

mod wire;

use crate::api::{auth_failure, auth_headers, ApiError};
use crate::instance::{Auth, InstanceSpec};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
pub use wire::{FrameGuard, Limits, Metered, Wire};

pub use crate::processor::{MAX_BINARY_FRAME, MAX_TEXT_FRAME};

/// What tungstenite reads and writes: TCP (with keepalive, its bytes clocked on the [`Wire`]),
/// TLS for `wss://`, and the frame guard that drops an oversized frame before its payload is
/// read.
pub type Transport = FrameGuard<MaybeTlsStream<Metered<TcpStream>>>;
pub type Socket = WebSocketStream<Transport>;

/// The largest frame tungstenite may assemble: a backstop, since the frame guard drops larger
/// ones (and text frames over [`MAX_TEXT_FRAME`]) before it sees them.
pub const MAX_FRAME: usize = MAX_BINARY_FRAME;

/// How long opening the socket may take, TCP, TLS and the upgrade together: a proxy that never
/// answers the upgrade, or a link lost mid-handshake, must not leave the instance connecting
/// forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive: the first probe after this much silence (our pings are more frequent, so it
/// matters while nothing is sent: during the upgrade, or while the engine is blocked)...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// ...then one probe this often until the peer answers or the kernel gives up.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// An open socket, and what its reading side sees (when the last byte came, refused frames).
pub struct Connection {
    pub socket: Socket,
    pub wire: Arc<Wire>,
}

/// The socket URL: `/ws` beside the base (the bare path, as the official frontend uses).
pub fn socket_url(spec: &InstanceSpec) -> url::Url {
    let mut url = spec
        .base_url
        .join("ws")
        .unwrap_or_else(|_| spec.base_url.clone());
    let scheme = if spec.base_url.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    // Both schemes are special in `url`, so switching between them cannot fail.
    let _ = url.set_scheme(scheme);
    url.query_pairs_mut()
        .append_pair("clientId", &spec.client_id);
    if let Auth::QueryToken(t) = &spec.auth {
        url.query_pairs_mut().append_pair("token", t.expose());
    }
    url
}

/// The socket's TLS: the same configuration as the HTTP client's, never tungstenite's own
/// (bundled roots), so a server HTTP trusts is trusted here and no other.
fn connector(spec: &InstanceSpec) -> Result<Option<Connector>, ApiError> {
    if spec.base_url.scheme() != "https" {
        return Ok(None);
    }
    Ok(Some(Connector::Rustls(Arc::new(
        crate::tls::client_config(spec)?,
    ))))
}

/// Opens the socket, within [`CONNECT_TIMEOUT`]. Errors are classified like HTTP ones: a
/// rejected upgrade with 401/403 or a redirect is an auth failure.
pub async fn connect(spec: &InstanceSpec) -> Result<Connection, ApiError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open(spec)).await {
        Ok(opened) => opened,
        Err(_) => Err(ApiError::Unreachable(format!(
            "socket: no answer within {} s (connect, TLS or upgrade)",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

async fn open(spec: &InstanceSpec) -> Result<Connection, ApiError> {
    crate::install_crypto_provider();
    let url = socket_url(spec);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ApiError::Unreachable(format!("bad socket URL: {e}")))?;
    request.headers_mut().extend(auth_headers(&spec.auth)?);
    let tls = connector(spec)?;
    let wire = Wire::new();
    let tcp = Metered::new(tcp_connect(&url).await?, wire.clone());
    let stream = match (url.scheme(), tls) {
        ("wss", Some(Connector::Rustls(config))) => {
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(server_name(&url)?, tcp)
                .await
                .map_err(|e| {
                    crate::tls::refused(&e)
                        .unwrap_or_else(|| ApiError::Unreachable(format!("socket: TLS: {e}")))
                })?;
            MaybeTlsStream::Rustls(tls)
        }
        ("wss", _) => {
            return Err(ApiError::Unreachable(
                "socket: no TLS configuration for wss://".into(),
            ))
        }
        _ => MaybeTlsStream::Plain(tcp),
    };
    let limits = Limits {
        text: MAX_TEXT_FRAME as u64,
        binary: MAX_BINARY_FRAME as u64,
    };
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME));
    let result = tokio_tungstenite::client_async_with_config(
        request,
        FrameGuard::new(stream, wire.clone(), limits),
        Some(config),
    )
    .await;
    match result {
        Ok((socket, _)) => Ok(Connection { socket, wire }),
        Err(WsError::Http(resp)) => {
            let location = resp.headers().get("location").and_then(|v| v.to_str().ok());
            match auth_failure(resp.status(), location) {
                Some(msg) => Err(ApiError::Auth(msg)),
                None => Err(ApiError::Status {
                    status: resp.status().as_u16(),
                    path: "/ws".into(),
                }),
            }
        }
        Err(e) => Err(crate::tls::refused(&e)
            .unwrap_or_else(|| ApiError::Unreachable(format!("socket: {e}")))),
    }
}

/// The TCP connection under the socket, with keepalive on and Nagle off.
async fn tcp_connect(url: &url::Url) -> Result<TcpStream, ApiError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let connected = match url.host() {
        Some(url::Host::Domain(d)) => TcpStream::connect((d, port)).await,
        Some(url::Host::Ipv4(ip)) => TcpStream::connect((ip, port)).await,
        Some(url::Host::Ipv6(ip)) => TcpStream::connect((ip, port)).await,
        // Named by its host alone: the socket URL may carry `?token=`.
        None => return Err(ApiError::Unreachable("socket: the URL has no host".into())),
    };
    let stream = connected.map_err(|e| ApiError::Unreachable(format!("socket: {e}")))?;
    let _ = stream.set_nodelay(true);
    if let Err(e) = keepalive(&stream) {
        tracing::debug!("TCP keepalive not set on the socket: {e}");
    }
    Ok(stream)
}

/// Turns TCP keepalive on: a peer gone without a word (a laptop asleep, a Wi-Fi change) is
/// noticed by the kernel even while nothing is sent, and idle-cutting middleboxes see traffic.
pub(crate) fn keepalive(stream: &TcpStream) -> std::io::Result<()> {
    let params = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let params = params.with_interval(KEEPALIVE_INTERVAL);
    socket2::SockRef::from(stream).set_tcp_keepalive(&params)
}

/// The name TLS checks the certificate against: the URL's host name or address.
fn server_name(url: &url::Url) -> Result<ServerName<'static>, ApiError> {
    let bad = || {
        ApiError::Unreachable(format!(
            "socket: {} is no host name TLS can check",
            url.host_str().unwrap_or("the URL")
        ))
    };
    match url.host() {
        Some(url::Host::Domain(d)) => ServerName::try_from(d.to_owned()).map_err(|_| bad()),
        Some(url::Host::Ipv4(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
        Some(url::Host::Ipv6(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Secret;

    #[tokio::test]
    async fn the_socket_has_tcp_keepalive_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("ws://{}/ws", listener.local_addr().unwrap())).unwrap();
        let stream = tcp_connect(&url).await.unwrap();
        assert!(socket2::SockRef::from(&stream).keepalive().unwrap());
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn an_upgrade_that_is_never_answered_gives_up_after_the_connect_timeout() {
        // Accepts the TCP connection, reads the upgrade, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(conn);
        });
        let spec = InstanceSpec::new("x", &addr.to_string()).unwrap();
        let started = tokio::time::Instant::now();
        let e = match tokio::time::timeout(CONNECT_TIMEOUT * 6, connect(&spec)).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => panic!("connected to a server that never answered"),
            Err(_) => panic!("still connecting a minute later"),
        };
        assert_eq!(started.elapsed(), CONNECT_TIMEOUT);
        assert!(e.to_string().contains("no answer within 10 s"), "{e}");
        server.abort();
    }

    #[test]
    fn socket_url_keeps_the_base_path_and_adds_client_id_and_token() {
        let mut spec = InstanceSpec::new("x", "https://host:8443/comfy").unwrap();
        spec.client_id = "me".into();
        spec.auth = Auth::QueryToken(Secret::new("t0k"));
        assert_eq!(
            socket_url(&spec).as_str(),
            "wss://host:8443/comfy/ws?clientId=me&token=t0k"
        );
    }
}
