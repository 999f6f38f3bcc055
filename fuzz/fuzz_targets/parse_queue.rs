//! `parse_queue` (`GET /queue`): no panic, and pending jobs come out in run order.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = comfy_protocol::http::parse_queue(data) {
        for w in q.pending.windows(2) {
            let order = w[0]
                .number
                .total_cmp(&w[1].number)
                .then_with(|| w[0].prompt_id.cmp(&w[1].prompt_id));
            assert!(order.is_le(), "pending out of run order");
        }
        for item in q.running.iter().chain(&q.pending) {
            let _ = comfy_protocol::http::output_files(&item.prompt);
        }
    }
});
