//! The OOM killer's `struct oom_control` for this kill.
//!
//! Where fentry works, `oom_kill_process()` hands it over as its argument
//! (the programs at the end of this file). Elsewhere no hook receives it,
//! but it is
//! always a local of a function below us on the current kernel stack
//! (`mem_cgroup_out_of_memory()` for a memcg OOM, `__alloc_pages_may_oom()`
//! for a global one, the sysrq worker), alive while `mark_victim` fires,
//! and its `chosen` member points at the victim (or its thread group
//! leader). We scan the stack above our own frame for that pointer and
//! accept a candidate only if the rest of the struct looks like one.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{
        bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_loop, bpf_probe_read_kernel,
    },
    macros::{btf_tracepoint, fentry, fexit},
    programs::{BtfTracePointContext, FEntryContext, FExitContext},
};
use oomtrace_common::{
    IncidentRecord, MAX_STACK_SCAN, OomContext, STACK_SCAN_CHUNK, address_mask, constraint,
    kernel_pointer_miss, oom_context,
};

use crate::{
    OOM_CONTROL, OOM_KILLS,
    layout::{known, layout},
    mask::{below, is_zero, opaque},
    read::{self, address_of, field, pointer},
};

const SLOTS: usize = STACK_SCAN_CHUNK / 8;

/// Per-CPU working memory for [`find`], and its result for the main
/// program.
#[repr(C)]
pub struct Handover {
    /// The victim (`task_struct *`) `context` belongs to; 0 when empty.
    pub victim: u64,
    pub context: OomContext,
    /// `&oc->memcg->css` of `context` (0: a machine-wide OOM), for the
    /// candidate walk.
    pub domain_css: u64,
    /// The next chunk [`scan_chunk`] searches. Kept in map memory, not
    /// taken from bpf_loop's index: the verifier tracks an index it sees
    /// compared as a constant and checks the callback once per value (100
    /// times, 21,000 insns); a value read from a map it checks once.
    pub cursor: u64,
    /// The search's result (0: not found). In map memory too: a callback
    /// that writes its caller's stack changes the caller's state, and the
    /// verifier checks the callback again for each new one.
    pub found: u64,
    /// A piece of the task's stack being searched.
    pub chunk: [u64; SLOTS],
}

/// `tp_btf/mark_victim`, attached before `mark_victim_btf`: a program of its
/// own so the verifier checks the stack search once, not once per state of
/// the main program.
#[btf_tracepoint(function = "mark_victim")]
pub fn oom_control_btf(ctx: BtfTracePointContext) -> u32 {
    let Some((slot, victim, current, leader)) = begin(&ctx) else {
        return 0;
    };
    if let Some(oc) = find(current, leader) {
        let css = crate::cgroup::memory_css_or_zero(victim);
        // SAFETY: per-CPU slot; the search's loop is over.
        let domain = describe(oc, leader != victim, css, unsafe { &mut (*slot).context });
        // SAFETY: as above.
        unsafe { (*slot).domain_css = domain };
    }
    // SAFETY: as above.
    unsafe { (*slot).victim = victim };
    0
}

/// What the `mark_victim` helpers start with: their hand-over slot, emptied
/// (a raw pointer: the search's callback writes the same slot's chunk),
/// the victim, `current`, and the victim's thread group leader.
#[inline(always)]
fn begin(ctx: &BtfTracePointContext) -> Option<(*mut Handover, u64, u64, u64)> {
    let slot = OOM_CONTROL.get_ptr_mut(0)?;
    // A plain number: the verifier forbids arithmetic (the XORs in the
    // search) on the trusted task pointer itself.
    let victim = address_of(ctx.arg::<*const u8>(0))?;
    // SAFETY: per-CPU slot; tracepoint programs do not nest on one CPU.
    unsafe {
        (*slot).victim = 0;
        (*slot).context.flags = 0;
        (*slot).domain_css = 0;
    }
    // SAFETY: helper without arguments.
    let current = unsafe { bpf_get_current_task() };
    let leader = pointer(victim, layout!(task_group_leader)).unwrap_or(victim);
    Some((slot, victim, current, leader))
}

/// What [`scan_chunk`] reads (never writes), on the caller's stack.
#[repr(C)]
struct Scan {
    stack: u64,
    size: u64,
    leader: u64,
    chunks: u64,
}

/// Finds the oom_control whose `chosen` is `leader`, the victim's thread
/// group leader (the OOM killer chooses processes; it then marks a thread
/// of the chosen one that still has an mm, usually the leader itself), in
/// the kernel stack of `current`.
///
/// Copies of the pointer are everywhere on that stack (when the victim is
/// the one that faulted, every frame's `current`), so a copy counts only
/// if the 64 bytes around it read as an oom_control. Chunks are read from
/// the top of the stack (oldest frames) down, overlapping by the struct's
/// size so it is never split; in the first chunk holding one, the highest
/// wins. (BPF programs may run on a private per-CPU stack since 6.13, so
/// our own frame says nothing about where the task's stack is.)
///
/// Chunks go through `bpf_loop()` (5.17+), so the verifier checks one
/// chunk's scan once (unrolled, it took ~290 ms of start-up). The per-slot
/// test is branch-free arithmetic: the verifier follows both sides of every
/// branch in every iteration.
#[inline(always)]
fn find(current: u64, leader: u64) -> Option<u64> {
    let stack = pointer(current, layout!(task_stack))?;
    let size = layout!(thread_size) as u64;
    // 0: the loader does not know this architecture's stack size.
    if size < STACK_SCAN_CHUNK as u64 {
        return None;
    }
    let window = size.min(u64::from(MAX_STACK_SCAN));
    let step = STACK_SCAN_CHUNK as u64 - OVERLAP;
    let handover = OOM_CONTROL.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, this program's only user on this CPU.
    unsafe {
        (*handover).cursor = 0;
        (*handover).found = 0;
    };
    let mut scan = Scan {
        stack,
        size,
        leader,
        chunks: window.saturating_sub(STACK_SCAN_CHUNK as u64) / step + 1,
    };
    let callback: extern "C" fn(u64, *mut Scan) -> i64 = scan_chunk;
    // SAFETY: the callback reads and writes only `scan`, which outlives
    // the call. The function pointer goes to ld_imm64 as a pointer (never
    // through an integer), so it is relocated as a BPF subprogram.
    unsafe {
        bpf_loop(
            MAX_CHUNKS,
            callback as *mut c_void,
            (&mut scan as *mut Scan).cast(),
            0,
        )
    };
    // SAFETY: per-CPU slot; the search is over.
    let found = unsafe { (*handover).found };
    (found != 0).then_some(found)
}

/// One chunk of [`find`]: 0 to go on, 1 to stop.
extern "C" fn scan_chunk(_index: u64, scan: *mut Scan) -> i64 {
    // SAFETY: bpf_loop passes find's `scan` back.
    let scan = unsafe { &*scan };
    let Some(handover) = OOM_CONTROL.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU slot, this program's only user on this CPU.
    let handover = unsafe { &mut *handover };
    let index = handover.cursor;
    if index >= scan.chunks || index >= u64::from(MAX_CHUNKS) {
        return 1;
    }
    handover.cursor = index + 1;
    let chunk = &mut handover.chunk;
    match scan_one(scan, index, chunk) {
        Some(0) => 0,
        Some(found) => {
            handover.found = found;
            1
        }
        None => 1,
    }
}

/// Chunk `index`'s best candidate (0: none), or `None` to give up.
#[inline(always)]
fn scan_one(scan: &Scan, index: u64, chunk: &mut [u64; SLOTS]) -> Option<u64> {
    let member = |offset: u32| -> Option<Member> { Member::new(known(offset)?) };
    let chosen_member = member(layout!(oc_chosen))?;
    let memcg = member(layout!(oc_memcg))?;
    let order = member(layout!(oc_order))?;
    let constraint = member(layout!(oc_constraint))?;
    let totalpages = member(layout!(oc_totalpages))?;
    let step = STACK_SCAN_CHUNK as u64 - OVERLAP;
    let base = scan.stack + scan.size - STACK_SCAN_CHUNK as u64 - index * step;
    // SAFETY: fault-tolerant copy of a piece of the task's stack.
    let copied = unsafe {
        bpf_probe_read_kernel(
            chunk.as_mut_ptr().cast(),
            STACK_SCAN_CHUNK as u32,
            base as *const _,
        )
    };
    if copied != 0 {
        return None;
    }
    let constraints = KernelConstraints::read();
    // A tag in a pointer's top byte (arm64) is not part of the address.
    let address = address_mask(layout!(ptr_address_bits));
    let mut best: u64 = 0;
    for slot in 0..STARTS {
        let hit = is_zero((chosen_member.read(chunk, slot) ^ scan.leader) & address)
            & plausible(
                memcg.read(chunk, slot),
                order.read(chunk, slot) as u32,
                constraint.read(chunk, slot) as u32,
                totalpages.read(chunk, slot),
                &constraints,
            );
        let here = base + (slot * 8) as u64;
        best ^= (here ^ best) & opaque(hit).wrapping_neg();
    }
    Some(best)
}

/// The kernfs id of the memcg whose limit the OOM for `victim` hit, from
/// the context an OOM-context program left (without taking it); 0 for a
/// machine-wide OOM or none left.
#[inline(always)]
pub fn oom_memcg_id(victim: u64) -> u64 {
    let Some(handover) = OOM_CONTROL.get_ptr(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot, filled before us for this event.
    let handover = unsafe { &*handover };
    let ours = is_zero(handover.victim ^ victim) & (1 ^ is_zero(victim));
    let memcg =
        u64::from(handover.context.flags & oom_context::MEMCG) / u64::from(oom_context::MEMCG);
    handover.context.memcg_id & (ours & memcg).wrapping_neg()
}

/// The OOM domain `oom_control_*` left for `victim`, without taking it:
/// `Some(css)` of its memcg (0: the whole machine), the weighed pages and
/// the context's flags; `None` when no context was found for it.
#[inline(always)]
pub fn domain_of(victim: u64) -> Option<(u64, u64, u32)> {
    let handover = OOM_CONTROL.get_ptr(0)?;
    // SAFETY: this CPU's slot, filled before us for this event.
    let handover = unsafe { &*handover };
    if victim == 0 || handover.victim != victim || handover.context.flags & oom_context::FOUND == 0
    {
        return None;
    }
    Some((
        handover.domain_css,
        handover.context.totalpages,
        handover.context.flags,
    ))
}

/// The context `oom_control_btf` left for `victim`.
#[inline(always)]
pub fn take(victim: u64, out: &mut OomContext) {
    let Some(handover) = OOM_CONTROL.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as above.
    let handover = unsafe { &mut *handover };
    if handover.victim == victim && victim != 0 {
        crate::mem::copy(out, &handover.context);
    }
    // Left for `candidates_btf`, which runs after us and empties it; the
    // next event's first program empties it anyway (see `begin`).
}

/// Empties the hand-over: the last of this event's programs has read it.
#[inline(always)]
pub fn done() {
    if let Some(handover) = OOM_CONTROL.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; the programs of this event are over.
        unsafe { (*handover).victim = 0 };
    }
}
/// Chunks step by `STACK_SCAN_CHUNK - OVERLAP` bytes.
const MAX_CHUNKS: u32 = MAX_STACK_SCAN / (STACK_SCAN_CHUNK as u32 - OVERLAP as u32) + 1;

/// An oom_control member: which word of the struct holds it, and where in
/// that word. The struct is 8-byte aligned, so no member straddles words.
struct Member {
    word: usize,
    shift: u64,
}

impl Member {
    fn new(offset: usize) -> Option<Member> {
        // Members of the 64-byte struct only: the chunk overlap covers them.
        (offset < OVERLAP as usize).then_some(Member {
            word: offset / 8,
            shift: (offset as u64 % 8) * 8,
        })
    }

    /// The member of a struct starting at `slot` (< STARTS), in the low
    /// bits.
    #[inline(always)]
    fn read(&self, chunk: &[u64; SLOTS], slot: usize) -> u64 {
        // SAFETY: slot + word < STARTS + 8 = SLOTS; masked for the verifier.
        let value = unsafe { *chunk.as_ptr().add((slot + self.word) & (SLOTS - 1)) };
        value >> self.shift
    }
}

/// Without a memcg the OOM domain is the machine or its allowed NUMA
/// nodes: never this few pages. The search reads the whole stack, this
/// program's own frames included, and their spilled values (the victim's
/// leader beside small numbers) once passed for a cpuset OOM of 1 page
/// (6.1, a memory.oom.group member on the stack-search path).
const MIN_MACHINE_PAGES: u64 = 256;

/// oom_control is 64 bytes; chunks overlap by this much.
const OVERLAP: u64 = 64;
/// Slots where a whole struct starts inside a chunk.
const STARTS: usize = SLOTS - OVERLAP as usize / 8 + 1;

/// 1 if the members read as an oom_control's, else 0, without a branch:
/// `memcg` NULL or a kernel pointer (by the running kernel's architecture:
/// see `kernel_ptr_ones_shift`), `order` in
/// -1..16 (-1 is sysrq's; page allocations stop at MAX_PAGE_ORDER),
/// `constraint` a valid `enum oom_constraint` that is CONSTRAINT_MEMCG
/// exactly when there is a memcg, and `totalpages` in 1..2^48, and at
/// least [`MIN_MACHINE_PAGES`] without a memcg.
#[inline(always)]
fn plausible(
    memcg: u64,
    order: u32,
    constraint: u32,
    totalpages: u64,
    kernel: &KernelConstraints,
) -> u64 {
    let no_memcg = is_zero(memcg);
    // Kernel half: on x86-64 0xffff... with 4-level paging, 0xff... with
    // 5-level (LA57: qemu's `-cpu max`, recent server CPUs); on arm64 bits
    // 52-55, the top byte being a possible tag.
    let kernel_ptr = kernel_pointer_miss(
        memcg,
        layout!(kernel_ptr_ones_shift),
        layout!(kernel_ptr_ones),
    );
    let memcg_ok = no_memcg | is_zero(kernel_ptr);
    let order_ok = below(u64::from(order.wrapping_add(1)), 17);
    let constraint = u64::from(constraint);
    let is_memcg = is_zero(constraint ^ kernel.memcg);
    let named = is_memcg
        | is_zero(constraint ^ kernel.none)
        | is_zero(constraint ^ kernel.cpuset)
        | is_zero(constraint ^ kernel.memory_policy);
    let constraint_ok = named & is_zero(is_memcg ^ (1 ^ no_memcg));
    let totalpages_ok = (1 ^ is_zero(totalpages)) & is_zero(totalpages >> 48);
    let domain_ok = (1 ^ no_memcg) | (1 ^ below(totalpages, MIN_MACHINE_PAGES));
    memcg_ok & order_ok & constraint_ok & totalpages_ok & domain_ok
}

/// The running kernel's `enum oom_constraint` values, from the layout (the
/// loader read them from BTF): read once per chunk, not once per slot.
struct KernelConstraints {
    none: u64,
    cpuset: u64,
    memory_policy: u64,
    memcg: u64,
}

impl KernelConstraints {
    #[inline(always)]
    fn read() -> KernelConstraints {
        KernelConstraints {
            none: u64::from(layout!(kernel_constraint_none)),
            cpuset: u64::from(layout!(kernel_constraint_cpuset)),
            memory_policy: u64::from(layout!(kernel_constraint_memory_policy)),
            memcg: u64::from(layout!(kernel_constraint_memcg)),
        }
    }

    /// The kernel's value as oomtrace's [`constraint`] value.
    #[inline(always)]
    fn translate(&self, kernel: u32) -> u32 {
        let kernel = u64::from(kernel);
        if kernel == self.memcg {
            constraint::MEMCG
        } else if kernel == self.none {
            constraint::NONE
        } else if kernel == self.cpuset {
            constraint::CPUSET
        } else if kernel == self.memory_policy {
            constraint::MEMORY_POLICY
        } else {
            constraint::UNKNOWN
        }
    }
}

/// Fills `out` from the oom_control at `oc`; `victim_css` (0: unknown; a
/// plain value, as an `Option`'s undefined payload, spilled by LLVM, fails
/// the verifier with `!read_ok`) is the victim's
/// memory cgroup state, to check the OOM memcg contains it. Returns the
/// OOM memcg's css (0: machine-wide), a plain value for the same reason.
#[inline(always)]
pub fn describe(oc: u64, victim_is_thread: bool, victim_css: u64, out: &mut OomContext) -> u64 {
    out.flags = oom_context::FOUND;
    out.oom_group_level = 0;
    if victim_is_thread {
        out.flags |= oom_context::VICTIM_IS_THREAD;
    }
    out.gfp_mask = field::<u32>(oc, layout!(oc_gfp_mask)).unwrap_or(0);
    out.order = field::<i32>(oc, layout!(oc_order)).unwrap_or(0);
    out.constraint = field::<u32>(oc, layout!(oc_constraint))
        .map_or(constraint::UNKNOWN, |kernel| {
            KernelConstraints::read().translate(kernel)
        });
    out.totalpages = field::<u64>(oc, layout!(oc_totalpages)).unwrap_or(0);
    out.chosen_points = field::<i64>(oc, layout!(oc_chosen_points)).unwrap_or(0);
    let memcg = match known(layout!(oc_memcg)) {
        Some(offset) if oc != 0 => read::u64_or_zero(oc + offset as u64),
        _ => 0,
    };
    let domain = if memcg == 0 {
        0
    } else {
        memcg_domain(memcg, out)
    };
    walk_to_domain(victim_css, domain, out);
    domain
}

/// Fills the memcg part of `out` for the OOM domain `memcg` (`oc->memcg`);
/// returns its css, to find the victim under it.
#[inline(always)]
fn memcg_domain(memcg: u64, out: &mut OomContext) -> u64 {
    out.flags |= oom_context::MEMCG;
    let Some(css_offset) = known(layout!(memcg_css)) else {
        return 0;
    };
    let css = memcg + css_offset as u64;
    if let Some(cgroup) = pointer(css, layout!(css_cgroup))
        && let Some(kn) = pointer(cgroup, layout!(cgroup_kn))
        && let Some(id) = field::<u64>(kn, layout!(kn_id))
    {
        out.memcg_id = id;
        out.memcg_level = field::<i32>(cgroup, layout!(cgroup_level))
            .unwrap_or(0)
            .max(0) as u32;
    }
    // Defined values on every path (see `u64_field`); usage and the kill
    // count are signed atomics in the kernel.
    let (usage_ok, usage) = crate::read::u64_field(memcg, layout!(memcg_usage));
    let (max_ok, max) = crate::read::u64_field(memcg, layout!(memcg_max));
    let (watermark_ok, watermark) = crate::read::u64_field(memcg, layout!(memcg_watermark));
    let (failcnt_ok, failcnt) = crate::read::u64_field(memcg, layout!(memcg_failcnt));
    let (kills_ok, kills) = crate::read::u64_field(memcg, layout!(memcg_oom_kill_events));
    if usage_ok & max_ok & watermark_ok & failcnt_ok & kills_ok {
        out.memcg_usage_pages = (usage as i64).max(0) as u64;
        out.memcg_limit_pages = max;
        out.memcg_watermark_pages = watermark;
        out.memcg_failcnt = failcnt;
        out.memcg_oom_kills = (kills as i64).max(0) as u64;
        out.flags |= oom_context::MEMCG_COUNTERS;
    }
    css
}

/// Walks the victim's css up to the OOM domain's (`domain`; the root for a
/// machine-wide OOM), as `mem_cgroup_get_oom_group()` does: is the domain
/// the victim's memcg or an ancestor, and does a memcg on the way have
/// memory.oom.group set (the highest one's tasks all die)?
#[inline(always)]
fn walk_to_domain(victim_css: u64, domain: u64, out: &mut OomContext) {
    if victim_css == 0 {
        return;
    }
    // Branch-free: every step reads with zero for unreadable and folds
    // its tests into masks. With branches (the walk stops at the domain, a
    // missing parent, a group found on the way) each of the 17 steps split
    // the verifier's paths, and it checked the steps after a split once
    // per path: 12,000 insns. A step after the end changes nothing.
    let (Some(css_parent), Some(memcg_css), Some(oom_group), Some(css_cgroup), Some(cgroup_level)) = (
        known(layout!(css_parent)),
        known(layout!(memcg_css)),
        known(layout!(memcg_oom_group)),
        known(layout!(css_cgroup)),
        known(layout!(cgroup_level)),
    ) else {
        return walk_without_oom_group(victim_css, domain, out);
    };
    let has_domain = 1 ^ is_zero(domain);
    let memcg_oom = u64::from(out.flags & oom_context::MEMCG != 0);
    let mut node = victim_css;
    let (mut done, mut group, mut group_level) = (0u64, 0u64, 0u64);
    let (mut contains, mut ended, mut ended_group, mut ended_level) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..oomtrace_common::CGROUP_MAX_DEPTH + 1 {
        let active = 1 ^ done;
        let parent = read::u64_or_zero(node + css_parent as u64);
        let has_parent = 1 ^ is_zero(parent);
        // The root's memory.oom.group is never looked at.
        let memcg = node.wrapping_sub(memcg_css as u64);
        let set = 1 ^ is_zero(read::u8_or_zero(memcg + oom_group as u64));
        let hit = active & has_parent & set;
        let cgroup = read::u64_or_zero(node + css_cgroup as u64);
        let level = read::u32_or_zero(cgroup + cgroup_level as u64);
        group |= hit;
        group_level ^= (group_level ^ level) & hit.wrapping_neg();
        let at_domain = active & has_domain & is_zero(node ^ domain);
        let finish = at_domain | (active & (1 ^ has_parent) & (1 ^ memcg_oom));
        contains |= at_domain;
        ended |= finish;
        ended_group |= finish & group;
        ended_level ^= (ended_level ^ group_level) & finish.wrapping_neg();
        done |= finish | (1 ^ has_parent);
        node ^= (node ^ parent) & has_parent.wrapping_neg();
    }
    let bit = |on: u64, flag: u32| (on as u32 & 1) * flag;
    out.flags |= bit(contains, oom_context::MEMCG_CONTAINS_VICTIM)
        | bit(ended, oom_context::OOM_GROUP_READ)
        | bit(ended_group, oom_context::OOM_GROUP);
    out.oom_group_level = (ended_level as u32) * (ended_group as u32 & 1);
}

/// [`walk_to_domain`] on a kernel without memory.oom.group in its BTF:
/// only whether the domain contains the victim.
#[inline(always)]
fn walk_without_oom_group(victim_css: u64, domain: u64, out: &mut OomContext) {
    if domain == 0 {
        return;
    }
    let mut node = victim_css;
    let mut contains = is_zero(node ^ domain);
    if let Some(css_parent) = known(layout!(css_parent)) {
        for _ in 0..oomtrace_common::CGROUP_MAX_DEPTH {
            node = read::u64_or_zero(node + css_parent as u64);
            contains |= is_zero(node ^ domain);
        }
    }
    out.flags |= (contains as u32 & 1) * oom_context::MEMCG_CONTAINS_VICTIM;
}

/// An `oom_kill_process()` call in progress, keyed by the task running it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Kill {
    /// Its `struct oom_control *`.
    pub oc: u64,
    /// Boot time at entry: the incident's id.
    pub incident_ns: u64,
    /// Tasks marked so far: the chosen one, then its memory.oom.group.
    pub victims: u32,
    pub _pad: u32,
}

/// `fentry/oom_kill_process`: where fentry exists, the kill's oom_control
/// is an argument; no stack search.
#[fentry(function = "oom_kill_process")]
pub fn oom_kill_process_entry(ctx: FEntryContext) -> u32 {
    let Some(oc) = address_of(ctx.arg::<*const u8>(0)) else {
        return 0;
    };
    // SAFETY: helpers without arguments.
    let (current, now) = unsafe { (bpf_get_current_task(), bpf_ktime_get_boot_ns()) };
    let kill = Kill {
        oc,
        incident_ns: now,
        victims: 0,
        _pad: 0,
    };
    let _ = OOM_KILLS.insert(current, kill, 0);
    0
}

/// `fexit/oom_kill_process`: the incident is over; its victim count goes to
/// the ring buffer for the records held in userspace.
#[fexit(function = "oom_kill_process")]
pub fn oom_kill_process_exit(_ctx: FExitContext) -> u32 {
    // SAFETY: helper without arguments.
    let current = unsafe { bpf_get_current_task() };
    // SAFETY: a value of our own map, read before it is deleted.
    if let Some(kill) = unsafe { OOM_KILLS.get(current) }
        && kill.victims > 0
    {
        crate::submit(&IncidentRecord {
            kind: oomtrace_common::kind::OOM_INCIDENT,
            victims: kill.victims,
            incident_ns: kill.incident_ns,
        });
    }
    let _ = OOM_KILLS.remove(current);
    0
}

/// `tp_btf/mark_victim` with fentry: the oom_control `oom_kill_process_entry`
/// saw for this task. Every task marked inside one call belongs to the
/// incident: the chosen victim and the rest of its memory.oom.group.
#[btf_tracepoint(function = "mark_victim")]
pub fn oom_control_fentry_btf(ctx: BtfTracePointContext) -> u32 {
    let Some((slot, victim, current, leader)) = begin(&ctx) else {
        return 0;
    };
    let Some(kill) = OOM_KILLS.get_ptr_mut(current) else {
        return 0;
    };
    // SAFETY: our own map's value; only this task updates its entry.
    let kill = unsafe { &mut *kill };
    kill.victims += 1;
    let css = crate::cgroup::memory_css_or_zero(victim);
    // SAFETY: per-CPU slot, as in `begin`.
    let out = unsafe { &mut (*slot).context };
    let domain = describe(kill.oc, leader != victim, css, out);
    // SAFETY: as above.
    unsafe { (*slot).domain_css = domain };
    out.flags |= oom_context::INCIDENT;
    out.incident_ns = kill.incident_ns;
    out.incident_seq = kill.victims;
    if let Some(chosen) = pointer(kill.oc, layout!(oc_chosen)) {
        out.chosen_tgid = field::<u32>(chosen, layout!(task_tgid)).unwrap_or(0);
        if chosen != leader {
            out.flags |= oom_context::GROUP_MEMBER;
        }
    }
    // SAFETY: as above.
    unsafe { (*slot).victim = victim };
    0
}
