//! The contract's vocabulary: every enum-like field of a record, as a type
//! whose JSON is the string schema 1 has always written. Each name is
//! declared once, in the table below; serde and `name()` both read it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares string-valued enums: the enum, `name()` (its JSON string),
/// `ALL`, and serde impls that write and read exactly those strings.
macro_rules! vocabulary {
    ($(
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )*
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            #[allow(dead_code, reason = "not every list is walked")]
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The JSON string.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == text)
                    .ok_or_else(|| {
                        serde::de::Error::unknown_variant(&text, &[$($text),*])
                    })
            }
        }
    )*};
}

vocabulary! {
    /// The `type` of a record.
    RecordType {
        OomKill => "oom_kill",
        OomOutcome => "oom_outcome",
        Sigkill => "sigkill",
        SigkillOutcome => "sigkill_outcome",
        MemcgPressure => "memcg_pressure",
        Lost => "lost",
    }

    /// How a kill was captured.
    Capture {
        Fentry => "fentry",
        TpBtf => "tp_btf",
        Tracepoint => "tracepoint",
    }

    /// How the OOM killer scoped its search (`enum oom_constraint`).
    Constraint {
        /// CONSTRAINT_NONE: the whole machine.
        Global => "global",
        Cpuset => "cpuset",
        Mempolicy => "mempolicy",
        Memcg => "memcg",
    }

    /// Who sent a SIGKILL: the kernel (`SI_KERNEL`) or a process.
    SentBy {
        Kernel => "kernel",
        Process => "process",
    }

    /// What a SIGKILL's sender is, when its name says.
    SenderRole {
        Systemd => "systemd",
        Kubelet => "kubelet",
        ContainerRuntime => "container_runtime",
        Shell => "shell",
    }

    /// Who a SIGKILL's sender is (`killer.kind`).
    KillerKind {
        /// systemd-oomd, earlyoom, facebook oomd, Android lmkd, nohang.
        UserspaceOomKiller => "userspace_oom_killer",
        /// A container runtime or the kubelet, or any sender whose SIGKILL
        /// ends a SIGTERM's grace period (what runtimes do on a stop).
        RuntimeStop => "runtime_stop",
        /// systemd (pid 1 or a user manager) stopping a unit.
        SystemdStop => "systemd_stop",
        /// `kill -9` from a shell, kill(1), pkill or killall.
        PlainKill => "plain_kill",
        /// The kernel itself (SI_KERNEL), not as the OOM killer.
        Kernel => "kernel",
        Unknown => "unknown",
    }

    /// What `killer.kind` was told from (`killer.basis`).
    KillerBasis {
        /// The sender's executable name (else its comm).
        SenderProgram => "sender_program",
        /// systemd-oomd's `user.oomd_kill` (facebook oomd's
        /// `trusted.oomd_kill`) xattr on the target's cgroup.
        CgroupXattr => "cgroup_xattr",
        /// A SIGTERM came first, then this SIGKILL.
        SigtermFirst => "sigterm_first",
        /// si_code SI_KERNEL.
        SiCode => "si_code",
        /// Nothing said.
        Nothing => "nothing",
    }

    /// What the OOM reaper had done by the victim's exit.
    Reaper {
        Reaped => "reaped",
        Skipped => "skipped",
        Started => "started",
        NotRun => "not_run",
    }

    /// Where in the kubelet's cgroup tree a cgroup sits.
    K8sLevel {
        Node => "node",
        Qos => "qos",
        Pod => "pod",
        Container => "container",
    }

    /// A pod's Kubernetes QoS class.
    Qos {
        Guaranteed => "guaranteed",
        Burstable => "burstable",
        Besteffort => "besteffort",
    }

    /// The container runtime a Kubernetes container cgroup names.
    ContainerRuntime {
        Containerd => "containerd",
        CriO => "cri-o",
        Docker => "docker",
    }

    /// The kubelet's cgroup driver.
    CgroupDriver {
        Systemd => "systemd",
        Cgroupfs => "cgroupfs",
    }

    /// A non-Kubernetes owner of a cgroup.
    ServiceKind {
        SystemdService => "systemd_service",
        SystemdScope => "systemd_scope",
        DockerContainer => "docker_container",
        PodmanContainer => "podman_container",
        /// podman's monitor process (conmon) of the container `name`.
        PodmanConmon => "podman_conmon",
        ContainerdContainer => "containerd_container",
    }

    /// What an OOM kill did to the victim's unit (`fate.killed`).
    FateKilled {
        /// The unit's main process: pid 1 of its pid namespace, or
        /// systemd's MainPID.
        MainProcess => "main_process",
        /// Another process; the main one lives on.
        ChildProcess => "child_process",
        /// Every task of a memory.oom.group cgroup.
        WholeGroup => "whole_group",
        Unknown => "unknown",
    }

    /// The unit whose fate `fate` tells.
    FateUnit {
        Container => "container",
        Service => "service",
        PidNamespace => "pid_namespace",
    }

    /// What `fate` was decided from.
    FateBasis {
        /// The victim's pid in its own pid namespace (1: its init).
        PidNamespace => "pid_namespace",
        SystemdMainPid => "systemd_main_pid",
        MemoryOomGroup => "memory_oom_group",
    }

    /// How a kill's `incident` was put together.
    IncidentBasis {
        /// fentry/fexit on `oom_kill_process()`: the kernel's own call.
        OomKillProcess => "oom_kill_process",
        /// Consecutive mark_victim events of one OOM-invoking task in one
        /// OOM domain, the first being the chosen victim.
        MarkVictimSequence => "mark_victim_sequence",
    }

    /// A victim's language runtime.
    RuntimeKind {
        Jvm => "jvm",
        Node => "node",
        Go => "go",
        Dotnet => "dotnet",
        Python => "python",
        Ruby => "ruby",
        Perl => "perl",
        Php => "php",
    }

    /// When a victim's command line was read.
    CapturedAt {
        /// At the kill: the victim itself ran into the OOM.
        Kill => "kill",
        /// At the victim's exit, before the kernel freed its memory.
        Exit => "exit",
    }

    /// How a candidate table was taken.
    CandidatesSource {
        /// Read from /proc after the kill.
        Proc => "proc",
        /// Taken by the kernel side at the kill (a walk of the process
        /// list in `mark_victim`).
        Kernel => "kernel",
    }

    /// A cautious reading of a workload's kills.
    Hint {
        Undersized => "undersized",
        SteadyGrowth => "steady_growth",
        Spike => "spike",
    }

    /// What a usage trend's climb is measured on.
    TrendBasis {
        /// Anonymous memory (what a leak grows; page cache is reclaimable).
        Anon => "anon",
        /// The usage counter, where the kernel does not split it.
        Usage => "usage",
    }

    /// How exactly a Burstable pod's memory request reads back.
    RequestBound {
        About => "about",
        AtLeast => "at_least",
        AtMost => "at_most",
    }

    /// Where records were lost.
    LostStage {
        /// The kernel side found the ring buffer full.
        RingBuffer => "ring_buffer",
        /// The reader stopped taking records.
        Output => "output",
        /// Written to the output but not kept in the `--store` database.
        Store => "store",
    }

}

/// Where a runtime's memory setting came from: the command line, the
/// runtime's default, or the environment variable it was read from (the
/// JSON is `argv`, `default` or the variable's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingSource {
    Argv,
    Default,
    Env(String),
}

impl SettingSource {
    /// The JSON string.
    pub fn name(&self) -> &str {
        match self {
            SettingSource::Argv => "argv",
            SettingSource::Default => "default",
            SettingSource::Env(name) => name,
        }
    }
}

impl Serialize for SettingSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SettingSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "argv" => SettingSource::Argv,
            "default" => SettingSource::Default,
            _ => SettingSource::Env(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_source_is_argv_default_or_the_variable_name() {
        for (source, json) in [
            (SettingSource::Argv, "\"argv\""),
            (SettingSource::Default, "\"default\""),
            (SettingSource::Env("GOMEMLIMIT".into()), "\"GOMEMLIMIT\""),
        ] {
            assert_eq!(serde_json::to_string(&source).ok().as_deref(), Some(json));
            assert_eq!(
                serde_json::from_str::<SettingSource>(json).ok(),
                Some(source)
            );
        }
    }

    #[test]
    fn names_keep_the_schema_1_spelling() {
        let json = |v: &dyn erased::Json| v.json();
        assert_eq!(json(&ContainerRuntime::CriO), "\"cri-o\"");
        assert_eq!(json(&Capture::TpBtf), "\"tp_btf\"");
        assert_eq!(json(&Reaper::NotRun), "\"not_run\"");
        assert_eq!(json(&SenderRole::ContainerRuntime), "\"container_runtime\"");
        assert_eq!(
            json(&KillerKind::UserspaceOomKiller),
            "\"userspace_oom_killer\""
        );
        assert_eq!(json(&KillerBasis::SigtermFirst), "\"sigterm_first\"");
        assert_eq!(json(&ServiceKind::SystemdService), "\"systemd_service\"");
        assert_eq!(json(&Hint::SteadyGrowth), "\"steady_growth\"");
        assert!(serde_json::from_str::<Qos>("\"platinum\"").is_err());
        for stage in LostStage::ALL {
            assert_eq!(
                serde_json::from_str::<LostStage>(&json(stage)).ok(),
                Some(*stage)
            );
        }
    }

    mod erased {
        pub trait Json {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Json for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap_or_default()
            }
        }
    }
}
