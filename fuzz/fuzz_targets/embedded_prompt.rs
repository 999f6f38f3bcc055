//! `embedded_prompt` on any bytes: no panic, and whatever it returns is an API-format prompt.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(prompt) = comfy_protocol::embedded::embedded_prompt(data) {
        assert!(comfy_protocol::http::check_api_workflow(&prompt).is_ok());
    }
});
