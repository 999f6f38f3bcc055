//! Integration tests of the store against real SQLite files in temporary directories. One
//! binary, one module per area.

#![allow(clippy::unwrap_used)]

mod events;
mod faults;
mod instances;
mod jobs;
mod open;
mod outputs;
mod retention;
mod secrets;
mod support;
