//! Checks an instance's settings before they are saved ("Test connection"), and reads what a
//! dashboard shows beside the jobs: machine stats and output images held in memory.
//!
//! The check walks the same path the supervisor will: the HTTP API with the instance's
//! credentials, then the socket upgrade with the same credentials. It uses a throwaway client id,
//! because a second socket under the supervisor's id would take its messages away (the server
//! keeps one socket per client id).

use crate::api::{Api, ApiError};
use crate::instance::{new_client_id, InstanceSpec};
use crate::outputs::OutputError;
use comfy_protocol::http::{OutputFile, SystemStats};

/// Output images larger than this are not held in memory for display.
pub const MAX_VIEW_BYTES: usize = 64 << 20;

pub use comfy_model::{CheckStep, ConnectionCheck, StepResult};

fn failed(step: CheckStep, e: &ApiError) -> StepResult {
    let certificate = match e {
        ApiError::Certificate(refusal) => Some((**refusal).clone()),
        _ => None,
    };
    StepResult {
        step,
        ok: false,
        detail: e.to_string(),
        auth: e.is_auth() && certificate.is_none(),
        certificate,
    }
}

/// Tries an instance's settings: HTTP first, then the socket. Never touches a running
/// supervisor's connection.
pub async fn check_connection(spec: &InstanceSpec) -> ConnectionCheck {
    let mut steps = Vec::new();
    let mut api = match Api::new(spec) {
        Ok(api) => api,
        Err(e) => {
            steps.push(failed(CheckStep::Http, &e));
            return ConnectionCheck::new(steps);
        }
    };
    match api.probe().await {
        Ok(stats) => steps.push(StepResult {
            step: CheckStep::Http,
            ok: true,
            detail: match stats.system.comfyui_version {
                Some(v) => format!("ComfyUI {v}"),
                None => "ComfyUI (version not reported)".into(),
            },
            auth: false,
            certificate: None,
        }),
        Err(e) => {
            steps.push(failed(CheckStep::Http, &e));
            return ConnectionCheck::new(steps);
        }
    }
    let mut probe = spec.clone();
    probe.client_id = new_client_id();
    // `ws::connect` gives up after `ws::CONNECT_TIMEOUT`: a proxy that never answers the upgrade
    // is a failed step, not a test that never ends.
    match crate::ws::connect(&probe).await {
        Ok(mut connection) => {
            // A clean close, so the server drops the throwaway client at once.
            let close = connection.socket.close(None);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
            steps.push(StepResult {
                step: CheckStep::Websocket,
                ok: true,
                detail: "socket upgrade accepted".into(),
                auth: false,
                certificate: None,
            });
        }
        Err(e) => {
            let mut step = failed(CheckStep::Websocket, &e);
            step.detail.push_str(
                "; HTTP works, so the instance would run on HTTP only (no live progress or previews)",
            );
            steps.push(step);
        }
    }
    ConnectionCheck::new(steps)
}

impl Api {
    /// One output file's bytes, through `/view` with the instance's credentials, refused past
    /// [`MAX_VIEW_BYTES`] so a hostile server cannot fill memory.
    pub async fn view_output(&self, file: &OutputFile) -> Result<bytes::Bytes, OutputError> {
        crate::outputs::local_path(std::path::Path::new(""), file)?;
        let mut resp = self.view(file).await?;
        let too_big = || {
            OutputError::Api(ApiError::Unreachable(format!(
                "{} is larger than {} MiB",
                file.filename,
                MAX_VIEW_BYTES >> 20
            )))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_VIEW_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ApiError::Unreachable(crate::api::describe(&e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_VIEW_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Machine stats for display (RAM, VRAM).
    pub async fn system_stats(&self) -> Result<SystemStats, ApiError> {
        let (status, body) = self.get_raw(&self.route_of("system_stats")).await?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                path: "system_stats".into(),
            });
        }
        comfy_protocol::http::parse_system_stats(&body).map_err(|source| ApiError::Body {
            path: "system_stats".into(),
            source,
        })
    }
}
