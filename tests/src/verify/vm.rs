//! The judge of `cargo xtask vm-test`: one guest run's evidence (records,
//! the guest's kernel log, its cgroup files; see `oomtrace-vm-guest`)
//! against the same checks the host tests run.

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use super::{
    DomainFiles, SPLIT_RSS_EVENTS, Truth, check, check_eq, oom_context_matches, oom_domain_matches,
    rss_matches, victim_matches_log,
};
use crate::{cgroup::Version, kmsg::KilledProcess};

/// What the guest's `oomtrace check` said the kernel offers, once it has
/// been held up against the kernel's BTF names the guest read itself.
#[derive(Debug, Clone)]
pub struct Offers {
    /// The OOM-control stack search (needs bpf_loop()).
    pub stack_search: bool,
    /// The path `check` says `--capture auto` takes.
    pub auto_path: String,
    /// Whether the kernel has the BPF OOM policy (struct_ops bpf_oom_ops).
    pub bpf_oom_policy: bool,
}

/// `check`'s value for `key` (`key  value` lines).
fn check_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        rest.starts_with("  ").then(|| rest.trim())
    })
}

/// Judges the guest's `oomtrace check` line: it ran, says the kernel can be
/// traced, and its stack-search and BPF OOM policy verdicts agree with the
/// names in the kernel's BTF.
pub fn judge_check(line: &Value) -> Result<Offers> {
    if let Some(error) = line["error"].as_str() {
        bail!("the guest reported: {error}");
    }
    let text = line["text"].as_str().context("no check output came back")?;
    check_eq("oomtrace check exit", &line["exit"], 0).with_context(|| text.to_string())?;
    let value = |key: &str| {
        check_value(text, key).with_context(|| format!("check printed no `{key}` line:\n{text}"))
    };
    let has = |name: &str| line["btf_names"][name].as_bool() == Some(true);
    let stack_search = value("stack search")?;
    check(
        "check's stack search",
        stack_search.starts_with("yes") == has("bpf_loop"),
        format_args!(
            "yes exactly when the BTF names bpf_loop ({})",
            has("bpf_loop")
        ),
        stack_search,
    )?;
    let policy = value("BPF OOM policy")?;
    let bpf_oom = has("bpf_oom_ops") || has("bpf_oom_kill_process");
    check(
        "check's BPF OOM policy",
        policy.starts_with(if bpf_oom { "present" } else { "absent" }),
        format_args!(
            "present exactly when the BTF names bpf_oom_ops or bpf_oom_kill_process ({bpf_oom})"
        ),
        policy,
    )?;
    let verdict = value("capture path")?;
    let auto_path = verdict
        .split_whitespace()
        .next()
        .context("an empty capture path line")?
        .to_string();
    Ok(Offers {
        stack_search: stack_search.starts_with("yes"),
        auto_path,
        bpf_oom_policy: bpf_oom,
    })
}

/// Judges one run's evidence against what `check` said the kernel offers;
/// the capture path its records name.
pub fn judge(evidence: &Value, offers: &Offers) -> Result<String> {
    if evidence["scenario"] == "earlyoom" {
        return super::earlyoom::judge(evidence);
    }
    if let Some(error) = evidence["error"].as_str() {
        bail!("the guest reported: {error}");
    }
    let victims: Vec<u32> = evidence["victims"]
        .as_array()
        .context("evidence has no victims")?
        .iter()
        .map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok()))
        .collect::<Option<_>>()
        .context("a victim that is not a pid")?;
    let chosen = *victims.first().context("no victim started")?;
    let records: Vec<&Value> = evidence["records"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let kills: Vec<&Value> = records
        .iter()
        .copied()
        .filter(|r| r["type"] == "oom_kill")
        .collect();
    let lines: Vec<String> = evidence["kmsg"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let domain = DomainFiles::from_json(&evidence["domain"]);
    let ready = evidence["ready"].as_str().unwrap_or("");

    if records.iter().any(|r| r["type"] == "lost") {
        bail!("records were lost");
    }
    check_eq(
        "tracer exit success",
        &evidence["tracer_exit"]["success"],
        true,
    )
    .with_context(|| format!("stderr: {}", evidence["tracer_exit"]["stderr"]))?;
    check_eq(
        "oomtrace's own oom_score_adj",
        &evidence["tracer_oom_score_adj"],
        -1000,
    )?;
    // The kernel counts (and logs) every __oom_kill_process() call; with
    // memory.oom.group it kills the chosen victim a second time as a group
    // member (mark_victim fires once per task). One record per task that
    // died; /proc/vmstat agrees with the `Killed process` lines.
    let killed: Vec<u32> = lines
        .iter()
        .filter_map(|l| KilledProcess::parse(l))
        .map(|k| k.pid)
        .collect();
    let mut distinct = killed.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let mut expected = victims.clone();
    expected.sort_unstable();
    let vmstat = evidence["vmstat_delta"].as_u64().unwrap_or(0);
    if kills.len() != victims.len() || distinct != expected || vmstat != killed.len() as u64 {
        bail!(
            "{} oom_kill records for {} victims started; the log killed {killed:?}, \
             /proc/vmstat counted {vmstat}",
            kills.len(),
            victims.len()
        );
    }
    let path = kills
        .first()
        .and_then(|r| r["capture"].as_str())
        .unwrap_or("?")
        .to_string();
    let no_btf = evidence["scenario"] == "no_btf";
    if no_btf {
        let check_text = evidence["check"].as_str().unwrap_or("");
        let says = |key: &str, value: &str| {
            check_text.lines().any(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(value))
            })
        };
        if !(says("BTF", "no") && says("capture path", "tracepoint")) || path != "tracepoint" {
            bail!("without BTF: ran via {path}; check said:\n{check_text}");
        }
    }
    // What the guest asked for decides the path, not the records.
    let asked = match evidence["capture"].as_str() {
        Some("btf") => Some("tp_btf"),
        Some("tracepoint") => Some("tracepoint"),
        Some("fentry") => Some("fentry"),
        _ => None,
    };
    if let Some(asked) = asked {
        check("capture", asked == path, asked, &path)?;
    } else if !no_btf {
        check(
            "capture (the path check named)",
            path == offers.auto_path,
            &offers.auto_path,
            &path,
        )?;
    }
    check(
        "ready line",
        ready.contains(&format!("via {path}")),
        format_args!("via {path}"),
        ready,
    )?;
    // fentry brings the OOM killer's context; tp_btf does where the stack
    // search runs (bpf_loop(), 5.17+), whatever the ready line says, and
    // where it cannot, the ready line must say why.
    let has_context = path == "fentry" || (path == "tp_btf" && offers.stack_search);
    if path == "tp_btf" && !offers.stack_search {
        check(
            "ready line (no stack search)",
            ready.contains("OOM killer context unavailable") && ready.contains("bpf_loop()"),
            "OOM killer context unavailable: ... bpf_loop() ...",
            ready,
        )?;
    }

    // Kills in the order the kernel made them: the chosen one, then the
    // rest of its memory.oom.group.
    let mut ordered = kills.clone();
    ordered.sort_by_key(|r| r["boot_ns"].as_u64());
    // With the OOM context, the kernel side takes the chosen victim's
    // candidate table at the kill, unless the ready line says why not.
    if has_context
        && !ready.contains(CANDIDATES_FROM_PROC)
        && let Some(first) = ordered.first()
    {
        let source = &first["candidates"]["source"];
        check(
            "candidates.source (the chosen victim's)",
            source == "kernel",
            "kernel",
            source,
        )?;
    }
    let run = Run {
        chosen,
        path: &path,
        no_btf,
        has_context,
        domain: domain.as_ref(),
        killed: killed.len() as u64,
    };
    for (nth, record) in ordered.iter().enumerate() {
        let pid = record["victim"]["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .context("a record without a victim pid")?;
        if !victims.contains(&pid) {
            bail!("a record for {pid}, which the test did not start");
        }
        let truth = if pid == chosen {
            Truth::of(&lines, pid)
        } else {
            Truth::of_member(&lines, pid, chosen)
        }
        .map_err(|e| anyhow!(e))?;
        run.victim(record, &truth, pid, nth)
            .with_context(|| format!("victim {pid}"))?;
    }
    // One incident on every path (fentry's oom_kill_process call, else the
    // sequence of mark_victim events): the same id, the right count, the
    // chosen one first.
    let basis = if path == "fentry" {
        "oom_kill_process"
    } else {
        "mark_victim_sequence"
    };
    for (nth, record) in ordered.iter().enumerate() {
        let incident = &record["incident"];
        let pid = &record["victim"]["pid"];
        if incident["id"] != ordered[0]["incident"]["id"]
            || incident["victims"] != victims.len()
            || incident["seq"] != nth + 1
            || incident["chosen_pid"] != chosen
            || incident["group_member"] != (nth > 0)
            || incident["basis"] != basis
        {
            bail!("victim {pid}: incident {incident}");
        }
        // The driver starts its hogs in the guest's own pid namespace.
        let v = &record["victim"];
        let (ns_pid, level) = if path == "tracepoint" {
            (Value::Null, Value::Null)
        } else {
            (pid.clone(), Value::from(0))
        };
        if v["ns_pid"] != ns_pid || v["pid_ns_level"] != level {
            bail!(
                "victim {pid}: ns_pid {} level {}",
                v["ns_pid"],
                v["pid_ns_level"]
            );
        }
        // A group kill (memory.events says so, below) ends the group.
        let fate = &record["fate"];
        if victims.len() > 1
            && (fate["killed"] != "whole_group"
                || fate["basis"] != "memory_oom_group"
                || fate["unit_exits"] != true)
        {
            bail!("victim {pid} of a group kill: fate {fate}");
        }
    }
    if let (Some(files), Some(events)) = (&domain, evidence["memory_events"].as_str()) {
        let counter = |name: &str| {
            events.lines().find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        if files.version == Version::V2 && counter("oom_kill") != Some(killed.len() as u64) {
            bail!("memory.events says {events:?}");
        }
        if victims.len() > 1 {
            match counter("oom_group_kill") {
                Some(1) => {}
                // The counter arrived in 5.17: before, only the log says so.
                None if lines.iter().any(|l| {
                    l.contains(&format!("Tasks in {} are going to be killed", files.path))
                        && l.contains("memory.oom.group")
                }) => {}
                _ => bail!("neither memory.events nor the log has the group kill: {events:?}"),
            }
        }
    }
    Ok(path)
}

/// The ready line's words for a kernel without the candidate walk.
const CANDIDATES_FROM_PROC: &str = "candidate table read from /proc after the kill";

/// What holds for every record of one run.
struct Run<'a> {
    chosen: u32,
    /// The capture path the records name.
    path: &'a str,
    no_btf: bool,
    has_context: bool,
    domain: Option<&'a DomainFiles>,
    /// `Killed process` lines in the log.
    killed: u64,
}

impl Run<'_> {
    /// The memcg's oom_kill counter as the nth record's kill left it: the
    /// file counts every kill line, the chosen victim's second one last.
    fn at_kill(&self, after: u64, nth: usize) -> u64 {
        after - self.killed + nth as u64 + 1
    }

    /// One record against the log's report of its kill.
    fn victim(&self, record: &Value, truth: &Truth, pid: u32, nth: usize) -> Result<()> {
        // Figures the kernel could not give oomtrace, or that moved after
        // the tracepoint, are checked here; the rest as on the host.
        let mut known = record.clone();
        if pid != self.chosen {
            // A member wakes to its SIGKILL before the log's line is
            // printed and, before 6.2, flushes its cached RSS updates on
            // the way out: the line may show up to 64 pages more.
            for (kind, kb) in [
                ("anon", truth.killed.anon_rss_kb),
                ("file", truth.killed.file_rss_kb),
                ("shmem", truth.killed.shmem_rss_kb),
            ] {
                let key = format!("rss_{kind}_bytes");
                let logged = kb * 1024;
                let read = record["victim"][&key].as_u64();
                let exact = record["victim"][&format!("rss_{kind}_exact_bytes")].as_u64();
                check(
                    &format!("victim.{key}"),
                    rss_matches(logged, read, exact, SPLIT_RSS_EVENTS * 4096),
                    format_args!("{logged} (the log's) minus at most {SPLIT_RSS_EVENTS} pages"),
                    &record["victim"][&key],
                )?;
                known["victim"][&key] = logged.into();
            }
        }
        // The event names no cgroup unless the victim is the trigger, and
        // without BTF no cgroup can be read at all.
        if self.no_btf || (self.path == "tracepoint" && pid != self.chosen) {
            check_eq(
                "victim.memcg (unknowable here)",
                &record["victim"]["memcg"],
                Value::Null,
            )?;
            known["victim"]["memcg"]["path"] = truth.context.task_memcg.clone().into();
        }
        victim_matches_log(&known, truth)?;
        if self.path == "tp_btf" && pid != self.chosen {
            // The stack search looks for the chosen victim's context.
            check_eq(
                "oom_control (a member's)",
                &record["oom_control"],
                Value::Null,
            )?;
            return Ok(());
        }
        if !self.has_context {
            check_eq(
                "constraint (without context)",
                &record["constraint"],
                Value::Null,
            )?;
            return Ok(());
        }
        match self.domain {
            // The memcg's oom_kill counter had counted this kill and those
            // before it, not the group members killed after.
            Some(files) if pid == self.chosen => {
                let mut files = files.clone();
                files.oom_kills = self.at_kill(files.oom_kills, nth);
                oom_domain_matches(record, truth, &files)?;
            }
            Some(files) => {
                oom_context_matches(record, truth)?;
                let m = &record["oom_memcg"];
                check_eq("oom_memcg.path", &m["path"], files.path.as_str())?;
                check_eq("oom_memcg.id", &m["id"], files.id)?;
                check_eq(
                    "oom_memcg.oom_kills (at this member's kill)",
                    &m["oom_kills"],
                    self.at_kill(files.oom_kills, nth),
                )?;
            }
            None => {
                check(
                    "the log's OOM (a global one)",
                    truth.context.oom_memcg.is_none(),
                    "global_oom",
                    truth.context.oom_memcg.as_deref().unwrap_or("global_oom"),
                )?;
                check_eq("constraint (a global OOM)", &record["constraint"], "global")?;
                oom_context_matches(record, truth)?;
                check_eq(
                    "oom_memcg (a global OOM has none)",
                    &record["oom_memcg"],
                    Value::Null,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A leaf memcg OOM as a 6.x guest reports it, via tp_btf.
    fn evidence() -> Value {
        let log = [
            "hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "memory: usage 65536kB, limit 65536kB, failcnt 10",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/t,task_memcg=/t,task=hog,pid=42,uid=0",
            "Memory cgroup out of memory: Killed process 42 (hog) total-vm:1000kB, anon-rss:900kB, file-rss:8kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
        ];
        let record = json!({
            "type": "oom_kill", "capture": "tp_btf", "boot_ns": 1,
            "constraint": "memcg",
            "oom_control": {"gfp_mask": "0xcc0", "order": 0, "total_bytes": 67108864},
            "oom_memcg": {"path": "/t", "id": 5, "usage_bytes": 67108864,
                "limit_bytes": 67108864, "failcnt": 10, "oom_kills": 1, "peak_bytes": 67108864},
            "victim": {"pid": 42, "comm": "hog", "uid": 0, "oom_score_adj": 0,
                "total_vm_bytes": 1024000, "rss_anon_bytes": 921600, "rss_file_bytes": 8192,
                "rss_shmem_bytes": 0, "pgtables_bytes": 102400, "memcg": {"path": "/t"},
                "ns_pid": 42, "pid_ns_level": 0},
            "incident": {"id": 1, "victims": 1, "seq": 1, "chosen_pid": 42,
                "group_member": false, "basis": "mark_victim_sequence"},
            "candidates": {"source": "kernel", "taken_after_us": 0, "processes": 0, "top": []},
        });
        json!({
            "scenario": "leaf", "capture": "btf", "ready": "oomtrace: ready via tp_btf",
            "tracer_exit": {"success": true}, "tracer_oom_score_adj": -1000,
            "victims": [42], "vmstat_delta": 1, "kmsg": log, "records": [record],
            "domain": {"path": "/t", "id": 5, "v2": true, "limit": 67108864,
                "oom_kills": 1, "max_usage": 67108864, "cpus": 2},
        })
    }

    fn offers() -> Offers {
        Offers {
            stack_search: true,
            auto_path: "fentry".into(),
            bpf_oom_policy: false,
        }
    }

    #[test]
    fn a_run_that_matches_its_log_passes_with_its_path() -> Result<()> {
        assert_eq!(judge(&evidence(), &offers())?, "tp_btf");
        Ok(())
    }

    #[test]
    fn a_table_from_proc_with_the_context_needs_the_ready_line_to_say_why() {
        let mut e = evidence();
        e["records"][0]["candidates"]["source"] = "proc".into();
        let offers = offers();
        assert_eq!(
            judge(&e, &offers).map_err(|e| e.to_string()),
            Err("candidates.source (the chosen victim's): expected kernel, got \"proc\"".into())
        );
        e["ready"] = format!("oomtrace: ready via tp_btf (x: {CANDIDATES_FROM_PROC}: y)").into();
        assert!(judge(&e, &offers).is_ok());
    }

    #[test]
    fn without_the_stack_search_tp_btf_must_say_why_and_carry_no_context() {
        let without = Offers {
            stack_search: false,
            ..offers()
        };
        let error = judge(&evidence(), &without).map_err(|e| e.to_string());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.starts_with("ready line (no stack search)")),
            "{error:?}"
        );
        let mut bare = evidence();
        bare["ready"] = "oomtrace: ready: oom:mark_victim attached via tp_btf (OOM killer context \
                         unavailable: needs the BPF helper bpf_loop() (5.17+), which this kernel lacks)"
            .into();
        // The record still claims a context the kernel cannot have given.
        let error = judge(&bare, &without).map_err(|e| format!("{e:#}"));
        assert_eq!(
            error,
            Err(
                "victim 42: constraint (without context): expected null, got \"memcg\"".to_string()
            )
        );
    }

    const CHECK: &str = "kernel              5.10.0-46-amd64 (x86_64)\n\
        stack search        no: bpf_loop() (5.17+) is not in this kernel\n\
        BPF OOM policy      absent (no struct bpf_oom_ops)\n\
        capture path        fentry (every field available)\n";

    #[test]
    fn check_verdicts_are_held_against_the_btf_names() -> Result<()> {
        let mut line = json!({"scenario": "check", "exit": 0, "text": CHECK,
            "btf_names": {"bpf_loop": false, "bpf_oom_ops": false, "bpf_oom_kill_process": false}});
        let offers = judge_check(&line)?;
        assert!(!offers.stack_search && !offers.bpf_oom_policy);
        assert_eq!(offers.auto_path, "fentry");
        line["btf_names"]["bpf_loop"] = true.into();
        let error = judge_check(&line).map_err(|e| e.to_string());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.starts_with("check's stack search")),
            "{error:?}"
        );
        Ok(())
    }

    #[test]
    fn a_wrong_figure_fails_naming_field_expected_and_got() {
        let mut wrong = evidence();
        wrong["records"][0]["victim"]["rss_anon_bytes"] = 4096.into();
        let error = judge(&wrong, &offers()).map_err(|e| format!("{e:#}"));
        assert_eq!(
            error,
            Err(
                "victim 42: victim.rss_anon_bytes: expected 921600 (the log's), as the counter \
                 or its exact per-CPU sum, got 4096"
                    .to_string()
            )
        );
    }

    #[test]
    fn a_kill_outside_its_incident_or_namespace_fails() {
        let mut wrong = evidence();
        wrong["records"][0]["incident"]["victims"] = 2.into();
        assert!(
            judge(&wrong, &offers()).is_err(),
            "a count the log does not show"
        );
        let mut wrong = evidence();
        wrong["records"][0]["incident"]["basis"] = "oom_kill_process".into();
        assert!(
            judge(&wrong, &offers()).is_err(),
            "fentry's basis on tp_btf"
        );
        let mut wrong = evidence();
        wrong["records"][0]["victim"]["pid_ns_level"] = 1.into();
        assert!(
            judge(&wrong, &offers()).is_err(),
            "the driver's hogs run on the host"
        );
    }

    #[test]
    fn a_path_other_than_the_one_asked_for_fails() {
        let mut wrong = evidence();
        wrong["capture"] = "fentry".into();
        let error = judge(&wrong, &offers()).map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err("capture: expected fentry, got tp_btf".to_string())
        );
    }
}
