//! Preconditions, serialization and kernel counters.

use std::{
    fs::{self, File, OpenOptions},
    os::fd::AsRawFd,
    path::PathBuf,
    sync::OnceLock,
};

use anyhow::{Context as _, Result, bail};

/// The oomtrace binary under test: `$OOMTRACE_BIN`, set by `cargo xtask test`.
pub fn oomtrace_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("OOMTRACE_BIN") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "OOMTRACE_BIN={} does not exist: run the suite with `cargo xtask test`",
                path.display()
            );
            path
        }
        None => panic!(
            "OOMTRACE_BIN is not set: run the kernel tests with `cargo xtask test`, which \
             builds oomtrace and points the tests at it"
        ),
    })
    .clone()
}

/// The helper that allocates memory on command. Cargo builds it next to
/// the test binaries (`target/<profile>/`, tests run from `deps/`).
pub fn hog_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let hog = exe
            .ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join("oomtrace-test-hog"))
            .find(|p| p.is_file());
        hog.unwrap_or_else(|| panic!("oomtrace-test-hog not found near {}: build it with `cargo build -p oomtrace-tests --bins`", exe.display()))
    })
    .clone()
}

/// Fails the test, loudly, when it cannot run here: kernel tests need root
/// (cgroups, BPF). They never pass by skipping.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "kernel tests create cgroups and load BPF programs: run them as root \
         (`sudo cargo xtask test`)"
    );
}

/// Held for the whole of a kernel test: tests that count kills must not
/// see each other's, whether they run as threads or as processes.
pub struct SerialGuard {
    _file: File,
}

pub fn serialize() -> SerialGuard {
    let path = std::env::temp_dir().join("oomtrace-tests.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
    // SAFETY: valid fd; flock blocks until the lock is ours. It is released
    // when the file is closed, including when a test panics.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    SerialGuard { _file: file }
}

/// `oom_kill` from /proc/vmstat: the kernel's count of OOM kills.
pub fn vmstat_oom_kill() -> Result<u64> {
    let text = fs::read_to_string("/proc/vmstat").context("read /proc/vmstat")?;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("oom_kill ") {
            return value.trim().parse().context("parse oom_kill");
        }
    }
    bail!("/proc/vmstat has no oom_kill line")
}

/// RSS by kind from /proc/PID/status, in bytes: (anon, file, shmem).
pub fn proc_rss(pid: u32) -> Result<(u64, u64, u64)> {
    let text = proc_status(pid)?;
    Ok((
        kb_field(&text, "RssAnon:")?,
        kb_field(&text, "RssFile:")?,
        kb_field(&text, "RssShmem:")?,
    ))
}

/// One `kB` figure of /proc/PID/status (`VmRSS:`, `VmHWM:`...), in bytes.
pub fn status_bytes(pid: u32, key: &str) -> Result<u64> {
    kb_field(&proc_status(pid)?, key)
}

fn proc_status(pid: u32) -> Result<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))
}

/// `key   1234 kB` in status text, in bytes.
fn kb_field(status: &str, key: &str) -> Result<u64> {
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .with_context(|| format!("no {key} in status"))?;
    let kb: u64 = value
        .trim()
        .strip_suffix("kB")
        .with_context(|| format!("{key}{value} is not in kB"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {key}{value}"))?;
    kb.checked_mul(1024)
        .with_context(|| format!("{key}{value} overflows"))
}

/// When a process started, in clock ticks since boot (/proc/PID/stat field
/// 22: the kernel's start_boottime divided down to USER_HZ).
pub fn proc_start_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).context("read stat")?;
    // Fields after the parenthesised comm, which may hold spaces.
    let after_comm = stat.rsplit_once(')').context("no comm in stat")?.1;
    after_comm
        .split_whitespace()
        .nth(19)
        .context("no starttime in stat")?
        .parse()
        .context("parse starttime")
}

/// USER_HZ, the unit of /proc's tick counts.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100)
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// CLOCK_BOOTTIME now, in nanoseconds.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp
/// (`2026-11-26T10:50:07.123456Z`), parsed independently of oomtrace.
pub fn parse_rfc3339_utc(text: &str) -> Option<f64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hour, minute) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let second: f64 = t.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3_600 + minute * 60) as f64 + second)
}

/// BPF program and link ids a process holds open, from its fdinfo.
pub fn bpf_ids_of(pid: u32) -> Result<(Vec<u32>, Vec<u32>)> {
    let (mut progs, mut links) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo")).context("read fdinfo")? {
        let Ok(text) = fs::read_to_string(entry?.path()) else {
            continue;
        };
        for line in text.lines() {
            let id = |key: &str| line.strip_prefix(key).and_then(|v| v.trim().parse().ok());
            if let Some(id) = id("link_id:") {
                links.push(id);
            } else if let Some(id) = id("prog_id:") {
                progs.push(id);
            }
        }
    }
    progs.sort_unstable();
    progs.dedup();
    links.sort_unstable();
    links.dedup();
    Ok((progs, links))
}

/// Whether the kernel still has a BPF program (`link: false`) or link by
/// that id: the bpf(2) GET_FD_BY_ID commands, which fail with ENOENT once
/// it is gone.
pub fn bpf_object_exists(id: u32, link: bool) -> bool {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    // union bpf_attr for these commands: id, next_id, open_flags.
    let attr: [u32; 3] = [id, 0, 0];
    let cmd = if link {
        BPF_LINK_GET_FD_BY_ID
    } else {
        BPF_PROG_GET_FD_BY_ID
    };
    // SAFETY: bpf(2) reads 12 bytes of attr, which live on our stack.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), 12usize) };
    if fd >= 0 {
        // SAFETY: a descriptor bpf(2) just gave us.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
}

/// A directory under the temp dir, removed when dropped (also on panic).
pub struct ScratchDir {
    pub path: std::path::PathBuf,
}

impl ScratchDir {
    pub fn new(name: &str) -> std::io::Result<ScratchDir> {
        let path =
            std::env::temp_dir().join(format!("oomtrace-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_parser_agrees_with_known_instants() {
        // `date -u -d @1795000000` = Wed Nov 18 11:06:40 UTC 2026
        let t = super::parse_rfc3339_utc("2026-11-18T11:06:40.250000Z").expect("parses");
        assert!((t - 1_795_000_000.25).abs() < 1e-6);
        assert_eq!(
            super::parse_rfc3339_utc("1970-01-01T00:00:00.000000Z"),
            Some(0.0)
        );
        assert_eq!(super::parse_rfc3339_utc("2026-11-18 11:06:40Z"), None);
    }

    #[test]
    fn status_figures_are_read_in_kb_and_given_in_bytes() {
        let status = "Name:\tcat\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\nThreads:\t1\n";
        assert_eq!(super::kb_field(status, "VmRSS:").ok(), Some(1536 * 1024));
        assert_eq!(super::kb_field(status, "VmHWM:").ok(), Some(2048 * 1024));
        assert!(super::kb_field(status, "RssAnon:").is_err(), "missing");
        assert!(super::kb_field(status, "Threads:").is_err(), "not in kB");
    }
}
