//! Direct reclaim on the memcg charge path: how long tasks stalled, per
//! memory cgroup, before an OOM kill. Hot-ish path (every memcg reclaim),
//! so: two map operations per stall plus one update per ancestor, no ring
//! buffer traffic; userspace reads the map when it reports a kill.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{
            bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_map_lookup_elem, bpf_map_update_elem,
            bpf_probe_read_kernel,
        },
    },
    macros::{btf_tracepoint, map},
    maps::{LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use oomtrace_common::{
    CGROUP_MAX_DEPTH, PRESSURE_INTERVAL_NS, PressureRecord, RECLAIM_BUCKETS, RECLAIM_MEMCGS,
    RECLAIM_WINDOW_SECS, ReclaimSnapshot, ReclaimStats, kind,
};

use crate::{
    cgroup,
    layout::layout,
    mask::{below, is_zero},
    read::{field, pointer},
};

/// `--pressure`: stall time per second (ns) at which a memcg gets a
/// pressure record; 0 turns them off. Set by the loader before load.
#[unsafe(no_mangle)]
static PRESSURE_NS: u64 = 0;

/// Start of the reclaim a thread is in, by thread id.
#[map]
static RECLAIM_START: LruHashMap<u32, u64> = LruHashMap::with_max_entries(8192, 0);

/// Reclaim history by memcg id (kernfs id), for the charging task's memcg
/// and each of its ancestors below the root.
#[map]
static RECLAIM: LruHashMap<u64, ReclaimStats> = LruHashMap::with_max_entries(RECLAIM_MEMCGS, 0);

/// An all-zero ReclaimStats to create entries from: at 560 bytes it does
/// not fit on the 512-byte BPF stack. Never written.
#[map]
static RECLAIM_ZERO: PerCpuArray<ReclaimStats> = PerCpuArray::with_max_entries(1, 0);

/// `TP_PROTO(int order, gfp_t gfp_flags)`.
#[btf_tracepoint(function = "mm_vmscan_memcg_reclaim_begin")]
pub fn memcg_reclaim_begin_btf(_ctx: BtfTracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let _ = RECLAIM_START.insert(tid, now, 0);
    0
}

/// `TP_PROTO(unsigned long nr_reclaimed)`.
#[btf_tracepoint(function = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end_btf(ctx: BtfTracePointContext) -> u32 {
    let reclaimed: u64 = ctx.arg(0);
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let Some(start) = (unsafe { RECLAIM_START.get(tid) }).copied() else {
        return 0;
    };
    let _ = RECLAIM_START.remove(tid);
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let stall = now.saturating_sub(start);
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let Some(mut css) = cgroup::memory_css_of(task) else {
        return 0;
    };
    for _ in 0..CGROUP_MAX_DEPTH {
        let Some(id) = memcg_id(css) else {
            break;
        };
        // The root (level 0) is the whole machine: not a memcg limit.
        if id.1 == 0 {
            break;
        }
        oomtrace_reclaim_account(id.0, id.1 as u64, now, stall, reclaimed);
        match pointer(css, layout!(css_parent)) {
            Some(parent) => css = parent,
            None => break,
        }
    }
    0
}

/// The three snapshots of a kill record, from [`reclaim_snapshot_btf`] to
/// `mark_victim_btf` (per CPU: both run for one event on one CPU).
#[repr(C)]
pub struct Snapshots {
    /// The victim (`task_struct *`) they were taken for; 0 when taken.
    pub victim: u64,
    pub victim_memcg: ReclaimSnapshot,
    pub trigger_memcg: ReclaimSnapshot,
    pub oom_memcg: ReclaimSnapshot,
}

#[map]
static SNAPSHOTS: PerCpuArray<Snapshots> = PerCpuArray::with_max_entries(1, 0);

/// `tp_btf/mark_victim`, attached after the OOM-context programs and
/// before `mark_victim_btf` (programs on one tracepoint run in attach
/// order): the reclaim history of the victim's, the trigger's and the OOM
/// memcg as of the kill. A program of its own so that the verifier checks
/// it once, not once for each of `mark_victim_btf`'s paths; attached only
/// with the reclaim programs, so a record without it says "unknown", not
/// "no reclaim".
#[btf_tracepoint(function = "mark_victim")]
pub fn reclaim_snapshot_btf(ctx: BtfTracePointContext) -> u32 {
    let Some(slot) = SNAPSHOTS.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot; mark_victim_btf reads it after us.
    let slot = unsafe { &mut *slot };
    // A plain number: the verifier refuses arithmetic on the trusted
    // pointer tp_btf hands over, and the masks below are arithmetic.
    let Some(victim) = crate::read::address_of(ctx.arg::<*const u8>(0)) else {
        return 0;
    };
    // SAFETY: helpers without arguments.
    let (now, current) = unsafe { (bpf_ktime_get_boot_ns(), bpf_get_current_task()) };
    let oom = crate::oom_control::oom_memcg_id(victim);
    snapshot(memcg_id_or_zero(victim), now, &mut slot.victim_memcg);
    snapshot(memcg_id_or_zero(current), now, &mut slot.trigger_memcg);
    snapshot(oom, now, &mut slot.oom_memcg);
    slot.victim = victim;
    0
}

/// Hands `mark_victim_btf` the snapshots taken for `victim`, once; none
/// (`taken` stays 0: unknown) when the reclaim programs are not attached.
#[inline(always)]
pub fn take(victim: u64, record: &mut oomtrace_common::OomKillRecord) {
    let Some(slot) = SNAPSHOTS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, filled by reclaim_snapshot_btf.
    let slot = unsafe { &mut *slot };
    let ours = slot.victim == victim && victim != 0;
    if ours {
        crate::mem::copy(&mut record.victim_reclaim, &slot.victim_memcg);
        crate::mem::copy(&mut record.trigger_reclaim, &slot.trigger_memcg);
        crate::mem::copy(&mut record.oom_reclaim, &slot.oom_memcg);
    }
    slot.victim = 0;
}

/// The kernfs id of `task`'s memory cgroup, 0 when unreadable: reads that
/// fail give 0 instead of a branch.
#[inline(always)]
fn memcg_id_or_zero(task: u64) -> u64 {
    let (Some(css_cgroup), Some(cgroup_kn), Some(kn_id)) = (
        crate::layout::known(layout!(css_cgroup)),
        crate::layout::known(layout!(cgroup_kn)),
        crate::layout::known(layout!(kn_id)),
    ) else {
        return 0;
    };
    let css = cgroup::memory_css_or_zero(task);
    let cgroup = crate::read::u64_or_zero(css + css_cgroup as u64);
    let kn = crate::read::u64_or_zero(cgroup + cgroup_kn as u64);
    // A NULL on the way reads from a small address: it faults, giving 0.
    crate::read::u64_or_zero(kn + kn_id as u64)
}

/// Where [`snapshot`] copies a memcg's history to read it: one path for
/// the verifier whether or not the memcg has an entry.
#[map]
static RECLAIM_COPY: PerCpuArray<ReclaimStats> = PerCpuArray::with_max_entries(1, 0);

/// The reclaim history of memcg `id` as of `now`, for a kill record; id 0
/// (the memcg unreadable) leaves it all zero, `taken` included.
///
/// No branch on what the map holds: the entry (or NULL) is copied with a
/// fault-tolerant read, which zeroes the copy for a memcg never reclaimed
/// ("watched, and no reclaim": zeroes are the truth), and the window's
/// buckets are summed unrolled with masks. Branches and the bucket loop
/// made the three snapshots of a kill record 8,000 of the verifier's insns.
#[inline(always)]
fn snapshot(id: u64, now: u64, out: &mut ReclaimSnapshot) {
    crate::mem::zero(out);
    let Some(copy) = RECLAIM_COPY.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a valid map and key (kernfs ids start at 1: 0 finds
    // nothing); the result may be NULL, which the read below turns into
    // zeroes.
    let entry = unsafe {
        bpf_map_lookup_elem(
            core::ptr::addr_of!(RECLAIM).cast_mut().cast(),
            core::ptr::addr_of!(id).cast(),
        )
    };
    // SAFETY: a fault-tolerant copy into this CPU's slot; concurrent
    // writers of the entry only add.
    unsafe {
        bpf_probe_read_kernel(
            copy.cast(),
            core::mem::size_of::<ReclaimStats>() as u32,
            entry.cast_const(),
        )
    };
    // SAFETY: this CPU's slot, filled above.
    let stats = unsafe { &*copy };
    out.taken = 1 ^ is_zero(id);
    out.stalls = stats.stalls;
    out.stall_ns = stats.stall_ns;
    out.max_stall_ns = stats.max_stall_ns;
    out.reclaimed_pages = stats.reclaimed_pages;
    let second = now / 1_000_000_000;
    let (mut stalls, mut stall_ns, mut reclaimed) = (0u64, 0u64, 0u64);
    macro_rules! each_bucket {
        ($($i:literal)*) => { $({
            let bucket = &stats.buckets[$i];
            // All ones when bucket.second <= second < bucket.second +
            // window (seconds since boot: far below 2^62), else 0.
            let future = below(second, bucket.second);
            let recent = below(second.wrapping_sub(bucket.second), RECLAIM_WINDOW_SECS);
            let keep = (recent & (1 ^ future)).wrapping_neg();
            stalls += bucket.stalls & keep;
            stall_ns += bucket.stall_ns & keep;
            reclaimed += bucket.reclaimed_pages & keep;
        })* };
    }
    const _: () = assert!(RECLAIM_BUCKETS == 16);
    each_bucket!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    out.window_stalls = stalls;
    out.window_stall_ns = stall_ns;
    out.window_reclaimed_pages = reclaimed;
}

/// (kernfs id, level) of the cgroup of a memory css.
#[inline(always)]
fn memcg_id(css: u64) -> Option<(u64, i32)> {
    let cgroup = pointer(css, layout!(css_cgroup))?;
    let kn = pointer(cgroup, layout!(cgroup_kn))?;
    Some((
        field::<u64>(kn, layout!(kn_id))?,
        field::<i32>(cgroup, layout!(cgroup_level))?,
    ))
}

/// One reclaim pass in the history of memcg `id` (at `level`), as a
/// global BPF function: the verifier checks it once, not at each of the
/// caller's 16 ancestor levels (it was most of memcg_reclaim_end_btf's
/// verification). Plain-number arguments, as 5.10 requires; the return
/// value means nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn oomtrace_reclaim_account(
    id: u64,
    level: u64,
    now: u64,
    stall: u64,
    reclaimed: u64,
) -> u64 {
    account(id, level, now, stall, reclaimed);
    0
}

#[inline(always)]
fn account(id: u64, level: u64, now: u64, stall: u64, reclaimed: u64) {
    let stats = match RECLAIM.get_ptr_mut(id) {
        Some(stats) => stats,
        None => {
            let Some(zero) = RECLAIM_ZERO.get_ptr(0) else {
                return;
            };
            // Straight from map memory to map memory: a ReclaimStats value
            // (560 bytes) does not fit on the 512-byte BPF stack.
            // BPF_NOEXIST (1): another CPU may have created it meanwhile.
            // SAFETY: valid map, key and value pointers.
            unsafe {
                bpf_map_update_elem(
                    core::ptr::addr_of!(RECLAIM).cast_mut().cast(),
                    core::ptr::addr_of!(id).cast(),
                    zero.cast_mut().cast(),
                    1,
                )
            };
            match RECLAIM.get_ptr_mut(id) {
                Some(stats) => {
                    // SAFETY: a map value; a racing creator writes the same.
                    unsafe { (*stats).first_ns = now };
                    stats
                }
                None => return,
            }
        }
    };
    // SAFETY: a map value; concurrent updaters use atomics for the sums.
    // The max, the latest time and a bucket's reset may race: they are
    // indications, the sums are exact.
    let stats = unsafe { &mut *stats };
    add(&mut stats.stalls, 1);
    add(&mut stats.stall_ns, stall);
    add(&mut stats.reclaimed_pages, reclaimed);
    if stall > stats.max_stall_ns {
        stats.max_stall_ns = stall;
    }
    stats.last_ns = now;
    let second = now / 1_000_000_000;
    let bucket = &mut stats.buckets[(second as usize) & (RECLAIM_BUCKETS - 1)];
    if bucket.second != second {
        // One word store each: three zeroes in a row become a memset
        // call, a byte loop the verifier walks on every path.
        crate::mem::zero(bucket);
        bucket.second = second;
    }
    add(&mut bucket.stalls, 1);
    add(&mut bucket.stall_ns, stall);
    add(&mut bucket.reclaimed_pages, reclaimed);

    // SAFETY: a read-only global; volatile keeps the build-time 0 out.
    let threshold = unsafe { core::ptr::read_volatile(&PRESSURE_NS) };
    if threshold != 0
        && bucket.stall_ns >= threshold
        && now.saturating_sub(stats.last_pressure_ns) >= PRESSURE_INTERVAL_NS
    {
        // Two CPUs may both pass the check: a rare duplicate, not a loss.
        stats.last_pressure_ns = now;
        let record = PressureRecord {
            kind: kind::MEMCG_PRESSURE,
            _pad: 0,
            boot_ns: now,
            memcg_id: id,
            stalls: bucket.stalls,
            stall_ns: bucket.stall_ns,
            reclaimed_pages: bucket.reclaimed_pages,
            threshold_ns: threshold,
            memcg_level: level,
        };
        crate::submit(&record);
    }
}

/// An atomic add (BPF_ATOMIC | BPF_ADD): the BPF target's AtomicU64 has no
/// `fetch_add`, so the intrinsic it would use is called directly.
/// (`u64::MAX` subtracts one.)
#[inline(always)]
pub fn add(counter: &mut u64, value: u64) {
    // SAFETY: a valid, aligned u64 in a map value.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, value,
        )
    };
}
