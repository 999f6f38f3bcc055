//! Integration tests of the fake ComfyUI server over real sockets on `127.0.0.1:0`.
//!
//! One test binary with modules. Nothing sleeps to synchronise: tests wait for frames, for
//! `wait_idle`/`wait_for_client`, or for sentinels they broadcast themselves, with timeouts only
//! as failure guards.

mod companion;
mod conformance;
mod faults;
mod http;
mod load;
mod replay;
mod support;
mod ws;
