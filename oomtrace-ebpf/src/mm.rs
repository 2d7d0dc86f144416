//! The victim's memory figures, from its `struct mm_struct`.
//!
//! RSS counters are `struct percpu_counter`s since Linux 6.2: a shared
//! `count` plus per-CPU deltas. `get_mm_counter()` (the tracepoint, and the
//! kernel log on most kernels) reads `count` alone; `get_mm_counter_sum()`
//! (the kernel log where "mm: Fix OOM killer inaccuracy on large many-core
//! systems" is applied) adds the deltas. We read both.

use aya_ebpf::helpers::generated::{bpf_map_lookup_percpu_elem, bpf_probe_read_kernel};
use oomtrace_common::{BPF_ARRAY_PEEK, MAX_CPUS, OomKillRecord, rss_kind, valid};

use crate::{
    PERCPU_PROBE,
    layout::{known, layout},
    read::{address_of, field, pointer},
};

/// The three RSS counters of one mm, as the kernel reads them.
#[derive(Default, Clone, Copy)]
struct Rss {
    anon: i64,
    file: i64,
    shmem: i64,
}

/// Fills the victim's memory figures of `record` from `task->mm`.
#[inline(always)]
pub fn read_victim_mm(task: u64, record: &mut OomKillRecord, peek: &mut [u8; BPF_ARRAY_PEEK]) {
    let Some(mm) = pointer(task, layout!(task_mm)) else {
        // Kernel threads and exiting tasks have no mm: nothing to report.
        return;
    };
    let page_shift = layout!(page_shift);

    if let Some(total_vm) = field::<u64>(mm, layout!(mm_total_vm)) {
        record.victim_total_vm_bytes = total_vm << page_shift;
        record.valid |= valid::VICTIM_TOTAL_VM;
    }
    // atomic_long_t, in bytes already.
    if let Some(pgtables) = field::<i64>(mm, layout!(mm_pgtables_bytes)) {
        record.victim_pgtables_bytes = pgtables.max(0) as u64;
        record.valid |= valid::VICTIM_PGTABLES;
    }

    let kind = layout!(rss_kind);
    if kind == rss_kind::ATOMIC_LONG {
        // Exact by construction before 6.2.
        if let Some(rss) = read_counts(mm, 0) {
            store(record, rss, page_shift, false);
            store(record, rss, page_shift, true);
        }
    } else if kind == rss_kind::PERCPU_COUNTER {
        let Some(rss) = read_counts(mm, layout!(percpu_counter_count)) else {
            return;
        };
        store(record, rss, page_shift, false);
        if let Some(exact) = add_percpu_deltas(mm, rss, peek) {
            store(record, exact, page_shift, true);
        }
    }
}

/// Reads the shared part of the three counters (`count` of each
/// `percpu_counter`, or the `atomic_long_t` itself when `inner` is 0).
#[inline(always)]
fn read_counts(mm: u64, inner: u32) -> Option<Rss> {
    let at = |counter: u32| -> Option<i64> {
        known(counter)?;
        field::<i64>(mm + counter as u64, inner)
    };
    Some(Rss {
        anon: at(layout!(mm_rss_anon))?,
        file: at(layout!(mm_rss_file))?,
        shmem: at(layout!(mm_rss_shmem))?,
    })
}

/// Both `get_mm_counter` and `get_mm_counter_sum` clamp at zero.
#[inline(always)]
fn store(record: &mut OomKillRecord, rss: Rss, page_shift: u32, exact: bool) {
    let bytes = |pages: i64| (pages.max(0) as u64) << page_shift;
    if exact {
        record.victim_rss_anon_exact_bytes = bytes(rss.anon);
        record.victim_rss_file_exact_bytes = bytes(rss.file);
        record.victim_rss_shmem_exact_bytes = bytes(rss.shmem);
        record.valid |= valid::VICTIM_RSS_EXACT;
    } else {
        record.victim_rss_anon_bytes = bytes(rss.anon);
        record.victim_rss_file_bytes = bytes(rss.file);
        record.victim_rss_shmem_bytes = bytes(rss.shmem);
        record.valid |= valid::VICTIM_RSS;
    }
}

/// Adds every possible CPU's delta to the shared counts, as
/// `percpu_counter_sum` does.
///
/// The deltas live at `counters + __per_cpu_offset[cpu]`, and
/// `__per_cpu_offset` is not visible to BPF. Our own per-CPU array map gives
/// it away: its slot for `cpu` (from `bpf_map_lookup_percpu_elem`) sits at
/// `pptr + __per_cpu_offset[cpu]`, where `pptr` is the raw per-CPU pointer
/// stored in the map's `struct bpf_array`.
#[inline(always)]
fn add_percpu_deltas(mm: u64, mut rss: Rss, peek: &mut [u8; BPF_ARRAY_PEEK]) -> Option<Rss> {
    let pptrs = known(layout!(bpf_array_pptrs))?;
    if pptrs + 8 > BPF_ARRAY_PEEK {
        return None;
    }
    let map = core::ptr::addr_of!(PERCPU_PROBE);
    // SAFETY: reads the map's own kernel object into our scratch buffer;
    // the size is a verifier-known constant within the buffer.
    let copied =
        unsafe { bpf_probe_read_kernel(peek.as_mut_ptr().cast(), (pptrs + 8) as u32, map.cast()) };
    if copied != 0 {
        return None;
    }
    // SAFETY: pptrs + 8 <= BPF_ARRAY_PEEK, checked above.
    let base = unsafe { core::ptr::read_unaligned(peek.as_ptr().add(pptrs).cast::<u64>()) };

    let counters = |counter: u32| -> Option<u64> {
        known(counter)?;
        pointer(mm + counter as u64, layout!(percpu_counter_counters))
    };
    let anon = counters(layout!(mm_rss_anon))?;
    let file = counters(layout!(mm_rss_file))?;
    let shmem = counters(layout!(mm_rss_shmem))?;

    let nr_cpus = layout!(nr_cpus);
    let key: u32 = 0;
    for cpu in 0..MAX_CPUS {
        if cpu >= nr_cpus {
            break;
        }
        // SAFETY: plain helper call on our own map.
        let slot = unsafe {
            bpf_map_lookup_percpu_elem(map as *mut _, core::ptr::addr_of!(key).cast(), cpu)
        };
        if slot.is_null() {
            return None;
        }
        let per_cpu_offset = address_of(slot)?.wrapping_sub(base);
        let delta = |counters: u64| field::<i32>(counters.wrapping_add(per_cpu_offset), 0);
        rss.anon += delta(anon)? as i64;
        rss.file += delta(file)? as i64;
        rss.shmem += delta(shmem)? as i64;
    }
    Some(rss)
}
