//! The jobs API: `parse_jobs` (`GET /api/jobs`) or `parse_job` (`GET /api/jobs/{id}`), the first
//! byte chooses. No panic; a job has a finished form exactly when its status is terminal.
#![no_main]

use comfy_protocol::http::{parse_job, parse_jobs, ApiJob};
use libfuzzer_sys::fuzz_target;

fn check(job: &ApiJob) {
    let _ = job.client_id();
    let finished = job.finished();
    assert_eq!(finished.is_some(), job.status.is_terminal());
    if let Some(f) = finished {
        assert_eq!(f.prompt_id, job.id);
        let _ = f.files();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(jobs) = parse_jobs(body) {
            jobs.iter().for_each(check);
        }
    } else if let Ok(job) = parse_job(body) {
        check(&job);
    }
});
