//! Direct reclaim on the memcg charge path: how long tasks stalled, per
//! memory cgroup, before an OOM kill. Hot-ish path (every memcg reclaim),
//! so: two map operations per stall plus one update per ancestor, no ring
//! buffer traffic; userspace reads the map when it reports a kill.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_map_update_elem},
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
        account(id.0, id.1 as u64, now, stall, reclaimed);
        match pointer(css, layout!(css_parent)) {
            Some(parent) => css = parent,
            None => break,
        }
    }
    0
}

/// The reclaim history of memcg `id` as of `now`, for a kill record.
#[inline(always)]
pub fn snapshot(id: u64, now: u64, out: &mut ReclaimSnapshot) {
    *out = ReclaimSnapshot {
        taken: 1,
        ..ReclaimSnapshot::default()
    };
    let Some(stats) = RECLAIM.get_ptr(id) else {
        // Watched, and no reclaim: zeroes are the truth.
        return;
    };
    // SAFETY: a map value; concurrent writers only add.
    let stats = unsafe { &*stats };
    out.stalls = stats.stalls;
    out.stall_ns = stats.stall_ns;
    out.max_stall_ns = stats.max_stall_ns;
    out.reclaimed_pages = stats.reclaimed_pages;
    let second = now / 1_000_000_000;
    for bucket in &stats.buckets {
        if bucket.second <= second && bucket.second + RECLAIM_WINDOW_SECS > second {
            out.window_stalls += bucket.stalls;
            out.window_stall_ns += bucket.stall_ns;
            out.window_reclaimed_pages += bucket.reclaimed_pages;
        }
    }
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
        bucket.second = second;
        bucket.stalls = 0;
        bucket.stall_ns = 0;
        bucket.reclaimed_pages = 0;
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
