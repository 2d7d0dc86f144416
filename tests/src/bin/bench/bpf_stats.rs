//! The kernel's own account of what each oomtrace program costs: with BPF
//! run-time statistics on, the kernel adds every run's duration to the
//! program's `run_time_ns` and counts it in `run_cnt`. Per event these are
//! robust on a busy machine, where throughput comparisons are noise.
//!
//! Only the programs the oomtrace process holds open are read (their ids
//! from its /proc fdinfo), never another tool's.

use std::{collections::BTreeMap, fs, os::fd::FromRawFd as _, os::fd::OwnedFd};

use anyhow::{Context as _, Result, bail};

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;
/// `struct bpf_prog_info` up to and including `name[16]` (at 64), which
/// has been there since 4.15; the kernel fills only what we ask for.
const INFO_LEN: usize = 80;
const NAME_OFFSET: usize = 64;

/// Run-time statistics on while this lives. BPF_ENABLE_STATS hands out a
/// descriptor that keeps the kernel's statistics on (what
/// `kernel.bpf_stats_enabled=1` does) until it is closed: the kernel
/// restores the previous state itself when we drop it, return early, panic
/// or are killed, so no sysctl write can be left behind. (The sysctl keeps
/// showing its own setting meanwhile: the two are counted together.)
pub struct StatsOn {
    _fd: OwnedFd,
    /// `kernel.bpf_stats_enabled` before we turned it on.
    pub was: String,
}

impl StatsOn {
    pub fn enable() -> Result<StatsOn> {
        let was = sysctl();
        let attr: [u32; 1] = [BPF_STATS_RUN_TIME];
        // SAFETY: bpf(2) reads 4 bytes of attr (enable_stats.type).
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_ptr(),
                size_of_val(&attr),
            )
        };
        if fd < 0 {
            bail!(
                "BPF_ENABLE_STATS: {} (needs CAP_SYS_ADMIN, kernel 5.8+)",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: a descriptor bpf(2) just gave us, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(StatsOn { _fd: fd, was })
    }
}

/// `kernel.bpf_stats_enabled` as the kernel shows it now.
pub fn sysctl() -> String {
    fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// One program's counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// The counters of every BPF program `pid` holds, by program name (the
/// kernel keeps 15 characters of it; see [`full_name`]).
pub fn programs_of(pid: u32) -> Result<BTreeMap<String, Counters>> {
    let mut by_id: BTreeMap<u32, Counters> = BTreeMap::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in fs::read_dir(&dir).with_context(|| format!("read {dir}"))? {
        let Ok(text) = fs::read_to_string(entry?.path()) else {
            continue;
        };
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // Links carry a prog_id too; only program fds have run_cnt.
        if let (Some(id), Some(run_time_ns), Some(run_cnt)) =
            (value("prog_id:"), value("run_time_ns:"), value("run_cnt:"))
        {
            by_id.insert(
                id as u32,
                Counters {
                    run_time_ns,
                    run_cnt,
                },
            );
        }
    }
    let mut out = BTreeMap::new();
    for (id, counters) in by_id {
        let name = match prog_name(id) {
            Ok(short) => full_name(&short).map_or(format!("{short} (id {id})"), str::to_string),
            Err(_) => format!("prog {id}"),
        };
        out.insert(name, counters);
    }
    Ok(out)
}

/// The source name of one of oomtrace's programs from the kernel's
/// 15-character copy, when only one name fits it.
pub fn full_name(short: &str) -> Option<&'static str> {
    const PROGRAMS: [&str; 14] = [
        "mark_victim_btf",
        "reclaim_snapshot_btf",
        "mark_victim_tracepoint",
        "oom_control_btf",
        "oom_control_fentry_btf",
        "oom_kill_process_entry",
        "oom_kill_process_exit",
        "memcg_reclaim_begin_btf",
        "memcg_reclaim_end_btf",
        "start_task_reaping_btf",
        "finish_task_reaping_btf",
        "skip_task_reaping_btf",
        "sched_process_exit_btf",
        "signal_generate_btf",
    ];
    let mut fits = PROGRAMS
        .iter()
        .filter(|full| !short.is_empty() && full.starts_with(short));
    match (fits.next(), fits.next()) {
        (Some(full), None) => Some(full),
        _ => None,
    }
}

fn prog_name(id: u32) -> Result<String> {
    // union bpf_attr for GET_FD_BY_ID: prog_id, next_id, open_flags.
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: bpf(2) reads 12 bytes of attr, which live on our stack.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_ptr(),
            size_of_val(&attr),
        )
    };
    if fd < 0 {
        bail!("prog {id}: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor bpf(2) just gave us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut info = [0u8; INFO_LEN];
    // attr.info: bpf_fd u32, info_len u32, info u64.
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = InfoAttr {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: INFO_LEN as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: the kernel writes at most info_len bytes into `info`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoAttr,
            size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        bail!("prog {id} info: {}", std::io::Error::last_os_error());
    }
    let name = &info[NAME_OFFSET..NAME_OFFSET + 16];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// What each program did between two readings.
pub fn delta(
    before: &BTreeMap<String, Counters>,
    after: &BTreeMap<String, Counters>,
) -> BTreeMap<String, Counters> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).cloned().unwrap_or_default();
            (
                name.clone(),
                Counters {
                    run_time_ns: a.run_time_ns.saturating_sub(b.run_time_ns),
                    run_cnt: a.run_cnt.saturating_sub(b.run_cnt),
                },
            )
        })
        .collect()
}

/// Adds `more` into `sum`, program by program.
pub fn accumulate(sum: &mut BTreeMap<String, Counters>, more: &BTreeMap<String, Counters>) {
    for (name, c) in more {
        let s = sum.entry(name.clone()).or_default();
        s.run_time_ns += c.run_time_ns;
        s.run_cnt += c.run_cnt;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_names_map_back_to_program_names() {
        use super::full_name;
        assert_eq!(full_name("sched_process_e"), Some("sched_process_exit_btf"));
        assert_eq!(
            full_name("memcg_reclaim_b"),
            Some("memcg_reclaim_begin_btf")
        );
        assert_eq!(full_name("memcg_reclaim_e"), Some("memcg_reclaim_end_btf"));
        assert_eq!(full_name("oom_control_btf"), Some("oom_control_btf"));
        // entry and exit share their first 15 characters.
        assert_eq!(full_name("oom_kill_proces"), None);
        assert_eq!(full_name("somebody_else"), None);
    }
}
