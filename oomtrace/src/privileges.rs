//! Whether this process may load tracing programs.

use std::fs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What the effective capability set allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    pub bpf: bool,
    pub perfmon: bool,
    pub sys_admin: bool,
}

impl Privileges {
    /// Reads `CapEff` from /proc/self/status.
    pub fn current() -> Option<Privileges> {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        Self::from_status(&status)
    }

    pub fn from_status(status: &str) -> Option<Privileges> {
        let hex = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))?
            .trim();
        let mask = u64::from_str_radix(hex, 16).ok()?;
        let has = |cap: u32| mask & (1u64 << cap) != 0;
        Some(Privileges {
            bpf: has(CAP_BPF),
            perfmon: has(CAP_PERFMON),
            sys_admin: has(CAP_SYS_ADMIN),
        })
    }

    /// Loading tracing programs and reading kernel memory from them needs
    /// CAP_BPF with CAP_PERFMON (5.8+), or CAP_SYS_ADMIN.
    pub fn can_trace(&self) -> bool {
        (self.bpf && self.perfmon) || self.sys_admin
    }

    pub fn describe(&self) -> String {
        let mut held = Vec::new();
        if self.sys_admin {
            held.push("CAP_SYS_ADMIN");
        }
        if self.bpf {
            held.push("CAP_BPF");
        }
        if self.perfmon {
            held.push("CAP_PERFMON");
        }
        if held.is_empty() {
            "none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN".to_string()
        } else {
            held.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(cap_eff: &str) -> String {
        format!(
            "Name:\toomtrace\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n"
        )
    }

    #[test]
    fn root_can_trace() {
        let p = Privileges::from_status(&status("000001ffffffffff")).expect("parses");
        assert!(p.can_trace() && p.bpf && p.perfmon && p.sys_admin);
    }

    #[test]
    fn bpf_and_perfmon_are_enough_but_each_alone_is_not() {
        let both = Privileges::from_status(&status("000000c000000000")).expect("parses");
        assert!(both.can_trace() && !both.sys_admin);
        let bpf_only = Privileges::from_status(&status("0000008000000000")).expect("parses");
        assert!(!bpf_only.can_trace());
        let perfmon_only = Privileges::from_status(&status("0000004000000000")).expect("parses");
        assert!(!perfmon_only.can_trace());
    }

    #[test]
    fn an_unprivileged_user_cannot() {
        let p = Privileges::from_status(&status("0000000000000000")).expect("parses");
        assert!(!p.can_trace());
        assert_eq!(p.describe(), "none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN");
    }

    #[test]
    fn garbage_is_not_privileges() {
        assert_eq!(Privileges::from_status("CapEff:\tzz\n"), None);
        assert_eq!(Privileges::from_status("Name: x\n"), None);
    }
}
