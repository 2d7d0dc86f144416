//! A victim's command line and environment, sent after a record in the
//! same ring buffer entry.

/// Most bytes of a victim's command line (`mm->arg_start..arg_end`) and
/// environment copied at the kill. The environment gets more room: in a
/// pod, Kubernetes' service variables come first and can run to kilobytes.
pub const CMDLINE_ARGS_MAX: usize = 4096;
pub const CMDLINE_ENV_MAX: usize = 12288;

/// Copied bytes of a victim's command line and environment, which follow
/// an [`OomKillRecord`] (the victim ran into the OOM itself, so its memory
/// was `current`'s) or an [`OutcomeRecord`] (read at its exit, before the
/// kernel tears its memory down) in the same ring buffer entry: the header,
/// then `args_len` bytes of arguments, then `env_len` bytes of environment.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CmdlineHeader {
    pub args_len: u32,
    pub env_len: u32,
    /// The full sizes in the process; more than `*_len` means truncated.
    pub args_total: u64,
    pub env_total: u64,
}

/// Kernel-side working space for a header and its bytes.
#[repr(C)]
pub struct Cmdline {
    pub header: CmdlineHeader,
    pub data: [u8; CMDLINE_ARGS_MAX + CMDLINE_ENV_MAX],
}

const _: () = assert!(core::mem::size_of::<CmdlineHeader>() == 24);
