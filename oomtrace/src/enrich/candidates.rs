//! Who else was in the OOM domain: the other processes, scored the way the
//! OOM killer scores them, so "victim != culprit" is visible. Read from
//! /proc right after the kill is reported (the record says how long after),
//! not from the kernel's task table, which the log drops when rate limited.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::report::{CandidateReport, CandidatesReport, kernel_text};

/// OOM_SCORE_ADJ_MIN: the OOM killer never picks these.
const UNKILLABLE: i64 = -1000;

/// Where to look for the domain's processes.
pub enum Domain<'a> {
    /// A memcg OOM: the processes in this cgroup directory's subtree.
    Memcg(&'a Path),
    /// A global OOM: every process.
    Global,
}

/// One process as /proc shows it; memory in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMemory {
    pub pid: u32,
    pub comm: Vec<u8>,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
    pub swap: u64,
    pub pgtables: u64,
}

impl ProcessMemory {
    /// Parses /proc/PID/status; `None` for kernel threads (no memory).
    pub fn parse(pid: u32, status: &[u8]) -> Option<ProcessMemory> {
        let text = String::from_utf8_lossy(status);
        let kb = |key: &str| -> Option<u64> {
            let line = text.lines().find_map(|l| l.strip_prefix(key))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()?
                .checked_mul(1024)
        };
        // Name is the comm with \n and \\ escaped by the kernel.
        let name = status
            .split(|b| *b == b'\n')
            .find_map(|l| l.strip_prefix(b"Name:\t"))
            .unwrap_or_default();
        Some(ProcessMemory {
            pid,
            comm: unescape_status_name(name),
            rss_anon: kb("RssAnon:")?,
            rss_file: kb("RssFile:")?,
            rss_shmem: kb("RssShmem:")?,
            swap: kb("VmSwap:").unwrap_or(0),
            pgtables: kb("VmPTE:").unwrap_or(0),
        })
    }

    pub fn rss(&self) -> u64 {
        // Saturating: the counters come from a text file, not from a sum
        // the kernel guarantees to fit.
        self.rss_anon
            .saturating_add(self.rss_file)
            .saturating_add(self.rss_shmem)
    }

    /// `oom_badness()`: pages of RSS, swap and page tables, plus
    /// `oom_score_adj` times a thousandth of the memory the OOM killer
    /// weighed; `None` for unkillable processes.
    pub fn badness(&self, oom_score_adj: i64, totalpages: u64, page_size: u64) -> Option<i64> {
        if oom_score_adj == UNKILLABLE {
            return None;
        }
        let pages = self.rss().saturating_add(self.swap) / page_size + self.pgtables / page_size;
        // As the kernel writes it: `adj *= totalpages / 1000`, dividing
        // first. Out of i64 (absurd counters) is no score rather than an
        // overflow panic (found by the proc_status fuzz target).
        let adjust = oom_score_adj.checked_mul(i64::try_from(totalpages / 1000).ok()?)?;
        i64::try_from(pages).ok()?.checked_add(adjust)
    }
}

/// /proc/PID/status writes `\n` in names as `\n` and `\` as `\\`.
fn unescape_status_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            match bytes.next() {
                Some(b'n') => out.push(b'\n'),
                Some(&other) => out.push(other),
                None => out.push(b'\\'),
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Process ids in a cgroup directory and its descendants.
fn pids_in_subtree(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    pids
}

fn all_pids(proc_root: &Path) -> Vec<u32> {
    fs::read_dir(proc_root)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The top `limit` processes of `domain` by badness, the victim's process
/// (`victim_tgid`) left out.
pub fn scan(
    domain: Domain<'_>,
    victim_tgid: Option<u32>,
    totalpages: u64,
    page_size: u64,
    limit: usize,
) -> (usize, Vec<CandidateReport>) {
    let proc_root = PathBuf::from("/proc");
    let pids = match domain {
        Domain::Memcg(dir) => pids_in_subtree(dir),
        Domain::Global => all_pids(&proc_root),
    };
    let mut seen = 0;
    let mut rows = Vec::new();
    for pid in pids {
        if Some(pid) == victim_tgid {
            continue;
        }
        let dir = proc_root.join(pid.to_string());
        let (Ok(status), Ok(adj)) = (
            fs::read(dir.join("status")),
            fs::read_to_string(dir.join("oom_score_adj")),
        ) else {
            // Gone since it was listed.
            continue;
        };
        let Some(memory) = ProcessMemory::parse(pid, &status) else {
            continue;
        };
        let Ok(adj) = adj.trim().parse::<i64>() else {
            continue;
        };
        seen += 1;
        let oom_score = fs::read_to_string(dir.join("oom_score"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        rows.push(CandidateReport {
            pid,
            comm: kernel_text(&memory.comm),
            rss_bytes: memory.rss(),
            rss_anon_bytes: memory.rss_anon,
            rss_file_bytes: memory.rss_file,
            rss_shmem_bytes: memory.rss_shmem,
            swap_bytes: memory.swap,
            pgtables_bytes: memory.pgtables,
            oom_score_adj: adj,
            badness: memory.badness(adj, totalpages, page_size),
            oom_score,
        });
    }
    // Highest badness first; unkillable ones last.
    rows.sort_by(|a, b| {
        b.badness
            .unwrap_or(i64::MIN)
            .cmp(&a.badness.unwrap_or(i64::MIN))
            .then(a.pid.cmp(&b.pid))
    });
    rows.truncate(limit);
    (seen, rows)
}

/// The candidates record part.
pub fn report(taken_after_us: u64, scanned: (usize, Vec<CandidateReport>)) -> CandidatesReport {
    CandidatesReport {
        source: crate::report::CandidatesSource::Proc,
        taken_after_us,
        processes: scanned.0,
        top: scanned.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"Name:\tjava\\\\x\\nq\nUmask:\t0022\nVmPeak:\t  221368 kB\nVmRSS:\t   52000 kB\nRssAnon:\t   50000 kB\nRssFile:\t    2000 kB\nRssShmem:\t       0 kB\nVmPTE:\t     164 kB\nVmSwap:\t      40 kB\n";

    #[test]
    fn parses_status_memory_and_name() {
        let p = ProcessMemory::parse(7, STATUS).expect("a process");
        assert_eq!(p.comm, b"java\\x\nq");
        assert_eq!(
            (p.rss_anon, p.rss_file, p.rss_shmem),
            (50000 * 1024, 2000 * 1024, 0)
        );
        assert_eq!(
            (p.swap, p.pgtables, p.rss()),
            (40 * 1024, 164 * 1024, 52000 * 1024)
        );
        assert_eq!(
            ProcessMemory::parse(2, b"Name:\tkthreadd\nUmask:\t0000\n"),
            None,
            "kernel thread"
        );
    }

    #[test]
    fn badness_follows_oom_badness() {
        let p = ProcessMemory::parse(7, STATUS).expect("a process");
        // (52000 + 40) kB / 4 kB + 164 kB / 4 kB = 13010 + 41 pages.
        assert_eq!(p.badness(0, 16384, 4096), Some(13051));
        // +500 x (16384 / 1000 = 16) pages: the kernel divides first.
        assert_eq!(p.badness(500, 16384, 4096), Some(13051 + 8000));
        assert_eq!(p.badness(-999, 16384, 4096), Some(13051 - 15984));
        assert_eq!(p.badness(-1000, 16384, 4096), None, "never chosen");
    }

    #[test]
    fn absurd_counters_give_no_score_instead_of_overflowing() {
        let huge = ProcessMemory {
            pid: 1,
            comm: Vec::new(),
            rss_anon: u64::MAX,
            rss_file: u64::MAX,
            rss_shmem: 1,
            swap: u64::MAX,
            pgtables: 0,
        };
        assert_eq!(huge.rss(), u64::MAX);
        // u64::MAX / 4096 pages fit in i64; 1000 x that per mille does not.
        assert_eq!(huge.badness(0, 0, 4096), Some((u64::MAX / 4096) as i64));
        assert_eq!(huge.badness(1000, u64::MAX, 4096), None);
        assert_eq!(huge.badness(-999, u64::MAX, 4096), None);
    }

    proptest::proptest! {
        #[test]
        fn any_status_file_parses_or_is_refused_without_panicking(
            status in proptest::collection::vec(proptest::num::u8::ANY, 0..1024),
            big in proptest::num::u64::ANY,
        ) {
            let _ = ProcessMemory::parse(1, &status);
            let huge = format!("Name:\tx\nRssAnon:\t{big} kB\nRssFile:\t0 kB\nRssShmem:\t0 kB\n");
            let parsed = ProcessMemory::parse(1, huge.as_bytes());
            proptest::prop_assert_eq!(parsed.map(|p| p.rss_anon), big.checked_mul(1024));
        }

        #[test]
        fn status_names_unescape_to_the_comm(comm in proptest::collection::vec(1u8..=255, 0..15)) {
            let escaped: Vec<u8> = comm
                .iter()
                .flat_map(|&b| match b {
                    b'\n' => b"\\n".to_vec(),
                    b'\\' => b"\\\\".to_vec(),
                    b => vec![b],
                })
                .collect();
            proptest::prop_assert_eq!(unescape_status_name(&escaped), comm);
        }
    }
}
