//! Companion mode: what the comfy-monitor companion (`docs/companion-protocol.md`, revision 1)
//! adds to a ComfyUI server, as pure functions of the state.
//!
//! Which execution messages and previews are copied, how a preview becomes the type-4 copy,
//! who subscribed, and the JSON of `GET /comfy_monitor/v1/state`. The copies themselves are
//! pushed by `state`'s senders, right after the original and under the same lock, so they keep
//! the original order. This module must not send anything or touch the network.

use bytes::Bytes;

use crate::frames;
use crate::images::ImageFormat;
use crate::json::J;
use crate::obj;
use crate::state::State;

/// The `companion` field of the state route.
pub const VERSION: &str = "0.1.0-fake";
/// The protocol revision the fake speaks.
pub const PROTOCOL: i64 = 1;
/// The feature flag a socket opts in with (its value is the client's revision).
pub const FLAG: &str = "comfy_monitor_relay";

/// The JSON messages a companion copies when they are sent to one sid.
const RELAYED: [&str; 9] = [
    "execution_start",
    "execution_cached",
    "executing",
    "executed",
    "progress",
    "progress_state",
    "execution_success",
    "execution_error",
    "execution_interrupted",
];

pub fn relays(event: &str) -> bool {
    RELAYED.contains(&event)
}

/// Whether these feature flags opt in (any truthy `comfy_monitor_relay`).
pub fn opted_in(flags: &J) -> bool {
    flags.get(FLAG).is_some_and(J::truthy)
}

/// The type-4 copy of a preview frame: a type-4 original as it is (its metadata already names
/// the node and prompt), a type-1 original re-framed with metadata for `node_id` and
/// `prompt_id`. `None` for frames that are not previews.
pub fn preview_copy(frame: &Bytes, node_id: &str, prompt_id: &str) -> Option<Bytes> {
    let word = |at: usize| {
        frame
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match word(0)? {
        4 => Some(frame.clone()),
        1 => {
            let format = match word(4)? {
                2 => ImageFormat::Png,
                _ => ImageFormat::Jpeg,
            };
            Some(frames::preview_with_metadata(
                format,
                &frame[8..],
                node_id,
                prompt_id,
            ))
        }
        _ => None,
    }
}

/// `GET /comfy_monitor/v1/state`.
pub fn state_json(s: &State) -> J {
    let comfyui = s
        .version
        .comfyui_version()
        .map_or_else(|| s.version.to_string(), str::to_string);
    let running = s.running.as_ref().map_or(J::Null, |r| {
        let nodes = r
            .item
            .prompt
            .as_object()
            .map(|graph| {
                graph
                    .iter()
                    .map(|(id, node)| {
                        let class_type = node.get("class_type").cloned().unwrap_or_default();
                        let title = node
                            .get("_meta")
                            .and_then(|m| m.get("title"))
                            .cloned()
                            .unwrap_or_default();
                        (
                            id.clone(),
                            obj! { "class_type" => class_type, "title" => title },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        obj! {
            "prompt_id" => r.item.prompt_id.as_str(),
            "client_id" => r.item.client_id(),
            "started_at" => r.started_at,
            "node" => r.last_node.clone(),
            "nodes" => J::Obj(nodes),
            "progress_state" => r.progress_state.clone(),
        }
    });
    obj! {
        "companion" => VERSION,
        "protocol" => PROTOCOL,
        "comfyui" => comfyui,
        "running" => running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_preview_is_reframed_with_metadata_and_a_typed_one_is_kept() {
        let legacy = frames::preview_legacy(ImageFormat::Png, &[0x89, b'P']);
        let copy = preview_copy(&legacy, "7", "p").unwrap();
        assert_eq!(
            copy,
            frames::preview_with_metadata(ImageFormat::Png, &[0x89, b'P'], "7", "p")
        );
        let typed = frames::preview_with_metadata(ImageFormat::Jpeg, &[0xff], "1", "q");
        assert_eq!(preview_copy(&typed, "9", "other").unwrap(), typed);
        assert!(preview_copy(&frames::node_text("1", "hi"), "1", "p").is_none());
    }

    #[test]
    fn only_truthy_relay_flags_opt_in() {
        for (flags, expected) in [
            (obj! { FLAG => 1i64 }, true),
            (obj! { FLAG => true }, true),
            (obj! { FLAG => 0i64 }, false),
            (obj! { FLAG => false }, false),
            (obj! { "supports_preview_metadata" => true }, false),
        ] {
            assert_eq!(opted_in(&flags), expected, "{flags}");
        }
    }
}
