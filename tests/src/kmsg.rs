//! The kernel log (/dev/kmsg), and parsers for the OOM killer's lines.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Read},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::wait::Deadline;

/// Reads kernel log messages written after it was opened.
pub struct KernelLog {
    file: File,
}

impl KernelLog {
    pub fn open() -> Result<KernelLog> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("open /dev/kmsg")?;
        // SAFETY: valid fd; SEEK_END on /dev/kmsg skips to the next message.
        unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
        Ok(KernelLog { file })
    }

    /// The next message text, waiting up to `deadline`.
    fn next(&mut self, deadline: Deadline) -> Option<String> {
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let record = String::from_utf8_lossy(&buf[..n]).into_owned();
                    // "prio,seq,usec,flags;text\n" plus " KEY=value" lines.
                    let text = record.split_once(';').map(|(_, t)| t).unwrap_or("");
                    return Some(text.lines().next().unwrap_or("").to_string());
                }
                Ok(_) => {}
                // Overwritten before we read it: move on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
            if deadline.passed() {
                return None;
            }
            thread::sleep(Duration::from_millis(10).min(deadline.left()));
        }
    }

    /// Collects messages until `done` says the collection is complete or
    /// the timeout passes; returns what was read either way.
    pub fn collect(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Deadline::after(timeout);
        let mut lines = Vec::new();
        while !done(&lines) {
            match self.next(deadline) {
                Some(line) => lines.push(line),
                None => break,
            }
        }
        lines
    }

    /// Waits for the `Killed process` line of each pid.
    pub fn killed(&mut self, pids: &[u32], timeout: Duration) -> Vec<String> {
        self.collect(timeout, |lines| {
            pids.iter().all(|pid| {
                lines
                    .iter()
                    .filter_map(|l| KilledProcess::parse(l))
                    .any(|k| k.pid == *pid)
            })
        })
    }
}

/// `<reason>: Killed process <pid> (<comm>) total-vm:<n>kB, anon-rss:<n>kB,
/// file-rss:<n>kB, shmem-rss:<n>kB, UID:<n> pgtables:<n>kB oom_score_adj:<n>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledProcess {
    pub pid: u32,
    /// Raw comm bytes (kmsg's `\xNN` escapes decoded).
    pub comm: Vec<u8>,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub uid: u32,
    pub pgtables_kb: u64,
    pub oom_score_adj: i32,
}

impl KilledProcess {
    pub fn parse(line: &str) -> Option<KilledProcess> {
        let rest = line.split_once("Killed process ")?.1;
        let (pid, rest) = rest.split_once(" (")?;
        // comm may contain ") " itself: the figures start at the last one.
        let split = rest.rfind(") total-vm:")?;
        let comm = unescape(&rest[..split]);
        let figures = &rest[split + ") ".len()..];
        let field = |key: &str| -> Option<&str> {
            let start = figures.find(key)? + key.len();
            let value = &figures[start..];
            let end = value
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(value.len());
            Some(&value[..end])
        };
        Some(KilledProcess {
            pid: pid.trim().parse().ok()?,
            comm,
            total_vm_kb: field("total-vm:")?.parse().ok()?,
            anon_rss_kb: field("anon-rss:")?.parse().ok()?,
            file_rss_kb: field("file-rss:")?.parse().ok()?,
            shmem_rss_kb: field("shmem-rss:")?.parse().ok()?,
            uid: field("UID:")?.parse().ok()?,
            pgtables_kb: field("pgtables:")?.parse().ok()?,
            oom_score_adj: field("oom_score_adj:")?.parse().ok()?,
        })
    }
}

/// `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,
/// mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=x,pid=1,uid=0`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKillLine {
    pub constraint: String,
    /// `None` for a global OOM (`global_oom`).
    pub oom_memcg: Option<String>,
    pub task_memcg: String,
    pub task: Vec<u8>,
    pub pid: u32,
    pub uid: u32,
}

impl OomKillLine {
    pub fn parse(line: &str) -> Option<OomKillLine> {
        let rest = line.split_once("oom-kill:constraint=")?.1;
        let constraint = rest.split(',').next()?.to_string();
        // Paths and comm may contain commas: cut at the known keys, last first.
        let uid_at = rest.rfind(",uid=")?;
        let pid_at = rest[..uid_at].rfind(",pid=")?;
        let task_at = rest[..pid_at].rfind(",task=")?;
        let task_memcg_at = rest[..task_at].rfind(",task_memcg=")?;
        let oom_memcg = rest[..task_memcg_at]
            .rfind(",oom_memcg=")
            .map(|at| rest[at + ",oom_memcg=".len()..task_memcg_at].to_string());
        Some(OomKillLine {
            constraint,
            oom_memcg,
            task_memcg: rest[task_memcg_at + ",task_memcg=".len()..task_at].to_string(),
            task: unescape(&rest[task_at + ",task=".len()..pid_at]),
            pid: rest[pid_at + ",pid=".len()..uid_at].parse().ok()?,
            uid: rest[uid_at + ",uid=".len()..].trim().parse().ok()?,
        })
    }
}

/// `<comm> invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0,
/// oom_score_adj=0`: the first line of the OOM killer's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoked {
    pub gfp_mask: u32,
    pub order: i32,
}

impl Invoked {
    pub fn parse(line: &str) -> Option<Invoked> {
        let rest = line.split_once(" invoked oom-killer: gfp_mask=0x")?.1;
        let hex_end = rest.find(|c: char| !c.is_ascii_hexdigit())?;
        let gfp_mask = u32::from_str_radix(&rest[..hex_end], 16).ok()?;
        let order = rest.split_once("order=")?.1;
        let order_end = order
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(order.len());
        Some(Invoked {
            gfp_mask,
            order: order[..order_end].parse().ok()?,
        })
    }
}

/// `memory: usage 65536kB, limit 65536kB, failcnt 1181`: the OOM memcg's
/// page counter, printed in the report of a memcg OOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryUsage {
    pub usage_kb: u64,
    pub limit_kb: u64,
    pub failcnt: u64,
}

impl MemoryUsage {
    pub fn parse(line: &str) -> Option<MemoryUsage> {
        let rest = line.strip_prefix("memory: usage ")?;
        let (usage, rest) = rest.split_once("kB, limit ")?;
        let (limit, rest) = rest.split_once("kB, failcnt ")?;
        Some(MemoryUsage {
            usage_kb: usage.trim().parse().ok()?,
            limit_kb: limit.trim().parse().ok()?,
            failcnt: rest.trim().parse().ok()?,
        })
    }
}

/// A row of the report's task table (`vm.oom_dump_tasks`), memory in pages:
/// `[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem
/// pgtables_bytes swapents oom_score_adj name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub pid: u32,
    pub uid: u32,
    pub tgid: u32,
    pub total_vm: u64,
    pub rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
    pub pgtables_bytes: u64,
    pub swapents: u64,
    pub oom_score_adj: i64,
    pub name: Vec<u8>,
}

impl TaskRow {
    pub fn parse(line: &str) -> Option<TaskRow> {
        let rest = line.trim_start().strip_prefix('[')?;
        let (pid, rest) = rest.split_once(']')?;
        let mut fields = rest.split_whitespace();
        let mut next = || fields.next();
        let row = TaskRow {
            pid: pid.trim().parse().ok()?,
            uid: next()?.parse().ok()?,
            tgid: next()?.parse().ok()?,
            total_vm: next()?.parse().ok()?,
            rss: next()?.parse().ok()?,
            rss_anon: next()?.parse().ok()?,
            rss_file: next()?.parse().ok()?,
            rss_shmem: next()?.parse().ok()?,
            pgtables_bytes: next()?.parse().ok()?,
            swapents: next()?.parse().ok()?,
            oom_score_adj: next()?.parse().ok()?,
            name: Vec::new(),
        };
        // The name is what follows the ten numbers and may hold spaces.
        let mut tail = rest;
        for _ in 0..10 {
            tail = tail.trim_start();
            tail = &tail[tail.find(char::is_whitespace)?..];
        }
        Some(TaskRow {
            name: unescape(tail.trim_start()),
            ..row
        })
    }
}

/// The task table rows of the report that ends with `pid`'s kill.
pub fn task_table_of(lines: &[String], pid: u32) -> Vec<TaskRow> {
    let Some(at) = lines
        .iter()
        .position(|l| OomKillLine::parse(l).is_some_and(|k| k.pid == pid))
    else {
        return Vec::new();
    };
    let start = lines[..at]
        .iter()
        .rposition(|l| Invoked::parse(l).is_some())
        .unwrap_or(at);
    lines[start..at]
        .iter()
        .filter_map(|l| TaskRow::parse(l))
        .collect()
}

/// The kernel's report of one kill of `pid`: the `oom-kill:` line and,
/// before it in the same report, the `invoked oom-killer` and (memcg OOM)
/// `memory: usage` lines.
pub fn report_of(
    lines: &[String],
    pid: u32,
) -> Option<(OomKillLine, Option<Invoked>, Option<MemoryUsage>)> {
    let at = lines
        .iter()
        .position(|l| OomKillLine::parse(l).is_some_and(|k| k.pid == pid))?;
    let context = OomKillLine::parse(&lines[at])?;
    let start = lines[..at]
        .iter()
        .rposition(|l| Invoked::parse(l).is_some());
    let report = &lines[start.unwrap_or(at)..at];
    let invoked = report.iter().find_map(|l| Invoked::parse(l));
    let usage = report.iter().find_map(|l| MemoryUsage::parse(l));
    Some((context, invoked, usage))
}

/// /dev/kmsg writes bytes < 0x20, >= 0x7f and `\` as `\xNN`.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(value) = text
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The OOM killer prints its report (`invoked oom-killer`, the task table
/// and the `oom-kill:` line) at most 10 times per 5 s window
/// (`oom_rs` in mm/oom_kill.c); only `Killed process` is never
/// suppressed. A test that needs the full report first waits until the
/// kernel log shows fewer than 9 OOM kills in the last 5 s: then the
/// current window, whenever it began, has room for one more.
pub fn wait_for_oom_report_budget() -> Result<()> {
    const WINDOW_US: u64 = 5_000_000;
    const ROOM: usize = 9;
    // Gives up after 10 s: a test then sees a missing report, not a hang.
    let deadline = Deadline::after(Duration::from_secs(10));
    loop {
        let now_us = monotonic_us();
        let recent: Vec<u64> = history()?
            .into_iter()
            .filter(|(_, text)| {
                text.contains("Killed process ")
                    || text.contains("is already exiting. Skip killing")
            })
            .map(|(ts, _)| ts)
            .filter(|ts| now_us.saturating_sub(*ts) < WINDOW_US)
            .collect();
        if recent.len() < ROOM || deadline.passed() {
            return Ok(());
        }
        let oldest = recent.iter().min().copied().unwrap_or(now_us);
        let wait = WINDOW_US.saturating_sub(now_us.saturating_sub(oldest)) + 50_000;
        thread::sleep(Duration::from_micros(wait).min(deadline.left()));
    }
}

/// Every message still in the kernel's buffer: (timestamp in µs, text).
fn history() -> Result<Vec<(u64, String)>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .context("open /dev/kmsg")?;
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                let Some((prefix, text)) = record.split_once(';') else {
                    continue;
                };
                let ts = prefix
                    .split(',')
                    .nth(2)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                out.push((ts, text.lines().next().unwrap_or("").to_string()));
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    Ok(out)
}

/// The clock /dev/kmsg timestamps use (local_clock, close to
/// CLOCK_MONOTONIC).
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_memcg_kill_line() {
        let line = "Memory cgroup out of memory: Killed process 3571 (python3) total-vm:221368kB, anon-rss:50816kB, file-rss:1928kB, shmem-rss:0kB, UID:0 pgtables:164kB oom_score_adj:0";
        assert_eq!(
            KilledProcess::parse(line),
            Some(KilledProcess {
                pid: 3571,
                comm: b"python3".to_vec(),
                total_vm_kb: 221368,
                anon_rss_kb: 50816,
                file_rss_kb: 1928,
                shmem_rss_kb: 0,
                uid: 0,
                pgtables_kb: 164,
                oom_score_adj: 0,
            })
        );
    }

    #[test]
    fn comm_with_parentheses_and_escapes() {
        let line = "Out of memory: Killed process 7 (a) (b\\x5c\\xff) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:65534 pgtables:5kB oom_score_adj:-1000";
        let k = KilledProcess::parse(line).expect("parses");
        assert_eq!(k.comm, b"a) (b\\\xff");
        assert_eq!((k.uid, k.oom_score_adj, k.pgtables_kb), (65534, -1000, 5));
    }

    #[test]
    fn parses_the_constraint_line() {
        let line = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomtrace-test-a,task_memcg=/oomtrace-test-a/b,c,task=python3,pid=3571,uid=0";
        let l = OomKillLine::parse(line).expect("parses");
        assert_eq!(l.constraint, "CONSTRAINT_MEMCG");
        assert_eq!(l.oom_memcg.as_deref(), Some("/oomtrace-test-a"));
        assert_eq!(l.task_memcg, "/oomtrace-test-a/b,c");
        assert_eq!(
            (l.task.as_slice(), l.pid, l.uid),
            (&b"python3"[..], 3571, 0)
        );
        let global = "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=1,uid=0";
        assert_eq!(OomKillLine::parse(global).and_then(|l| l.oom_memcg), None);
    }

    #[test]
    fn parses_the_report_header_and_the_memcg_counter() {
        let invoked = "oomtrace-test-h invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=321";
        assert_eq!(
            Invoked::parse(invoked),
            Some(Invoked {
                gfp_mask: 0xcc0,
                order: 0
            })
        );
        let sysrq = "kworker/0:1 invoked oom-killer: gfp_mask=0x0(), order=-1, oom_score_adj=0";
        assert_eq!(
            Invoked::parse(sysrq),
            Some(Invoked {
                gfp_mask: 0,
                order: -1
            })
        );
        assert_eq!(
            MemoryUsage::parse("memory: usage 65536kB, limit 65536kB, failcnt 1181"),
            Some(MemoryUsage {
                usage_kb: 65536,
                limit_kb: 65536,
                failcnt: 1181
            })
        );
        assert_eq!(
            MemoryUsage::parse("memory+swap: usage 1kB, limit 2kB, failcnt 0"),
            None
        );
    }

    #[test]
    fn a_report_is_the_lines_from_its_header_to_its_kill() {
        let lines: Vec<String> = [
            "a invoked oom-killer: gfp_mask=0x1(), order=1, oom_score_adj=0",
            "memory: usage 1kB, limit 1kB, failcnt 1",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x,task=a,pid=10,uid=0",
            "Memory cgroup out of memory: Killed process 10 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
            "b invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "memory: usage 2kB, limit 2kB, failcnt 7",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/y,task_memcg=/y,task=b,pid=11,uid=0",
        ]
        .map(String::from)
        .to_vec();
        let (context, invoked, usage) = report_of(&lines, 11).expect("found");
        assert_eq!(context.oom_memcg.as_deref(), Some("/y"));
        assert_eq!(invoked.map(|i| i.gfp_mask), Some(0xcc0));
        assert_eq!(usage.map(|u| u.failcnt), Some(7));
        assert_eq!(
            report_of(&lines, 10).and_then(|r| r.2).map(|u| u.failcnt),
            Some(1)
        );
        assert!(report_of(&lines, 12).is_none());
    }

    #[test]
    fn parses_task_table_rows() {
        let row = "[  28551] 65534 28551    17195    16802    16352      450         0   176128        0           567 oomtrace-test-h";
        let t = TaskRow::parse(row).expect("a row");
        assert_eq!(
            (t.pid, t.uid, t.tgid, t.total_vm, t.rss),
            (28551, 65534, 28551, 17195, 16802)
        );
        assert_eq!(
            (
                t.rss_anon,
                t.rss_file,
                t.rss_shmem,
                t.pgtables_bytes,
                t.swapents
            ),
            (16352, 450, 0, 176128, 0)
        );
        assert_eq!(
            (t.oom_score_adj, t.name.as_slice()),
            (567, &b"oomtrace-test-h"[..])
        );
        let spaced = "[   7]     0     7      100       10       10        0         0     4096        0             0 my app";
        assert_eq!(
            TaskRow::parse(spaced).map(|t| t.name),
            Some(b"my app".to_vec())
        );
        assert_eq!(
            TaskRow::parse("Tasks state (memory values in pages):"),
            None
        );
        assert_eq!(
            TaskRow::parse("[  pid  ]   uid  tgid total_vm      rss rss_anon"),
            None
        );
    }

    #[test]
    fn other_lines_are_not_kills() {
        assert_eq!(
            KilledProcess::parse("oom_reaper: reaped process 5 (x), now anon-rss:0kB"),
            None
        );
        assert_eq!(
            OomKillLine::parse("python3 invoked oom-killer: gfp_mask=0xcc0"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn any_log_line_parses_or_is_refused_without_panicking(line in ".{0,300}") {
            let _ = KilledProcess::parse(&line);
            let _ = OomKillLine::parse(&line);
            let _ = Invoked::parse(&line);
            let _ = MemoryUsage::parse(&line);
            let _ = TaskRow::parse(&line);
        }

        #[test]
        fn a_killed_process_line_gives_back_its_figures(
            pid in 1u32..4_194_304,
            comm in proptest::collection::vec(1u8..=255, 0..=15),
            figures in proptest::array::uniform5(0u64..1 << 40),
            uid in proptest::num::u32::ANY,
            adj in -1000i32..=1000,
        ) {
            // The kernel's own format (mm/oom_kill.c __oom_kill_process),
            // with the comm escaped as /dev/kmsg escapes it.
            let escaped: String = comm
                .iter()
                .map(|&b| match b {
                    b'\\' | 0..0x20 | 0x7f.. => format!("\\x{b:02x}"),
                    _ => char::from(b).to_string(),
                })
                .collect();
            let line = format!(
                "Memory cgroup out of memory: Killed process {pid} ({escaped}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB, UID:{uid} pgtables:{}kB oom_score_adj:{adj}",
                figures[0], figures[1], figures[2], figures[3], figures[4]
            );
            let expected = KilledProcess {
                pid,
                comm,
                total_vm_kb: figures[0],
                anon_rss_kb: figures[1],
                file_rss_kb: figures[2],
                shmem_rss_kb: figures[3],
                uid,
                pgtables_kb: figures[4],
                oom_score_adj: adj,
            };
            proptest::prop_assert_eq!(KilledProcess::parse(&line), Some(expected));
        }
    }
}
