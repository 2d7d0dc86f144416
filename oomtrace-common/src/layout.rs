//! The running kernel's layout as the eBPF side reads it: every field
//! declared once, in [`kernel_layout!`] below, which generates the struct,
//! its all-unknown value and the table the loader resolves it from.

use crate::OFFSET_UNKNOWN;

/// Where the loader finds a [`KernelLayout`] field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Byte offset of a member path (`member`, `a.b`, `array[2]`) inside a
    /// struct, trying each candidate in turn (members renamed across
    /// kernels are listed newest first).
    Member {
        type_name: &'static str,
        paths: &'static [&'static str],
    },
    /// Byte offset of `array[index]` inside a struct, where the index is an
    /// enumerator whose value depends on the kernel's config.
    IndexedMember {
        type_name: &'static str,
        array: &'static str,
        index: &'static str,
    },
    /// The value of an enumerator of the kernel's BTF.
    Enumerator(&'static str),
    /// Computed by the loader some other way (tracefs, sysconf, the shape of
    /// a type); `unknown` is the value until it does.
    Loader { unknown: u32 },
}

impl Source {
    /// The field's value before anything is resolved.
    pub const fn unknown(&self) -> u32 {
        match self {
            Source::Loader { unknown } => *unknown,
            _ => OFFSET_UNKNOWN,
        }
    }
}

const fn member(type_name: &'static str, paths: &'static [&'static str]) -> Source {
    Source::Member { type_name, paths }
}

const fn indexed(type_name: &'static str, array: &'static str, index: &'static str) -> Source {
    Source::IndexedMember {
        type_name,
        array,
        index,
    }
}

const fn enumerator(name: &'static str) -> Source {
    Source::Enumerator(name)
}

const fn loader(unknown: u32) -> Source {
    Source::Loader { unknown }
}

/// One field of [`KernelLayout`], as [`KernelLayout::FIELDS`] lists it.
#[derive(Clone, Copy)]
pub struct LayoutField {
    pub name: &'static str,
    pub source: Source,
    /// Set when the task reads of both capture paths need the field: the
    /// name `check` and the ready line give for it when it is missing.
    pub required: Option<&'static str>,
    pub get: fn(&KernelLayout) -> u32,
    pub set: fn(&mut KernelLayout, u32),
}

macro_rules! required {
    () => {
        None
    };
    ($name:literal) => {
        Some($name)
    };
}

/// Declares every field once: `name: source [, required "shown as"];`.
macro_rules! kernel_layout {
    ($(
        $(#[$meta:meta])*
        $field:ident: $source:expr $(, required $required:literal)?;
    )*) => {
        /// Where the kernel keeps what we read, resolved by the loader from
        /// the running kernel's BTF and tracefs, and handed to the programs
        /// as a read-only global before load. The verifier sees these as
        /// constants. Offsets are in bytes; [`OFFSET_UNKNOWN`] means "not on
        /// this kernel".
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct KernelLayout {
            $($(#[$meta])* pub $field: u32,)*
        }

        impl KernelLayout {
            /// A layout with nothing known.
            pub const UNKNOWN: KernelLayout = KernelLayout {
                $($field: $source.unknown(),)*
            };

            /// Every field, in declaration order, with where it comes from.
            pub const FIELDS: &'static [LayoutField] = &[$(LayoutField {
                name: stringify!($field),
                source: $source,
                required: required!($($required)?),
                get: |layout| layout.$field,
                set: |layout, value| layout.$field = value,
            },)*];
        }
    };
}

kernel_layout! {
    task_pid: member("task_struct", &["pid"]), required "task_struct.pid";
    task_tgid: member("task_struct", &["tgid"]), required "task_struct.tgid";
    task_comm: member("task_struct", &["comm"]), required "task_struct.comm";
    task_mm: member("task_struct", &["mm"]), required "task_struct.mm";
    task_signal: member("task_struct", &["signal"]), required "task_struct.signal";
    task_cgroups: member("task_struct", &["cgroups"]), required "task_struct.cgroups";
    signal_oom_score_adj: member("signal_struct", &["oom_score_adj"]),
        required "signal_struct.oom_score_adj";
    mm_total_vm: member("mm_struct", &["total_vm"]), required "mm_struct.total_vm";
    mm_pgtables_bytes: member("mm_struct", &["pgtables_bytes"]),
        required "mm_struct.pgtables_bytes";
    /// Offset of `rss_stat`'s counter for MM_ANONPAGES, MM_FILEPAGES and
    /// MM_SHMEMPAGES: an `atomic_long_t` (< 6.2) or a `struct percpu_counter`.
    /// The loader reads the shape of `rss_stat` to find them.
    mm_rss_anon: loader(OFFSET_UNKNOWN), required "mm_struct.rss_stat";
    mm_rss_file: loader(OFFSET_UNKNOWN);
    mm_rss_shmem: loader(OFFSET_UNKNOWN);
    /// The same for MM_SWAPENTS (the candidate walk's swap figure).
    mm_rss_swap: loader(OFFSET_UNKNOWN);
    /// [`crate::rss_kind`] value; 0 when unknown.
    rss_kind: loader(0);
    /// `struct percpu_counter`, set with the percpu_counter `rss_kind`.
    percpu_counter_count: loader(OFFSET_UNKNOWN);
    percpu_counter_counters: loader(OFFSET_UNKNOWN);
    /// `css_set.subsys[memory_cgrp_id]`: the index depends on the config.
    css_set_memory_subsys: indexed("css_set", "subsys", "memory_cgrp_id"),
        required "css_set.subsys[memory_cgrp_id]";
    css_cgroup: member("cgroup_subsys_state", &["cgroup"]),
        required "cgroup_subsys_state.cgroup";
    cgroup_kn: member("cgroup", &["kn"]), required "cgroup.kn";
    cgroup_level: member("cgroup", &["level"]), required "cgroup.level";
    /// Renamed to `__parent` in 6.15 (kernfs: RCU protected parent).
    kn_parent: member("kernfs_node", &["__parent", "parent"]), required "kernfs_node.parent";
    kn_name: member("kernfs_node", &["name"]), required "kernfs_node.name";
    kn_id: member("kernfs_node", &["id"]), required "kernfs_node.id";
    /// `struct bpf_array`, to turn per-CPU pointers into addresses.
    bpf_array_pptrs: member("bpf_array", &["pptrs"]);
    // The OOM killer's context (found on the stack or as fentry's argument).
    oc_memcg: member("oom_control", &["memcg"]);
    oc_gfp_mask: member("oom_control", &["gfp_mask"]);
    oc_order: member("oom_control", &["order"]);
    oc_totalpages: member("oom_control", &["totalpages"]);
    oc_chosen: member("oom_control", &["chosen"]);
    oc_chosen_points: member("oom_control", &["chosen_points"]);
    oc_constraint: member("oom_control", &["constraint"]);
    memcg_css: member("mem_cgroup", &["css"]);
    memcg_usage: member("mem_cgroup", &["memory.usage"]);
    memcg_max: member("mem_cgroup", &["memory.max"]);
    memcg_watermark: member("mem_cgroup", &["memory.watermark"]);
    memcg_failcnt: member("mem_cgroup", &["memory.failcnt"]);
    /// `memory_events[MEMCG_OOM_KILL]`.
    memcg_oom_kill_events: indexed("mem_cgroup", "memory_events", "MEMCG_OOM_KILL");
    css_parent: member("cgroup_subsys_state", &["parent"]);
    /// `task_struct.tasks`, the process list the candidate walk follows.
    task_tasks: member("task_struct", &["tasks"]);
    /// `cgroup.ancestors[]` (6.0+; `ancestor_ids[]` before): a cgroup's
    /// ancestor at a level, for the walk's "is it in the domain" test.
    cgroup_ancestors: member("cgroup", &["ancestors"]);
    /// `kernel_siginfo.si_code`.
    siginfo_code: member("kernel_siginfo", &["si_code"]);
    task_group_leader: member("task_struct", &["group_leader"]);
    task_exit_code: member("task_struct", &["exit_code"]);
    task_stack: member("task_struct", &["stack"]);
    // Where the process's argv and environ strings live.
    mm_arg_start: member("mm_struct", &["arg_start"]);
    mm_arg_end: member("mm_struct", &["arg_end"]);
    mm_env_start: member("mm_struct", &["env_start"]);
    mm_env_end: member("mm_struct", &["env_end"]);
    task_start_boottime: member("task_struct", &["start_boottime"]);
    // The victim's pid in its own pid namespace:
    // `group_leader->thread_pid->numbers[level].nr`.
    task_thread_pid: member("task_struct", &["thread_pid"]);
    pid_level: member("pid", &["level"]);
    /// `struct pid.numbers`, a flexible array of `struct upid`.
    pid_numbers: member("pid", &["numbers"]);
    upid_nr: member("upid", &["nr"]);
    /// The namespace of a `struct upid`, and that namespace's init:
    /// `numbers[level].ns->child_reaper`.
    upid_ns: member("upid", &["ns"]);
    pidns_child_reaper: member("pid_namespace", &["child_reaper"]);
    /// `sizeof(struct upid)`, the stride of `pid.numbers`.
    upid_size: loader(0);
    /// `mem_cgroup.oom_group` (memory.oom.group, cgroup v2; absent when
    /// the kernel has no such member).
    memcg_oom_group: member("mem_cgroup", &["oom_group"]);
    /// Kernel stack size (THREAD_SIZE), a multiple of STACK_SCAN_CHUNK.
    thread_size: loader(0);
    /// Possible CPUs (per-CPU sums stop here).
    nr_cpus: loader(0);
    /// log2(page size).
    page_shift: loader(12);
    /// A kernel pointer has bits `[kernel_ptr_ones_shift, +kernel_ptr_ones)`
    /// set: the top byte on x86-64, bits 52-55 on arm64 (whose top byte may
    /// be a tag). See [`crate::kernel_pointer_miss`].
    kernel_ptr_ones_shift: loader(56);
    kernel_ptr_ones: loader(8);
    /// Bits of a pointer that name the address: 64, or 56 on arm64 (top
    /// byte ignored). See [`crate::address_mask`].
    ptr_address_bits: loader(64);
    // Classic tracepoint fields: offsets into the event record, from tracefs.
    tp_pid: loader(OFFSET_UNKNOWN);
    /// `__data_loc char[] comm`.
    tp_comm: loader(OFFSET_UNKNOWN);
    tp_total_vm: loader(OFFSET_UNKNOWN);
    tp_anon_rss: loader(OFFSET_UNKNOWN);
    tp_file_rss: loader(OFFSET_UNKNOWN);
    tp_shmem_rss: loader(OFFSET_UNKNOWN);
    tp_uid: loader(OFFSET_UNKNOWN);
    tp_pgtables: loader(OFFSET_UNKNOWN);
    tp_oom_score_adj: loader(OFFSET_UNKNOWN);
    /// Size in bytes of `oom_score_adj` in the event (2 on current kernels).
    tp_oom_score_adj_size: loader(0);
    /// The kernel's `enum oom_constraint` values, translated by the eBPF
    /// side into [`crate::constraint`]'s.
    kernel_constraint_none: enumerator("CONSTRAINT_NONE");
    kernel_constraint_cpuset: enumerator("CONSTRAINT_CPUSET");
    kernel_constraint_memory_policy: enumerator("CONSTRAINT_MEMORY_POLICY");
    kernel_constraint_memcg: enumerator("CONSTRAINT_MEMCG");
    /// The kernel's `enum trace_signal_result` values for a signal that was
    /// sent, translated into [`crate::signal_result`]'s.
    kernel_signal_delivered: enumerator("TRACE_SIGNAL_DELIVERED");
    kernel_signal_lose_info: enumerator("TRACE_SIGNAL_LOSE_INFO");
}

const _: () = assert!(core::mem::size_of::<KernelLayout>() == KernelLayout::FIELDS.len() * 4);

/// `rss_kind` values.
pub mod rss_kind {
    pub const ATOMIC_LONG: u32 = 1;
    pub const PERCPU_COUNTER: u32 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_each_fields_unknown_value() {
        for field in KernelLayout::FIELDS {
            assert_eq!(
                (field.get)(&KernelLayout::UNKNOWN),
                field.source.unknown(),
                "{}",
                field.name
            );
        }
        assert_eq!(KernelLayout::UNKNOWN.page_shift, 12);
        assert_eq!(KernelLayout::UNKNOWN.rss_kind, 0);
        assert_eq!(KernelLayout::UNKNOWN.task_pid, OFFSET_UNKNOWN);
    }

    #[test]
    fn set_writes_the_field_it_names_and_no_other() {
        for (index, field) in KernelLayout::FIELDS.iter().enumerate() {
            let mut layout = KernelLayout::UNKNOWN;
            (field.set)(&mut layout, 1000);
            for (other_index, other) in KernelLayout::FIELDS.iter().enumerate() {
                let expected = if other_index == index {
                    1000
                } else {
                    other.source.unknown()
                };
                assert_eq!((other.get)(&layout), expected, "{} set", field.name);
            }
        }
    }

    #[test]
    fn field_names_are_the_struct_members() {
        let mut layout = KernelLayout::UNKNOWN;
        layout.kn_parent = 7;
        let named = KernelLayout::FIELDS.iter().find(|f| f.name == "kn_parent");
        assert_eq!(named.map(|f| (f.get)(&layout)), Some(7));
    }
}
