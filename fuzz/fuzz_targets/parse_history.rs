//! `parse_history` (`GET /history`, `/history/{id}`): no panic, and every entry's files list.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jobs) = comfy_protocol::http::parse_history(data) {
        for job in jobs {
            let files = job.files();
            let per_node: usize = job
                .outputs
                .values()
                .map(|ui| comfy_protocol::http::output_files(ui).len())
                .sum();
            assert_eq!(files.len(), per_node);
        }
    }
});
