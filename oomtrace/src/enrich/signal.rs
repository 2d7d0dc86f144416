//! Reading a SIGKILL: its si_code, and what kind of process sent it.

use crate::report::SenderRole;

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

#[cfg(test)]
mod tests {
    use super::*;

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
