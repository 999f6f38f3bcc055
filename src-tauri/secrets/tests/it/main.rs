//! Integration tests of the secrets crate through its public API: the fallback file on real files
//! in temporary directories, `open` in child processes (so the environment can be set per test),
//! and, ignored by default, the real OS keyring.

#![allow(clippy::unwrap_used)]

mod file;
mod keyring;
mod open;
mod support;
