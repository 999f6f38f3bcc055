//! Background work from "other clients", so dashboards and benchmarks have something to show.
//!
//! Every few seconds a sampler job is queued with one of a few client ids, sometimes without a
//! client id, now and then a failing one. The queue is kept short so it never runs away. This
//! module only submits through the same path as `POST /prompt`.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::json::J;
use crate::obj;
use crate::state::Shared;

const CLIENTS: [&str; 3] = ["browser-3f9c2a1e", "script-7d41b0c2", "tablet-a8e5f613"];

fn workflow(rng: &mut StdRng, fail: bool) -> J {
    let steps = rng.random_range(8..40u32);
    let delay = rng.random_range(40..160u32);
    let seed = rng.random_range(0..1_000_000u64);
    let first = if fail {
        obj! {
            "class_type" => "MonitorTestFail",
            "inputs" => obj! {
                "steps" => steps, "fail_after" => steps / 2, "step_delay_ms" => delay,
                "preview_size" => 64i64, "seed" => seed,
            },
        }
    } else {
        obj! {
            "class_type" => "MonitorTestSampler",
            "inputs" => obj! {
                "steps" => steps, "step_delay_ms" => delay, "preview_size" => 64i64,
                "seed" => seed, "preview_format" => "JPEG", "image_size" => 64i64,
            },
        }
    };
    obj! {
        "1" => first,
        "2" => obj! {
            "class_type" => "SaveImage",
            "inputs" => obj! { "images" => J::Arr(vec![J::from("1"), J::from(0i64)]), "filename_prefix" => "busy" },
        },
    }
}

pub async fn run(shared: Arc<Shared>) {
    let mut rng = StdRng::from_os_rng();
    loop {
        let wait = Duration::from_millis(rng.random_range(1_500..4_000u64));
        tokio::time::sleep(wait).await;
        let fail = rng.random_bool(0.1);
        let mut body = obj! { "prompt" => workflow(&mut rng, fail) };
        if !rng.random_bool(0.25) {
            body.set("client_id", CLIENTS[rng.random_range(0..CLIENTS.len())]);
        }
        let mut s = shared.lock();
        if s.pending.len() < 3 {
            let _ = s.post_prompt(body.to_py_string().as_bytes());
        }
    }
}
