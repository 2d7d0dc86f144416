//! Struct layouts of the running kernel, from its BTF.
//!
//! The eBPF side reads kernel structs at offsets resolved here at load
//! time, so one binary works across kernels. Members that moved or were
//! renamed across versions are looked up under each known name.

use std::{collections::HashMap, fs, io, path::Path};

use btfparse::{Offset, Readable, TypeInformation, TypeVariant};
use oomtrace_common::{KernelLayout, OFFSET_UNKNOWN, Source, rss_kind};

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's types, indexed by name for the kinds we look up.
pub struct KernelTypes {
    types: TypeInformation,
    by_name: HashMap<String, u32>,
}

/// In-memory BTF for btfparse, which reads through this trait.
struct Bytes(Vec<u8>);

impl Readable for Bytes {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset).ok();
        let source = start.and_then(|start| self.0.get(start..start.checked_add(buffer.len())?));
        match source {
            Some(source) => {
                buffer.copy_from_slice(source);
                Ok(())
            }
            None => Err(btfparse::Error::new(
                btfparse::ErrorKind::IOError,
                "read past the end of the BTF data",
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: String, message: String },
    /// Not parsed: what a start needs came from the cache.
    #[error("not parsed (taken from the cache)")]
    Cached,
}

/// Reads a BTF file.
pub fn read(path: &Path) -> Result<Vec<u8>, BtfError> {
    fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl KernelTypes {
    /// Parses BTF already read from `path` (named in errors).
    pub fn from_bytes(data: Vec<u8>, path: &Path) -> Result<KernelTypes, BtfError> {
        Self::parse(data).map_err(|message| BtfError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    fn parse(data: Vec<u8>) -> Result<KernelTypes, String> {
        let types = TypeInformation::new(&Bytes(data)).map_err(|e| format!("{e:?}"))?;
        // btfparse's own name index keeps the last type of a name, whatever
        // its kind (a FUNC can shadow a STRUCT); keep only what we look up.
        let mut by_name = HashMap::new();
        for (id, variant) in types.get() {
            let name = match variant {
                TypeVariant::Struct(t) => t.name(),
                TypeVariant::Union(t) => t.name(),
                TypeVariant::Typedef(t) => t.name(),
                TypeVariant::Enum(t) => t.name(),
                _ => continue,
            };
            if let Some(name) = name {
                by_name.entry(name.clone()).or_insert(*id);
            }
        }
        Ok(KernelTypes { types, by_name })
    }

    /// Byte offset of `path` (`member`, `a.b`, `array[2]`) inside the named
    /// struct, trying each candidate path in order.
    pub fn offset(&self, type_name: &str, candidates: &[&str]) -> Option<u32> {
        let id = *self.by_name.get(type_name)?;
        candidates
            .iter()
            .find_map(|path| match self.types.offset_of(id, path) {
                Ok((_, Offset::ByteOffset(offset))) => Some(offset),
                _ => None,
            })
    }

    /// Like [`Self::offset`], also returning the member's type id.
    fn member(&self, type_name: &str, path: &str) -> Option<(u32, u32)> {
        let id = *self.by_name.get(type_name)?;
        match self.types.offset_of(id, path) {
            Ok((member_type, Offset::ByteOffset(offset))) => Some((member_type, offset)),
            _ => None,
        }
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<TypeVariant> {
        for _ in 0..32 {
            let variant = self.types.from_id(id)?;
            id = match &variant {
                TypeVariant::Typedef(t) => *t.tid(),
                TypeVariant::Const(t) => *t.tid(),
                TypeVariant::Volatile(t) => *t.tid(),
                TypeVariant::Restrict(t) => *t.tid(),
                TypeVariant::TypeTag(t) => *t.tid(),
                _ => return Some(variant),
            };
        }
        None
    }

    /// `sizeof(struct name)`.
    fn struct_size(&self, name: &str) -> Option<u32> {
        let id = *self.by_name.get(name)?;
        u32::try_from(self.types.size_of(id).ok()?).ok()
    }

    fn struct_name(&self, id: u32) -> Option<String> {
        match self.resolve(id)? {
            TypeVariant::Struct(s) => s.name().clone(),
            _ => None,
        }
    }

    /// Value of an enumerator, searched in every enum (many kernel enums,
    /// like the mm counter indices, are anonymous).
    pub fn enum_value(&self, enumerator: &str) -> Option<i64> {
        self.types.get().values().find_map(|variant| match variant {
            TypeVariant::Enum(e) => e.named_value_list().iter().find_map(|v| {
                (v.name == enumerator).then_some(match v.value {
                    btfparse::Integer32Value::Signed(x) => i64::from(x),
                    btfparse::Integer32Value::Unsigned(x) => i64::from(x),
                })
            }),
            TypeVariant::Enum64(e) => e.named_value_list().iter().find_map(|v| {
                (v.name == enumerator).then_some(match v.value {
                    btfparse::Integer64Value::Signed(x) => x,
                    btfparse::Integer64Value::Unsigned(x) => x as i64,
                })
            }),
            _ => None,
        })
    }

    /// The config options that change THREAD_SIZE (which BTF does not
    /// record), by what they add to BTF: KASAN's report function (its
    /// hardware-tag mode, which keeps the stack size, adds
    /// `kasan_report_async`), and VMAP_STACK's `task_struct.stack_vm_area`.
    pub fn stack_config(&self) -> super::arch::StackConfig {
        super::arch::StackConfig {
            kasan_doubles: self.has_function("kasan_report")
                && !self.has_function("kasan_report_async"),
            vmap_stack: self.offset("task_struct", &["stack_vm_area"]).is_some(),
        }
    }

    /// Whether the kernel has a function of this name (BTF lists every
    /// function the kernel was built with).
    pub fn has_function(&self, name: &str) -> bool {
        self.types.get().values().any(|variant| match variant {
            TypeVariant::Func(f) => f.name().as_deref() == Some(name),
            _ => false,
        })
    }

    /// Whether the kernel defines a struct of this name.
    pub fn has_struct(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .and_then(|&id| self.types.from_id(id))
            .is_some_and(|variant| matches!(variant, TypeVariant::Struct(_)))
    }

    /// Field names of a trace event, from its `trace_event_raw_<event>`
    /// struct: the same list as its tracefs format file, without tracefs.
    pub fn trace_event_fields(&self, event: &str) -> Option<Vec<String>> {
        let id = *self.by_name.get(&format!("trace_event_raw_{event}"))?;
        let Some(TypeVariant::Struct(raw)) = self.types.from_id(id) else {
            return None;
        };
        Some(
            raw.member_list()
                .iter()
                .filter_map(|m| m.name())
                .filter(|n| n != "ent" && n != "__data")
                .map(|n| {
                    n.strip_prefix("__data_loc_")
                        .map(str::to_string)
                        .unwrap_or(n)
                })
                .collect(),
        )
    }

    /// Whether tp_btf on `mark_victim` gets the victim's task: the
    /// tracepoint's prototype is `(void *, struct task_struct *, uid_t)` since
    /// v6.9 (and its stable backports), `(void *, int pid)` before.
    pub fn mark_victim_passes_task(&self) -> bool {
        let Some(&typedef) = self.by_name.get("btf_trace_mark_victim") else {
            return false;
        };
        let proto = match self.resolve(typedef) {
            Some(TypeVariant::Ptr(ptr)) => self.resolve(*ptr.tid()),
            _ => None,
        };
        let Some(TypeVariant::FuncProto(proto)) = proto else {
            return false;
        };
        let params = proto.parameter_list();
        if params.len() != 3 {
            return false;
        }
        match self.resolve(params[1].tid()) {
            Some(TypeVariant::Ptr(ptr)) => {
                self.struct_name(*ptr.tid()).as_deref() == Some("task_struct")
            }
            _ => false,
        }
    }

    /// Resolves every field of the layout from where
    /// [`KernelLayout::FIELDS`] says it lives; what is missing stays
    /// unknown and the matching record fields become `null`.
    pub fn layout(&self) -> KernelLayout {
        let mut layout = KernelLayout::UNKNOWN;
        for field in KernelLayout::FIELDS {
            if let Some(value) = self.value_of(field.source) {
                (field.set)(&mut layout, value);
            }
        }
        self.rss_layout(&mut layout);
        layout.upid_size = self.struct_size("upid").unwrap_or(0);
        super::arch::apply(
            &mut layout,
            super::arch::Machine::running(),
            1 << super::plan::page_shift(),
            self.stack_config(),
        );
        layout
    }

    /// A field's value from the BTF; `None` for what is not there, or
    /// what the loader computes otherwise.
    fn value_of(&self, source: Source) -> Option<u32> {
        match source {
            Source::Member { type_name, paths } => self.offset(type_name, paths),
            Source::IndexedMember {
                type_name,
                array,
                index,
            } => {
                let index = self.enum_value(index)?;
                self.offset(type_name, &[&format!("{array}[{index}]")])
            }
            Source::Enumerator(name) => u32::try_from(self.enum_value(name)?).ok(),
            Source::Loader { .. } => None,
        }
    }

    /// `mm_struct.rss_stat` is `struct percpu_counter[NR_MM_COUNTERS]` since
    /// 6.2 and `struct mm_rss_stat { atomic_long_t count[]; }` before.
    fn rss_layout(&self, layout: &mut KernelLayout) {
        let indices = ["MM_ANONPAGES", "MM_FILEPAGES", "MM_SHMEMPAGES"].map(|n| self.enum_value(n));
        let [Some(anon), Some(file), Some(shmem)] = indices else {
            return;
        };
        let Some((member_type, _)) = self.member("mm_struct", "rss_stat") else {
            return;
        };
        let (kind, path) = match self.resolve(member_type) {
            Some(TypeVariant::Array(array)) => {
                let element = self.struct_name(*array.element_tid());
                if element.as_deref() != Some("percpu_counter") {
                    return;
                }
                (rss_kind::PERCPU_COUNTER, "rss_stat[")
            }
            Some(TypeVariant::Struct(_)) => (rss_kind::ATOMIC_LONG, "rss_stat.count["),
            _ => return,
        };
        let at = |index: i64| self.offset("mm_struct", &[&format!("{path}{index}]")]);
        let (Some(anon), Some(file), Some(shmem)) = (at(anon), at(file), at(shmem)) else {
            return;
        };
        layout.mm_rss_anon = anon;
        layout.mm_rss_file = file;
        layout.mm_rss_shmem = shmem;
        layout.mm_rss_swap = self
            .enum_value("MM_SWAPENTS")
            .and_then(at)
            .unwrap_or(OFFSET_UNKNOWN);
        layout.rss_kind = kind;
        if kind == rss_kind::PERCPU_COUNTER {
            layout.percpu_counter_count = self
                .offset("percpu_counter", &["count"])
                .unwrap_or(OFFSET_UNKNOWN);
            layout.percpu_counter_counters = self
                .offset("percpu_counter", &["counters"])
                .unwrap_or(OFFSET_UNKNOWN);
        }
    }
}

/// The offsets without which a capture path yields nothing useful, by name,
/// for `check` and error messages.
pub fn missing_for_task_reads(layout: &KernelLayout) -> Vec<&'static str> {
    KernelLayout::FIELDS
        .iter()
        .filter(|field| (field.get)(layout) == OFFSET_UNKNOWN)
        .filter_map(|field| field.required)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    //! Over BTF built from `testdata/kernel_types.c`, whose `_Static_assert`s
    //! pin every offset asserted here (regenerate with its script).
    use super::*;

    pub(crate) fn fixture(variant: &str) -> KernelTypes {
        let data: &[u8] = match variant {
            "new" => include_bytes!("testdata/kernel_types_new.btf"),
            _ => include_bytes!("testdata/kernel_types_old.btf"),
        };
        KernelTypes::from_bytes(data.to_vec(), Path::new(variant)).expect("the fixture parses")
    }

    #[test]
    fn task_and_signal_offsets_are_the_c_sources() {
        let l = fixture("new").layout();
        assert_eq!(
            (l.task_pid, l.task_tgid, l.task_comm, l.task_mm),
            (1036, 1040, 1072, 1024)
        );
        assert_eq!(
            (l.task_signal, l.task_cgroups, l.task_group_leader),
            (1064, 1088, 1048)
        );
        assert_eq!(
            (l.task_exit_code, l.task_stack, l.task_start_boottime),
            (1032, 24, 1056)
        );
        assert_eq!(l.signal_oom_score_adj, 64);
        assert_eq!(l.siginfo_code, 8);
        assert_eq!(l.bpf_array_pptrs, 256);
    }

    #[test]
    fn mm_offsets_with_percpu_counter_rss() {
        let l = fixture("new").layout();
        assert_eq!((l.mm_total_vm, l.mm_pgtables_bytes), (8, 16));
        assert_eq!(
            (l.mm_arg_start, l.mm_arg_end, l.mm_env_start, l.mm_env_end),
            (24, 32, 40, 48)
        );
        assert_eq!(l.rss_kind, rss_kind::PERCPU_COUNTER);
        assert_eq!(
            (l.mm_rss_anon, l.mm_rss_file, l.mm_rss_shmem),
            (80, 56, 128)
        );
        assert_eq!((l.percpu_counter_count, l.percpu_counter_counters), (8, 16));
    }

    #[test]
    fn mm_offsets_with_atomic_long_rss() {
        let l = fixture("old").layout();
        assert_eq!(l.rss_kind, rss_kind::ATOMIC_LONG);
        assert_eq!((l.mm_rss_anon, l.mm_rss_file, l.mm_rss_shmem), (64, 56, 80));
        assert_eq!(
            (l.percpu_counter_count, l.percpu_counter_counters),
            (OFFSET_UNKNOWN, OFFSET_UNKNOWN)
        );
    }

    #[test]
    fn cgroup_offsets_and_the_enum_indexed_subsys_slot() {
        let l = fixture("new").layout();
        // subsys[memory_cgrp_id]: memory_cgrp_id is 4 in the fixture.
        assert_eq!(l.css_set_memory_subsys, 40);
        assert_eq!((l.css_cgroup, l.css_parent), (0, 16));
        assert_eq!((l.cgroup_kn, l.cgroup_level), (8, 4));
        assert_eq!((l.kn_parent, l.kn_name, l.kn_id), (8, 16, 72));
    }

    #[test]
    fn kernfs_parent_is_found_under_its_old_name_too() {
        let old = fixture("old");
        assert_eq!(old.offset("kernfs_node", &["__parent"]), None);
        assert_eq!(old.layout().kn_parent, 8);
        assert_eq!(fixture("new").offset("kernfs_node", &["parent"]), None);
    }

    #[test]
    fn oom_control_and_mem_cgroup_offsets() {
        let l = fixture("new").layout();
        assert_eq!(
            (l.oc_memcg, l.oc_gfp_mask, l.oc_order, l.oc_totalpages),
            (16, 24, 28, 32)
        );
        assert_eq!(
            (l.oc_chosen, l.oc_chosen_points, l.oc_constraint),
            (40, 48, 56)
        );
        assert_eq!(
            (l.memcg_css, l.memcg_usage, l.memcg_max, l.memcg_watermark),
            (0, 24, 32, 40)
        );
        // memory_events[MEMCG_OOM_KILL]: MEMCG_OOM_KILL is 4.
        assert_eq!((l.memcg_failcnt, l.memcg_oom_kill_events), (48, 96));
    }

    #[test]
    fn pid_namespace_and_oom_group_offsets() {
        let l = fixture("new").layout();
        assert_eq!(l.task_thread_pid, 1096);
        assert_eq!((l.pid_level, l.pid_numbers), (4, 48));
        assert_eq!((l.upid_nr, l.upid_size), (0, 16));
        assert_eq!(l.memcg_oom_group, 56);
        // A kernel without the member: unknown, so the record says null.
        assert_eq!(fixture("old").layout().memcg_oom_group, OFFSET_UNKNOWN);
    }

    #[test]
    fn enum_values_come_from_the_btf() {
        let new = fixture("new").layout();
        assert_eq!(
            (
                new.kernel_constraint_none,
                new.kernel_constraint_cpuset,
                new.kernel_constraint_memory_policy,
                new.kernel_constraint_memcg
            ),
            (0, 1, 2, 3)
        );
        assert_eq!(
            (new.kernel_signal_delivered, new.kernel_signal_lose_info),
            (0, 4)
        );
        // The old fixture renumbers both enums.
        let old = fixture("old").layout();
        assert_eq!(
            (
                old.kernel_constraint_none,
                old.kernel_constraint_cpuset,
                old.kernel_constraint_memory_policy,
                old.kernel_constraint_memcg
            ),
            (10, 11, 12, 13)
        );
        assert_eq!(
            (old.kernel_signal_delivered, old.kernel_signal_lose_info),
            (20, 24)
        );
        assert_eq!(fixture("new").enum_value("MEMCG_OOM_KILL"), Some(4));
        assert_eq!(fixture("new").enum_value("NO_SUCH_ENUMERATOR"), None);
    }

    #[test]
    fn mark_victim_passes_the_task_only_with_the_new_prototype() {
        assert!(fixture("new").mark_victim_passes_task());
        assert!(!fixture("old").mark_victim_passes_task());
    }

    #[test]
    fn functions_and_trace_event_fields() {
        let new = fixture("new");
        assert!(new.has_function("oom_kill_process"));
        assert!(!new.has_function("kasan_report"));
        assert_eq!(new.layout().thread_size, 16 << 10);
        assert_eq!(
            new.trace_event_fields("mark_victim"),
            Some(vec!["pid".into(), "comm".into(), "total_vm".into()])
        );
        let old = fixture("old");
        assert!(!old.has_function("oom_kill_process"));
        assert_eq!(
            old.trace_event_fields("mark_victim"),
            Some(vec!["pid".to_string()])
        );
    }

    #[test]
    fn tracefs_fields_stay_unknown_and_nothing_required_is_missing() {
        let mut l = fixture("new").layout();
        assert_eq!((l.tp_pid, l.tp_comm), (OFFSET_UNKNOWN, OFFSET_UNKNOWN));
        assert_eq!(missing_for_task_reads(&l), Vec::<&str>::new());
        l.kn_parent = OFFSET_UNKNOWN;
        l.mm_rss_anon = OFFSET_UNKNOWN;
        assert_eq!(
            missing_for_task_reads(&l),
            vec!["mm_struct.rss_stat", "kernfs_node.parent"]
        );
    }
}
