//! Decoded kill -> report: wall-clock time, host, printable text, and
//! cgroup paths the kernel side could not capture.

pub mod candidates;
pub mod cgroup;
pub mod clock;
pub mod fate;
pub mod history;
mod memcg;
pub mod names;
pub mod pods;
pub mod reclaim;
pub mod runtime;
pub mod signal;
pub mod trend;
pub mod verdict;
pub mod workload;

use std::{collections::HashMap, path::PathBuf};

use crate::{
    capture::CapturePath,
    decode::{
        Cmdline, Constraint, KernelCandidates, KillCause, OomControl, OomKill, Outcome, Pressure,
        Sigkill, Task,
    },
    report::{
        CandidatesReport, Capture, CapturedAt, Envelope, IncidentBasis, IncidentReport, K8sLevel,
        KillReport, KillerReport, LostReport, LostStage, MemcgReport, OomControlReport,
        OomMemcgReport, OutcomeReport, OutcomeVictim, PressureReport, RecordType, SentBy,
        SigkillReport, SigtermReport, SigtermSender, TaskReport, TriggerReport, VictimReport,
        kernel_text,
    },
};

use self::{
    candidates::Domain, cgroup::MemoryHierarchy, history::History, pods::PodLogs,
    reclaim::ReclaimHistory,
};

/// What the user chose about enrichment.
pub struct Settings {
    /// Rows in each kill's candidate table (0: none).
    pub candidates: usize,
    /// Where the kubelet keeps `pods/` and `containers/` logs.
    pub kubelet_log_dir: PathBuf,
    /// Kills earlier runs stored, oldest first: the history goes on.
    pub past_kills: Vec<(String, history::Kill)>,
    /// The store whose usage samples give each kill its trend.
    pub trend_store: Option<PathBuf>,
    /// Where Docker and podman answer about their containers.
    pub containers: names::Sources,
}

/// Kernel candidate tables kept for kills still to come: one per CPU
/// killing at once is plenty.
const KERNEL_TABLES_KEPT: usize = 8;

/// A table is its kill's if taken this close to the kill record (the same
/// tracepoint call: microseconds).
const KERNEL_TABLE_MAX_AGE_NS: u64 = 1_000_000_000;

pub struct Enricher {
    host: String,
    memory: Option<MemoryHierarchy>,
    page_size: u64,
    /// `None` when reclaim is not tracked: the history is then unknown.
    reclaim: Option<ReclaimHistory>,
    /// Rows of the candidate table; 0 turns it off.
    candidates: usize,
    /// The last OOM domains' cgroup directories, kept open.
    dirs: candidates::Dirs,
    /// Candidate tables the kernel side took, for the kill records they
    /// follow (read ahead for them by the stream).
    kernel_tables: std::collections::VecDeque<KernelCandidates>,
    /// Files read for a record, closed once the records of its event are
    /// written ([`Enricher::after_line`]).
    close_later: Vec<std::fs::File>,
    pod_logs: PodLogs,
    names: names::ContainerNames,
    history: History,
    trend: Option<trend::TrendSource>,
}

impl Enricher {
    pub fn new(reclaim_tracked: bool, settings: Settings) -> Enricher {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page_size = u64::try_from(page_size).unwrap_or(4096);
        let mut history = History::new(clock::epoch_ns(std::time::SystemTime::now()));
        for (workload, kill) in settings.past_kills {
            history.replay(workload, kill);
        }
        Enricher {
            host: hostname(),
            memory: MemoryHierarchy::find(),
            page_size,
            reclaim: reclaim_tracked.then(ReclaimHistory::default),
            candidates: settings.candidates,
            dirs: candidates::Dirs::default(),
            kernel_tables: std::collections::VecDeque::new(),
            close_later: Vec::new(),
            pod_logs: PodLogs::new(settings.kubelet_log_dir),
            names: names::ContainerNames::new(settings.containers),
            history,
            trend: settings.trend_store.map(trend::TrendSource::new),
        }
    }

    /// `cmdline`: the victim's command line, when it came with the kill.
    pub fn report(&mut self, kill: &OomKill, cmdline: Option<&Cmdline>) -> KillReport {
        let victim = &kill.victim;
        let wall = clock::wall_time(kill.boot_ns);
        let time = clock::rfc3339(wall);
        let oom = kill.oom.as_ref();
        // Reclaim history of every memcg the record names, once each.
        let mut reclaim = HashMap::new();
        if let Some(history) = self.reclaim.as_mut() {
            let named = [
                (victim.memcg.as_ref().map(|m| m.id), kill.victim_reclaim),
                (
                    kill.trigger.memcg.as_ref().map(|m| m.id),
                    kill.trigger_reclaim,
                ),
                (
                    oom.and_then(|o| o.memcg.as_ref()).map(|m| m.id),
                    kill.oom_reclaim,
                ),
            ];
            for (id, snapshot) in named {
                if let (Some(id), Some(snapshot)) = (id, snapshot) {
                    history.report(id, &snapshot, self.page_size, &mut reclaim);
                }
            }
        }
        let victim_memcg = victim.memcg.as_ref().map(|m| self.memcg(m, &reclaim));
        let oom_memcg = oom
            .and_then(|o| o.memcg.as_ref())
            .map(|m| self.oom_memcg(m, victim_memcg.as_ref(), &reclaim));
        let kernel_table = self.kernel_table_of(kill);
        let candidates =
            oom.and_then(|o| self.candidates(kill, o, oom_memcg.as_ref(), kernel_table));
        let comm = victim.comm.as_deref().map(kernel_text);
        let age_ns = victim
            .start_boot_ns
            .map(|start| kill.boot_ns.saturating_sub(start));
        // The limit's cgroup over the victim's life (a machine-wide OOM has
        // no limit's cgroup to have sampled).
        let kill_ms = i64::try_from(clock::epoch_ns(wall) / 1_000_000).unwrap_or(i64::MAX);
        let start_ms = age_ns.map(|age| kill_ms - i64::try_from(age / 1_000_000).unwrap_or(0));
        let trend = match (
            self.trend.as_mut(),
            oom_memcg.as_ref().and_then(|m| m.path.as_deref()),
        ) {
            (Some(source), Some(path)) => source.read(path, start_ms, kill_ms),
            _ => None,
        };
        let history =
            workload_key(oom_memcg.as_ref(), victim_memcg.as_ref(), comm.as_deref()).map(|key| {
                let reclaim = oom_memcg.as_ref().and_then(|m| m.reclaim);
                self.history.record(
                    key,
                    history::Kill {
                        at_ns: clock::epoch_ns(wall),
                        boot_ns: Some(kill.boot_ns),
                        age_ns,
                        stalls_last_10s: reclaim.map(|r| r.last_10s.stalls),
                        stalls_total: reclaim.map(|r| r.total.stalls),
                    },
                    trend.as_ref().map(|(summary, _)| summary),
                )
            });
        // The trigger is most often the victim itself, or in its cgroup.
        let trigger_memcg = kill.trigger.memcg.as_ref().map(|m| {
            match victim_memcg.as_ref().filter(|v| v.id == m.id) {
                Some(same) => same.clone(),
                None => self.memcg(m, &reclaim),
            }
        });
        let kubelet_adj = victim_memcg
            .as_ref()
            .and_then(|m| m.k8s.as_ref())
            .and_then(|k| k.qos)
            .zip(victim.oom_score_adj)
            .map(|(qos, adj)| verdict::kubelet_adj(qos, adj));
        let mut report = KillReport {
            envelope: Envelope::new(RecordType::OomKill, time, kill.boot_ns, self.host.clone()),
            capture: kill.capture.map(capture),
            victim: VictimReport {
                pid: victim.pid,
                tgid: victim.tgid,
                comm,
                uid: victim.uid,
                oom_score_adj: victim.oom_score_adj,
                total_vm_bytes: victim.total_vm_bytes,
                rss_anon_bytes: victim.rss.map(|r| r.anon),
                rss_file_bytes: victim.rss.map(|r| r.file),
                rss_shmem_bytes: victim.rss.map(|r| r.shmem),
                rss_anon_exact_bytes: victim.rss_exact.map(|r| r.anon),
                rss_file_exact_bytes: victim.rss_exact.map(|r| r.file),
                rss_shmem_exact_bytes: victim.rss_exact.map(|r| r.shmem),
                pgtables_bytes: victim.pgtables_bytes,
                memcg: victim_memcg.clone(),
                runtime: None,
                start_time: victim
                    .start_boot_ns
                    .map(|ns| clock::rfc3339(clock::wall_time(ns))),
                age_ns,
                kubelet_adj,
                ns_pid: victim.ns_pid,
                pid_ns_level: victim.pid_ns_level,
                memcg_oom_group: victim.memcg_oom_group,
            },
            trigger: TriggerReport {
                pid: kill.trigger.pid,
                tgid: kill.trigger.tgid,
                comm: kill.trigger.comm.as_deref().map(kernel_text),
                memcg: trigger_memcg,
                is_victim: kill.trigger.is_victim,
            },
            constraint: oom.and_then(|o| o.constraint),
            oom_memcg,
            oom_control: oom.map(|o| self.oom_control(o)),
            candidates,
            history,
            incident: oom.and_then(|o| o.incident).map(|i| IncidentReport {
                id: i.id,
                victims: None,
                seq: i.seq,
                chosen_pid: i.chosen_tgid,
                group_member: i.group_member,
                basis: Some(IncidentBasis::OomKillProcess),
            }),
            fate: Some(self.fate(kill, victim_memcg.as_ref())),
            trend: trend.map(|(_, report)| report),
        };
        if let Some(cmdline) = cmdline {
            attach_runtime(&mut report, cmdline, CapturedAt::Kill);
        }
        report
    }

    /// A candidate table from the kernel side, for the kill record it
    /// follows.
    pub fn kernel_candidates(&mut self, table: KernelCandidates) {
        // Tables whose kill never came (its record lost) are dropped.
        if self.kernel_tables.len() >= KERNEL_TABLES_KEPT {
            self.kernel_tables.pop_front();
        }
        self.kernel_tables.push_back(table);
    }

    /// Whether a table for the kill of `victim` (thread id) is waiting.
    pub fn has_kernel_table(&self, victim: u32) -> bool {
        self.kernel_tables.iter().any(|t| t.victim_pid == victim)
    }

    /// The kernel side's table for `kill`, taken out of those waiting.
    fn kernel_table_of(&mut self, kill: &OomKill) -> Option<KernelCandidates> {
        let pid = kill.victim.pid?;
        let at = self.kernel_tables.iter().position(|t| {
            t.victim_pid == pid && kill.boot_ns.abs_diff(t.boot_ns) < KERNEL_TABLE_MAX_AGE_NS
        })?;
        self.kernel_tables.remove(at)
    }

    /// An event's records are written: what was left for later is done
    /// now (closing the files read for them).
    pub fn after_line(&mut self) {
        self.close_later.clear();
    }

    /// A SIGKILL and its sender.
    pub fn sigkill(&self, s: &Sigkill) -> SigkillReport {
        let task = |t: &Task| TaskReport {
            pid: t.pid,
            tgid: t.tgid,
            comm: t.comm.as_deref().map(kernel_text),
            memcg: t.memcg.as_ref().map(|m| self.memcg(m, &HashMap::new())),
        };
        SigkillReport {
            envelope: self.envelope(RecordType::Sigkill, s.boot_ns),
            target: task(&s.target),
            sender: task(&s.sender),
            code: signal::code_name(s.code),
            sent_by: if s.code == signal::SI_KERNEL {
                SentBy::Kernel
            } else {
                SentBy::Process
            },
            sender_role: s.sender.comm.as_deref().and_then(signal::sender_role),
            group: s.group,
            killer: Some(self.killer(s)),
            sigterm: s.sigterm.as_ref().map(|t| SigtermReport {
                boot_ns: t.boot_ns,
                sender: SigtermSender {
                    pid: t.sender_pid,
                    tgid: t.sender_tgid,
                    comm: (!t.sender_comm.is_empty()).then(|| kernel_text(&t.sender_comm)),
                },
                grace_us: s.boot_ns.saturating_sub(t.boot_ns) / 1000,
            }),
        }
    }

    /// Who sent a SIGKILL: its executable now, its comm then, the oomd
    /// xattr on the target's cgroup (cgroup v2 only), the SIGTERM before.
    fn killer(&self, s: &Sigkill) -> KillerReport {
        // The kernel's own kill was sent by whatever ran: no sender's program.
        let program = s
            .sender
            .tgid
            .filter(|_| s.code != signal::SI_KERNEL)
            .and_then(signal::program_of);
        let oomd_xattr = match (&self.memory, &s.target.memcg) {
            (Some(memory), Some(memcg)) if memory.version == cgroup::CgroupVersion::V2 => memcg
                .path
                .as_deref()
                .map(|path| memory.mount.join(kernel_text(path).trim_start_matches('/')))
                .and_then(|dir| signal::oomd_xattr(&dir)),
            _ => None,
        };
        let attribution = signal::attribute(&signal::Evidence {
            code: s.code,
            comm: s.sender.comm.as_deref(),
            program: program.as_deref(),
            sigterm_first: s.sigterm.is_some(),
            oomd_xattr,
        });
        KillerReport {
            kind: attribution.kind,
            name: attribution.name,
            program,
            basis: attribution.basis,
        }
    }

    /// A victim's exit.
    pub fn outcome(&self, o: &Outcome) -> OutcomeReport {
        let after_us = |ns: u64| ns.saturating_sub(o.kill_boot_ns) / 1000;
        let kind = match o.cause {
            KillCause::Sigkill => RecordType::SigkillOutcome,
            KillCause::Oom => RecordType::OomOutcome,
        };
        OutcomeReport {
            envelope: self.envelope(kind, o.exit_boot_ns),
            victim: OutcomeVictim {
                pid: o.pid,
                tgid: o.tgid,
            },
            kill_boot_ns: o.kill_boot_ns,
            exited_after_us: after_us(o.exit_boot_ns),
            exit_signal: o.exit_signal,
            reaper: o.reaper,
            reaped_after_us: o.reaped_boot_ns.map(after_us),
        }
    }

    /// A pressure warning, with the cgroup's path looked up by id (the
    /// cgroup is alive: its tasks are stalling in it right now).
    pub fn pressure(&self, p: &Pressure) -> PressureReport {
        PressureReport {
            envelope: self.envelope(RecordType::MemcgPressure, p.boot_ns),
            memcg: {
                let path = self.memory.as_ref().and_then(|m| m.path_of(p.memcg_id));
                let (k8s, service) = self.workload(path.as_deref());
                MemcgReport {
                    id: p.memcg_id,
                    path,
                    reclaim: None,
                    k8s,
                    service,
                }
            },
            stalls: p.stalls,
            stall_ns: p.stall_ns,
            reclaimed_bytes: p.reclaimed_pages.saturating_mul(self.page_size),
            threshold_ns: p.threshold_ns,
        }
    }

    /// A count of lost records, as of now.
    pub fn lost(&self, count: u64, stage: LostStage) -> LostReport {
        LostReport {
            envelope: self.envelope(RecordType::Lost, clock::boot_ns_now()),
            count,
            stage,
        }
    }

    fn envelope(&self, kind: RecordType, boot_ns: u64) -> Envelope {
        Envelope::new(
            kind,
            clock::rfc3339(clock::wall_time(boot_ns)),
            boot_ns,
            self.host.clone(),
        )
    }

    /// What the kill did to the victim's unit (see [`fate`]).
    fn fate(
        &self,
        kill: &OomKill,
        victim_memcg: Option<&MemcgReport>,
    ) -> crate::report::FateReport {
        let victim = &kill.victim;
        let unit = fate::unit_of(victim_memcg);
        let group_kill = kill.group_kill();
        let level = victim.pid_ns_level;
        // Read by the kernel side at the kill: no scan of the unit's
        // processes in front of the line.
        let namespace_init = match (level, victim.ns_pid) {
            (Some(level), Some(ns_pid)) if level > 0 && ns_pid != 1 => victim.ns_init_tgid,
            _ => None,
        };
        let systemd_main_pid = match (level, victim_memcg.and_then(|m| m.service.as_ref())) {
            (Some(0), Some(service))
                if service.kind == crate::report::ServiceKind::SystemdService =>
            {
                fate::systemd_main_pid(&service.name)
            }
            _ => None,
        };
        fate::decide(fate::Facts {
            victim_tgid: victim.tgid.or(victim.pid),
            ns_pid: victim.ns_pid,
            pid_ns_level: level,
            group_kill,
            unit,
            namespace_init,
            systemd_main_pid,
        })
    }

    /// The OOM domain's other processes, when the domain is known.
    fn candidates(
        &mut self,
        kill: &OomKill,
        oom: &OomControl,
        oom_memcg: Option<&OomMemcgReport>,
        kernel_table: Option<KernelCandidates>,
    ) -> Option<CandidatesReport> {
        if self.candidates == 0 {
            return None;
        }
        // Taken by the kernel side at the kill: no /proc read. A walk that
        // did not go round, or more rows than it keeps, reads /proc.
        if let Some(table) = kernel_table
            && table.complete
            && self.candidates <= oomtrace_common::CANDIDATE_ROWS
        {
            return Some(candidates::from_kernel(
                &table,
                oom.totalpages,
                self.page_size,
                self.candidates,
            ));
        }
        let dir;
        let memcg = match oom.constraint? {
            Constraint::Memcg => {
                let path = oom_memcg?.path.as_deref()?;
                dir = self
                    .memory
                    .as_ref()?
                    .mount
                    .join(path.trim_start_matches('/'));
                Some((oom_memcg?.id, dir.as_path()))
            }
            // cpuset and mempolicy OOMs weigh the processes whose allowed
            // nodes overlap; all processes is the superset.
            Constraint::Global | Constraint::Cpuset | Constraint::Mempolicy => None,
        };
        let taken_after_us = clock::boot_ns_now().saturating_sub(kill.boot_ns) / 1000;
        let victim_tgid = kill.victim.tgid.or(kill.victim.pid);
        // Closed after each line; a caller that never says so keeps a few.
        if self.close_later.len() >= 8 {
            self.close_later.clear();
        }
        let (page_size, rows) = (self.page_size, self.candidates);
        let scan = |domain: Domain<'_>| {
            candidates::scan(domain, victim_tgid, oom.totalpages, page_size, rows)
        };
        let scanned = match memcg {
            // The domain's directory kept open from an earlier kill in it
            // (or opened now for the next): no walk of the mount's path.
            Some((id, path)) => {
                let from_open = self
                    .dirs
                    .get(id, path)
                    .map(|open| scan(Domain::Open(open, path, &mut self.close_later)));
                match from_open {
                    Some(Some(scanned)) => scanned,
                    Some(None) => {
                        self.dirs.forget(id);
                        scan(Domain::Memcg(path))?
                    }
                    None => scan(Domain::Memcg(path))?,
                }
            }
            None => scan(Domain::Global)?,
        };
        Some(candidates::report(taken_after_us, scanned))
    }

    fn oom_control(&self, oom: &OomControl) -> OomControlReport {
        OomControlReport {
            gfp_mask: format!("{:#x}", oom.gfp_mask),
            order: oom.order,
            total_bytes: oom.totalpages.saturating_mul(self.page_size),
            victim_points: oom.chosen_points,
        }
    }
}

/// What makes two kills "the same workload": the Kubernetes pod and
/// container whose limit was hit (a restarted container gets a new id and
/// cgroup, but keeps its pod and name), else the limit's cgroup path, else
/// (a machine-wide OOM) the victim's cgroup and name.
fn workload_key(
    oom_memcg: Option<&OomMemcgReport>,
    victim_memcg: Option<&MemcgReport>,
    comm: Option<&str>,
) -> Option<String> {
    let comm = comm.unwrap_or("?");
    if let Some(m) = oom_memcg {
        if let Some(k) = &m.k8s
            && let Some(uid) = &k.pod_uid
        {
            return Some(match (k.level, &k.container_name) {
                (K8sLevel::Container, Some(name)) => format!("k8s pod {uid} container {name}"),
                (K8sLevel::Container, None) => format!("k8s pod {uid} container running {comm}"),
                _ => format!("k8s pod {uid}"),
            });
        }
        return m.path.as_ref().map(|p| format!("memcg {p}"));
    }
    let path = victim_memcg.and_then(|m| m.path.as_deref())?;
    Some(format!("{comm} in memcg {path}"))
}

/// The victim's runtime from its command line, weighed against the limit
/// that was hit (read at the kill, or later at its exit).
pub fn attach_runtime(report: &mut KillReport, cmdline: &Cmdline, at: CapturedAt) {
    let mut found = runtime::analyze(cmdline, at);
    let limit = match report.constraint {
        Some(Constraint::Memcg) => report.oom_memcg.as_ref().and_then(|m| m.limit_bytes),
        _ => None,
    };
    verdict::heap_against_limit(&mut found, limit);
    report.victim.runtime = Some(found);
}

fn capture(path: CapturePath) -> Capture {
    match path {
        CapturePath::Fentry => Capture::Fentry,
        CapturePath::TpBtf => Capture::TpBtf,
        CapturePath::Tracepoint => Capture::Tracepoint,
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    kernel_text(&buf[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{
        Memcg, OomMemcg,
        kill::{MemcgCounters, Rss, Trigger, Victim},
    };

    fn kill() -> OomKill {
        OomKill {
            boot_ns: clock::boot_ns_now(),
            capture: Some(crate::capture::CapturePath::TpBtf),
            victim: Victim {
                pid: Some(10),
                tgid: Some(9),
                comm: Some(b"db\xff".to_vec()),
                uid: Some(1000),
                oom_score_adj: Some(-5),
                total_vm_bytes: Some(1 << 30),
                rss: Some(Rss {
                    anon: 1,
                    file: 2,
                    shmem: 3,
                }),
                rss_exact: None,
                pgtables_bytes: None,
                start_boot_ns: None,
                ns_pid: None,
                pid_ns_level: None,
                ns_init_tgid: None,
                memcg_oom_group: None,
                memcg: Some(Memcg {
                    id: 77,
                    path: Some(b"/a/b".to_vec()),
                }),
            },
            trigger: Trigger {
                pid: 11,
                tgid: 11,
                comm: None,
                memcg: Some(Memcg { id: 78, path: None }),
                is_victim: false,
            },
            oom: None,
            victim_reclaim: None,
            trigger_reclaim: None,
            oom_reclaim: None,
        }
    }

    /// An enricher that reads nothing from this machine: no hierarchy, no
    /// kubelet logs, no store.
    fn offline_enricher() -> Enricher {
        Enricher {
            host: "h".into(),
            memory: None,
            page_size: 4096,
            reclaim: None,
            candidates: 10,
            dirs: candidates::Dirs::default(),
            kernel_tables: std::collections::VecDeque::new(),
            close_later: Vec::new(),
            pod_logs: PodLogs::new("/nonexistent".into()),
            names: names::ContainerNames::new(names::Sources {
                docker_socket: "/nonexistent/docker.sock".into(),
                podman_socket: "/nonexistent/podman.sock".into(),
                podman_storage: "/nonexistent".into(),
                containerd_state: "/nonexistent".into(),
            }),
            history: History::new(0),
            trend: None,
        }
    }

    #[test]
    fn the_oom_memcg_path_is_the_victims_cut_to_its_depth() {
        let mut enricher = offline_enricher();
        let mut kill = kill();
        kill.oom = Some(OomControl {
            constraint: Some(crate::decode::Constraint::Memcg),
            gfp_mask: 0xcc0,
            order: 0,
            totalpages: 16384,
            chosen_points: 77,
            incident: None,
            oom_group: None,
            memcg: Some(OomMemcg {
                id: 70,
                level: 1,
                contains_victim: true,
                counters: Some(MemcgCounters {
                    usage_pages: 16384,
                    limit_pages: 16384,
                    watermark_pages: 16000,
                    failcnt: 5,
                    oom_kills: 2,
                }),
            }),
        });
        let value = serde_json::to_value(enricher.report(&kill, None)).expect("serializes");
        assert_eq!(value["constraint"], "memcg");
        assert_eq!(
            value["oom_memcg"],
            serde_json::json!({"id": 70, "path": "/a", "reclaim": null, "k8s": null, "service": null, "limit_bytes": 67108864, "usage_bytes": 67108864,
                "max_usage_bytes": 65536000, "peak_bytes": null, "failcnt": 5, "oom_kills": 2})
        );
        assert_eq!(
            value["oom_control"],
            serde_json::json!({"gfp_mask": "0xcc0", "order": 0, "total_bytes": 67108864, "victim_points": 77})
        );
    }

    #[test]
    fn a_restarted_container_is_the_same_workload() {
        let oom = |path: &str| OomMemcgReport {
            id: 1,
            path: Some(path.into()),
            reclaim: None,
            k8s: workload::identify(path).0,
            service: None,
            limit_bytes: None,
            usage_bytes: None,
            max_usage_bytes: None,
            peak_bytes: None,
            failcnt: None,
            oom_kills: None,
        };
        let uid = "0f0e7c1a-3b2d-4c5e-8f9a-0123456789ab";
        let container =
            |id: char| format!("/kubepods/burstable/pod{uid}/{}", id.to_string().repeat(64));
        // Two container ids (a restart), one container name: one workload.
        let mut first = oom(&container('a'));
        let mut second = oom(&container('b'));
        for m in [&mut first, &mut second] {
            if let Some(k) = m.k8s.as_mut() {
                k.container_name = Some("api".into());
            }
        }
        let key = |m: &OomMemcgReport| workload_key(Some(m), None, Some("java"));
        assert_eq!(key(&first), Some(format!("k8s pod {uid} container api")));
        assert_eq!(key(&first), key(&second));
        // Without names, the command tells containers of a pod apart.
        assert_eq!(
            key(&oom(&container('c'))),
            Some(format!("k8s pod {uid} container running java"))
        );
        assert_eq!(
            key(&oom(&format!("/kubepods/burstable/pod{uid}"))),
            Some(format!("k8s pod {uid}"))
        );
        assert_eq!(
            key(&oom("/system.slice/a.service")),
            Some("memcg /system.slice/a.service".into())
        );
        let victim = MemcgReport {
            id: 2,
            path: Some("/user.slice".into()),
            reclaim: None,
            k8s: None,
            service: None,
        };
        assert_eq!(
            workload_key(None, Some(&victim), Some("chrome")),
            Some("chrome in memcg /user.slice".into()),
            "a machine-wide OOM"
        );
        assert_eq!(workload_key(None, None, Some("chrome")), None);
    }

    #[test]
    fn every_contract_field_is_present_and_unknowns_are_null() {
        let mut enricher = offline_enricher();
        let value = serde_json::to_value(enricher.report(&kill(), None)).expect("serializes");
        assert_eq!(value["type"], "oom_kill");
        assert_eq!(value["schema"], 1);
        assert_eq!(value["capture"], "tp_btf");
        assert_eq!(value["host"], "h");
        let v = &value["victim"];
        assert_eq!((v["pid"].clone(), v["tgid"].clone()), (10.into(), 9.into()));
        assert_eq!(v["comm"], "db\\xff");
        assert_eq!(v["oom_score_adj"], -5);
        assert_eq!(
            (
                v["rss_anon_bytes"].clone(),
                v["rss_file_bytes"].clone(),
                v["rss_shmem_bytes"].clone()
            ),
            (1.into(), 2.into(), 3.into())
        );
        for unknown in [
            "runtime",
            "rss_anon_exact_bytes",
            "rss_file_exact_bytes",
            "rss_shmem_exact_bytes",
            "pgtables_bytes",
        ] {
            assert!(
                v.get(unknown).is_some_and(serde_json::Value::is_null),
                "{unknown} is null, not absent"
            );
        }
        assert_eq!(
            v["memcg"],
            serde_json::json!({"id": 77, "path": "/a/b", "reclaim": null, "k8s": null, "service": null})
        );
        // No hierarchy to search: a path the kernel could not capture is null.
        assert_eq!(
            value["trigger"]["memcg"],
            serde_json::json!({"id": 78, "path": null, "reclaim": null, "k8s": null, "service": null})
        );
        assert!(value["trigger"]["comm"].is_null());
        assert_eq!(value["trigger"]["is_victim"], false);
        for unknown in ["constraint", "oom_memcg", "oom_control", "candidates"] {
            assert!(
                value.get(unknown).is_some_and(serde_json::Value::is_null),
                "{unknown}"
            );
        }
    }
}
