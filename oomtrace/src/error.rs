//! Errors a user can cause or fix, each with what to do about it.

use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Missing root or CAP_BPF + CAP_PERFMON.
    #[error(
        "oomtrace needs root, or the CAP_BPF and CAP_PERFMON capabilities, to load its kernel \
         programs (this process has {held}): run it with sudo"
    )]
    NotPrivileged { held: String },

    /// Neither tp_btf nor the classic tracepoint is usable.
    #[error(
        "this kernel offers no way to trace OOM kills: {reasons}. oomtrace needs kernel BTF \
         (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux) or tracefs with the oom:mark_victim \
         event (mount it with `mount -t tracefs nodev /sys/kernel/tracing`); run `oomtrace check` \
         for details"
    )]
    NoCapturePath { reasons: String },

    /// `--output` cannot be opened.
    #[error("cannot open {} for appending: {source}; check that its directory exists and is writable", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `--metrics` cannot listen.
    #[error("cannot serve metrics on {addr}: {source}; pick a free port with --metrics")]
    MetricsAddress {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
}
