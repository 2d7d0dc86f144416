//! The terminal view: what an on-call engineer reads first.

use std::io::{self, Write};

use crate::enrich::history::duration;
use crate::report::{
    CandidatesReport, KillReport, LostReport, LostStage, MemcgReport, OutcomeReport,
    PressureReport, SigkillReport,
};

pub fn kill(out: &mut dyn Write, r: &KillReport) -> io::Result<()> {
    let v = &r.victim;
    writeln!(
        out,
        "{}  OOM kill on {}: {} {}",
        r.time,
        r.host,
        task(v.pid, v.comm.as_deref()),
        memcg_suffix(v.memcg.as_ref()),
    )?;
    let qos = v
        .memcg
        .as_ref()
        .and_then(|m| m.k8s.as_ref())
        .and_then(|k| k.qos);
    let adj_meaning = match (qos, v.oom_score_adj) {
        (Some(qos), Some(adj)) => format!(" ({})", kubelet_adj(qos, adj)),
        _ => String::new(),
    };
    writeln!(
        out,
        "  victim   tgid {}  uid {}  oom_score_adj {}{adj_meaning}{}",
        opt(v.tgid),
        opt(v.uid),
        opt(v.oom_score_adj),
        v.age_ns
            .map_or(String::new(), |age| format!("  ran {}", duration(age))),
    )?;
    let rss = match (v.rss_anon_bytes, v.rss_file_bytes, v.rss_shmem_bytes) {
        (Some(anon), Some(file), Some(shmem)) => format!(
            "rss {} (anon {}, file {}, shmem {})",
            bytes(anon + file + shmem),
            bytes(anon),
            bytes(file),
            bytes(shmem)
        ),
        _ => "rss ?".to_string(),
    };
    writeln!(
        out,
        "  memory   {rss}  vm {}  page tables {}",
        v.total_vm_bytes.map_or("?".to_string(), bytes),
        v.pgtables_bytes.map_or("?".to_string(), bytes),
    )?;
    if let Some(who) = v.memcg.as_ref().and_then(workload) {
        writeln!(out, "  workload {who}")?;
    }
    writeln!(out, "  limit    {}", limit(r))?;
    if let Some(runtime) = runtime(r) {
        writeln!(out, "  runtime  {runtime}")?;
    }
    if let Some(candidates) = &r.candidates {
        writeln!(out, "  others   {}", others(candidates))?;
    }
    if let Some(i) = &r.incident
        && (i.group_member || i.victims.is_some_and(|n| n > 1))
    {
        let count = i
            .victims
            .map_or("several tasks".to_string(), |n| format!("{n} tasks"));
        let role = if i.group_member {
            format!(
                "this one #{} as a member of pid {}'s group",
                i.seq, i.chosen_pid
            )
        } else {
            "this one was chosen".to_string()
        };
        writeln!(
            out,
            "  group    one OOM killed {count} (memory.oom.group); {role}"
        )?;
    }
    let t = &r.trigger;
    if t.is_victim {
        writeln!(out, "  trigger  the victim itself ran into the limit")?;
    } else {
        writeln!(
            out,
            "  trigger  {} {}",
            task(Some(t.pid), t.comm.as_deref()),
            memcg_suffix(t.memcg.as_ref()),
        )?;
    }
    if let Some(h) = &r.history
        && let Some(evidence) = &h.evidence
    {
        let hint = h.hint.map_or(String::new(), |hint| format!(" [{hint}]"));
        writeln!(out, "  history  {evidence}{hint}")?;
    }
    writeln!(out)
}

/// Which limit was hit, as an SRE asks it.
fn limit(r: &KillReport) -> String {
    let context = r.oom_control.as_ref().map(|c| {
        format!(
            " [gfp {} order {}, victim badness {}]",
            c.gfp_mask, c.order, c.victim_points
        )
    });
    let context = context.unwrap_or_default();
    match (r.constraint, &r.oom_memcg) {
        (Some("memcg"), Some(m)) => {
            let path = m.path.clone().unwrap_or_else(|| format!("id {}", m.id));
            let usage = match (m.usage_bytes, m.limit_bytes) {
                (Some(usage), Some(limit)) => format!("{} of {}", bytes(usage), bytes(limit)),
                _ => "?".to_string(),
            };
            // 0 means the counter does not include this kill: cgroup v1
            // counts only kills of the cgroup's own tasks, not its children's.
            let kills = match m.oom_kills {
                Some(n) if n > 0 => format!(", OOM kill #{n} there"),
                _ => String::new(),
            };
            // Which Kubernetes object's limit: a pod's or a container's
            // tells the SRE which manifest field to change.
            let owner = match &m.k8s {
                Some(k) => format!(" ({} limit)", k.level),
                None => String::new(),
            };
            format!("memcg {path}{owner} at {usage}{kills}{context}")
        }
        (Some("global"), _) => format!("none: the whole machine was out of memory{context}"),
        (Some("memcg"), None) => format!("a memcg limit (which cgroup could not be read){context}"),
        (Some(other), _) => format!("{other} constraint (allowed NUMA nodes exhausted){context}"),
        (None, _) => "unknown (the OOM killer's context was not captured)".to_string(),
    }
}

/// The victim's own memory cap next to the cgroup's: "raise the limit"
/// or "the heap setting is wrong" often reads straight off this line.
fn runtime(r: &KillReport) -> Option<String> {
    let rt = r.victim.runtime.as_ref()?;
    let kind = rt.kind?;
    let limit = match r.constraint {
        Some("memcg") => r.oom_memcg.as_ref().and_then(|m| m.limit_bytes),
        _ => None,
    };
    let setting = match (rt.setting.as_deref(), rt.setting_source.as_deref()) {
        (Some(setting), Some("argv")) => format!("{setting} on the command line"),
        (Some(setting), Some("default")) => setting.to_string(),
        (Some(setting), Some(var)) if setting.starts_with(var) => setting.to_string(),
        (Some(setting), Some(var)) => format!("{setting} from {var}"),
        (Some(setting), None) => setting.to_string(),
        (None, _) => String::new(),
    };
    let what = if kind == "go" {
        "soft memory limit (a GC target, not a cap)"
    } else {
        "heap cap"
    };
    let line = match (rt.heap_limit_bytes, rt.heap_limit_percent, limit) {
        (Some(cap), _, Some(limit)) if cap >= limit => format!(
            "{kind} {what} {} ({setting}) >= the limit {}: the heap alone can outgrow the cgroup",
            bytes(cap),
            bytes(limit)
        ),
        (Some(cap), _, Some(limit)) => format!(
            "{kind} {what} {} ({setting}) = {}% of the limit {}; the other {} is all that non-heap memory (threads, native, buffers) may use",
            bytes(cap),
            cap * 100 / limit.max(1),
            bytes(limit),
            bytes(limit - cap)
        ),
        (Some(cap), _, None) => format!("{kind} {what} {} ({setting})", bytes(cap)),
        (None, Some(percent), Some(limit)) => format!(
            "{kind} {what} {percent}% of the limit = {} ({setting})",
            bytes((limit as f64 * percent / 100.0) as u64)
        ),
        (None, Some(percent), None) => {
            format!("{kind} {what} {percent}% of its memory ({setting})")
        }
        (None, None, _) if !setting.is_empty() => {
            format!("{kind} {setting}: not a size oomtrace reads")
        }
        (None, None, _) => {
            format!("{kind}, no memory cap of its own: it grows until the limit stops it")
        }
    };
    let cut = if rt.args_truncated || rt.env_truncated {
        " (command line or environment cut short: a later setting is not seen)"
    } else {
        ""
    };
    Some(format!("{line}{cut}"))
}

/// The next in line, so an SRE sees whether the victim was the culprit.
fn others(c: &CandidatesReport) -> String {
    if c.top.is_empty() {
        return "none left in the OOM domain".to_string();
    }
    let shown: Vec<String> = c
        .top
        .iter()
        .take(3)
        .map(|t| {
            let badness = t
                .badness
                .map_or("unkillable".to_string(), |b| format!("badness {b}"));
            format!(
                "pid {} ({}) rss {} adj {} {badness}",
                t.pid,
                t.comm,
                bytes(t.rss_bytes),
                t.oom_score_adj
            )
        })
        .collect();
    let more = c.processes.saturating_sub(shown.len());
    let more = if more > 0 {
        format!("; {more} more")
    } else {
        String::new()
    };
    format!("{}{more}", shown.join("; "))
}

pub fn sigkill(out: &mut dyn Write, r: &SigkillReport) -> io::Result<()> {
    let t = &r.target;
    let s = &r.sender;
    let by = match (r.sent_by, r.sender_role) {
        ("kernel", _) => "the kernel".to_string(),
        (_, Some(role)) => format!("{role} (kill from a process)"),
        _ => "a process".to_string(),
    };
    writeln!(
        out,
        "{}  SIGKILL (not the OOM killer) to {} {}\n  sender   {} {} via {}, sent by {by}\n",
        r.time,
        task(t.pid, t.comm.as_deref()),
        memcg_suffix(t.memcg.as_ref()),
        task(s.pid, s.comm.as_deref()),
        memcg_suffix(s.memcg.as_ref()),
        r.code,
    )
}

pub fn outcome(out: &mut dyn Write, r: &OutcomeReport) -> io::Result<()> {
    let signal = r.exit_signal.map_or("?".to_string(), |s| s.to_string());
    let reaper = match r.reaped_after_us {
        Some(us) => format!(
            "the OOM reaper freed its memory {:.1} ms after the kill",
            us as f64 / 1e3
        ),
        None => format!("OOM reaper: {}", r.reaper.replace('_', " ")),
    };
    writeln!(
        out,
        "{}  EXIT pid {}: signal {signal}, {:.1} ms after the kill; {reaper}\n",
        r.time,
        r.victim.pid,
        r.exited_after_us as f64 / 1e3,
    )
}

pub fn pressure(out: &mut dyn Write, r: &PressureReport) -> io::Result<()> {
    writeln!(
        out,
        "{}  PRESSURE {}: {} reclaim stalls, {:.0} ms stalled in the last second (threshold {:.0} ms), {} reclaimed\n",
        r.time,
        memcg_suffix(Some(&r.memcg)),
        r.stalls,
        r.stall_ns as f64 / 1e6,
        r.threshold_ns as f64 / 1e6,
        bytes(r.reclaimed_bytes),
    )
}

pub fn lost(out: &mut dyn Write, r: &LostReport) -> io::Result<()> {
    let why = match r.stage {
        LostStage::RingBuffer => "the ring buffer was full (see --ring-buffer-size)",
        LostStage::Output => "the output stopped taking them (a reader that does not read)",
        LostStage::Store => {
            "written here but not kept in the --store database (see the warning on stderr)"
        }
    };
    writeln!(out, "{}  LOST {} record(s): {why}\n", r.time, r.count)
}

fn task(pid: Option<u32>, comm: Option<&str>) -> String {
    format!("pid {} ({})", opt(pid), comm.unwrap_or("?"))
}

fn memcg_suffix(memcg: Option<&MemcgReport>) -> String {
    match memcg {
        Some(MemcgReport {
            path: Some(path), ..
        }) => format!("in memcg {path}"),
        Some(MemcgReport { id, path: None, .. }) => format!("in memcg id {id} (path gone)"),
        None => "in memcg ?".to_string(),
    }
}

/// What the kubelet's QoS policy says about a container's oom_score_adj:
/// -997 for Guaranteed, 1000 for BestEffort, and for Burstable
/// `1000 - 1000 * memory request / node memory`, clamped to 3..=999, so
/// the request can be read back to 0.1% of the node's memory.
fn kubelet_adj(qos: &str, adj: i16) -> String {
    match (qos, adj) {
        ("guaranteed", -997) => "kubelet: Guaranteed, killed last".to_string(),
        ("besteffort", 1000) => "kubelet: BestEffort, no memory request, killed first".to_string(),
        ("burstable", 3..=999) => {
            let permille = 1000 - adj;
            let request = match adj {
                3 => "at least 99.7%".to_string(),
                999 => "at most 0.1%".to_string(),
                _ => format!("about {}.{}%", permille / 10, permille % 10),
            };
            format!("kubelet: Burstable, memory request {request} of node memory")
        }
        (qos, _) => {
            format!("not the kubelet's value for a {qos} pod: changed inside the container")
        }
    }
}

/// The pod and container (or service) behind a cgroup path, short enough
/// to match against `kubectl get pod -o yaml` and `crictl ps`.
fn workload(m: &MemcgReport) -> Option<String> {
    if let Some(k) = &m.k8s {
        let mut who = String::from("k8s");
        match (&k.namespace, &k.pod_name, &k.pod_uid) {
            (Some(ns), Some(name), _) => who += &format!(" pod {ns}/{name}"),
            (_, _, Some(uid)) => who += &format!(" pod {uid}"),
            _ => {}
        }
        let short_id = k.container_id.as_deref().map(|id| &id[..id.len().min(13)]);
        match (&k.container_name, short_id) {
            (Some(name), Some(id)) => who += &format!(" container {name} ({id})"),
            (None, Some(id)) => who += &format!(" container {id}"),
            _ => {}
        }
        let details: Vec<&str> = [k.qos, k.runtime].into_iter().flatten().collect();
        if !details.is_empty() {
            who += &format!(" ({})", details.join(", "));
        }
        return Some(who);
    }
    m.service
        .as_ref()
        .map(|s| format!("{} {}", s.kind.replace('_', " "), s.name))
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or("?".to_string(), |v| v.to_string())
}

/// Binary units with one decimal, exact bytes below 1 KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{OomControlReport, OomMemcgReport, SCHEMA, TriggerReport, VictimReport};

    fn sample() -> KillReport {
        KillReport {
            kind: "oom_kill",
            schema: SCHEMA,
            time: "2026-11-26T10:50:07.123456Z".into(),
            boot_ns: 1,
            host: "node-1".into(),
            capture: Some("tp_btf"),
            victim: VictimReport {
                pid: Some(3571),
                tgid: Some(3571),
                comm: Some("python3".into()),
                uid: Some(0),
                oom_score_adj: Some(0),
                total_vm_bytes: Some(221_368 * 1024),
                rss_anon_bytes: Some(50_816 * 1024),
                rss_file_bytes: Some(1_928 * 1024),
                rss_shmem_bytes: Some(0),
                rss_anon_exact_bytes: None,
                rss_file_exact_bytes: None,
                rss_shmem_exact_bytes: None,
                pgtables_bytes: Some(164 * 1024),
                memcg: Some(MemcgReport {
                    id: 42,
                    path: Some("/oomtrace-test-a".into()),
                    reclaim: None,
                    k8s: None,
                    service: None,
                }),
                runtime: None,
                start_time: None,
                age_ns: Some(3_200_000_000),
            },
            trigger: TriggerReport {
                pid: 3571,
                tgid: 3571,
                comm: Some("python3".into()),
                memcg: None,
                is_victim: true,
            },
            constraint: Some("memcg"),
            oom_memcg: Some(OomMemcgReport {
                id: 41,
                path: Some("/oomtrace-test-a".into()),
                reclaim: None,
                k8s: None,
                service: None,
                limit_bytes: Some(64 << 20),
                usage_bytes: Some(64 << 20),
                max_usage_bytes: Some(64 << 20),
                peak_bytes: None,
                failcnt: Some(1181),
                oom_kills: Some(3),
            }),
            oom_control: Some(OomControlReport {
                gfp_mask: "0xcc0".into(),
                order: 0,
                total_bytes: 64 << 20,
                victim_points: 16778,
            }),
            candidates: Some(CandidatesReport {
                source: "proc",
                taken_after_us: 900,
                processes: 4,
                top: vec![crate::report::CandidateReport {
                    pid: 12,
                    comm: "sidecar".into(),
                    rss_bytes: 20 << 20,
                    rss_anon_bytes: 20 << 20,
                    rss_file_bytes: 0,
                    rss_shmem_bytes: 0,
                    swap_bytes: 0,
                    pgtables_bytes: 4096,
                    oom_score_adj: 0,
                    badness: Some(5121),
                    oom_score: Some(1312),
                }],
            }),
            history: Some(crate::report::HistoryReport {
                workload: "memcg /oomtrace-test-a".into(),
                kills: 3,
                since_previous_kill_ns: Some(2_000_000_000),
                hint: Some("undersized"),
                evidence: Some("kill 3 here; killed 3.2s after it started: what it needs from the start does not fit the limit".into()),
            }),
            incident: None,
        }
    }

    #[test]
    fn the_block_names_victim_memory_and_trigger() {
        let mut out = Vec::new();
        kill(&mut out, &sample()).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "2026-11-26T10:50:07.123456Z  OOM kill on node-1: pid 3571 (python3) in memcg /oomtrace-test-a\n  \
             victim   tgid 3571  uid 0  oom_score_adj 0  ran 3.2s\n  \
             memory   rss 51.5 MiB (anon 49.6 MiB, file 1.9 MiB, shmem 0 B)  vm 216.2 MiB  page tables 164.0 KiB\n  \
             limit    memcg /oomtrace-test-a at 64.0 MiB of 64.0 MiB, OOM kill #3 there [gfp 0xcc0 order 0, victim badness 16778]\n  \
             others   pid 12 (sidecar) rss 20.0 MiB adj 0 badness 5121; 3 more\n  \
             trigger  the victim itself ran into the limit\n  \
             history  kill 3 here; killed 3.2s after it started: what it needs from the start does not fit the limit [undersized]\n\n"
        );
    }

    #[test]
    fn a_group_kill_says_how_many_died_and_who_was_chosen() {
        let mut r = sample();
        let incident = |seq, group_member| crate::report::IncidentReport {
            id: 14_533_472_050,
            victims: Some(3),
            seq,
            chosen_pid: 170,
            group_member,
        };
        let text = |r: &KillReport| {
            let mut out = Vec::new();
            kill(&mut out, r).expect("writes");
            String::from_utf8(out).expect("utf8")
        };
        r.incident = Some(incident(2, true));
        assert!(text(&r).contains(
            "\n  group    one OOM killed 3 tasks (memory.oom.group); this one #2 as a member of pid 170's group\n"
        ));
        r.incident = Some(incident(1, false));
        assert!(
            text(&r).contains("one OOM killed 3 tasks (memory.oom.group); this one was chosen")
        );
        r.incident = Some(crate::report::IncidentReport {
            victims: Some(1),
            ..incident(1, false)
        });
        assert!(!text(&r).contains("group "), "a single kill says nothing");
    }

    #[test]
    fn unknown_values_are_question_marks_not_zeroes() {
        let mut r = sample();
        r.victim.uid = None;
        r.victim.rss_anon_bytes = None;
        r.victim.memcg = Some(MemcgReport {
            id: 9,
            path: None,
            reclaim: None,
            k8s: None,
            service: None,
        });
        r.constraint = None;
        r.trigger.is_victim = false;
        r.trigger.pid = 77;
        r.trigger.comm = None;
        let mut out = Vec::new();
        kill(&mut out, &r).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("uid ?"), "{text}");
        assert!(text.contains("rss ?"), "{text}");
        assert!(text.contains("in memcg id 9 (path gone)"), "{text}");
        assert!(text.contains("trigger  pid 77 (?) in memcg ?"), "{text}");
        assert!(text.contains("limit    unknown"), "{text}");
    }

    #[test]
    fn kubernetes_victims_name_pod_container_and_whose_limit() {
        let mut r = sample();
        let uid = "0f0e7c1a-3b2d-4c5e-8f9a-0123456789ab";
        let id = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";
        let k8s = |level, container_id: Option<&str>| crate::report::K8s {
            level,
            qos: Some("burstable"),
            pod_uid: Some(uid.into()),
            container_id: container_id.map(String::from),
            runtime: container_id.map(|_| "containerd"),
            cgroup_driver: "cgroupfs",
            namespace: None,
            pod_name: None,
            container_name: None,
        };
        if let Some(m) = r.victim.memcg.as_mut() {
            m.k8s = Some(k8s("container", Some(id)));
        }
        if let Some(m) = r.oom_memcg.as_mut() {
            m.k8s = Some(k8s("pod", None));
        }
        let mut out = Vec::new();
        kill(&mut out, &r).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains(&format!(
                "\n  workload k8s pod {uid} container 4f3b7d8ce2a9c (burstable, containerd)\n"
            )),
            "{text}"
        );
        assert!(text.contains("(pod limit) at 64.0 MiB"), "{text}");

        if let Some(k) = r.victim.memcg.as_mut().and_then(|m| m.k8s.as_mut()) {
            k.namespace = Some("shop".into());
            k.pod_name = Some("cart-7f9c".into());
            k.container_name = Some("api".into());
        }
        let mut out = Vec::new();
        kill(&mut out, &r).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("  workload k8s pod shop/cart-7f9c container api (4f3b7d8ce2a9c) (burstable, containerd)\n"),
            "{text}"
        );

        let mut r = sample();
        if let Some(m) = r.victim.memcg.as_mut() {
            m.service = Some(crate::report::Service {
                kind: "systemd_service",
                name: "nginx.service".into(),
            });
        }
        let mut out = Vec::new();
        kill(&mut out, &r).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("  workload systemd service nginx.service\n"),
            "{text}"
        );
    }

    #[test]
    fn oom_score_adj_is_read_against_the_kubelets_qos_policy() {
        assert_eq!(
            kubelet_adj("burstable", 994),
            "kubelet: Burstable, memory request about 0.6% of node memory"
        );
        assert_eq!(
            kubelet_adj("burstable", 750),
            "kubelet: Burstable, memory request about 25.0% of node memory"
        );
        assert!(kubelet_adj("burstable", 3).contains("at least 99.7%"));
        assert!(kubelet_adj("burstable", 999).contains("at most 0.1%"));
        assert!(kubelet_adj("guaranteed", -997).contains("Guaranteed"));
        assert!(kubelet_adj("besteffort", 1000).contains("BestEffort"));
        for (qos, adj) in [
            ("guaranteed", 0),
            ("besteffort", 999),
            ("burstable", 1000),
            ("burstable", -997),
        ] {
            assert!(
                kubelet_adj(qos, adj).starts_with("not the kubelet's"),
                "{qos} {adj}"
            );
        }
    }

    #[test]
    fn the_runtime_cap_is_set_against_the_limit() {
        let mut r = sample();
        let jvm = |cap: Option<u64>, percent: Option<f64>, setting: &str, source: &str| {
            crate::report::RuntimeReport {
                kind: Some("jvm"),
                heap_limit_bytes: cap,
                heap_limit_percent: percent,
                setting: Some(setting.into()),
                setting_source: Some(source.into()),
                captured_at: "kill",
                args_truncated: false,
                env_truncated: false,
            }
        };
        let line = |r: &KillReport| runtime(r).unwrap_or_default();
        r.victim.runtime = Some(jvm(Some(128 << 20), None, "-Xmx128m", "argv"));
        assert_eq!(
            line(&r),
            "jvm heap cap 128.0 MiB (-Xmx128m on the command line) >= the limit 64.0 MiB: the heap alone can outgrow the cgroup"
        );
        r.victim.runtime = Some(jvm(Some(48 << 20), None, "-Xmx48m", "JAVA_TOOL_OPTIONS"));
        assert_eq!(
            line(&r),
            "jvm heap cap 48.0 MiB (-Xmx48m from JAVA_TOOL_OPTIONS) = 75% of the limit 64.0 MiB; the other 16.0 MiB is all that non-heap memory (threads, native, buffers) may use"
        );
        r.victim.runtime = Some(jvm(
            None,
            Some(25.0),
            "-XX:MaxRAMPercentage=25 (JVM default)",
            "default",
        ));
        assert_eq!(
            line(&r),
            "jvm heap cap 25% of the limit = 16.0 MiB (-XX:MaxRAMPercentage=25 (JVM default))"
        );
        r.victim.runtime = Some(crate::report::RuntimeReport {
            kind: Some("python"),
            heap_limit_bytes: None,
            heap_limit_percent: None,
            setting: None,
            setting_source: None,
            captured_at: "exit",
            args_truncated: false,
            env_truncated: true,
        });
        assert_eq!(
            line(&r),
            "python, no memory cap of its own: it grows until the limit stops it (command line or environment cut short: a later setting is not seen)"
        );
        r.victim.runtime = Some(crate::report::RuntimeReport {
            kind: Some("go"),
            heap_limit_bytes: Some(40 << 20),
            setting: Some("GOMEMLIMIT=40MiB".into()),
            setting_source: Some("GOMEMLIMIT".into()),
            ..jvm(None, None, "", "")
        });
        assert!(line(&r).starts_with("go soft memory limit (a GC target, not a cap) 40.0 MiB (GOMEMLIMIT=40MiB) = 62% of the limit"), "{}", line(&r));
        r.victim.runtime = None;
        assert_eq!(runtime(&r), None);
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
