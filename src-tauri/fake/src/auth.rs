//! The authentication layers people put in front of ComfyUI, checked on every HTTP request and
//! on the WebSocket upgrade before it happens.
//!
//! Core ComfyUI has none; the variants mirror a bearer-token gateway (401), a reverse proxy with
//! basic auth (401 + `WWW-Authenticate`), a custom-header gateway (403) and the ComfyUI-Login
//! plugin (302 to `/login`, token in `?token=` or a bearer header). This module only decides; it
//! must not log credentials.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::FakeAuth;

/// `None` when the request may pass, otherwise the response a real gate would give.
pub fn check(auth: &FakeAuth, headers: &HeaderMap, query: Option<&str>) -> Option<Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bearer = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "));
    match auth {
        FakeAuth::Bearer(token) => {
            if bearer == Some(token.as_str()) {
                return None;
            }
            Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "401: Unauthorized",
                )
                    .into_response(),
            )
        }
        FakeAuth::Basic { user, password } => {
            let given = authorization
                .strip_prefix("Basic ")
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok());
            if given.as_deref() == Some(format!("{user}:{password}").as_str()) {
                return None;
            }
            Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"ComfyUI\"")],
                    "401 Authorization Required",
                )
                    .into_response(),
            )
        }
        FakeAuth::Header { name, value } => {
            let given = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
            if given == Some(value.as_str()) {
                return None;
            }
            Some((StatusCode::FORBIDDEN, "403: Forbidden").into_response())
        }
        FakeAuth::QueryToken(token) => {
            let in_query = query.is_some_and(|q| {
                q.split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .any(|(k, v)| k == "token" && v == token)
            });
            if in_query || bearer == Some(token.as_str()) {
                return None;
            }
            Some(
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "/login")],
                    "302: Found",
                )
                    .into_response(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn basic_auth_accepts_only_the_configured_pair() {
        let auth = FakeAuth::Basic {
            user: "u".into(),
            password: "p".into(),
        };
        let good = base64::engine::general_purpose::STANDARD.encode("u:p");
        assert!(check(
            &auth,
            &headers(&[("authorization", &format!("Basic {good}"))]),
            None
        )
        .is_none());
        let denied = check(&auth, &HeaderMap::new(), None).expect("denied");
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert!(denied.headers().get("www-authenticate").is_some());
    }

    #[test]
    fn query_token_also_accepts_the_bearer_form_and_redirects_otherwise() {
        let auth = FakeAuth::QueryToken("t0k".into());
        assert!(check(&auth, &HeaderMap::new(), Some("clientId=a&token=t0k")).is_none());
        assert!(check(&auth, &headers(&[("authorization", "Bearer t0k")]), None).is_none());
        let denied = check(&auth, &HeaderMap::new(), Some("token=nope")).expect("denied");
        assert_eq!(denied.status(), StatusCode::FOUND);
        assert_eq!(denied.headers().get("location").unwrap(), "/login");
    }

    #[test]
    fn custom_header_gate_answers_forbidden() {
        let auth = FakeAuth::Header {
            name: "x-api-key".into(),
            value: "k".into(),
        };
        assert!(check(&auth, &headers(&[("x-api-key", "k")]), None).is_none());
        assert_eq!(
            check(&auth, &HeaderMap::new(), None)
                .expect("denied")
                .status(),
            StatusCode::FORBIDDEN
        );
    }
}
