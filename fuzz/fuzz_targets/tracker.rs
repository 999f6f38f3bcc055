//! The tracker fed arbitrary sequences: raw frames and HTTP bodies, or structured messages over
//! a few colliding job ids (see `comfy_fuzz` for the invariants checked after every step).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| comfy_fuzz::run(data));
