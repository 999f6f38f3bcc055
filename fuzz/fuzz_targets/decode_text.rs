//! `decode_text`: any text frame decodes to a message or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(comfy_protocol::ServerMessage::ExecutionError(e)) = comfy_protocol::decode_text(frame)
    {
        let _ = e.is_terminal();
    }
});
