//! `parse_system_stats` (`GET /system_stats`): no panic, and what parses serialises again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(stats) = comfy_protocol::http::parse_system_stats(data) {
        assert!(serde_json::to_string(&stats).is_ok());
    }
});
