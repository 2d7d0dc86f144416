//! Direct reclaim on the memcg charge path: the per-memcg history the
//! kernel side keeps, its snapshot in a kill record, and pressure warnings.

/// One-second buckets of reclaim history kept per memcg: a power of two,
/// so the kernel side indexes with a mask the verifier can bound.
pub const RECLAIM_BUCKETS: usize = 16;

/// Seconds of history the kill record sums ("in the last 10 s").
pub const RECLAIM_WINDOW_SECS: u64 = 10;

/// Memcgs whose reclaim history is kept (least recently used ones go):
/// 2048 x 560 bytes of kernel memory.
pub const RECLAIM_MEMCGS: u32 = 2048;

/// Direct reclaim in one second.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ReclaimBucket {
    /// `boot_ns / 1e9` of the second this bucket holds.
    pub second: u64,
    pub stalls: u64,
    pub stall_ns: u64,
    pub reclaimed_pages: u64,
}

/// Direct reclaim on the charge path of tasks in one memory cgroup's
/// subtree (`vmscan:mm_vmscan_memcg_reclaim_begin/end`), since oomtrace
/// started or the entry was (re)created.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ReclaimStats {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_pages: u64,
    /// boot_ns of the first and latest stall counted.
    pub first_ns: u64,
    pub last_ns: u64,
    /// boot_ns of the last [`PressureRecord`] sent for this memcg.
    pub last_pressure_ns: u64,
    /// Indexed by `second & (RECLAIM_BUCKETS - 1)`.
    pub buckets: [ReclaimBucket; RECLAIM_BUCKETS],
}

/// A memcg whose tasks stalled in reclaim for at least the `--pressure`
/// threshold within one second: an early warning, sent at most once per
/// [`PRESSURE_INTERVAL_NS`] per memcg.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PressureRecord {
    /// [`kind::MEMCG_PRESSURE`].
    pub kind: u32,
    pub _pad: u32,
    pub boot_ns: u64,
    pub memcg_id: u64,
    /// Within the current second, up to now.
    pub stalls: u64,
    pub stall_ns: u64,
    pub reclaimed_pages: u64,
    pub threshold_ns: u64,
    pub memcg_level: u64,
}

/// At most one [`PressureRecord`] per memcg this often.
pub const PRESSURE_INTERVAL_NS: u64 = 10_000_000_000;

/// A memcg's reclaim history at the moment of a kill, taken by the kernel
/// side from its [`ReclaimStats`] entry.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ReclaimSnapshot {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_pages: u64,
    /// Sums over the [`RECLAIM_WINDOW_SECS`] seconds up to the kill's.
    pub window_stalls: u64,
    pub window_stall_ns: u64,
    pub window_reclaimed_pages: u64,
    /// 1 when taken (reclaim was tracked); 0 leaves the rest meaningless.
    pub taken: u64,
}

const _: () = assert!(core::mem::size_of::<ReclaimStats>() == 56 + 32 * RECLAIM_BUCKETS);
const _: () = assert!(core::mem::size_of::<PressureRecord>() == 64);
const _: () = assert!(core::mem::size_of::<ReclaimSnapshot>() == 64);
const _: () = assert!(RECLAIM_BUCKETS.is_power_of_two());
const _: () = assert!(RECLAIM_WINDOW_SECS < RECLAIM_BUCKETS as u64);
