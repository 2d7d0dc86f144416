//! Harness for oomtrace's kernel tests.
//!
//! Every test that kills something does it inside a memory cgroup it
//! created (`oomtrace-test-*`, limit <= 256 MiB) and removes it again, even
//! when the test fails. Ground truth comes from the kernel, never from
//! oomtrace: the `Killed process` and `oom-kill:` lines in /dev/kmsg,
//! /proc/vmstat, the cgroup's own files, and the pids the test started.

pub mod cgroup;
pub mod docker;
pub mod hog;
pub mod http;
pub mod kernel;
pub mod kmsg;
pub mod oomkill;
pub mod schema;
pub mod system;
pub mod tracefs;
pub mod tracer;
pub mod verify;
pub mod wait;

pub use cgroup::TestCgroup;
pub use hog::Hog;
pub use kmsg::{KernelLog, KilledProcess, OomKillLine};
pub use tracer::Tracer;
