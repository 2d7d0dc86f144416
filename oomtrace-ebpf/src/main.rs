//! oomtrace's kernel side. The kill record comes from `oom:mark_victim`, in
//! two flavours:
//!
//! - `mark_victim_btf` (tp_btf) gets the victim's `struct task_struct *` and
//!   reads everything from kernel structs, at offsets the loader resolved
//!   from the running kernel's BTF ([`layout`]).
//! - `mark_victim_tracepoint` is the fallback for kernels without a usable
//!   tp_btf: it reads the event's own fields, at offsets the loader read
//!   from tracefs.
//!
//! With tp_btf come optional programs on other hooks, which the loader
//! attaches when the kernel allows (its `capture/features.rs` lists them):
//! the OOM killer's context ([`oom_control`], from the stack or fentry on
//! `oom_kill_process()`), the OOM domain's other processes
//! ([`candidates`]), charge-path reclaim ([`reclaim`]), victims'
//! reaping and exits ([`aftermath`]) and, with `--sigkill`, every SIGKILL
//! ([`signal`]).
//!
//! Both read everything into a per-CPU scratch record first and then hand it
//! to the ring buffer in one call; a record the ring buffer cannot take is
//! counted in `LOST`, never dropped silently.
#![no_std]
#![no_main]
// Inline asm on the BPF target (see mask::opaque); the crate is
// built with nightly anyway (-Z build-std).
#![feature(asm_experimental_arch)]
// Atomic add on map values (see reclaim::add).
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "atomic_xadd: the BPF target lacks AtomicU64::fetch_add"
)]

mod aftermath;
mod candidates;
mod cgroup;
mod cmdline;
mod layout;
mod mark_victim;
mod mask;
mod mem;
mod mm;
mod oom_control;
mod read;
mod reclaim;
mod signal;
mod task;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use oomtrace_common::{BPF_ARRAY_PEEK, Cmdline, OomKillRecord, OutcomeRecord};

/// Default ring buffer size; the loader may override it.
const EVENTS_BYTES: u32 = 1 << 20;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Records the ring buffer refused, per CPU; the loader sums and reports them.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU working memory: the record is too big for the 512-byte stack.
#[repr(C)]
pub struct Scratch {
    pub record: OomKillRecord,
    /// The victim's command line, sent right after the record.
    pub cmdline: Cmdline,
    /// Copy of our per-CPU map's `struct bpf_array` header (see `mm`).
    pub peek: [u8; BPF_ARRAY_PEEK],
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Working memory of the exit hook: an outcome and the victim's command line.
#[repr(C)]
pub struct OutcomeScratch {
    pub record: OutcomeRecord,
    pub cmdline: Cmdline,
}

#[map]
static OUTCOME_SCRATCH: PerCpuArray<OutcomeScratch> = PerCpuArray::with_max_entries(1, 0);

// submit_with_cmdline sends a record and the bytes after it as one entry.
const _: () = assert!(core::mem::offset_of!(Scratch, cmdline) == size_of::<OomKillRecord>());
const _: () = assert!(core::mem::offset_of!(OutcomeScratch, cmdline) == size_of::<OutcomeRecord>());

/// Hand-over from `oom_control_btf` to `mark_victim_btf`, which run one
/// after the other on the same CPU for the same event.
#[map]
static OOM_CONTROL: PerCpuArray<oom_control::Handover> = PerCpuArray::with_max_entries(1, 0);

/// The candidate walk's state and table (see `candidates`).
#[map]
static CANDIDATE_WALK: PerCpuArray<candidates::Walk> = PerCpuArray::with_max_entries(1, 0);

/// Victims the candidate walk is done with (see `names::TABLE_MARKS`).
#[map]
static TABLE_MARKS: Array<u32> = Array::with_max_entries(oomtrace_common::TABLE_MARKS, 0);

/// `oom_kill_process()` calls in progress (fentry path), by task: the OOM
/// killer runs under a global mutex, so there is one at a time, but the
/// task may move between CPUs while it kills.
#[map]
static OOM_KILLS: HashMap<u64, oom_control::Kill> = HashMap::with_max_entries(64, 0);

/// A one-slot per-CPU array whose slot addresses reveal each CPU's per-CPU
/// offset (see `mm::PerCpuBase`). Its value is never used.
#[map]
static PERCPU_PROBE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// One copy into the ring buffer. A full ring buffer costs a LOST count,
/// which the loader reports as a `lost` record.
#[inline(always)]
pub fn submit<T>(record: &T) {
    if EVENTS.output::<T>(record, 0).is_err()
        && let Some(lost) = LOST.get_ptr_mut(0)
    {
        // SAFETY: per-CPU counter, no concurrent writer on this CPU.
        unsafe { *lost += 1 };
    }
}

/// Sends `record` and, when `cmdline_bytes` is given, that many bytes of
/// the [`Cmdline`] that follows it in its scratch struct, as one entry.
#[inline(always)]
pub fn submit_with_cmdline<T>(record: &T, cmdline_bytes: Option<usize>) {
    let Some(extra) = cmdline_bytes else {
        return submit(record);
    };
    let extra = if extra > size_of::<Cmdline>() {
        size_of::<Cmdline>()
    } else {
        extra
    };
    // SAFETY: callers pass the `record` of a `Scratch` or `OutcomeScratch`,
    // whose `Cmdline` starts right after it (asserted above).
    let bytes = unsafe {
        core::slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>() + extra)
    };
    if EVENTS.output::<[u8]>(bytes, 0).is_err()
        && let Some(lost) = LOST.get_ptr_mut(0)
    {
        // SAFETY: per-CPU counter, no concurrent writer on this CPU.
        unsafe { *lost += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects unbounded loops, so a reachable panic fails the
    // load instead of hanging the kernel. Nothing here is reachable.
    loop {}
}

/// The helpers this object calls (`bpf_probe_read_kernel`,
/// `bpf_get_current_task`, ...) are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
