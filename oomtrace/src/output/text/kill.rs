//! The block written for each kill.

use std::io::{self, Write};

use super::{bytes, memcg_suffix, opt, task};
use crate::enrich::history::duration;
use crate::report::{
    CandidatesReport, Constraint, KillReport, KubeletAdjReport, MemcgReport, Qos, RequestBound,
    RuntimeKind, Service, ServiceKind, SettingSource,
};

pub fn kill(out: &mut dyn Write, r: &KillReport) -> io::Result<()> {
    let v = &r.victim;
    writeln!(
        out,
        "{}  OOM kill on {}: {} {}",
        r.envelope.time,
        r.envelope.host,
        task(v.pid, v.comm.as_deref()),
        memcg_suffix(v.memcg.as_ref()),
    )?;
    let adj_meaning = v
        .kubelet_adj
        .as_ref()
        .map_or(String::new(), |k| format!(" ({})", kubelet_adj(k)));
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
        let hint = h
            .hint
            .map_or(String::new(), |hint| format!(" [{}]", hint.name()));
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
        (Some(Constraint::Memcg), Some(m)) => {
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
                Some(k) => format!(" ({} limit)", k.level.name()),
                None => String::new(),
            };
            format!("memcg {path}{owner} at {usage}{kills}{context}")
        }
        (Some(Constraint::Global), _) => {
            format!("none: the whole machine was out of memory{context}")
        }
        (Some(Constraint::Memcg), None) => {
            format!("a memcg limit (which cgroup could not be read){context}")
        }
        (Some(other @ (Constraint::Cpuset | Constraint::Mempolicy)), _) => format!(
            "{} constraint (allowed NUMA nodes exhausted){context}",
            other.name()
        ),
        (None, _) => "unknown (the OOM killer's context was not captured)".to_string(),
    }
}

/// The victim's own memory cap next to the cgroup's: "raise the limit"
/// or "the heap setting is wrong" often reads straight off this line.
/// The figures come from enrich; this only words them.
fn runtime(r: &KillReport) -> Option<String> {
    let rt = r.victim.runtime.as_ref()?;
    let kind = rt.kind?;
    let setting = match (rt.setting.as_deref(), rt.setting_source.as_ref()) {
        (Some(setting), Some(SettingSource::Argv)) => format!("{setting} on the command line"),
        (Some(setting), Some(SettingSource::Default)) => setting.to_string(),
        (Some(setting), Some(SettingSource::Env(var))) if setting.starts_with(var.as_str()) => {
            setting.to_string()
        }
        (Some(setting), Some(SettingSource::Env(var))) => format!("{setting} from {var}"),
        (Some(setting), None) => setting.to_string(),
        (None, _) => String::new(),
    };
    let what = if kind == RuntimeKind::Go {
        "soft memory limit (a GC target, not a cap)"
    } else {
        "heap cap"
    };
    let kind = kind.name();
    let line = match (rt.heap_limit_bytes, rt.heap_limit_percent, rt.limit_bytes) {
        (Some(cap), _, Some(limit)) if rt.heap_outgrows_limit == Some(true) => format!(
            "{kind} {what} {} ({setting}) >= the limit {}: the heap alone can outgrow the cgroup",
            bytes(cap),
            bytes(limit)
        ),
        (Some(cap), _, Some(limit)) => format!(
            "{kind} {what} {} ({setting}) = {}% of the limit {}; the other {} is all that non-heap memory (threads, native, buffers) may use",
            bytes(cap),
            opt(rt.heap_percent_of_limit),
            bytes(limit),
            rt.non_heap_bytes.map_or("?".to_string(), bytes)
        ),
        (Some(cap), _, None) => format!("{kind} {what} {} ({setting})", bytes(cap)),
        (None, Some(percent), Some(_)) => format!(
            "{kind} {what} {percent}% of the limit = {} ({setting})",
            rt.heap_cap_bytes.map_or("?".to_string(), bytes)
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

/// The kubelet's QoS reading of oom_score_adj, as enrich found it.
fn kubelet_adj(k: &KubeletAdjReport) -> String {
    match (k.qos, k.set_by_kubelet, k.memory_request_permille) {
        (_, false, _) => format!(
            "not the kubelet's value for a {} pod: changed inside the container",
            k.qos.name()
        ),
        (Qos::Guaranteed, true, _) => "kubelet: Guaranteed, killed last".to_string(),
        (Qos::Besteffort, true, _) => {
            "kubelet: BestEffort, no memory request, killed first".to_string()
        }
        (Qos::Burstable, true, Some(permille)) => {
            let figure = format!("{}.{}%", permille / 10, permille % 10);
            let request = match k.request_bound {
                Some(RequestBound::AtLeast) => format!("at least {figure}"),
                Some(RequestBound::AtMost) => format!("at most {figure}"),
                Some(RequestBound::About) | None => format!("about {figure}"),
            };
            format!("kubelet: Burstable, memory request {request} of node memory")
        }
        (Qos::Burstable, true, None) => "kubelet: Burstable".to_string(),
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
        let details: Vec<&str> = [k.qos.map(Qos::name), k.runtime.map(|r| r.name())]
            .into_iter()
            .flatten()
            .collect();
        if !details.is_empty() {
            who += &format!(" ({})", details.join(", "));
        }
        return Some(who);
    }
    m.service.as_ref().map(service)
}

/// A unit by name; a container by the name, image and compose labels its
/// runtime gave, with the short id `docker ps` shows.
fn service(s: &Service) -> String {
    let kind = s.kind.name().replace('_', " ");
    let Some(name) = &s.container_name else {
        return format!("{kind} {}", s.name);
    };
    let mut who = format!("{kind} {name}");
    if let Some(image) = &s.image {
        who += &format!(" (image {image})");
    }
    let label = |key: &str| s.labels.as_ref().and_then(|l| l.get(key));
    match (
        label("com.docker.compose.project"),
        label("com.docker.compose.service"),
    ) {
        (Some(project), Some(service)) => who += &format!(" compose {project}/{service}"),
        (Some(project), None) => who += &format!(" compose {project}"),
        _ => {}
    }
    who + &format!(" id {}", &s.name[..s.name.len().min(12)])
}

/// The runtime's own word when only a child process of its container was
/// killed: Docker (20.10, and since) sets `State.OOMKilled` on any OOM kill
/// in the container's cgroup, while the container runs on (or exits with
/// its main process's own code). The fate sentence appends it when
/// `fate.killed` is `child_process`.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the fate sentence (issue 13) appends it")
)]
pub(super) fn runtime_says_oom_killed(s: &Service) -> Option<&'static str> {
    (s.kind == ServiceKind::DockerContainer).then_some("though Docker reports OOMKilled")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        CandidatesSource, CapturedAt, CgroupDriver, ContainerRuntime, Envelope, Hint, K8sLevel,
        OomControlReport, OomMemcgReport, RecordType, RuntimeKind, TriggerReport, VictimReport,
    };

    fn sample() -> KillReport {
        KillReport {
            envelope: Envelope::new(
                RecordType::OomKill,
                "2026-11-26T10:50:07.123456Z".into(),
                1,
                "node-1".into(),
            ),
            capture: Some(crate::report::Capture::TpBtf),
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
                kubelet_adj: None,
            },
            trigger: TriggerReport {
                pid: 3571,
                tgid: 3571,
                comm: Some("python3".into()),
                memcg: None,
                is_victim: true,
            },
            constraint: Some(Constraint::Memcg),
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
                source: CandidatesSource::Proc,
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
                hint: Some(Hint::Undersized),
                evidence: Some("kill 3 here; killed 3.2s after it started: what it needs from the start does not fit the limit".into()),
                times_to_oom_ns: vec![3_000_000_000, 3_100_000_000, 3_200_000_000],
            }),
            incident: None,
            trend: None,
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
            qos: Some(Qos::Burstable),
            pod_uid: Some(uid.into()),
            container_id: container_id.map(String::from),
            runtime: container_id.map(|_| ContainerRuntime::Containerd),
            cgroup_driver: CgroupDriver::Cgroupfs,
            namespace: None,
            pod_name: None,
            container_name: None,
        };
        if let Some(m) = r.victim.memcg.as_mut() {
            m.k8s = Some(k8s(K8sLevel::Container, Some(id)));
        }
        if let Some(m) = r.oom_memcg.as_mut() {
            m.k8s = Some(k8s(K8sLevel::Pod, None));
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
            m.service = Some(crate::report::Service::from_path(
                ServiceKind::SystemdService,
                "nginx.service".into(),
            ));
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
    fn a_named_container_reads_as_its_runtime_names_it() {
        let id = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";
        let mut docker = Service::from_path(ServiceKind::DockerContainer, id.into());
        let text = |s: &Service| {
            let mut r = sample();
            if let Some(m) = r.victim.memcg.as_mut() {
                m.k8s = None;
                m.service = Some(s.clone());
            }
            let mut out = Vec::new();
            kill(&mut out, &r).expect("writes");
            String::from_utf8(out).expect("utf8")
        };
        // Not named by its runtime (no socket, timed out): the id alone.
        assert!(
            text(&docker).contains(&format!("  workload docker container {id}\n")),
            "{}",
            text(&docker)
        );
        docker.container_name = Some("shop-api".into());
        docker.image = Some("shop/api:1.4".into());
        docker.labels = Some(
            [
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "api"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        assert!(
            text(&docker).contains(
                "  workload docker container shop-api (image shop/api:1.4) compose shop/api id 4f3b7d8ce2a9\n"
            ),
            "{}",
            text(&docker)
        );
        assert_eq!(
            runtime_says_oom_killed(&docker),
            Some("though Docker reports OOMKilled")
        );
        let podman = Service::from_path(ServiceKind::PodmanContainer, id.into());
        assert_eq!(runtime_says_oom_killed(&podman), None);
    }

    #[test]
    fn oom_score_adj_is_worded_from_the_kubelet_reading() {
        let words = |qos, adj| kubelet_adj(&crate::enrich::verdict::kubelet_adj(qos, adj));
        assert_eq!(
            words(Qos::Burstable, 994),
            "kubelet: Burstable, memory request about 0.6% of node memory"
        );
        assert_eq!(
            words(Qos::Burstable, 750),
            "kubelet: Burstable, memory request about 25.0% of node memory"
        );
        assert!(words(Qos::Burstable, 3).contains("at least 99.7%"));
        assert!(words(Qos::Burstable, 999).contains("at most 0.1%"));
        assert!(words(Qos::Guaranteed, -997).contains("Guaranteed"));
        assert!(words(Qos::Besteffort, 1000).contains("BestEffort"));
        assert!(
            words(Qos::Burstable, 1000).starts_with("not the kubelet's value for a burstable pod")
        );
    }

    #[test]
    fn the_runtime_cap_is_set_against_the_limit() {
        let mut r = sample();
        let limit = r.oom_memcg.as_ref().and_then(|m| m.limit_bytes);
        let jvm = |cap: Option<u64>, percent: Option<f64>, setting: &str, source: SettingSource| {
            let mut rt = crate::report::RuntimeReport {
                heap_limit_bytes: cap,
                heap_limit_percent: percent,
                setting: Some(setting.into()),
                setting_source: Some(source),
                ..crate::report::RuntimeReport::new(Some(RuntimeKind::Jvm), CapturedAt::Kill)
            };
            crate::enrich::verdict::heap_against_limit(&mut rt, limit);
            rt
        };
        let line = |r: &KillReport| runtime(r).unwrap_or_default();
        r.victim.runtime = Some(jvm(Some(128 << 20), None, "-Xmx128m", SettingSource::Argv));
        assert_eq!(
            line(&r),
            "jvm heap cap 128.0 MiB (-Xmx128m on the command line) >= the limit 64.0 MiB: the heap alone can outgrow the cgroup"
        );
        r.victim.runtime = Some(jvm(
            Some(48 << 20),
            None,
            "-Xmx48m",
            SettingSource::Env("JAVA_TOOL_OPTIONS".into()),
        ));
        assert_eq!(
            line(&r),
            "jvm heap cap 48.0 MiB (-Xmx48m from JAVA_TOOL_OPTIONS) = 75% of the limit 64.0 MiB; the other 16.0 MiB is all that non-heap memory (threads, native, buffers) may use"
        );
        r.victim.runtime = Some(jvm(
            None,
            Some(25.0),
            "-XX:MaxRAMPercentage=25 (JVM default)",
            SettingSource::Default,
        ));
        assert_eq!(
            line(&r),
            "jvm heap cap 25% of the limit = 16.0 MiB (-XX:MaxRAMPercentage=25 (JVM default))"
        );
        r.victim.runtime = Some(crate::report::RuntimeReport {
            kind: Some(RuntimeKind::Python),
            setting: None,
            setting_source: None,
            captured_at: CapturedAt::Exit,
            env_truncated: true,
            ..jvm(None, None, "", SettingSource::Argv)
        });
        assert_eq!(
            line(&r),
            "python, no memory cap of its own: it grows until the limit stops it (command line or environment cut short: a later setting is not seen)"
        );
        let mut go = jvm(
            Some(40 << 20),
            None,
            "GOMEMLIMIT=40MiB",
            SettingSource::Env("GOMEMLIMIT".into()),
        );
        go.kind = Some(RuntimeKind::Go);
        r.victim.runtime = Some(go);
        assert!(line(&r).starts_with("go soft memory limit (a GC target, not a cap) 40.0 MiB (GOMEMLIMIT=40MiB) = 62% of the limit"), "{}", line(&r));
        r.victim.runtime = None;
        assert_eq!(runtime(&r), None);
    }

    #[test]
    fn an_absurd_heap_cap_from_argv_is_written_without_overflow() {
        // -Xmx1000000t against cgroup v1's "no limit": the text view used to
        // compute `cap * 100` itself and panicked in debug builds.
        let mut r = sample();
        if let Some(m) = r.oom_memcg.as_mut() {
            m.limit_bytes = Some(0x7fff_ffff_ffff_f000);
        }
        let cmdline = crate::decode::Cmdline {
            args: b"java\0-Xmx1000000t\0Main\0".to_vec(),
            env: Vec::new(),
            args_truncated: false,
            env_truncated: false,
        };
        crate::enrich::attach_runtime(&mut r, &cmdline, CapturedAt::Kill);
        assert!(
            runtime(&r).is_some_and(|l| l.contains("= 11% of the limit")),
            "{:?}",
            runtime(&r)
        );
    }
}
