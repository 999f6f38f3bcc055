//! Opening the WebSocket to one instance: the URL with our client id, credentials on the
//! upgrade, raised frame limits, and the instance's TLS (`tls`: the OS trust store, or exactly
//! the pinned certificate, as for HTTP).

use crate::api::{auth_failure, auth_headers, ApiError};
use crate::instance::{Auth, InstanceSpec};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// ComfyUI sends each message as one unfragmented frame; a full-size PNG from a
/// `SaveImageWebsocket` node passes tungstenite's 16 MiB default.
pub const MAX_FRAME: usize = 256 << 20;

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

/// Opens the socket. Errors are classified like HTTP ones: a rejected upgrade with 401/403 or a
/// redirect is an auth failure.
pub async fn connect(spec: &InstanceSpec) -> Result<Socket, ApiError> {
    crate::install_crypto_provider();
    let url = socket_url(spec);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ApiError::Unreachable(format!("bad socket URL: {e}")))?;
    request.headers_mut().extend(auth_headers(&spec.auth)?);
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME));
    let result = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        connector(spec)?,
    )
    .await;
    match result {
        Ok((socket, _)) => Ok(socket),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Secret;

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
