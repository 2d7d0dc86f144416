//! Reading a SIGKILL: its si_code, and what kind of process sent it.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

use crate::report::{KillerBasis, KillerKind, SenderRole};

pub const SI_KERNEL: i32 = 0x80;

/// `si_code` by its kernel name.
pub fn code_name(code: i32) -> String {
    match code {
        0 => "SI_USER".into(),
        SI_KERNEL => "SI_KERNEL".into(),
        -1 => "SI_QUEUE".into(),
        -6 => "SI_TKILL".into(),
        other => other.to_string(),
    }
}

/// What a sender is, from its comm, when the name says so: the usual
/// senders of a SIGKILL to a service or a container.
pub fn sender_role(comm: &[u8]) -> Option<SenderRole> {
    let comm = std::str::from_utf8(comm).ok()?;
    match comm {
        "systemd" => Some(SenderRole::Systemd),
        "kubelet" => Some(SenderRole::Kubelet),
        "runc" | "crun" | "conmon" | "crio" | "dockerd" | "containerd" | "podman" => {
            Some(SenderRole::ContainerRuntime)
        }
        c if c.starts_with("containerd-shim") => Some(SenderRole::ContainerRuntime),
        "bash" | "sh" | "dash" | "zsh" | "fish" | "kill" | "pkill" | "killall" => {
            Some(SenderRole::Shell)
        }
        _ => None,
    }
}

/// Userspace OOM killers, by the name of their executable (or comm).
const USERSPACE_OOM_KILLERS: &[&str] = &["earlyoom", "systemd-oomd", "oomd", "lmkd", "nohang"];

/// Container runtimes and the kubelet: who stops a container. Comms are
/// cut at 15 bytes (`containerd-shim-runc-v2` is `containerd-shim`).
const RUNTIMES: &[&str] = &[
    "kubelet",
    "runc",
    "crun",
    "conmon",
    "crio",
    "dockerd",
    "containerd",
    "podman",
    "docker",
];

/// What `attribute` decides from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Evidence<'a> {
    pub code: i32,
    /// The sender's comm.
    pub comm: Option<&'a [u8]>,
    /// The sender's executable path.
    pub program: Option<&'a str>,
    /// A SIGTERM came first.
    pub sigterm_first: bool,
    /// Which oomd left its kill xattr on the target's cgroup:
    /// `systemd-oomd` or `oomd`.
    pub oomd_xattr: Option<&'static str>,
}

/// A sender, attributed: kind, known name, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub kind: KillerKind,
    pub name: Option<String>,
    pub basis: KillerBasis,
}

/// Who sent a SIGKILL. The sender's own name wins over what it did
/// (earlyoom also sends SIGTERM first, and a shell's `kill; kill -9` is a
/// plain kill); then systemd-oomd's trace on the cgroup; then the shape of
/// a stop (SIGTERM, grace, SIGKILL) from a sender we do not know.
pub fn attribute(e: &Evidence) -> Attribution {
    let of = |kind, name: Option<&str>, basis| Attribution {
        kind,
        name: name.map(String::from),
        basis,
    };
    if e.code == SI_KERNEL {
        return of(KillerKind::Kernel, None, KillerBasis::SiCode);
    }
    // The executable's name is whole; a comm is cut and can be renamed.
    let exe = e
        .program
        .and_then(|p| p.rsplit('/').next())
        .map(|p| p.trim_end_matches(" (deleted)"));
    let comm = e.comm.and_then(|c| std::str::from_utf8(c).ok());
    for name in exe.into_iter().chain(comm) {
        let known = |list: &[&'static str]| list.iter().copied().find(|k| *k == name);
        if let Some(killer) = known(USERSPACE_OOM_KILLERS) {
            return of(
                KillerKind::UserspaceOomKiller,
                Some(killer),
                KillerBasis::SenderProgram,
            );
        }
        if name == "systemd" {
            return of(
                KillerKind::SystemdStop,
                Some(name),
                KillerBasis::SenderProgram,
            );
        }
        if known(RUNTIMES).is_some() || name.starts_with("containerd-shim") {
            return of(
                KillerKind::RuntimeStop,
                Some(name),
                KillerBasis::SenderProgram,
            );
        }
        if sender_role(name.as_bytes()) == Some(SenderRole::Shell) {
            return of(
                KillerKind::PlainKill,
                Some(name),
                KillerBasis::SenderProgram,
            );
        }
    }
    if let Some(oomd) = e.oomd_xattr {
        return of(
            KillerKind::UserspaceOomKiller,
            Some(oomd),
            KillerBasis::CgroupXattr,
        );
    }
    if e.sigterm_first {
        return of(KillerKind::RuntimeStop, None, KillerBasis::SigtermFirst);
    }
    of(KillerKind::Unknown, None, KillerBasis::Nothing)
}

/// The sender's executable, while it lives.
pub fn program_of(tgid: u32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{tgid}/exe")).ok()?;
    Some(exe.to_string_lossy().into_owned())
}

/// Which oomd marked `cgroup_dir` (a cgroup2 directory) as a cgroup it
/// killed in: systemd-oomd sets `user.oomd_kill`, facebook oomd
/// `trusted.oomd_kill`.
pub fn oomd_xattr(cgroup_dir: &Path) -> Option<&'static str> {
    let path = CString::new(cgroup_dir.as_os_str().as_bytes()).ok()?;
    [
        ("user.oomd_kill", "systemd-oomd"),
        ("trusted.oomd_kill", "oomd"),
    ]
    .into_iter()
    .find(|(attr, _)| {
        let Ok(attr) = CString::new(*attr) else {
            return false;
        };
        // SAFETY: both are NUL-terminated; a zero-size query writes
        // nothing and returns the value's length, or -1 when absent.
        unsafe { libc::getxattr(path.as_ptr(), attr.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
    })
    .map(|(_, oomd)| oomd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: Evidence) -> (KillerKind, Option<String>, KillerBasis) {
        let a = attribute(&e);
        (a.kind, a.name, a.basis)
    }

    #[test]
    fn userspace_oom_killers_by_program_then_comm() {
        let earlyoom = Evidence {
            comm: Some(b"earlyoom"),
            program: Some("/usr/bin/earlyoom"),
            sigterm_first: true,
            ..Evidence::default()
        };
        assert_eq!(
            kind(earlyoom),
            (
                KillerKind::UserspaceOomKiller,
                Some("earlyoom".into()),
                KillerBasis::SenderProgram
            )
        );
        // Exited before the lookup: the comm still says.
        let oomd = Evidence {
            comm: Some(b"systemd-oomd"),
            ..Evidence::default()
        };
        assert_eq!(kind(oomd).1.as_deref(), Some("systemd-oomd"));
        let lmkd = Evidence {
            comm: Some(b"lmkd"),
            program: Some("/system/bin/lmkd"),
            ..Evidence::default()
        };
        assert_eq!(kind(lmkd).0, KillerKind::UserspaceOomKiller);
    }

    #[test]
    fn the_executable_wins_over_a_renamed_comm() {
        let e = Evidence {
            comm: Some(b"worker-3"),
            program: Some("/usr/sbin/earlyoom (deleted)"),
            ..Evidence::default()
        };
        assert_eq!(kind(e).1.as_deref(), Some("earlyoom"));
        let shim = Evidence {
            comm: Some(b"containerd-shim"),
            program: Some("/usr/bin/containerd-shim-runc-v2"),
            sigterm_first: true,
            ..Evidence::default()
        };
        assert_eq!(
            kind(shim),
            (
                KillerKind::RuntimeStop,
                Some("containerd-shim-runc-v2".into()),
                KillerBasis::SenderProgram
            )
        );
    }

    #[test]
    fn systemd_runtimes_and_shells() {
        let systemd = Evidence {
            comm: Some(b"systemd"),
            program: Some("/usr/lib/systemd/systemd"),
            sigterm_first: true,
            ..Evidence::default()
        };
        assert_eq!(kind(systemd).0, KillerKind::SystemdStop);
        let runc = Evidence {
            comm: Some(b"runc"),
            ..Evidence::default()
        };
        assert_eq!(kind(runc).0, KillerKind::RuntimeStop);
        // `kill TERM; sleep; kill -9` by hand is still a plain kill.
        let shell = Evidence {
            comm: Some(b"sh"),
            program: Some("/usr/bin/dash"),
            sigterm_first: true,
            ..Evidence::default()
        };
        assert_eq!(
            kind(shell),
            (
                KillerKind::PlainKill,
                Some("dash".into()),
                KillerBasis::SenderProgram
            )
        );
    }

    #[test]
    fn an_unknown_sender_after_a_sigterm_is_a_stop_else_unknown() {
        let stop = Evidence {
            comm: Some(b"supervisor"),
            program: Some("/opt/bin/supervisor"),
            sigterm_first: true,
            ..Evidence::default()
        };
        assert_eq!(
            kind(stop),
            (KillerKind::RuntimeStop, None, KillerBasis::SigtermFirst)
        );
        let bare = Evidence {
            comm: Some(b"supervisor"),
            ..Evidence::default()
        };
        assert_eq!(
            kind(bare),
            (KillerKind::Unknown, None, KillerBasis::Nothing)
        );
        assert_eq!(kind(Evidence::default()).0, KillerKind::Unknown);
    }

    #[test]
    fn the_oomd_xattr_names_a_sender_that_says_nothing() {
        let e = Evidence {
            comm: Some(b"\xff"),
            oomd_xattr: Some("systemd-oomd"),
            sigterm_first: true,
            ..Evidence::default()
        };
        assert_eq!(
            kind(e),
            (
                KillerKind::UserspaceOomKiller,
                Some("systemd-oomd".into()),
                KillerBasis::CgroupXattr
            )
        );
    }

    #[test]
    fn the_kernel_is_the_kernel_whatever_ran() {
        let e = Evidence {
            code: SI_KERNEL,
            comm: Some(b"earlyoom"),
            ..Evidence::default()
        };
        assert_eq!(kind(e).0, KillerKind::Kernel);
    }

    #[test]
    fn no_xattr_on_a_plain_directory() {
        assert_eq!(oomd_xattr(Path::new("/tmp")), None);
        assert_eq!(oomd_xattr(Path::new("/nonexistent/dir")), None);
    }

    #[test]
    fn own_program_is_readable() {
        let me = program_of(std::process::id()).expect("own exe");
        assert!(Path::new(&me).is_absolute(), "{me}");
    }

    #[test]
    fn codes_by_name() {
        assert_eq!(code_name(0), "SI_USER");
        assert_eq!(code_name(0x80), "SI_KERNEL");
        assert_eq!(code_name(-6), "SI_TKILL");
        assert_eq!(code_name(-1), "SI_QUEUE");
        assert_eq!(code_name(-5), "-5");
    }

    #[test]
    fn roles_from_names() {
        assert_eq!(sender_role(b"systemd"), Some(SenderRole::Systemd));
        assert_eq!(sender_role(b"kubelet"), Some(SenderRole::Kubelet));
        assert_eq!(
            sender_role(b"containerd-shim"),
            Some(SenderRole::ContainerRuntime)
        );
        assert_eq!(sender_role(b"runc"), Some(SenderRole::ContainerRuntime));
        assert_eq!(sender_role(b"bash"), Some(SenderRole::Shell));
        assert_eq!(sender_role(b"python3"), None);
        assert_eq!(sender_role(b"\xff"), None);
    }
}
