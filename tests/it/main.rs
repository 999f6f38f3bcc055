//! Integration tests: recorded ComfyUI sessions through decoder and tracker, and the engine
//! against a fake ComfyUI over real sockets. One binary, one module per area.

#![allow(clippy::unwrap_used)]

mod actions;
mod cli;
mod companion;
mod faults;
mod http_limits;
mod journal;
mod keeper;
mod live;
mod serve;
mod store_faults;
mod support;
mod timing;
mod tls;
mod traces;
