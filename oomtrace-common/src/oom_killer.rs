//! The OOM killer's own view of a kill, from its `struct oom_control`,
//! and the incident one `oom_kill_process()` call makes.

/// The kill's `struct oom_control` is searched for in the current task's
/// kernel stack, from its top down, in chunks of this many bytes.
pub const STACK_SCAN_CHUNK: usize = 128;
/// Most of the kernel stack searched, from its top: 16 KiB, the whole
/// stack on x86-64 and arm64. (KASAN doubles the stack; scanning 32 KiB
/// would take the verifier past its 1M-instruction budget, and the
/// OOM killer's frames are in the upper part anyway.)
pub const MAX_STACK_SCAN: u32 = 16 << 10;

/// 0 when `value` reads as a kernel pointer: bits `[shift, shift + ones)`
/// all set (the loader's `kernel_ptr_ones_shift` and `kernel_ptr_ones`
/// for the running kernel's architecture), else non-zero. Arithmetic only:
/// the stack search tests it in every slot without branching.
#[inline(always)]
pub fn kernel_pointer_miss(value: u64, shift: u32, ones: u32) -> u64 {
    let mask = 1u64.wrapping_shl(ones).wrapping_sub(1);
    (value.wrapping_shr(shift) & mask) ^ mask
}

/// The bits of a pointer that name the address (the loader's
/// `ptr_address_bits`): all 64, or 56 where the top byte is a tag (arm64's
/// top-byte-ignore). Pointers are compared under this mask.
#[inline(always)]
pub fn address_mask(address_bits: u32) -> u64 {
    u64::MAX.wrapping_shr(64u32.wrapping_sub(address_bits))
}

/// Bits of [`OomContext::flags`].
pub mod oom_context {
    /// The kill's `struct oom_control` was found on the stack; `gfp_mask`,
    /// `order`, `constraint`, `totalpages` and `chosen_points` are its.
    pub const FOUND: u32 = 1 << 0;
    /// The OOM was confined to a memory cgroup (`oc->memcg` is set).
    pub const MEMCG: u32 = 1 << 1;
    /// That memcg is the victim's memcg or one of its ancestors, at
    /// `memcg_level` below the root (the path is a prefix of the victim's).
    pub const MEMCG_CONTAINS_VICTIM: u32 = 1 << 2;
    /// The memcg's page counter and OOM-kill count were read.
    pub const MEMCG_COUNTERS: u32 = 1 << 3;
    /// The victim is not its process's thread group leader (the OOM
    /// killer chose the process; the kernel marked a thread with an mm).
    pub const VICTIM_IS_THREAD: u32 = 1 << 4;
    /// Read at `oom_kill_process()` (fentry): `incident_ns`, `incident_seq`
    /// and `chosen_tgid` are set.
    pub const INCIDENT: u32 = 1 << 5;
    /// Killed with the chosen victim as a member of its memory.oom.group.
    pub const GROUP_MEMBER: u32 = 1 << 6;
    /// The victim's memcg and its ancestors up to the OOM domain were read
    /// for `oom_group` (as `mem_cgroup_get_oom_group()` walks them): the
    /// answer is [`OOM_GROUP`].
    pub const OOM_GROUP_READ: u32 = 1 << 7;
    /// One of them has memory.oom.group set: the kernel kills every task
    /// of the highest such memcg, at `oom_group_level`.
    pub const OOM_GROUP: u32 = 1 << 8;
}

/// The OOM killer's own view of the kill, from its `struct oom_control`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OomContext {
    /// Pages the OOM killer considered (`oc->totalpages`).
    pub totalpages: u64,
    /// The victim's badness score (`oc->chosen_points`).
    pub chosen_points: i64,
    /// kernfs id of `oc->memcg`, the cgroup whose limit was hit.
    pub memcg_id: u64,
    /// That memcg's memory page counter at the kill, in pages.
    pub memcg_usage_pages: u64,
    pub memcg_limit_pages: u64,
    pub memcg_watermark_pages: u64,
    pub memcg_failcnt: u64,
    /// `memory_events[MEMCG_OOM_KILL]`: OOM kills in this memcg's subtree,
    /// this one included.
    pub memcg_oom_kills: u64,
    pub gfp_mask: u32,
    pub order: i32,
    /// [`constraint`] value (the kernel's `enum oom_constraint`, translated).
    pub constraint: u32,
    pub memcg_level: u32,
    /// [`oom_context`] bits.
    pub flags: u32,
    /// The process the OOM killer chose (`oc->chosen`).
    pub chosen_tgid: u32,
    /// Boot time at `oom_kill_process()` entry: the incident's id.
    pub incident_ns: u64,
    /// This victim's place in the incident (1: the chosen one).
    pub incident_seq: u32,
    /// With [`oom_context::OOM_GROUP`]: the level below the root of the
    /// memcg whose tasks are all killed.
    pub oom_group_level: u32,
}

/// The end of an OOM incident (fexit of `oom_kill_process()`): how many
/// tasks it marked as victims.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct IncidentRecord {
    /// [`kind::OOM_INCIDENT`].
    pub kind: u32,
    pub victims: u32,
    pub incident_ns: u64,
}

/// [`crate::OomContext::constraint`]: how the OOM killer scoped its search,
/// oomtrace's own numbering of the kernel's `enum oom_constraint`.
pub mod constraint {
    pub const NONE: u32 = 0;
    pub const CPUSET: u32 = 1;
    pub const MEMORY_POLICY: u32 = 2;
    pub const MEMCG: u32 = 3;
    /// A value the kernel's BTF did not name.
    pub const UNKNOWN: u32 = u32::MAX;
}

const _: () = assert!(core::mem::size_of::<OomContext>() == 104);
const _: () = assert!(core::mem::size_of::<IncidentRecord>() == 16);
