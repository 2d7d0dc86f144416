//! Kernel log lines (tests/src/kmsg.rs): the kernel tests' oracle. A wrong
//! parse there makes a test compare oomtrace against the wrong truth, so
//! besides arbitrary lines, lines written the way the kernel writes them
//! must parse back to what was written.
#![no_main]

use libfuzzer_sys::{
    arbitrary::{self, Arbitrary, Unstructured},
    fuzz_target,
};
use oomtrace_tests::kmsg::{self, Invoked, KilledProcess, MemoryUsage, OomKillLine, TaskRow};

/// /dev/kmsg's escaping (`\xNN` for bytes < 0x20, >= 0x7f and `\`).
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if !(0x20..0x7f).contains(&b) || b == b'\\' {
                format!("\\x{b:02x}")
            } else {
                char::from(b).to_string()
            }
        })
        .collect()
}

/// A task's comm as the kernel holds it: at most 15 bytes, no NUL.
fn comm(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let mut comm: Vec<u8> = Vec::arbitrary(u)?;
    comm.truncate(15);
    comm.retain(|b| *b != 0);
    Ok(comm)
}

/// The `oom-kill:` line's keys: a comm or path holding one of them is
/// ambiguous to any parser of that line, so generated ones avoid them.
const OOM_KILL_KEYS: [&str; 4] = [",oom_memcg=", ",task_memcg=", ",task=", ",pid="];

fn unambiguous(text: &str) -> bool {
    !OOM_KILL_KEYS.iter().any(|key| text.contains(key)) && !text.contains(",uid=")
}

/// A cgroup path the kernel prints (`/a/b`): printable, no NUL.
fn memcg_path(u: &mut Unstructured) -> arbitrary::Result<String> {
    let parts: Vec<String> = Vec::arbitrary(u)?;
    let mut path = String::new();
    for part in parts.iter().take(4) {
        let part: String = part
            .chars()
            .filter(|c| *c != '/' && !c.is_control())
            .collect();
        if !part.is_empty() {
            path.push('/');
            path.push_str(&part);
        }
    }
    Ok(if path.is_empty() {
        "/".to_string()
    } else {
        path
    })
}

fn killed_process(u: &mut Unstructured) -> arbitrary::Result<()> {
    let expected = KilledProcess {
        pid: u.arbitrary()?,
        comm: comm(u)?,
        total_vm_kb: u.arbitrary()?,
        anon_rss_kb: u.arbitrary()?,
        file_rss_kb: u.arbitrary()?,
        shmem_rss_kb: u.arbitrary()?,
        uid: u.arbitrary()?,
        pgtables_kb: u.arbitrary()?,
        oom_score_adj: u.int_in_range(-1000..=1000)?,
    };
    let line = format!(
        "Memory cgroup out of memory: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, \
         file-rss:{}kB, shmem-rss:{}kB, UID:{} pgtables:{}kB oom_score_adj:{}",
        expected.pid,
        escape(&expected.comm),
        expected.total_vm_kb,
        expected.anon_rss_kb,
        expected.file_rss_kb,
        expected.shmem_rss_kb,
        expected.uid,
        expected.pgtables_kb,
        expected.oom_score_adj
    );
    assert_eq!(KilledProcess::parse(&line), Some(expected), "{line}");
    Ok(())
}

fn oom_kill_line(u: &mut Unstructured) -> arbitrary::Result<()> {
    let global: bool = u.arbitrary()?;
    let expected = OomKillLine {
        constraint: if global {
            "CONSTRAINT_NONE"
        } else {
            "CONSTRAINT_MEMCG"
        }
        .to_string(),
        oom_memcg: if global { None } else { Some(memcg_path(u)?) },
        task_memcg: memcg_path(u)?,
        task: comm(u)?,
        pid: u.arbitrary()?,
        uid: u.arbitrary()?,
    };
    let task = escape(&expected.task);
    let oom_memcg = expected.oom_memcg.clone().unwrap_or_default();
    if !unambiguous(&task) || !unambiguous(&expected.task_memcg) || !unambiguous(&oom_memcg) {
        return Ok(());
    }
    let scope = match &expected.oom_memcg {
        Some(path) => format!(",oom_memcg={path}"),
        None => ",global_oom".to_string(),
    };
    let line = format!(
        "oom-kill:constraint={},nodemask=(null),cpuset=/,mems_allowed=0{scope},task_memcg={},\
         task={task},pid={},uid={}",
        expected.constraint, expected.task_memcg, expected.pid, expected.uid
    );
    assert_eq!(OomKillLine::parse(&line), Some(expected), "{line}");
    Ok(())
}

fn invoked(u: &mut Unstructured) -> arbitrary::Result<()> {
    let expected = Invoked {
        gfp_mask: u.arbitrary()?,
        order: u.int_in_range(-1..=10)?,
    };
    let line = format!(
        "{} invoked oom-killer: gfp_mask={:#x}(GFP_KERNEL), order={}, oom_score_adj=0",
        escape(&comm(u)?),
        expected.gfp_mask,
        expected.order
    );
    assert_eq!(Invoked::parse(&line), Some(expected), "{line}");
    Ok(())
}

fn memory_usage(u: &mut Unstructured) -> arbitrary::Result<()> {
    let expected = MemoryUsage {
        usage_kb: u.arbitrary()?,
        limit_kb: u.arbitrary()?,
        failcnt: u.arbitrary()?,
    };
    let line = format!(
        "memory: usage {}kB, limit {}kB, failcnt {}",
        expected.usage_kb, expected.limit_kb, expected.failcnt
    );
    assert_eq!(MemoryUsage::parse(&line), Some(expected), "{line}");
    Ok(())
}

fn task_row(u: &mut Unstructured) -> arbitrary::Result<()> {
    let mut expected = TaskRow {
        pid: u.arbitrary()?,
        uid: u.arbitrary()?,
        tgid: u.arbitrary()?,
        total_vm: u.arbitrary()?,
        rss: u.arbitrary()?,
        rss_anon: u.arbitrary()?,
        rss_file: u.arbitrary()?,
        rss_shmem: u.arbitrary()?,
        pgtables_bytes: u.arbitrary()?,
        swapents: u.arbitrary()?,
        oom_score_adj: u.int_in_range(-1000..=1000)?,
        name: comm(u)?,
    };
    // A name's leading spaces are not told from the column padding.
    let start = expected
        .name
        .iter()
        .position(|b| *b != b' ')
        .unwrap_or(expected.name.len());
    expected.name.drain(..start);
    // mm/oom_kill.c dump_task()'s format.
    let line = format!(
        "[{:>7}] {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}         {:>5} {}",
        expected.pid,
        expected.uid,
        expected.tgid,
        expected.total_vm,
        expected.rss,
        expected.rss_anon,
        expected.rss_file,
        expected.rss_shmem,
        expected.pgtables_bytes,
        expected.swapents,
        expected.oom_score_adj,
        escape(&expected.name)
    );
    assert_eq!(TaskRow::parse(&line), Some(expected), "{line}");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary lines: no panic, and unescaping never grows a line.
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = KilledProcess::parse(line);
            let _ = OomKillLine::parse(line);
            let _ = Invoked::parse(line);
            let _ = MemoryUsage::parse(line);
            let _ = TaskRow::parse(line);
            assert!(kmsg::unescape(line).len() <= line.len());
        }
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if let Some(pid) = lines
            .iter()
            .find_map(|l| OomKillLine::parse(l))
            .map(|k| k.pid)
        {
            let report = kmsg::report_of(&lines, pid).expect("the oom-kill line is found");
            assert_eq!(report.0.pid, pid);
            let _ = kmsg::task_table_of(&lines, pid);
        }
    }
    // The same bytes as the values of kernel-written lines.
    let mut u = Unstructured::new(data);
    let _ = killed_process(&mut u)
        .and_then(|()| oom_kill_line(&mut u))
        .and_then(|()| invoked(&mut u))
        .and_then(|()| memory_usage(&mut u))
        .and_then(|()| task_row(&mut u));
    // Escaping then unescaping is the identity on any bytes.
    assert_eq!(kmsg::unescape(&escape(data)), data);
});
