//! oomtrace: trace Linux OOM kills from the kernel (the library behind the
//! `oomtrace` binary; public so that fuzz targets reach every parser).
//!
//! Data flow: kernel record (`capture`) -> typed event (`decode`) ->
//! report with time, host and paths (`enrich`, `report`) -> JSON lines or
//! text (`output`).

pub mod capture;
pub mod check;
pub mod cli;
pub mod decode;
pub mod docs;
pub mod enrich;
pub mod error;
pub mod filter;
pub mod output;
mod poll;
pub mod privileges;
pub mod report;
pub mod store;
pub mod stream;
pub mod trend;

/// OOMTRACE_VERBOSE=1: the kernel's whole error (verifier log included)
/// for each optional feature it refused and the start's phases, after the
/// ready line; each kill's way to its line, after the line.
pub fn verbose() -> bool {
    std::env::var_os("OOMTRACE_VERBOSE").is_some_and(|v| v == "1")
}
