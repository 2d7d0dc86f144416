//! Who else was in the OOM domain: the other processes, scored the way the
//! OOM killer scores them, so "victim != culprit" is visible. Taken by the
//! kernel side at the kill where it can ([`from_kernel`]); otherwise read
//! from /proc right after the kill is reported (the record says how long
//! after), not from the kernel's task table, which the log drops when rate
//! limited.

use std::{
    ffi::CStr,
    fs::{self, File, OpenOptions},
    io::{self, Read as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _},
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
};

use crate::{
    decode::KernelCandidates,
    report::{CandidateReport, CandidatesReport, kernel_text},
};

/// OOM_SCORE_ADJ_MIN: the OOM killer never picks these.
const UNKILLABLE: i64 = -1000;

/// Where to look for the domain's processes.
pub enum Domain<'a> {
    /// A memcg OOM: the processes in this cgroup directory's subtree.
    Memcg(&'a Path),
    /// The same, with its directory held open by a [`Dirs`] cache; the
    /// `cgroup.procs` read is left open in the Vec, for the caller to close
    /// once the record is out.
    Open(&'a File, &'a Path, &'a mut Vec<File>),
    /// A global OOM: every process.
    Global,
}

/// How many OOM domains' directories [`Dirs`] keeps open.
const DIRS_KEPT: usize = 8;

/// The directories of the memcgs whose OOMs were scanned last, held open
/// (`O_PATH`: no read access, no lock on the cgroup): a kill in one of
/// them opens its `cgroup.procs` relative to it, without walking the
/// cgroup mount's path again. Only the directory is kept, never the
/// `cgroup.procs` file: cgroup v1 hands a file kept open its list of pids
/// from the last read for a while, so each scan opens it afresh.
#[derive(Default)]
pub struct Dirs {
    /// (memcg id, path, directory), the most recently used last.
    open: Vec<(u64, PathBuf, File)>,
}

impl Dirs {
    /// The directory of memcg `id` at `path`, opened now or kept from an
    /// earlier kill. `None` when it cannot be opened, or its inode is not
    /// `id` (then it is another cgroup of that name, or not a cgroup).
    pub fn get(&mut self, id: u64, path: &Path) -> Option<&File> {
        if let Some(at) = self
            .open
            .iter()
            .position(|(kept, kept_path, _)| *kept == id && kept_path == path)
        {
            let entry = self.open.remove(at);
            self.open.push(entry);
        } else {
            let dir = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(path)
                .ok()?;
            if dir.metadata().ok()?.ino() != id {
                return None;
            }
            if self.open.len() >= DIRS_KEPT {
                self.open.remove(0);
            }
            self.open.push((id, path.to_path_buf(), dir));
        }
        self.open.last().map(|(_, _, dir)| dir)
    }

    /// Drops memcg `id`'s directory: it failed (removed since).
    pub fn forget(&mut self, id: u64) {
        self.open.retain(|(kept, _, _)| *kept != id);
    }
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
    /// Parses /proc/PID/status in one pass; `None` for kernel threads (no
    /// memory). The first line of each key counts.
    pub fn parse(pid: u32, status: &[u8]) -> Option<ProcessMemory> {
        let mut name = None;
        let mut found: [Option<Option<u64>>; 5] = [None; 5];
        for line in status.split(|b| *b == b'\n') {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (key, value) = (&line[..colon], &line[colon + 1..]);
            let slot = match key {
                b"Name" => {
                    // The comm with \n and \\ escaped by the kernel.
                    if name.is_none() {
                        name = Some(value.strip_prefix(b"\t").unwrap_or(value));
                    }
                    continue;
                }
                b"RssAnon" => 0,
                b"RssFile" => 1,
                b"RssShmem" => 2,
                b"VmSwap" => 3,
                b"VmPTE" => 4,
                _ => continue,
            };
            found[slot].get_or_insert_with(|| kb(value));
        }
        let [anon, file, shmem, swap, pte] = found;
        Some(ProcessMemory {
            pid,
            comm: unescape_status_name(name.unwrap_or_default()),
            rss_anon: anon??,
            rss_file: file??,
            rss_shmem: shmem??,
            swap: swap.flatten().unwrap_or(0),
            pgtables: pte.flatten().unwrap_or(0),
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

impl ProcessMemory {
    /// Its row of the table, scored against `totalpages`.
    fn row(
        &self,
        oom_score_adj: i64,
        totalpages: u64,
        page_size: u64,
        oom_score: Option<i64>,
    ) -> CandidateReport {
        CandidateReport {
            pid: self.pid,
            comm: kernel_text(&self.comm),
            rss_bytes: self.rss(),
            rss_anon_bytes: self.rss_anon,
            rss_file_bytes: self.rss_file,
            rss_shmem_bytes: self.rss_shmem,
            swap_bytes: self.swap,
            pgtables_bytes: self.pgtables,
            oom_score_adj,
            badness: self.badness(oom_score_adj, totalpages, page_size),
            oom_score,
        }
    }

    /// `proc_oom_score()`: the badness against `machine_pages` (RAM plus
    /// swap), scaled into 0..=2000; 0 for unkillable processes.
    pub fn oom_score(&self, oom_score_adj: i64, machine_pages: u64, page_size: u64) -> i64 {
        let Some(badness) = self.badness(oom_score_adj, machine_pages, page_size) else {
            return 0;
        };
        let Ok(total) = i64::try_from(machine_pages.max(1)) else {
            return 0;
        };
        badness
            .checked_mul(1000)
            .map_or(0, |scaled| ((1000 + scaled / total) * 2 / 3).max(0))
    }
}

/// A status value such as `   50000 kB`, in bytes.
fn kb(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?
        .checked_mul(1024)
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

/// Reads a small generated file (procfs, cgroupfs: their size is 0, so no
/// stat for a size hint) into `buf`, reusing its capacity; the length read.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<usize> {
    read_file_into(&mut File::open(path)?, buf)
}

fn read_file_into(file: &mut File, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut len = 0;
    loop {
        if buf.len() - len < 1024 {
            buf.resize((buf.len() * 2).max(4096), 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A text file's first number (`oom_score_adj`, `oom_score`).
fn number<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// Reads `dir`'s `cgroup.procs` into `buf`, reusing its capacity; the
/// file is handed back, still open, for the caller to close when it can.
fn read_procs_at(dir: &File, buf: &mut Vec<u8>) -> io::Result<(usize, File)> {
    const PROCS: &CStr = c"cgroup.procs";
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the
    // descriptor returned is owned by the File.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            PROCS.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let len = read_file_into(&mut file, buf)?;
    Ok((len, file))
}

/// Process ids in the cgroup directory held open as `dir` and its
/// descendants; `Err` when its `cgroup.procs` cannot be opened (the cgroup
/// is gone).
fn pids_in_open_subtree(
    dir: &File,
    path: &Path,
    buf: &mut Vec<u8>,
    close_later: &mut Vec<File>,
) -> io::Result<Vec<u32>> {
    let (len, procs) = read_procs_at(dir, buf)?;
    // Closing a cgroup v1 `cgroup.procs` costs the kernel some microseconds
    // (its pid list's release): after the record's line, not before.
    close_later.push(procs);
    let mut pids: Vec<u32> = buf[..len]
        .split(|b| *b == b'\n')
        .filter_map(number::<u32>)
        .collect();
    // A leaf (2 links: see pids_in_subtree) is all there is.
    if !dir.metadata().is_ok_and(|m| m.nlink() == 2)
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(pids_in_subtree(&entry.path(), buf));
            }
        }
    }
    Ok(pids)
}

/// Process ids in a cgroup directory and its descendants.
fn pids_in_subtree(dir: &Path, buf: &mut Vec<u8>) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(mut dir) = stack.pop() {
        dir.push("cgroup.procs");
        if let Ok(len) = read_into(&dir, buf) {
            pids.extend(buf[..len].split(|b| *b == b'\n').filter_map(number::<u32>));
        }
        dir.pop();
        // cgroupfs (kernfs), like most file systems, counts a directory's
        // links as 2 + its subdirectories: 2 is a leaf, no listing needed
        // (one stat instead of an open, two getdents and a close).
        if fs::metadata(&dir).is_ok_and(|m| m.nlink() == 2) {
            continue;
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

/// `/proc/PID/NAME` in `path`, reusing its buffer.
fn proc_file<'p>(path: &'p mut String, pid: u32, name: &str) -> &'p Path {
    use std::fmt::Write as _;
    path.clear();
    // Writing to a String cannot fail.
    let _ = write!(path, "/proc/{pid}/{name}");
    Path::new(path.as_str())
}

/// The top `limit` processes of `domain` by badness, the victim's process
/// (`victim_tgid`) left out. Two files per process (`status`,
/// `oom_score_adj`), one buffer for all; `oom_score` only for the rows kept.
/// `None` when an [`Domain::Open`] directory failed: see [`Dirs::forget`].
pub fn scan(
    domain: Domain<'_>,
    victim_tgid: Option<u32>,
    totalpages: u64,
    page_size: u64,
    limit: usize,
) -> Option<(usize, Vec<CandidateReport>)> {
    let mut buf = Vec::new();
    let pids = match domain {
        Domain::Memcg(dir) => pids_in_subtree(dir, &mut buf),
        Domain::Open(dir, path, close_later) => {
            match pids_in_open_subtree(dir, path, &mut buf, close_later) {
                Ok(pids) => pids,
                Err(_) => return None,
            }
        }
        Domain::Global => all_pids(Path::new("/proc")),
    };
    let mut path = String::with_capacity(32);
    let mut seen = 0;
    let mut rows = Vec::new();
    for pid in pids {
        if Some(pid) == victim_tgid {
            continue;
        }
        // Gone since it was listed: skipped.
        let Some(adj) = read_into(proc_file(&mut path, pid, "oom_score_adj"), &mut buf)
            .ok()
            .and_then(|len| number::<i64>(&buf[..len]))
        else {
            continue;
        };
        let Ok(len) = read_into(proc_file(&mut path, pid, "status"), &mut buf) else {
            continue;
        };
        let Some(memory) = ProcessMemory::parse(pid, &buf[..len]) else {
            continue;
        };
        seen += 1;
        rows.push(memory.row(adj, totalpages, page_size, None));
    }
    sort_by_badness(&mut rows);
    rows.truncate(limit);
    for row in &mut rows {
        row.oom_score = read_into(proc_file(&mut path, row.pid, "oom_score"), &mut buf)
            .ok()
            .and_then(|len| number(&buf[..len]));
    }
    Some((seen, rows))
}

/// The candidates record part from the kernel side's table, taken at the
/// kill: its top `limit` rows by badness (against `totalpages`, as the
/// OOM killer weighed them), and each row's `oom_score` as
/// /proc/PID/oom_score would have read then.
pub fn from_kernel(
    table: &KernelCandidates,
    totalpages: u64,
    page_size: u64,
    limit: usize,
) -> CandidatesReport {
    let machine_pages = machine_pages(page_size);
    let mut top: Vec<CandidateReport> = table
        .rows
        .iter()
        .map(|row| {
            let bytes = |pages: u64| pages.saturating_mul(page_size);
            let memory = ProcessMemory {
                pid: row.tgid,
                comm: row.comm.clone(),
                rss_anon: bytes(row.rss_anon_pages),
                rss_file: bytes(row.rss_file_pages),
                rss_shmem: bytes(row.rss_shmem_pages),
                swap: bytes(row.swap_pages),
                pgtables: row.pgtables_bytes,
            };
            let adj = i64::from(row.oom_score_adj);
            let oom_score = machine_pages.map(|total| memory.oom_score(adj, total, page_size));
            memory.row(adj, totalpages, page_size, oom_score)
        })
        .collect();
    sort_by_badness(&mut top);
    top.truncate(limit);
    CandidatesReport {
        source: crate::report::CandidatesSource::Kernel,
        taken_after_us: 0,
        processes: table.processes as usize,
        top,
    }
}

/// RAM plus swap in pages, what /proc/PID/oom_score weighs against
/// (`totalram_pages() + total_swap_pages`); `None` if sysinfo fails.
/// Kept for [`MACHINE_PAGES_KEPT`]: sysinfo walks the block devices, some
/// microseconds in front of a kill's line, and RAM and swap rarely change.
fn machine_pages(page_size: u64) -> Option<u64> {
    use std::sync::Mutex;
    static KEPT: Mutex<Option<(std::time::Instant, Option<u64>)>> = Mutex::new(None);
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match *kept {
        Some((at, pages)) if at.elapsed() < MACHINE_PAGES_KEPT => pages,
        _ => {
            let pages = read_machine_pages(page_size);
            *kept = Some((std::time::Instant::now(), pages));
            pages
        }
    }
}

/// How long [`machine_pages`] keeps its answer (swapon, memory hotplug).
const MACHINE_PAGES_KEPT: std::time::Duration = std::time::Duration::from_secs(10);

fn read_machine_pages(page_size: u64) -> Option<u64> {
    // SAFETY: sysinfo fills the struct it is given.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a sysinfo struct.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    let unit = u64::from(info.mem_unit.max(1));
    let bytes = (info.totalram as u64).saturating_add(info.totalswap as u64);
    Some(bytes.saturating_mul(unit) / page_size.max(1)).filter(|pages| *pages > 0)
}

/// Highest badness first; unkillable ones last.
fn sort_by_badness(rows: &mut [CandidateReport]) {
    rows.sort_by(|a, b| {
        b.badness
            .unwrap_or(i64::MIN)
            .cmp(&a.badness.unwrap_or(i64::MIN))
            .then(a.pid.cmp(&b.pid))
    });
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
    fn oom_score_scales_the_badness_as_proc_does() {
        let p = ProcessMemory::parse(7, STATUS).expect("a process");
        // proc_oom_score(): (1000 + 13051 * 1000 / 1,000,000) * 2 / 3.
        assert_eq!(p.oom_score(0, 1_000_000, 4096), (1000 + 13) * 2 / 3);
        // +500 x 1000 pages: (1000 + 513051 * 1000 / 1,000,000) * 2 / 3.
        assert_eq!(p.oom_score(500, 1_000_000, 4096), (1000 + 513) * 2 / 3);
        assert_eq!(p.oom_score(-1000, 1_000_000, 4096), 0, "unkillable");
    }

    #[test]
    fn a_kernel_table_is_sorted_cut_and_in_bytes() {
        use crate::decode::KernelCandidate;
        let row = |tgid: u32, anon: u64, adj: i16| KernelCandidate {
            tgid,
            comm: b"java".to_vec(),
            oom_score_adj: adj,
            rss_anon_pages: anon,
            rss_file_pages: 1,
            rss_shmem_pages: 2,
            swap_pages: 3,
            pgtables_bytes: 8192,
        };
        let table = KernelCandidates {
            victim_pid: 9,
            boot_ns: 1,
            complete: true,
            machine: false,
            processes: 4,
            rows: vec![
                row(10, 5, 0),
                row(11, 500, 0),
                row(12, 1, -1000),
                row(13, 50, 0),
            ],
        };
        let report = from_kernel(&table, 16384, 4096, 2);
        assert_eq!(report.source, crate::report::CandidatesSource::Kernel);
        assert_eq!((report.taken_after_us, report.processes), (0, 4));
        let pids: Vec<u32> = report.top.iter().map(|r| r.pid).collect();
        assert_eq!(pids, [11, 13], "highest badness first, cut to the limit");
        let top = &report.top[0];
        assert_eq!(top.comm, "java");
        assert_eq!(
            (top.rss_anon_bytes, top.rss_file_bytes, top.rss_shmem_bytes),
            (500 * 4096, 4096, 2 * 4096)
        );
        assert_eq!((top.swap_bytes, top.pgtables_bytes), (3 * 4096, 8192));
        // 500 + 1 + 2 RSS, 3 swap, 2 page-table pages.
        assert_eq!(top.badness, Some(508));
        let all = from_kernel(&table, 16384, 4096, 10);
        assert_eq!(all.top.last().map(|r| (r.pid, r.badness)), Some((12, None)));
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

    #[test]
    fn a_subtree_lists_its_leaves_and_inner_cgroups() {
        /// Removed however the test ends.
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
        let root = Scratch(
            std::env::temp_dir().join(format!("oomtrace-candidates-{}", std::process::id())),
        );
        let root = root.0.as_path();
        let tree = [("", "1\n2\n"), ("a", "3\n"), ("a/b", "4\n5\n"), ("c", "")];
        for (dir, procs) in tree {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("cgroup.procs"), procs).expect("write");
        }
        let mut pids = pids_in_subtree(root, &mut Vec::new());
        pids.sort_unstable();
        assert_eq!(pids, [1, 2, 3, 4, 5]);
        let mut leaf = pids_in_subtree(&root.join("a/b"), &mut Vec::new());
        leaf.sort_unstable();
        assert_eq!(leaf, [4, 5]);
    }

    #[test]
    fn a_kept_directory_is_its_memcgs_and_fails_once_removed() {
        /// Removed however the test ends.
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
        let root =
            Scratch(std::env::temp_dir().join(format!("oomtrace-dirs-{}", std::process::id())));
        let dir = root.0.join("cg");
        fs::create_dir_all(dir.join("child")).expect("mkdir");
        fs::write(dir.join("cgroup.procs"), "1\n2\n").expect("write");
        fs::write(dir.join("child/cgroup.procs"), "3\n").expect("write");
        let ino = fs::metadata(&dir).expect("stat").ino();
        let mut dirs = Dirs::default();
        assert!(dirs.get(ino + 1, &dir).is_none(), "another cgroup's id");
        let open = dirs.get(ino, &dir).expect("opened");
        let mut kept = Vec::new();
        let mut pids = pids_in_open_subtree(open, &dir, &mut Vec::new(), &mut kept).expect("read");
        assert_eq!(kept.len(), 1, "its cgroup.procs, left open for later");
        pids.sort_unstable();
        assert_eq!(pids, [1, 2, 3], "its subtree too");
        assert_eq!(dirs.open.len(), 1);
        // Kept: the same one again, however many others come after.
        for other in 0..DIRS_KEPT as u64 {
            let _ = dirs.get(ino + 2 + other, &root.0);
        }
        assert!(dirs.get(ino, &dir).is_some());
        assert!(dirs.open.len() <= DIRS_KEPT);
        // Removed (and made again under the same name): the kept one fails.
        fs::remove_dir_all(&dir).expect("rm");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("cgroup.procs"), "9\n").expect("write");
        let open = dirs.get(ino, &dir).expect("kept");
        assert!(pids_in_open_subtree(open, &dir, &mut Vec::new(), &mut kept).is_err());
        dirs.forget(ino);
        let new_ino = fs::metadata(&dir).expect("stat").ino();
        assert!(dirs.get(ino, &dir).is_none() || new_ino == ino);
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
