//! The OOM kill record: victim, trigger, the OOM killer's context.

use oomtrace_common::{OomContext, OomKillRecord, ReclaimSnapshot, constraint, oom_context, valid};

use super::{comm, memcg};
use crate::capture::CapturePath;

/// Resident memory by kind, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
}

/// A memory cgroup as captured: its id, and its path when the kernel side
/// could read all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memcg {
    pub id: u64,
    /// Raw path bytes relative to the hierarchy root (`/a/b`).
    pub path: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub comm: Option<Vec<u8>>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i16>,
    pub total_vm_bytes: Option<u64>,
    /// The kernel's counters as `get_mm_counter()` reads them.
    pub rss: Option<Rss>,
    /// The same counters with every CPU's pending delta added.
    pub rss_exact: Option<Rss>,
    pub pgtables_bytes: Option<u64>,
    /// When the victim process started (boot clock, ns).
    pub start_boot_ns: Option<u64>,
    pub memcg: Option<Memcg>,
    /// Its pid in its own pid namespace, and that namespace's level (0:
    /// the host's).
    pub ns_pid: Option<u32>,
    pub pid_ns_level: Option<u32>,
    /// Host pid of its pid namespace's init (pid 1), below the host's.
    pub ns_init_tgid: Option<u32>,
    /// Its memcg's own memory.oom.group flag (`mem_cgroup.oom_group`).
    pub memcg_oom_group: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub pid: u32,
    pub tgid: u32,
    pub comm: Option<Vec<u8>>,
    pub memcg: Option<Memcg>,
    pub is_victim: bool,
}

pub use crate::report::Constraint;

/// oomtrace's wire value for the constraint (the eBPF side translated the
/// kernel's `enum oom_constraint`, read from BTF, into it).
fn constraint_from_wire(value: u32) -> Option<Constraint> {
    match value {
        constraint::NONE => Some(Constraint::Global),
        constraint::CPUSET => Some(Constraint::Cpuset),
        constraint::MEMORY_POLICY => Some(Constraint::Mempolicy),
        constraint::MEMCG => Some(Constraint::Memcg),
        _ => None,
    }
}

/// The memory cgroup whose limit was hit, at the kill. Counters in pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomMemcg {
    pub id: u64,
    /// Depth below the hierarchy root.
    pub level: u32,
    /// It is the victim's memcg or an ancestor: its path is the first
    /// `level` components of the victim's.
    pub contains_victim: bool,
    /// Page counter and OOM-kill count, when they could be read.
    pub counters: Option<MemcgCounters>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemcgCounters {
    pub usage_pages: u64,
    pub limit_pages: u64,
    pub watermark_pages: u64,
    pub failcnt: u64,
    pub oom_kills: u64,
}

/// The OOM killer's own context for the kill (its `struct oom_control`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomControl {
    pub constraint: Option<Constraint>,
    pub gfp_mask: u32,
    pub order: i32,
    pub totalpages: u64,
    pub chosen_points: i64,
    pub memcg: Option<OomMemcg>,
    /// Whether the kernel kills the victim's whole memory.oom.group: the
    /// level of the group's memcg (`Some(None)`: no group kill), as
    /// `mem_cgroup_get_oom_group()` finds it; `None` when not read.
    pub oom_group: Option<Option<u32>>,
    /// The kill this victim belongs to (read at `oom_kill_process()`).
    pub incident: Option<IncidentRef>,
}

/// A victim's place in its OOM incident: the chosen victim, or a member of
/// its memory.oom.group killed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentRef {
    /// Boot time at `oom_kill_process()` entry.
    pub id: u64,
    /// 1 for the chosen victim, then 2, 3, ... for group members.
    pub seq: u32,
    pub chosen_tgid: u32,
    pub group_member: bool,
}

impl OomControl {
    /// A memory.oom.group member killed after the chosen victim (known
    /// where fentry gives the incident).
    pub fn is_group_member(&self) -> bool {
        self.incident.is_some_and(|i| i.group_member)
    }

    fn from_record(raw: &OomContext) -> Option<OomControl> {
        let has = |bit: u32| raw.flags & bit != 0;
        if !has(oom_context::FOUND) {
            return None;
        }
        let memcg = has(oom_context::MEMCG).then(|| OomMemcg {
            id: raw.memcg_id,
            level: raw.memcg_level,
            contains_victim: has(oom_context::MEMCG_CONTAINS_VICTIM),
            counters: has(oom_context::MEMCG_COUNTERS).then_some(MemcgCounters {
                usage_pages: raw.memcg_usage_pages,
                limit_pages: raw.memcg_limit_pages,
                watermark_pages: raw.memcg_watermark_pages,
                failcnt: raw.memcg_failcnt,
                oom_kills: raw.memcg_oom_kills,
            }),
        });
        Some(OomControl {
            constraint: constraint_from_wire(raw.constraint),
            gfp_mask: raw.gfp_mask,
            order: raw.order,
            totalpages: raw.totalpages,
            chosen_points: raw.chosen_points,
            memcg,
            oom_group: has(oom_context::OOM_GROUP_READ)
                .then(|| has(oom_context::OOM_GROUP).then_some(raw.oom_group_level)),
            incident: has(oom_context::INCIDENT).then_some(IncidentRef {
                id: raw.incident_ns,
                seq: raw.incident_seq,
                chosen_tgid: raw.chosen_tgid,
                group_member: has(oom_context::GROUP_MEMBER),
            }),
        })
    }
}

/// One OOM kill (one `oom:mark_victim` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    pub boot_ns: u64,
    pub capture: Option<CapturePath>,
    pub victim: Victim,
    pub trigger: Trigger,
    /// `None` when the kill's oom_control could not be found.
    pub oom: Option<OomControl>,
    /// Reclaim history at the kill of the victim's, the trigger's and the
    /// OOM memcg, when tracked.
    pub victim_reclaim: Option<Reclaim>,
    pub trigger_reclaim: Option<Reclaim>,
    pub oom_reclaim: Option<Reclaim>,
}

impl OomKill {
    /// Whether the kernel kills the victim's memory.oom.group, from what
    /// the kernel side read: the walk up to the OOM domain (the stack
    /// search and fentry), else the victim's memcg's own flag when set (the
    /// walk starts there); `None` when neither says.
    pub fn group_kill(&self) -> Option<bool> {
        match self.oom.as_ref().and_then(|o| o.oom_group) {
            Some(level) => Some(level.is_some()),
            None => self.victim.memcg_oom_group.filter(|set| *set),
        }
    }

    pub(super) fn from_record(record: &OomKillRecord) -> OomKill {
        let has = |bit: u32| record.valid & bit != 0;
        let when = |bit: u32, value: u64| has(bit).then_some(value);
        let victim = Victim {
            pid: has(valid::VICTIM_PID).then_some(record.victim.pid),
            tgid: has(valid::VICTIM_TGID).then_some(record.victim.tgid),
            comm: has(valid::VICTIM_COMM).then(|| comm(&record.victim)),
            uid: has(valid::VICTIM_UID).then_some(record.victim_uid),
            oom_score_adj: has(valid::VICTIM_OOM_SCORE_ADJ).then_some(record.victim_oom_score_adj),
            total_vm_bytes: when(valid::VICTIM_TOTAL_VM, record.victim_total_vm_bytes),
            rss: has(valid::VICTIM_RSS).then_some(Rss {
                anon: record.victim_rss_anon_bytes,
                file: record.victim_rss_file_bytes,
                shmem: record.victim_rss_shmem_bytes,
            }),
            rss_exact: has(valid::VICTIM_RSS_EXACT).then_some(Rss {
                anon: record.victim_rss_anon_exact_bytes,
                file: record.victim_rss_file_exact_bytes,
                shmem: record.victim_rss_shmem_exact_bytes,
            }),
            pgtables_bytes: when(valid::VICTIM_PGTABLES, record.victim_pgtables_bytes),
            start_boot_ns: when(valid::VICTIM_START, record.victim_start_ns),
            memcg: has(valid::VICTIM_MEMCG).then(|| memcg(&record.victim.memcg)),
            ns_pid: has(valid::VICTIM_NS_PID).then_some(record.victim_ns_pid),
            pid_ns_level: has(valid::VICTIM_NS_PID).then_some(record.victim_pid_ns_level),
            ns_init_tgid: has(valid::VICTIM_NS_INIT).then_some(record.victim_ns_init_tgid),
            memcg_oom_group: has(valid::VICTIM_MEMCG_OOM_GROUP_READ)
                .then_some(has(valid::VICTIM_MEMCG_OOM_GROUP)),
        };
        let trigger = Trigger {
            pid: record.trigger.pid,
            tgid: record.trigger.tgid,
            comm: has(valid::TRIGGER_COMM).then(|| comm(&record.trigger)),
            memcg: has(valid::TRIGGER_MEMCG).then(|| memcg(&record.trigger.memcg)),
            is_victim: has(valid::TRIGGER_IS_VICTIM),
        };
        OomKill {
            boot_ns: record.boot_ns,
            // tp_btf whose OOM context came from fentry on oom_kill_process.
            capture: match CapturePath::from_record(record.capture) {
                Some(CapturePath::TpBtf) if record.oom.flags & oom_context::INCIDENT != 0 => {
                    Some(CapturePath::Fentry)
                }
                other => other,
            },
            victim,
            trigger,
            oom: OomControl::from_record(&record.oom),
            victim_reclaim: taken(&record.victim_reclaim),
            trigger_reclaim: taken(&record.trigger_reclaim),
            oom_reclaim: taken(&record.oom_reclaim),
        }
    }
}

/// A memcg's charge-path reclaim counters at the kill: totals since
/// oomtrace started watching it, and the last ten seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaim {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_pages: u64,
    pub window_stalls: u64,
    pub window_stall_ns: u64,
    pub window_reclaimed_pages: u64,
}

fn taken(s: &ReclaimSnapshot) -> Option<Reclaim> {
    (s.taken == 1).then_some(Reclaim {
        stalls: s.stalls,
        stall_ns: s.stall_ns,
        max_stall_ns: s.max_stall_ns,
        reclaimed_pages: s.reclaimed_pages,
        window_stalls: s.window_stalls,
        window_stall_ns: s.window_stall_ns,
        window_reclaimed_pages: s.window_reclaimed_pages,
    })
}

#[cfg(test)]
mod tests {
    use oomtrace_common::{CGROUP_MAX_DEPTH, CgroupRef, TASK_COMM_LEN, capture, cgroup_flags};

    use super::{super::testing::*, *};
    use crate::decode::Memcg;

    fn empty_record() -> OomKillRecord {
        zeroed()
    }

    /// Stores `path` the way the kernel side does: names leaf first.
    fn set_path(raw: &mut CgroupRef, id: u64, path: &[u8]) {
        raw.id = id;
        let names: Vec<&[u8]> = path
            .split(|b| *b == b'/')
            .filter(|n| !n.is_empty())
            .collect();
        raw.level = names.len() as u32;
        raw.depth = names.len() as u32;
        for (slot, name) in raw.names.iter_mut().zip(names.iter().rev()) {
            slot.fill(0);
            slot[..name.len()].copy_from_slice(name);
        }
    }

    #[test]
    fn a_full_tp_btf_record_decodes_every_field() {
        let mut record = empty_record();
        record.boot_ns = 123_456_789;
        record.capture = capture::TP_BTF;
        record.valid = valid::VICTIM_PID
            | valid::VICTIM_TGID
            | valid::VICTIM_COMM
            | valid::VICTIM_UID
            | valid::VICTIM_OOM_SCORE_ADJ
            | valid::VICTIM_TOTAL_VM
            | valid::VICTIM_RSS
            | valid::VICTIM_RSS_EXACT
            | valid::VICTIM_PGTABLES
            | valid::VICTIM_MEMCG
            | valid::TRIGGER_COMM
            | valid::TRIGGER_MEMCG;
        record.victim.pid = 41;
        record.victim.tgid = 40;
        record.victim.comm[..4].copy_from_slice(b"java");
        record.victim_uid = 1000;
        record.victim_oom_score_adj = -998;
        record.victim_total_vm_bytes = 1 << 30;
        record.victim_rss_anon_bytes = 4096;
        record.victim_rss_file_bytes = 8192;
        record.victim_rss_shmem_bytes = 0;
        record.victim_rss_anon_exact_bytes = 3 * 4096;
        record.victim_pgtables_bytes = 65536;
        set_path(&mut record.victim.memcg, 77, b"/kubepods/pod1/c1");
        record.trigger.pid = 50;
        record.trigger.tgid = 50;
        record.trigger.comm[..2].copy_from_slice(b"sh");
        set_path(&mut record.trigger.memcg, 78, b"/kubepods/pod1/c2");

        let kill = kill_from(&record);
        assert_eq!(kill.boot_ns, 123_456_789);
        assert_eq!(kill.capture, Some(CapturePath::TpBtf));
        assert_eq!(kill.victim.pid, Some(41));
        assert_eq!(kill.victim.tgid, Some(40));
        assert_eq!(kill.victim.comm.as_deref(), Some(&b"java"[..]));
        assert_eq!(kill.victim.uid, Some(1000));
        assert_eq!(kill.victim.oom_score_adj, Some(-998));
        assert_eq!(kill.victim.total_vm_bytes, Some(1 << 30));
        assert_eq!(
            kill.victim.rss,
            Some(Rss {
                anon: 4096,
                file: 8192,
                shmem: 0
            })
        );
        assert_eq!(kill.victim.rss_exact.map(|r| r.anon), Some(3 * 4096));
        assert_eq!(kill.victim.pgtables_bytes, Some(65536));
        let memcg = kill.victim.memcg.expect("victim memcg");
        assert_eq!(
            (memcg.id, memcg.path.as_deref()),
            (77, Some(&b"/kubepods/pod1/c1"[..]))
        );
        assert_eq!(kill.trigger.pid, 50);
        assert!(!kill.trigger.is_victim);
        assert_eq!(kill.trigger.comm.as_deref(), Some(&b"sh"[..]));
        assert_eq!(
            kill.trigger.memcg.and_then(|m| m.path),
            Some(b"/kubepods/pod1/c2".to_vec())
        );
    }

    /// Through the ring buffer's entry reader, as the stream gets it.
    fn kill_from(record: &OomKillRecord) -> OomKill {
        let mut tagged = *record;
        tagged.kind = oomtrace_common::kind::OOM_KILL;
        match super::super::entry(&bytes_of(&tagged)).map(|d| d.event) {
            Ok(super::super::Event::Kill(kill, _)) => *kill,
            _ => panic!("a kill record"),
        }
    }

    #[test]
    fn values_without_their_valid_bit_are_none_not_zero() {
        let mut record = empty_record();
        record.capture = capture::TRACEPOINT;
        record.valid = valid::VICTIM_PID;
        record.victim.pid = 7;
        let kill = OomKill::from_record(&record);
        assert_eq!(kill.capture, Some(CapturePath::Tracepoint));
        assert_eq!(kill.victim.pid, Some(7));
        assert_eq!(kill.victim.tgid, None);
        assert_eq!(kill.victim.comm, None);
        assert_eq!(kill.victim.uid, None);
        assert_eq!(kill.victim.oom_score_adj, None);
        assert_eq!(kill.victim.total_vm_bytes, None);
        assert_eq!(kill.victim.rss, None);
        assert_eq!(kill.victim.rss_exact, None);
        assert_eq!(kill.victim.pgtables_bytes, None);
        assert_eq!(kill.victim.memcg, None);
        assert_eq!(kill.trigger.memcg, None);
        assert_eq!(
            (
                kill.victim.ns_pid,
                kill.victim.pid_ns_level,
                kill.victim.memcg_oom_group
            ),
            (None, None, None)
        );
    }

    #[test]
    fn the_namespace_pid_and_oom_group_flags_decode_with_their_bits() {
        let mut record = empty_record();
        record.capture = capture::TP_BTF;
        record.valid = valid::VICTIM_NS_PID | valid::VICTIM_MEMCG_OOM_GROUP_READ;
        record.victim_ns_pid = 1;
        record.victim_pid_ns_level = 2;
        record.victim_ns_init_tgid = 4000;
        let kill = OomKill::from_record(&record);
        assert_eq!(
            (
                kill.victim.ns_pid,
                kill.victim.pid_ns_level,
                kill.victim.memcg_oom_group
            ),
            (Some(1), Some(2), Some(false)),
            "read and not set is false, not null"
        );
        assert_eq!(kill.victim.ns_init_tgid, None, "no bit: not read");
        record.valid |= valid::VICTIM_NS_INIT;
        assert_eq!(
            OomKill::from_record(&record).victim.ns_init_tgid,
            Some(4000)
        );
        record.valid |= valid::VICTIM_MEMCG_OOM_GROUP;
        assert_eq!(
            OomKill::from_record(&record).victim.memcg_oom_group,
            Some(true)
        );

        record.oom.flags = oom_context::FOUND | oom_context::MEMCG;
        record.oom.oom_group_level = 1;
        let oom = |r: &OomKillRecord| OomKill::from_record(r).oom.and_then(|o| o.oom_group);
        assert_eq!(oom(&record), None, "not walked: unknown");
        record.oom.flags |= oom_context::OOM_GROUP_READ;
        assert_eq!(oom(&record), Some(None), "walked, none set");
        record.oom.flags |= oom_context::OOM_GROUP;
        assert_eq!(oom(&record), Some(Some(1)));
    }

    #[test]
    fn truncated_or_unreadable_paths_keep_the_id_but_no_path() {
        for flags in [cgroup_flags::PATH_TRUNCATED, cgroup_flags::PATH_UNREADABLE] {
            let mut raw = empty_record().victim.memcg;
            set_path(&mut raw, 9, b"/a");
            raw.flags = flags;
            assert_eq!(memcg(&raw), Memcg { id: 9, path: None });
        }
        let mut raw = empty_record().victim.memcg;
        set_path(&mut raw, 1, b"/a/b/c");
        raw.depth = 2;
        assert_eq!(
            memcg(&raw).path,
            None,
            "fewer names than levels is not a path"
        );
        raw.depth = CGROUP_MAX_DEPTH + 1;
        raw.level = CGROUP_MAX_DEPTH + 1;
        assert_eq!(
            memcg(&raw).path,
            None,
            "a depth past the slots is not trusted"
        );
    }

    #[test]
    fn names_are_joined_root_first() {
        let mut raw = empty_record().victim.memcg;
        raw.level = 2;
        raw.depth = 2;
        raw.names[0][..9].copy_from_slice(b"c1.scope\0");
        raw.names[1][..4].copy_from_slice(b"pod\0");
        assert_eq!(memcg(&raw).path.as_deref(), Some(&b"/pod/c1.scope"[..]));
    }

    #[test]
    fn the_root_cgroup_is_a_slash() {
        let mut raw = empty_record().victim.memcg;
        set_path(&mut raw, 1, b"/");
        assert_eq!(memcg(&raw).path.as_deref(), Some(&b"/"[..]));
    }

    #[test]
    fn comm_stops_at_nul_and_keeps_any_bytes() {
        let mut task = empty_record().victim;
        task.comm[..5].copy_from_slice(b"a\"\xff\n\x01");
        assert_eq!(comm(&task), b"a\"\xff\n\x01");
        task.comm = [b'x'; TASK_COMM_LEN];
        assert_eq!(comm(&task).len(), TASK_COMM_LEN);
    }

    #[test]
    fn the_oom_control_decodes_only_when_found() {
        let mut record = empty_record();
        record.oom.constraint = constraint::MEMCG;
        record.oom.memcg_id = 9;
        assert_eq!(
            OomKill::from_record(&record).oom,
            None,
            "not found: no context at all"
        );

        record.oom.flags = oom_context::FOUND
            | oom_context::MEMCG
            | oom_context::MEMCG_CONTAINS_VICTIM
            | oom_context::MEMCG_COUNTERS;
        record.oom.gfp_mask = 0xcc0;
        record.oom.order = 0;
        record.oom.totalpages = 16384;
        record.oom.chosen_points = 16778;
        record.oom.memcg_level = 1;
        record.oom.memcg_usage_pages = 16384;
        record.oom.memcg_limit_pages = 16384;
        record.oom.memcg_watermark_pages = 16384;
        record.oom.memcg_failcnt = 1181;
        record.oom.memcg_oom_kills = 3;
        let oom = OomKill::from_record(&record).oom.expect("found");
        assert_eq!(oom.constraint, Some(Constraint::Memcg));
        assert_eq!(
            (oom.gfp_mask, oom.order, oom.totalpages, oom.chosen_points),
            (0xcc0, 0, 16384, 16778)
        );
        let memcg = oom.memcg.expect("memcg OOM");
        assert_eq!((memcg.id, memcg.level, memcg.contains_victim), (9, 1, true));
        assert_eq!(
            memcg.counters.map(|c| (c.failcnt, c.oom_kills)),
            Some((1181, 3))
        );

        record.oom.flags = oom_context::FOUND;
        record.oom.constraint = constraint::NONE;
        let global = OomKill::from_record(&record).oom.expect("found");
        assert_eq!(
            (global.constraint, global.memcg),
            (Some(Constraint::Global), None)
        );
        record.oom.constraint = constraint::UNKNOWN;
        assert_eq!(
            OomKill::from_record(&record).oom.and_then(|o| o.constraint),
            None
        );
    }

    #[test]
    fn a_context_read_by_fentry_makes_the_record_fentry_and_places_it_in_its_incident() {
        let mut record = empty_record();
        record.capture = capture::TP_BTF;
        record.oom.flags = oom_context::FOUND | oom_context::MEMCG;
        let kill = OomKill::from_record(&record);
        assert_eq!(kill.capture, Some(CapturePath::TpBtf), "found on the stack");
        assert_eq!(kill.oom.and_then(|o| o.incident), None);

        record.oom.flags |= oom_context::INCIDENT | oom_context::GROUP_MEMBER;
        record.oom.incident_ns = 14_533_472_050;
        record.oom.incident_seq = 2;
        record.oom.chosen_tgid = 170;
        let kill = OomKill::from_record(&record);
        assert_eq!(kill.capture, Some(CapturePath::Fentry));
        assert_eq!(
            kill.oom.and_then(|o| o.incident),
            Some(IncidentRef {
                id: 14_533_472_050,
                seq: 2,
                chosen_tgid: 170,
                group_member: true,
            })
        );

        record.capture = capture::TRACEPOINT;
        assert_eq!(
            OomKill::from_record(&record).capture,
            Some(CapturePath::Tracepoint)
        );
    }
}
